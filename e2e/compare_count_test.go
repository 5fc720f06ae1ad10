package e2e

import (
	"testing"
	"time"
)

// TestCompareCountsOnlyShadowCalls: a comparison of bella's platform keys
// against its own key, every request sampled, while its tier switches it
// to its own key after two requests a minute. Twelve requests are chosen
// for the comparison but only those answered on the platform's keys can
// be shadowed: the others are already on the system compared. The
// comparison counts as shadowed only the shadow calls made, so its count,
// its pairs, the shadow usage records and the calls the provider saw agree
// (it once said "shadowed 12, pairs 2").
func TestCompareCountsOnlyShadowCalls(t *testing.T) {
	const n = 12
	tp := &tap{}
	s, bellaKey := bellaOnPeakTier(tp, 2)
	h := start(t, s)
	ctx := t.Context()
	var cmp struct {
		ID string `json:"id"`
	}
	h.adminJSON(t, "POST", "/admin/comparisons", `{"supplier":"bella-photography","other":"client","window":"1h","sample":1}`, 201, &cmp)

	onPlatform, onOwn := 0, 0
	for i := range n {
		a := ask(ctx, h.client(), "")
		if a.err != nil {
			t.Fatalf("request %d: %v", i, a.err)
		}
		if a.source == "platform" {
			onPlatform++
		} else {
			onOwn++
		}
	}
	if onPlatform == 0 || onOwn == 0 {
		t.Fatalf("%d requests on the platform's keys and %d on bella's; the test needs both", onPlatform, onOwn)
	}

	shadowRecords := func() int {
		k := 0
		for _, r := range tp.all() {
			if r.Shadow {
				k++
			}
		}
		return k
	}
	var rep cmpReportView
	waitFor(t, func() bool {
		h.adminJSON(t, "GET", "/admin/comparisons/"+cmp.ID, "", 200, &rep)
		return rep.Comparison.Recorded >= int64(onPlatform) && shadowRecords() >= onPlatform
	})
	time.Sleep(200 * time.Millisecond) // a shadow call too many would have been sent by now
	h.adminJSON(t, "GET", "/admin/comparisons/"+cmp.ID, "", 200, &rep)
	c := rep.Comparison
	if c.Shadowed != int64(onPlatform) || c.Recorded != int64(onPlatform) {
		t.Errorf("comparison: shadowed %d, pairs %d; want both %d, the requests answered on the platform's keys "+
			"(%d more were already on bella's key)", c.Shadowed, c.Recorded, onPlatform, onOwn)
	}
	if got := shadowRecords(); got != onPlatform {
		t.Errorf("%d shadow usage records, want %d", got, onPlatform)
	}
	if got := upstreamChats(h.up, bellaKey); got != onOwn+onPlatform {
		t.Errorf("the provider saw bella's key on %d chat calls, want %d answers and %d shadows", got, onOwn, onPlatform)
	}
}
