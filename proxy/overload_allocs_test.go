//go:build !race

package proxy

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/metrics"
)

// TestShedAllocs: the step allocates nothing, whether it lets the
// request on or sheds it.
func TestShedAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts are only meaningful without -short")
	}
	s := &Server{limits: config.Limits{MaxInFlight: 10}, metrics: metrics.New()}
	ctx := &fasthttp.RequestCtx{}
	x := &exchange{}
	for _, open := range []int64{5, 11} {
		s.open.Store(open)
		s.shed(ctx, x)
		if a := testing.AllocsPerRun(100, func() { ctx.Response.Reset(); s.shed(ctx, x) }); a != 0 {
			t.Errorf("%v allocations per check with %d in flight", a, open)
		}
	}
}
