package alert

import (
	"testing"
	"time"

	"github.com/wedsync/veil/health"
)

// TestFromHealth: a health change keeps every field, its target named the
// provider.
func TestFromHealth(t *testing.T) {
	a := health.Alert{Target: "openai", Supplier: "bella-photography", Source: health.SourceSupplierKey, Up: true,
		Breaker: health.Closed, Cause: "accepted", At: at0}
	want := Event{Source: SourceSupplierKey, Provider: "openai", Supplier: "bella-photography", Up: true,
		Breaker: health.Closed, Cause: "accepted", At: at0}
	if got := FromHealth(a); got != want {
		t.Errorf("FromHealth = %+v\nwant       %+v", got, want)
	}
}

// TestNotifierMigration: a migration's event is posted under its own kind,
// with the supplier and the message, apart from providers' alerts.
func TestNotifierMigration(t *testing.T) {
	h := newHook(t)
	n, err := New(Options{URL: h.srv.URL, Instance: "pod-1", Now: func() time.Time { return at0 }})
	if err != nil {
		t.Fatal(err)
	}
	n.Migration("migration_failed", "capture-moments", "gate error rate failed")
	n.Health(health.Alert{Target: "openai", Source: health.SourceProbe, Cause: "status 503", At: at0})
	closeNow(t, n)
	got := h.received()
	if len(got) != 2 {
		t.Fatalf("%d posts, want 2", len(got))
	}
	byEvent := map[string]Payload{}
	for _, r := range got {
		byEvent[r.payload.Event] = r.payload
	}
	want := Payload{Event: "migration_failed", Supplier: "capture-moments", Up: true, Source: "migration",
		Cause: "gate error rate failed", At: at0, Changes: 1, Instance: "pod-1",
		Text: "veil: supplier capture-moments: gate error rate failed (on pod-1)"}
	if p := byEvent["migration_failed"]; p != want {
		t.Errorf("payload %+v\nwant    %+v", p, want)
	}
	if p := byEvent["provider_down"]; p.Provider != "openai" || p.Source != "probe" {
		t.Errorf("provider payload %+v", p)
	}
}
