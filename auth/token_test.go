package auth

import (
	"fmt"
	"strings"
	"testing"
)

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

func TestDotSegmentsAreNotSupplierIDs(t *testing.T) {
	for _, id := range []string{".", ".."} {
		if ValidSupplierID([]byte(id)) {
			t.Errorf("%q accepted as a supplier ID", id)
		}
	}
	for _, id := range []string{"...", "bella.photo", "a..b"} {
		if !ValidSupplierID([]byte(id)) {
			t.Errorf("%q refused", id)
		}
	}
}
