package health

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/veil/store"
)

// requests is a report of a request limit alone, whole again after reset
// (none when negative).
func requests(limit, remaining int64, reset time.Duration) RateLimits {
	return RateLimits{LimitRequests: limit, RemainingRequests: remaining, LimitTokens: -1, RemainingTokens: -1,
		ResetRequests: reset, ResetTokens: -1}
}

// report is one account's report, after a delay from the test's start.
type report struct {
	acct  uint64
	l     RateLimits
	after time.Duration
}

func TestPoolHeadroom(t *testing.T) {
	t0 := time.Date(2026, 6, 13, 14, 30, 0, 0, time.UTC)
	orgA, orgB := OrgAccount([]byte("org-wedsync-a")), OrgAccount([]byte("org-wedsync-b"))
	key1, key2 := KeyAccount("fp-key-1"), KeyAccount("fp-key-2")
	tests := []struct {
		name     string
		reports  []report
		at       time.Duration
		want     float64 // headroom
		accounts int
		limit    int64 // the requests limit summed over them
	}{
		{"one account is as a single observation was", []report{{orgA, requests(100, 2, time.Minute), 0}},
			0, 0.02, 1, 100},
		{"two organisations with their own limits", []report{
			{orgA, requests(100, 2, time.Minute), 0},
			{orgB, requests(1000, 900, time.Minute), 0}},
			0, 902.0 / 1100, 2, 1100},
		{"two keys of one organisation are one account", []report{
			{orgA, requests(100, 40, time.Minute), 0},
			{orgA, requests(100, 38, time.Minute), time.Millisecond}},
			time.Millisecond, 0.38, 1, 100},
		{"keys of a provider naming no organisation", []report{
			{key1, requests(100, 10, time.Minute), 0},
			{key2, requests(100, 30, time.Minute), 0}},
			0, 0.2, 2, 200},
		{"each account refills towards its own reset", []report{
			{orgA, requests(100, 0, 10*time.Second), 0},
			{orgB, requests(300, 0, 20*time.Second), 0}},
			5 * time.Second, (50 + 75) / 400.0, 2, 400},
		{"an account past its reset is whole", []report{
			{orgA, requests(100, 0, time.Second), 0},
			{orgB, requests(100, 50, time.Minute), 0}},
			2 * time.Second, (100 + 100*(0.5+0.5*2/60.0)) / 200, 2, 200},
		{"an account silent a minute past its reset drops out", []report{
			{orgA, requests(100, 0, time.Second), 0},
			{orgB, requests(100, 50, time.Minute), 2 * time.Minute}},
			2 * time.Minute, 0.5, 1, 100},
		{"an account that gave no reset drops out after a minute", []report{
			{orgA, requests(100, 90, -1), 0},
			{orgB, requests(100, 10, -1), 61 * time.Second}},
			61 * time.Second, 0.1, 1, 100},
		{"an idle pool: the accounts heard from near its last report, whole again", []report{
			{orgA, requests(100, 0, time.Second), 0},
			{orgB, requests(100, 20, time.Second), time.Second}},
			time.Hour, 1, 2, 200},
		{"an idle pool: not an account silent long before its last report", []report{
			{orgA, requests(100, 0, time.Second), 0},
			{orgB, requests(100, 20, time.Second), 11 * time.Minute}},
			time.Hour, 1, 1, 100},
		{"a report naming no account stands aside for named ones", []report{
			{0, requests(100, 1, time.Minute), 0},
			{orgA, requests(100, 60, time.Minute), 0}},
			0, 0.6, 1, 100},
		{"the tighter kind of the sums", []report{
			{orgA, RateLimits{LimitRequests: 100, RemainingRequests: 90, LimitTokens: 1000, RemainingTokens: 100, ResetRequests: -1, ResetTokens: -1}, 0},
			{orgB, RateLimits{LimitRequests: 100, RemainingRequests: 10, LimitTokens: 3000, RemainingTokens: 3000, ResetRequests: -1, ResetTokens: -1}, 0}},
			0, 0.5, 2, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry("openai")
			tg := r.Target("openai")
			for _, rp := range tc.reports {
				tg.ReportAccountRateLimits(rp.acct, rp.l, t0.Add(rp.after))
			}
			now := t0.Add(tc.at)
			left, _, _ := r.Load("openai", now)
			if math.Abs(left-tc.want) > 1e-9 {
				t.Errorf("headroom %v, want %v", left, tc.want)
			}
			h, _, pool := r.headroomOf("openai", now)
			if h == nil || math.Abs(*h-tc.want) > 1e-4 {
				t.Errorf("snapshot headroom %v, want %v", h, tc.want)
			}
			if pool == nil || pool.Accounts != tc.accounts || pool.Requests.Limit == nil || *pool.Requests.Limit != tc.limit {
				t.Errorf("pool %+v, want %d accounts and a limit of %d", pool, tc.accounts, tc.limit)
			}
		})
	}
}

