package auth_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/auth"
	"github.com/wedsync/veil/keys"
)

// testNow is the fixed clock of every test authenticator.
var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

func hash(token string) [32]byte { return sha256.Sum256([]byte(token)) }

func testCallers() []auth.CallerSpec {
	return []auth.CallerSpec{
		{Name: "billing", TokenHash: hash("tok-billing"), Suppliers: []string{"*"}},
		{Name: "chat-ui", TokenHash: hash("tok-chat"), Suppliers: []string{"rose.venue", "acme-photo"}},
		{Name: "batch", TokenHash: hash("tok-batch"), Suppliers: []string{"zeta_caterer"}},
	}
}

func newAuth(t testing.TB, o auth.Options) *auth.Authenticator {
	t.Helper()
	if o.Now == nil {
		o.Now = fixedNow
	}
	a, err := auth.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

// want is the expected outcome of Authenticate: a caller and supplier, or a
// failure status and code.
type want struct {
	caller   string
	supplier string
	status   int
	code     string
}

func check(t *testing.T, id auth.Identity, f *auth.Failure, w want) {
	t.Helper()
	if w.code != "" {
		if f == nil {
			t.Fatalf("identity = %+v, want failure %d %s", id, w.status, w.code)
		}
		if f.Status != w.status || f.Code != w.code {
			t.Fatalf("failure = %v, want %d %s", f, w.status, w.code)
		}
		if id.Caller != nil || id.Supplier != nil || id.Signed {
			t.Fatalf("identity = %+v alongside failure, want zero", id)
		}
		return
	}
	if f != nil {
		t.Fatalf("failure = %v, want caller %q", f, w.caller)
	}
	if id.Caller == nil || id.Caller.Name != w.caller || string(id.Supplier) != w.supplier {
		t.Fatalf("identity = %+v (supplier %q), want caller %q supplier %q", id, id.Supplier, w.caller, w.supplier)
	}
	if !id.Caller.Allows(id.Supplier) {
		t.Fatalf("caller %q does not allow its own supplier %q", id.Caller.Name, id.Supplier)
	}
}

func ok(caller, supplier string) want { return want{caller: caller, supplier: supplier} }

func refused(status int, code string) want { return want{status: status, code: code} }

func TestAuthenticateStatic(t *testing.T) {
	a := newAuth(t, auth.Options{Callers: testCallers()})
	long := strings.Repeat("a", auth.MaxSupplierIDLen)
	tests := []struct {
		name     string
		header   string
		supplier string
		want     want
	}{
		{"star scope", "Bearer tok-billing", "acme-photo", ok("billing", "acme-photo")},
		{"star scope other supplier", "Bearer tok-billing", "any.supplier_1-x", ok("billing", "any.supplier_1-x")},
		{"star scope longest id", "Bearer tok-billing", long, ok("billing", long)},
		{"list scope first", "Bearer tok-chat", "acme-photo", ok("chat-ui", "acme-photo")},
		{"list scope second", "Bearer tok-chat", "rose.venue", ok("chat-ui", "rose.venue")},
		{"single scope", "Bearer tok-batch", "zeta_caterer", ok("batch", "zeta_caterer")},
		{"lowercase scheme", "bearer tok-chat", "acme-photo", ok("chat-ui", "acme-photo")},
		{"mixed case scheme", "BeArEr tok-chat", "acme-photo", ok("chat-ui", "acme-photo")},
		{"surrounding spaces", "  Bearer   tok-chat \t", "acme-photo", ok("chat-ui", "acme-photo")},
		{"tab separator", "Bearer\ttok-chat", "acme-photo", ok("chat-ui", "acme-photo")},

		{"no header", "", "acme-photo", refused(401, auth.CodeMissingCallerToken)},
		{"spaces", "   ", "acme-photo", refused(401, auth.CodeMissingCallerToken)},
		{"scheme only", "Bearer", "acme-photo", refused(401, auth.CodeMissingCallerToken)},
		{"scheme and spaces", "Bearer   ", "acme-photo", refused(401, auth.CodeMissingCallerToken)},
		{"unknown token", "Bearer tok-other", "acme-photo", refused(401, auth.CodeInvalidCallerToken)},
		{"token prefix", "Bearer tok-cha", "acme-photo", refused(401, auth.CodeInvalidCallerToken)},
		{"token case", "Bearer TOK-CHAT", "acme-photo", refused(401, auth.CodeInvalidCallerToken)},
		{"basic scheme", "Basic dXNlcjpwYXNz", "acme-photo", refused(401, auth.CodeInvalidCallerToken)},
		{"no separator", "Bearertok-chat", "acme-photo", refused(401, auth.CodeInvalidCallerToken)},
		{"token only", "tok-chat", "acme-photo", refused(401, auth.CodeInvalidCallerToken)},
		{"jwt shaped without jwt config", "Bearer eyJh.eyJi.c2ln", "acme-photo", refused(401, auth.CodeInvalidCallerToken)},
		{"bad token before missing supplier", "Bearer tok-other", "", refused(401, auth.CodeInvalidCallerToken)},

		{"missing supplier", "Bearer tok-billing", "", refused(400, auth.CodeSupplierRequired)},
		{"supplier with space", "Bearer tok-billing", "acme photo", refused(400, auth.CodeInvalidSupplierID)},
		{"supplier with slash", "Bearer tok-billing", "acme/photo", refused(400, auth.CodeInvalidSupplierID)},
		{"supplier too long", "Bearer tok-billing", long + "a", refused(400, auth.CodeInvalidSupplierID)},
		{"supplier non-ascii", "Bearer tok-billing", "café", refused(400, auth.CodeInvalidSupplierID)},
		{"supplier star", "Bearer tok-billing", "*", refused(400, auth.CodeInvalidSupplierID)},
		{"malformed before scope", "Bearer tok-chat", "rose venue", refused(400, auth.CodeInvalidSupplierID)},

		{"outside list scope", "Bearer tok-chat", "zeta_caterer", refused(403, auth.CodeSupplierNotAllowed)},
		{"case differs from scope", "Bearer tok-chat", "Acme-photo", refused(403, auth.CodeSupplierNotAllowed)},
		{"prefix of scoped id", "Bearer tok-chat", "acme", refused(403, auth.CodeSupplierNotAllowed)},
		{"outside single scope", "Bearer tok-batch", "acme-photo", refused(403, auth.CodeSupplierNotAllowed)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, f := a.Authenticate([]byte(tt.header), []byte(tt.supplier), "192.0.2.1:5000")
			check(t, id, f, tt.want)
			if f != nil && strings.Contains(f.Message, "tok-") {
				t.Fatalf("failure message %q quotes the token", f.Message)
			}
			if id.Signed {
				t.Fatal("static identity is Signed")
			}
		})
	}
}

