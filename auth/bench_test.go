package auth_test

import (
	"testing"

	"go.uber.org/zap"

	"github.com/wedsync/veil/auth"
)

func BenchmarkAuthenticate(b *testing.B) {
	a := newAuth(b, auth.Options{Callers: testCallers(), JWT: testJWTOptions(), Audit: zap.NewNop()})
	benchmarks := []struct {
		name, header, supplier string
	}{
		{"static", "Bearer tok-batch", "zeta_caterer"},
		{"jwt-hs256", "Bearer " + signHS(hsKey1, claims()), "acme-photo"},
		{"jwt-hs256-rotated", "Bearer " + signHS(hsKey2, claims()), "acme-photo"},
		{"jwt-eddsa", "Bearer " + signEd(claims()), "acme-photo"},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			header, supplier := []byte(bm.header), []byte(bm.supplier)
			b.ReportAllocs()
			for b.Loop() {
				if _, f := a.Authenticate(header, supplier, "192.0.2.1:5000"); f != nil {
					b.Fatal(f)
				}
			}
		})
	}
}