// TestPoolSnapshot: the pool's limits as reported, summed, and the share
// left now, each account refilled.
func TestPoolSnapshot(t *testing.T) {
	now := time.Now()
	r := NewRegistry("openai", "azure")
	tg := r.Target("openai")
	tg.ReportAccountRateLimits(OrgAccount([]byte("org-a")), RateLimits{LimitRequests: 100, RemainingRequests: 2, LimitTokens: 10000,
		RemainingTokens: 9000, ResetRequests: time.Minute, ResetTokens: 30 * time.Second}, now.Add(-time.Second))
	tg.ReportAccountRateLimits(OrgAccount([]byte("org-b")), RateLimits{LimitRequests: 1000, RemainingRequests: 900, LimitTokens: -1,
		RemainingTokens: -1, ResetRequests: 10 * time.Second, ResetTokens: -1}, now)
	snap := r.Snapshot()
	if snap[0].Pool != nil || snap[0].Headroom != nil {
		t.Errorf("azure never reported: %+v", snap[0])
	}
	p := snap[1].Pool
	if p == nil || p.Accounts != 2 || !p.At.Equal(now.UTC()) {
		t.Fatalf("pool %+v", p)
	}
	if *p.Requests.Limit != 1100 || *p.Requests.Remaining != 902 || !p.Requests.Reset.Equal(now.Add(59*time.Second).UTC()) {
		t.Errorf("requests %+v", p.Requests)
	}
	if *p.Tokens.Limit != 10000 || *p.Tokens.Remaining != 9000 || p.Tokens.Left == nil {
		t.Errorf("tokens %+v: one account told them", p.Tokens)
	}
	if p.Requests.Left == nil || *p.Requests.Left < 0.82 || *p.Requests.Left > 0.83 || *snap[1].Headroom != *p.Requests.Left {
		t.Errorf("requests left %v, headroom %v: want about 902/1100, the tighter kind", p.Requests.Left, snap[1].Headroom)
	}
}

// TestPoolCells: more accounts than a target tells apart give a cell of
// one that stopped counting to a new one, else share a cell by number;
// nothing is lost or torn when many report at once.
func TestPoolCells(t *testing.T) {
	t0 := time.Date(2026, 6, 13, 14, 30, 0, 0, time.UTC)
	r := NewRegistry("openai")
	tg := r.Target("openai")
	for i := range maxAccounts {
		tg.ReportAccountRateLimits(uint64(100+i), requests(100, 50, time.Second), t0)
	}
	// A ninth account while all count: it shares the cell its number picks.
	ninth := uint64(100 + maxAccounts)
	tg.ReportAccountRateLimits(ninth, requests(100, 0, time.Minute), t0)
	if n := tg.accounts.n.Load(); n != maxAccounts {
		t.Fatalf("%d cells in use", n)
	}
	if o, _ := tg.accounts.cells[ninth%maxAccounts].load(); o.acct != ninth {
		t.Errorf("the ninth account is not in cell %d: %+v", ninth%maxAccounts, o)
	}
	if p, ok := sumOf(r, "openai", t0); !ok || p.accounts != maxAccounts {
		t.Errorf("%d accounts counted, want %d", p.accounts, maxAccounts)
	}
	// Later, the first eight have stopped counting: a new account takes
	// the cell of the oldest of them, and the ninth keeps its own.
	later := t0.Add(time.Minute + 2*time.Second)
	tg.ReportAccountRateLimits(999, requests(100, 10, time.Minute), later)
	p, _ := sumOf(r, "openai", later)
	if p.accounts != 2 {
		t.Errorf("%d accounts counted after the others stopped, want the ninth and the new one", p.accounts)
	}

	// Many at once.
	r = NewRegistry("openai")
	tg = r.Target("openai")
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				tg.ReportAccountRateLimits(uint64(1+(i+w)%12), requests(100, int64(i%100), time.Minute), t0)
				_, _, _ = r.Load("openai", t0)
			}
		})
	}
	wg.Wait()
	if p, ok := sumOf(r, "openai", t0); !ok || p.accounts < 1 || p.accounts > maxAccounts {
		t.Errorf("after concurrent reports: %+v", p)
	}
}

