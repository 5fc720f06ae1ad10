package proxy

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/provider"
)

func TestCooldown(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers map[string]string
		want    time.Duration
	}{
		{"retry-after wins", map[string]string{"Retry-After": "3", headerRemainingRequests: "0", headerResetRequests: "6s"}, 3 * time.Second},
		{"requests used up", map[string]string{headerRemainingRequests: "0", headerResetRequests: "6s",
			headerRemainingTokens: "500", headerResetTokens: "40s"}, 6 * time.Second},
		{"both used up: the later reset", map[string]string{headerRemainingRequests: "0", headerResetRequests: "6s",
			headerRemainingTokens: "0", headerResetTokens: "40s"}, 40 * time.Second},
		{"nothing said", nil, 5 * time.Second},
		{"capped", map[string]string{"Retry-After": "86400"}, provider.MaxCooldown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h fasthttp.ResponseHeader
			for k, v := range tc.headers {
				h.Set(k, v)
			}
			if got := cooldown(&h); got != tc.want {
				t.Errorf("cooldown = %v, want %v", got, tc.want)
			}
		})
	}
}
