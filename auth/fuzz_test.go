package auth_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/auth"
)

func FuzzAuthenticate(f *testing.F) {
	a := newAuth(f, auth.Options{Callers: testCallers(), JWT: testJWTOptions(), Audit: zap.NewNop()})
	valid := signHS(hsKey1, claims())
	seeds := []struct{ authorization, supplier string }{
		{"Bearer tok-chat", "acme-photo"},
		{"Bearer tok-billing", "any"},
		{"bearer\ttok-batch ", "zeta_caterer"},
		{"", ""},
		{"Basic dXNlcjpwYXNz", "x"},
		{"Bearer " + valid, ""},
		{"Bearer " + valid, "acme-photo"},
		{"Bearer " + valid, "rose.venue"},
		{"Bearer " + signEd(claims()), ""},
		{"Bearer " + signHS(hsKey2, claims(set("exp", at(-time.Hour)))), ""},
		{"Bearer " + rawToken(`{"alg":"none"}`, `{"sub":"x","supplier_id":"a"}`, nil), ""},
		{"Bearer " + rawToken(`{"alg":"HS256","kid":"\u0000"}`, `{"exp":1e308,"iat":-1e308}`, []byte("sig")), ""},
		{"Bearer " + rawToken(`{"alg":"EdDSA"}`, `{"exp":"x","aud":[1,2]}`, bytes.Repeat([]byte{1}, 64)), "a"},
		{"Bearer " + rawToken(`[]`, `null`, nil), ""},
		{"Bearer eyJ.eyJ.", ""},
		{"Bearer a.b.c", "a"},
		{"Bearer ..", ""},
	}
	for _, s := range seeds {
		f.Add([]byte(s.authorization), []byte(s.supplier))
	}
	f.Fuzz(func(t *testing.T, authorization, supplier []byte) {
		id, fail := a.Authenticate(authorization, supplier, "fuzz")
		if fail != nil {
			if id.Caller != nil || id.Supplier != nil || id.Signed {
				t.Fatalf("identity %+v alongside failure %v", id, fail)
			}
			switch fail.Status {
			case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
			default:
				t.Fatalf("failure status %d", fail.Status)
			}
			if fail.Code == "" || fail.Message == "" {
				t.Fatalf("incomplete failure %+v", fail)
			}
			return
		}
		if id.Caller == nil || !auth.ValidSupplierID(id.Supplier) || !id.Caller.Allows(id.Supplier) {
			t.Fatalf("accepted identity %+v with supplier %q", id, id.Supplier)
		}
		if len(supplier) > 0 && !bytes.Equal(supplier, id.Supplier) {
			t.Fatalf("supplier %q accepted for header %q", id.Supplier, supplier)
		}
	})
}