// sumOf is the named provider's pool at now.
func sumOf(r *Registry, name string, now time.Time) (poolSum, bool) {
	var s accountSet
	r.gather(&s, r.targets[name], name)
	p := s.sum(now.UnixNano())
	_, ok := p.left()
	return p, ok
}

// TestPoolShared: each replica sees one organisation of a pool; through
// the store each sees both, per account, and keys of one organisation are
// not counted twice.
func TestPoolShared(t *testing.T) {
	st, err := store.NewEmbedded("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	now := time.Now().Truncate(time.Millisecond)
	clock := func() time.Time { return now }
	a, b := NewRegistry("openai"), NewRegistry("openai")
	shareA, shareB := &Sharing{Registry: a, Store: st, Now: clock}, &Sharing{Registry: b, Store: st, Now: clock}
	orgA, orgB := OrgAccount([]byte("org-a")), OrgAccount([]byte("org-b"))
	a.Target("openai").ReportAccountRateLimits(orgA, requests(100, 2, time.Minute), now)
	b.Target("openai").ReportAccountRateLimits(orgB, requests(300, 270, time.Minute), now)
	b.Target("openai").ReportAccountRateLimits(orgA, requests(100, 4, time.Minute), now.Add(-time.Second)) // older: a's wins
	for _, s := range []*Sharing{shareA, shareB, shareA} {
		if err := s.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	for name, r := range map[string]*Registry{"a": a, "b": b} {
		if left, _, _ := r.Load("openai", now); math.Abs(left-272.0/400) > 1e-9 {
			t.Errorf("replica %s: headroom %v, want 272/400 over both organisations", name, left)
		}
	}
	hs, err := st.Headroom(t.Context(), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || hs[0].Account == "" || hs[1].Account == "" {
		t.Errorf("the store holds %+v, want one entry per organisation", hs)
	}
	// A cooldown goes on the provider's own entry, without counts.
	a.Target("openai").RateLimited(now.Add(time.Minute))
	if err := shareA.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := shareB.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, cooling, _ := b.Load("openai", now); !cooling {
		t.Error("b does not see a's 429")
	}
	if left, _, _ := b.Load("openai", now); math.Abs(left-272.0/400) > 1e-9 {
		t.Errorf("after the cooldown's entry: headroom %v", left)
	}
}

func TestAccountNames(t *testing.T) {
	org, key := OrgAccount([]byte("org-a")), KeyAccount("org-a")
	if org == key || org == 0 || key == 0 || org != OrgAccount([]byte("org-a")) {
		t.Errorf("org %x, key %x", org, key)
	}
	for _, acct := range []uint64{0, 1, org, key, math.MaxUint64} {
		got, ok := parseAccount(accountName(acct))
		if !ok || got != acct {
			t.Errorf("account %x: read back %x %v", acct, got, ok)
		}
	}
	for _, bad := range []string{"x", "0000000000000000", "zzzzzzzzzzzzzzzz", "0123456789abcdef0"} {
		if _, ok := parseAccount(bad); ok {
			t.Errorf("%q read as an account", bad)
		}
	}
	if a := testing.AllocsPerRun(100, func() { _ = OrgAccount([]byte("org-a")) + KeyAccount("fp") }); a != 0 {
		t.Errorf("%.1f allocations", a)
	}
}