func TestFailureTypeAndMessage(t *testing.T) {
	a := newAuth(t, auth.Options{Callers: testCallers()})
	tests := []struct {
		name, header, supplier string
		wantType               string
		msgHas                 []string
	}{
		{"missing token", "", "", "authentication_error", []string{"Authorization: Bearer"}},
		{"missing supplier", "Bearer tok-chat", "", "invalid_request_error", []string{"X-Supplier-ID"}},
		{"malformed supplier", "Bearer tok-chat", "a b", "invalid_request_error", []string{"X-Supplier-ID"}},
		{"not allowed", "Bearer tok-chat", "zeta_caterer", "permission_error", []string{`"chat-ui"`, `"zeta_caterer"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, f := a.Authenticate([]byte(tt.header), []byte(tt.supplier), "")
			if f == nil {
				t.Fatal("no failure")
			}
			if got := f.Type(); got != tt.wantType {
				t.Errorf("Type() = %q, want %q", got, tt.wantType)
			}
			for _, s := range tt.msgHas {
				if !strings.Contains(f.Message, s) {
					t.Errorf("message %q lacks %q", f.Message, s)
				}
			}
			if !strings.Contains(f.Error(), f.Code) || !strings.HasPrefix(f.Error(), "auth: ") {
				t.Errorf("Error() = %q", f.Error())
			}
		})
	}
}

func TestFailuresAreIndependentCopies(t *testing.T) {
	a := newAuth(t, auth.Options{Callers: testCallers()})
	_, f := a.Authenticate(nil, nil, "")
	f.Message = "tampered"
	_, g := a.Authenticate(nil, nil, "")
	if g.Message == "tampered" {
		t.Fatal("a returned Failure shares state with later failures")
	}
}

func TestCallerScope(t *testing.T) {
	a := newAuth(t, auth.Options{Callers: testCallers()})
	callers := a.Callers()
	if len(callers) != 3 {
		t.Fatalf("Callers() has %d callers, want 3", len(callers))
	}
	byName := map[string]*auth.Caller{}
	for _, c := range callers {
		byName[c.Name] = c
	}
	tests := []struct {
		caller    string
		supplier  string
		allows    bool
		wantScope []string
	}{
		{"billing", "acme-photo", true, []string{"*"}},
		{"billing", "x", true, []string{"*"}},
		{"billing", "", false, []string{"*"}},
		{"billing", "bad id", false, []string{"*"}},
		{"chat-ui", "acme-photo", true, []string{"acme-photo", "rose.venue"}},
		{"chat-ui", "rose.venue", true, []string{"acme-photo", "rose.venue"}},
		{"chat-ui", "rose.venuex", false, []string{"acme-photo", "rose.venue"}},
		{"chat-ui", "aaa", false, []string{"acme-photo", "rose.venue"}},
		{"chat-ui", "zzz", false, []string{"acme-photo", "rose.venue"}},
		{"batch", "zeta_caterer", true, []string{"zeta_caterer"}},
		{"batch", "acme-photo", false, []string{"zeta_caterer"}},
	}
	for _, tt := range tests {
		t.Run(tt.caller+"/"+tt.supplier, func(t *testing.T) {
			c := byName[tt.caller]
			if got := c.Allows([]byte(tt.supplier)); got != tt.allows {
				t.Errorf("Allows(%q) = %v, want %v", tt.supplier, got, tt.allows)
			}
			scope := c.Scope()
			if !slices.Equal(scope, tt.wantScope) {
				t.Errorf("Scope() = %q, want %q", scope, tt.wantScope)
			}
			scope[0] = "mutated"
			if c.Scope()[0] == "mutated" {
				t.Error("Scope() exposes the caller's scope")
			}
		})
	}
	var nilCaller *auth.Caller
	if nilCaller.Allows([]byte("acme-photo")) || nilCaller.Scope() != nil {
		t.Error("nil caller allows or has a scope")
	}
}

func TestValidSupplierID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"acme-photo", true},
		{"A.b_c-9", true},
		{strings.Repeat("z", 128), true},
		{"", false},
		{strings.Repeat("z", 129), false},
		{"a b", false},
		{"a\x00", false},
		{"*", false},
		{"ü", false},
		{"a:b", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := auth.ValidSupplierID([]byte(tt.id)); got != tt.want {
				t.Errorf("ValidSupplierID(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	h := hash("x")
	pub, _ := testEdKey()
	validJWT := func(mod func(*auth.JWTOptions)) *auth.JWTOptions {
		o := &auth.JWTOptions{HS256Keys: []keys.Secret{keys.NewSecret(hsKey1)}}
		if mod != nil {
			mod(o)
		}
		return o
	}
	spec := func(name string, h [32]byte, suppliers ...string) auth.CallerSpec {
		return auth.CallerSpec{Name: name, TokenHash: h, Suppliers: suppliers}
	}
	tests := []struct {
		name   string
		opts   auth.Options
		errHas string // "" for success
	}{
		{"static only", auth.Options{Callers: testCallers()}, ""},
		{"jwt only", auth.Options{JWT: validJWT(nil)}, ""},
		{"ed25519 only", auth.Options{JWT: &auth.JWTOptions{Ed25519Keys: []ed25519.PublicKey{pub}}}, ""},
		{"nothing", auth.Options{}, "no callers and no JWT"},
		{"no name", auth.Options{Callers: []auth.CallerSpec{spec("", h, "*")}}, "no name"},
		{"control character in name", auth.Options{Callers: []auth.CallerSpec{spec("a\nb", h, "*")}}, "control character"},
		{"long name", auth.Options{Callers: []auth.CallerSpec{spec(strings.Repeat("n", 129), h, "*")}}, "longer than"},
		{"duplicate name", auth.Options{Callers: []auth.CallerSpec{spec("a", h, "*"), spec("a", hash("y"), "*")}}, `duplicate caller name "a"`},
		{"zero hash", auth.Options{Callers: []auth.CallerSpec{spec("a", [32]byte{}, "*")}}, "no token hash"},
		{"duplicate hash", auth.Options{Callers: []auth.CallerSpec{spec("a", h, "*"), spec("b", h, "*")}}, "same token hash"},
		{"empty scope", auth.Options{Callers: []auth.CallerSpec{spec("a", h)}}, "has no suppliers"},
		{"star and ids", auth.Options{Callers: []auth.CallerSpec{spec("a", h, "*", "acme")}}, `"*" together`},
		{"invalid supplier", auth.Options{Callers: []auth.CallerSpec{spec("a", h, "acme photo")}}, "invalid supplier ID"},
		{"empty supplier", auth.Options{Callers: []auth.CallerSpec{spec("a", h, "")}}, "invalid supplier ID"},
		{"duplicate supplier", auth.Options{Callers: []auth.CallerSpec{spec("a", h, "x", "y", "x")}}, `supplier "x" twice`},
		{"jwt without keys", auth.Options{JWT: &auth.JWTOptions{}}, "without HS256 or Ed25519 keys"},
		{"short hs256 key", auth.Options{JWT: &auth.JWTOptions{HS256Keys: []keys.Secret{keys.NewSecret("short")}}}, "shorter than 32 bytes"},
		{"duplicate hs256 key", auth.Options{JWT: validJWT(func(o *auth.JWTOptions) { o.HS256Keys = append(o.HS256Keys, keys.NewSecret(hsKey1)) })}, "are the same"},
		{"bad ed25519 key", auth.Options{JWT: &auth.JWTOptions{Ed25519Keys: []ed25519.PublicKey{pub[:31]}}}, "is 31 bytes"},
		{"duplicate ed25519 key", auth.Options{JWT: &auth.JWTOptions{Ed25519Keys: []ed25519.PublicKey{pub, pub}}}, "are the same"},
		{"hs256 key is ed25519 public key", auth.Options{JWT: &auth.JWTOptions{
			HS256Keys: []keys.Secret{keys.NewSecret(string(pub))}, Ed25519Keys: []ed25519.PublicKey{pub}}}, "is Ed25519 public key 0"},
		{"negative leeway", auth.Options{JWT: validJWT(func(o *auth.JWTOptions) { o.Leeway = -time.Second })}, "negative JWT leeway"},
		{"negative max ttl", auth.Options{JWT: validJWT(func(o *auth.JWTOptions) { o.MaxTTL = -time.Second })}, "negative JWT max TTL"},
		{"same claims", auth.Options{JWT: validJWT(func(o *auth.JWTOptions) { o.CallerClaim = "supplier_id" })}, "are both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := auth.New(tt.opts)
			if tt.errHas == "" {
				if err != nil || a == nil {
					t.Fatalf("New() = %v, %v; want an authenticator", a, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("New() error = %v, want it to contain %q", err, tt.errHas)
			}
			if !strings.HasPrefix(err.Error(), "auth: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if strings.Contains(err.Error(), hsKey1) {
				t.Errorf("error %q reveals a key", err)
			}
		})
	}
}

func TestAuthenticateStaticAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts are only meaningful without -short and -race")
	}
	a := newAuth(t, auth.Options{Callers: testCallers(), JWT: testJWTOptions(), Audit: zap.NewNop()})
	tests := []struct {
		name, header, supplier string
	}{
		{"star scope", "Bearer tok-billing", "acme-photo"},
		{"list scope", "Bearer tok-chat", "rose.venue"},
		{"last caller", "  bearer\ttok-batch ", "zeta_caterer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header, supplier := []byte(tt.header), []byte(tt.supplier)
			allocs := testing.AllocsPerRun(1000, func() {
				if _, f := a.Authenticate(header, supplier, "192.0.2.1:5000"); f != nil {
					t.Fatal(f)
				}
			})
			if allocs != 0 {
				t.Fatalf("static Authenticate allocates %v times per call, want 0", allocs)
			}
		})
	}
	t.Run("Allows", func(t *testing.T) {
		c := a.Callers()[1]
		supplier := []byte("rose.venue")
		if allocs := testing.AllocsPerRun(1000, func() { c.Allows(supplier) }); allocs != 0 {
			t.Fatalf("Allows allocates %v times per call, want 0", allocs)
		}
	})
}

func TestAuthenticateConcurrent(t *testing.T) {
	a := newAuth(t, auth.Options{Callers: testCallers(), JWT: testJWTOptions(), Audit: zap.NewNop()})
	requests := []struct {
		header, supplier string
		want             want
	}{
		{"Bearer tok-chat", "acme-photo", ok("chat-ui", "acme-photo")},
		{"Bearer tok-chat", "zeta_caterer", refused(403, auth.CodeSupplierNotAllowed)},
		{"Bearer " + signHS(hsKey2, claims()), "", ok("svc:planner", "acme-photo")},
		{"Bearer " + signEd(claims()), "acme-photo", ok("svc:planner", "acme-photo")},
		{"Bearer " + signHS(hsKey1, claims(unset("exp"))), "", refused(401, auth.CodeInvalidToken)},
	}
	for _, r := range requests {
		t.Run(r.header[:min(len(r.header), 24)]+"/"+r.supplier, func(t *testing.T) {
			t.Parallel()
			for range 50 {
				id, f := a.Authenticate([]byte(r.header), []byte(r.supplier), "")
				check(t, id, f, r.want)
			}
		})
	}
}
