package health

import (
	"strings"
	"testing"
	"time"
)

func TestKeyBreakers(t *testing.T) {
	k := &KeyBreakers{Cooldown: 30 * time.Second}
	now := time.Date(2026, 6, 20, 14, 0, 0, 0, time.UTC)
	bella, rose := []byte("bella-photography"), []byte("rose-venue")
	if !k.Allow("openai", bella, now) {
		t.Fatal("a key with no history was held out")
	}
	k.Refused("openai", bella, now)
	steps := []struct {
		name       string
		at         time.Duration
		bella      bool
		roseOpenAI bool
	}{
		{"opened by one refusal", time.Second, false, true},
		{"still cooling down", 29 * time.Second, false, true},
		{"one probe after the cooldown", 31 * time.Second, true, true},
		{"only one probe at a time", 32 * time.Second, false, true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if got := k.Allow("openai", bella, now.Add(st.at)); got != st.bella {
				t.Errorf("bella allowed %v, want %v", got, st.bella)
			}
			if !k.Allow("openai", rose, now.Add(st.at)) || !k.Allow("azure", bella, now.Add(st.at)) {
				t.Error("another supplier's key, or the same supplier at another provider, was held out")
			}
		})
	}
	k.Served("openai", bella)
	if !k.Allow("openai", bella, now.Add(33*time.Second)) || k.Open() != 0 {
		t.Errorf("a served key stays held out (%d open)", k.Open())
	}
	var nilK *KeyBreakers
	nilK.Refused("openai", bella, now)
	if !nilK.Allow("openai", bella, now) {
		t.Error("a nil KeyBreakers holds keys out")
	}
}

func TestKeyBreakersAllowAllocs(t *testing.T) {
	k := &KeyBreakers{Cooldown: time.Second}
	now := time.Now()
	k.Refused("openai", []byte("rose-venue"), now)
	bella := []byte("bella-photography")
	if a := testing.AllocsPerRun(100, func() { k.Allow("openai", bella, now) }); a != 0 {
		t.Errorf("%.1f allocations per Allow", a)
	}
}

// BenchmarkKeyBreakersAllow is the check on every call planned on a
// supplier's own key with a fallback, while another supplier's key is held
// out (the slow path: the lock and the map lookup).
func BenchmarkKeyBreakersAllow(b *testing.B) {
	k := &KeyBreakers{Cooldown: time.Second}
	now := time.Now()
	k.Refused("openai", []byte("rose-venue"), now)
	bella := []byte("bella-photography")
	b.ReportAllocs()
	for b.Loop() {
		k.Allow("openai", bella, now)
	}
}

// TestKeyBreakersAlert: a supplier's key held out and accepted again each
// produce one alert naming the provider and the supplier; further
// refusals while it is held out produce none.
func TestKeyBreakersAlert(t *testing.T) {
	var got []Alert
	k := &KeyBreakers{Cooldown: time.Second, OnChange: func(a Alert) { got = append(got, a) }}
	now := time.Date(2026, 6, 20, 14, 0, 0, 0, time.UTC)
	bella := []byte("bella-photography")
	k.Served("openai", bella) // never refused: nothing to say
	k.Refused("openai", bella, now)
	k.Refused("openai", bella, now.Add(2*time.Second))
	k.Served("openai", bella)
	if len(got) != 2 {
		t.Fatalf("alerts %+v, want two", got)
	}
	down, up := got[0], got[1]
	if down.Source != SourceSupplierKey || down.Up || down.Target != "openai" || down.Supplier != "bella-photography" ||
		down.Breaker != Open || down.Cause == "" || !down.At.Equal(now) {
		t.Errorf("down alert %+v", down)
	}
	if up.Source != SourceSupplierKey || !up.Up || up.Target != "openai" || up.Supplier != "bella-photography" || up.Breaker != Closed {
		t.Errorf("up alert %+v", up)
	}
}

// TestKeyFaults: a refusal or a used-up account holds a supplier's key out
// at once, server errors only after Failures in a row; each opening is one
// alert naming the fault, and a served call closes the breaker.
func TestKeyFaults(t *testing.T) {
	now := time.Date(2026, 6, 20, 14, 0, 0, 0, time.UTC)
	cases := []struct {
		fault KeyFault
		opens int // faults in a row that hold the key out
	}{
		{KeyRefused, 1},
		{KeyOutOfQuota, 1},
		{KeyFailing, 3},
	}
	for _, c := range cases {
		t.Run(string(c.fault), func(t *testing.T) {
			var alerts []Alert
			k := &KeyBreakers{Cooldown: time.Minute, Failures: 3, OnChange: func(a Alert) { alerts = append(alerts, a) }}
			for i := 1; i <= c.opens; i++ {
				k.Failed("openai", []byte("bella"), c.fault, now)
				if held := !k.Allow("openai", []byte("bella"), now); held != (i == c.opens) {
					t.Fatalf("after %d faults held out = %v", i, held)
				}
			}
			if !k.Allow("openai", []byte("rose"), now) {
				t.Error("another supplier's key is held out")
			}
			k.Failed("openai", []byte("bella"), c.fault, now) // while open: no second alert
			if len(alerts) != 1 || alerts[0].Supplier != "bella" || !strings.HasPrefix(alerts[0].Cause, string(c.fault)) {
				t.Fatalf("alerts %+v, want one for bella naming %s", alerts, c.fault)
			}
			k.Served("openai", []byte("bella"))
			if !k.Allow("openai", []byte("bella"), now) || len(alerts) != 2 || !alerts[1].Up {
				t.Errorf("after a served call: allowed %v, alerts %+v", k.Allow("openai", []byte("bella"), now), alerts)
			}
		})
	}
	// Server errors, then a refusal: out at once, not after three more.
	k := &KeyBreakers{Cooldown: time.Minute, Failures: 3}
	k.Failed("openai", []byte("bella"), KeyFailing, now)
	k.Failed("openai", []byte("bella"), KeyRefused, now)
	if k.Allow("openai", []byte("bella"), now) {
		t.Error("a refusal after a server error did not hold the key out")
	}
}
