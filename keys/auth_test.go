package keys

import (
	"fmt"
	"strings"
	"testing"
)

func testCreds() []Credential {
	return []Credential{
		{Name: "billing", Hash: HashToken("tok-billing")},
		{Name: "chat-ui", Hash: HashToken("tok-chat")},
		{Name: "batch", Hash: HashToken("tok-batch")},
	}
}

func TestAuthenticate(t *testing.T) {
	a, err := NewAuthenticator(testCreds())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		header  string
		want    string
		wantErr error
	}{
		{"first", "Bearer tok-billing", "billing", nil},
		{"middle", "Bearer tok-chat", "chat-ui", nil},
		{"last", "Bearer tok-batch", "batch", nil},
		{"lowercase scheme", "bearer tok-chat", "chat-ui", nil},
		{"mixed case scheme", "BeArEr tok-chat", "chat-ui", nil},
		{"surrounding spaces", "  Bearer   tok-chat \t", "chat-ui", nil},
		{"tab separator", "Bearer\ttok-chat", "chat-ui", nil},
		{"empty", "", "", ErrMissingCredentials},
		{"spaces", "   ", "", ErrMissingCredentials},
		{"scheme only", "Bearer", "", ErrMissingCredentials},
		{"scheme and spaces", "Bearer   ", "", ErrMissingCredentials},
		{"unknown token", "Bearer tok-other", "", ErrInvalidCredentials},
		{"token prefix", "Bearer tok-cha", "", ErrInvalidCredentials},
		{"token case", "Bearer TOK-CHAT", "", ErrInvalidCredentials},
		{"basic", "Basic dXNlcjpwYXNz", "", ErrInvalidCredentials},
		{"no separator", "Bearertok-chat", "", ErrInvalidCredentials},
		{"token only", "tok-chat", "", ErrInvalidCredentials},
		{"short", "Bear", "", ErrInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := a.Authenticate([]byte(tt.header))
			if err != tt.wantErr {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.want == "" {
				if c != nil {
					t.Fatalf("caller = %+v, want nil", c)
				}
				return
			}
			if c == nil || c.Name != tt.want {
				t.Fatalf("caller = %+v, want %q", c, tt.want)
			}
		})
	}
}

func TestNewAuthenticator(t *testing.T) {
	h := HashToken("x")
	tests := []struct {
		name   string
		creds  []Credential
		errHas string
	}{
		{"empty", nil, "no caller credentials"},
		{"no name", []Credential{{Hash: h}}, "has no name"},
		{"duplicate name", []Credential{{"a", h}, {"a", HashToken("y")}}, `duplicate caller name "a"`},
		{"zero hash", []Credential{{Name: "a"}}, "no token hash"},
		{"duplicate hash", []Credential{{"a", h}, {"b", h}}, "same token hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAuthenticator(tt.creds)
			if err == nil || a != nil {
				t.Fatalf("NewAuthenticator = %v, %v; want an error", a, err)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("err = %q, want it to contain %q", err, tt.errHas)
			}
		})
	}
	// The authenticator keeps its own copy of the credentials.
	creds := testCreds()
	a, err := NewAuthenticator(creds)
	if err != nil {
		t.Fatal(err)
	}
	creds[0].Hash = HashToken("changed")
	if c, err := a.Authenticate([]byte("Bearer tok-billing")); err != nil || c.Name != "billing" {
		t.Fatalf("after changing the input: %v, %v", c, err)
	}
}

func TestParseTokenHash(t *testing.T) {
	// printf %s tok-chat | sha256sum
	want := HashToken("tok-chat")
	hexHash := fmt.Sprintf("%x", want)
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{"lowercase", hexHash, false},
		{"uppercase", strings.ToUpper(hexHash), false},
		{"short", hexHash[:63], true},
		{"long", hexHash + "0", true},
		{"not hex", "z" + hexHash[1:], true},
		{"empty", "", true},
		{"with spaces", " " + hexHash[1:], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTokenHash(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != want {
				t.Fatalf("ParseTokenHash = %x, want %x", got, want)
			}
		})
	}
	if got := fmt.Sprintf("%x", HashToken("abc")); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashToken(abc) = %s", got)
	}
}

func TestAuthenticateAllocs(t *testing.T) {
	creds := testCreds()
	for i := range 50 {
		creds = append(creds, Credential{Name: fmt.Sprint("app", i), Hash: HashToken(fmt.Sprint("tok", i))})
	}
	a, err := NewAuthenticator(creds)
	if err != nil {
		t.Fatal(err)
	}
	for _, header := range []string{"Bearer tok-batch", "Bearer wrong", "", "Basic x"} {
		h := []byte(header)
		if n := testing.AllocsPerRun(100, func() { _, _ = a.Authenticate(h) }); n != 0 {
			t.Fatalf("Authenticate(%q) allocates %v times, want 0", header, n)
		}
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		creds := make([]Credential, n)
		for i := range creds {
			creds[i] = Credential{Name: fmt.Sprint("app", i), Hash: HashToken(fmt.Sprint("tok-", i))}
		}
		a, err := NewAuthenticator(creds)
		if err != nil {
			b.Fatal(err)
		}
		header := []byte(fmt.Sprintf("Bearer tok-%d", n-1))
		b.Run(fmt.Sprint(n, "callers"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Authenticate(header); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
