package migrate

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/internal/redistest"
	"github.com/wedsync/veil/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is the fake clock's start: a Saturday in June, peak wedding season.
var t0 = time.Date(2026, 6, 13, 14, 0, 0, 0, time.UTC)

// clock is a fake clock that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// prober is a Probe whose answer tests set; it counts its calls.
type prober struct {
	fail  atomic.Bool
	calls atomic.Int64
}

func (p *prober) Probe(_ context.Context, _ string, to Target) ProbeResult {
	p.calls.Add(1)
	if p.fail.Load() {
		return ProbeResult{Status: 401, Error: "incorrect API key provided", Fingerprint: "5f1c2a9e"}
	}
	return ProbeResult{OK: true, Status: 200, Models: 12, Fingerprint: "5f1c2a9e"}
}

// alertLog records alerts.
type alertLog struct {
	mu  sync.Mutex
	got []string // "kind supplier: message"
}

func (a *alertLog) Alert(kind, supplier, msg string) {
	a.mu.Lock()
	a.got = append(a.got, kind+" "+supplier+": "+msg)
	a.mu.Unlock()
}

// kinds returns the kinds of the alerts so far.
func (a *alertLog) kinds() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, len(a.got))
	for i, s := range a.got {
		out[i] = strings.SplitN(s, " ", 2)[0]
	}
	return out
}

func (a *alertLog) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.got...)
}

// rig is one Manager with its fakes.
type rig struct {
	m      *Manager
	st     Store
	clock  *clock
	probe  *prober
	alerts *alertLog
	audit  *observer.ObservedLogs
}

// rigOption adjusts the Options of a rig.
type rigOption func(*Options)

// newRig returns a Manager on st with holder, a clock (shared when given),
// a probe that succeeds, recorded alerts and audit lines, and every
// supplier configured on platform.
func newRig(t testing.TB, st Store, holder string, c *clock, opts ...rigOption) *rig {
	t.Helper()
	if c == nil {
		c = newClock()
	}
	core, logs := observer.New(zapcore.DebugLevel)
	r := &rig{st: st, clock: c, probe: &prober{}, alerts: &alertLog{}, audit: logs}
	o := Options{
		Store:   st,
		Probe:   r.probe.Probe,
		Holder:  holder,
		Now:     c.Now,
		Audit:   zap.New(core),
		Alert:   r.alerts.Alert,
		Current: func(string) Target { return Target{Mode: billing.ModePlatform} },
	}
	for _, f := range opts {
		f(&o)
	}
	m, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r.m = m
	return r
}

// step runs one Step and fails the test on an error.
func (r *rig) step(t testing.TB) {
	t.Helper()
	if err := r.m.Step(t.Context()); err != nil {
		t.Fatalf("Step (%s): %v", r.m.Holder(), err)
	}
}

// auditLines returns the messages of the audit lines so far.
func (r *rig) auditLines() []string {
	var out []string
	for _, e := range r.audit.All() {
		out = append(out, e.Message)
	}
	return out
}

// countAudit returns how many audit lines have message msg.
func (r *rig) countAudit(msg string) int {
	return r.audit.FilterMessage(msg).Len()
}

// get reads a migration and fails the test on an error.
func (r *rig) get(t testing.TB, id string) *Migration {
	t.Helper()
	mg, err := r.m.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return mg
}

// storeKinds are the stores the contract-sensitive tests run against.
var storeKinds = []string{"embedded", "bolt", "redis"}

// prefixes keeps tests on one Redis server apart.
var prefixes atomic.Int64

// openStores returns n stores sharing one state of the kind given: the
// same embedded store n times, or n Redis clients on one server.
func openStores(t testing.TB, kind string, n int) []Store {
	t.Helper()
	out := make([]Store, n)
	switch kind {
	case "embedded", "bolt":
		dir := ""
		if kind == "bolt" {
			dir = t.TempDir()
		}
		e, err := store.NewEmbedded(dir)
		if err != nil {
			t.Fatalf("NewEmbedded: %v", err)
		}
		t.Cleanup(func() { _ = e.Close() })
		for i := range out {
			out[i] = e
		}
	case "redis":
		srv := redistest.Start(t)
		prefix := fmt.Sprintf("migrate%d:", prefixes.Add(1))
		for i := range out {
			r, err := store.NewRedis(store.RedisOptions{Addr: srv.Addr, Prefix: prefix})
			if err != nil {
				t.Fatalf("NewRedis: %v", err)
			}
			t.Cleanup(func() { _ = r.Close() })
			out[i] = r
		}
	default:
		t.Fatalf("unknown store kind %q", kind)
	}
	return out
}

// openEmbeddedDir opens an embedded store on dir, for restarts.
func openEmbeddedDir(dir string) (Store, error) {
	e, err := store.NewEmbedded(dir)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// openStore returns one store of the kind given.
func openStore(t testing.TB, kind string) Store { return openStores(t, kind, 1)[0] }

// feed records n outcomes on one path of a migration.
func feed(m *Manager, id string, toTarget bool, n, failures int, latency time.Duration, costUSD float64) {
	for i := range n {
		status := 200
		if i < failures {
			status = 503
		}
		m.Observe(id, toTarget, status, latency, costUSD)
	}
}

// toClient is the usual target: the supplier's own key on OpenAI.
var toClient = Target{Mode: billing.ModeClient, Provider: "openai", KeyRef: "secret/data/wedsync/suppliers/capture-moments/openai"}

// plan plans and starts a migration of supplier to the client system.
func startMigration(t testing.TB, r *rig, supplier string, stages []Stage) *Migration {
	t.Helper()
	mg, err := r.m.Plan(t.Context(), PlanRequest{Supplier: supplier, To: toClient, Stages: stages, Reason: "supplier request"})
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	mg, err = r.m.Start(t.Context(), mg.ID)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return mg
}

// decide returns the decision for a request without user of supplier.
func decide(m *Manager, supplier string) (Decision, bool) {
	return m.Decide([]byte(supplier), nil, 1)
}
