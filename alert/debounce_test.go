package alert

import (
	"testing"
	"time"

	"github.com/wedsync/veil/health"
)

func TestDebouncer(t *testing.T) {
	start := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	down := func(target string) Event {
		return Event{Provider: target, Source: SourceBreaker, Breaker: health.Open}
	}
	up := func(target string) Event {
		return Event{Provider: target, Source: SourceBreaker, Breaker: health.Closed, Up: true}
	}
	type event struct {
		at    int       // seconds after start
		alert Event     // zero Target: call due instead
		want  []message // what goes out at that moment
	}
	due := Event{}
	tests := []struct {
		name   string
		every  time.Duration
		events []event
	}{
		{"the first change of a quiet target goes at once", 30 * time.Second, []event{
			{0, down("openai"), []message{{down("openai"), 1}}},
		}},
		{"a flap sends only the latest state once it settles", 30 * time.Second, []event{
			{0, down("openai"), []message{{down("openai"), 1}}},
			{5, up("openai"), nil},
			{10, down("openai"), nil},
			{39, due, nil},
			{40, due, []message{{down("openai"), 2}}},
		}},
		{"a target is quiet again a debounce after its last alert", 30 * time.Second, []event{
			{0, down("openai"), []message{{down("openai"), 1}}},
			{10, up("openai"), nil},
			{40, due, []message{{up("openai"), 1}}},
			{69, due, nil},
			{70, down("openai"), []message{{down("openai"), 1}}},
		}},
		{"a change soon after an alert waits for the debounce", 30 * time.Second, []event{
			{0, down("openai"), []message{{down("openai"), 1}}},
			{29, up("openai"), nil},
			{58, due, nil},
			{59, due, []message{{up("openai"), 1}}},
		}},
		{"endless flapping still reports after four periods", 30 * time.Second, []event{
			{0, down("openai"), []message{{down("openai"), 1}}},
			{10, up("openai"), nil}, {20, down("openai"), nil}, {40, up("openai"), nil}, {60, down("openai"), nil},
			{80, up("openai"), nil}, {100, down("openai"), nil}, {120, up("openai"), nil},
			{129, due, nil},
			{130, due, []message{{up("openai"), 7}}},
		}},
		{"targets and sources are debounced separately", 30 * time.Second, []event{
			{0, down("openai"), []message{{down("openai"), 1}}},
			{1, Event{Provider: "openai", Source: SourceProbe, Cause: "status 503"},
				[]message{{Event{Provider: "openai", Source: SourceProbe, Cause: "status 503"}, 1}}},
			{2, down("azure"), []message{{down("azure"), 1}}},
			{3, up("openai"), nil},
		}},
		{"zero debounce sends every change", 0, []event{
			{0, down("openai"), []message{{down("openai"), 1}}},
			{0, up("openai"), []message{{up("openai"), 1}}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDebouncer(tc.every)
			for i, ev := range tc.events {
				var got []message
				if ev.alert.Provider == "" {
					got = d.due(at(ev.at))
				} else if m, ok := d.add(ev.alert, at(ev.at)); ok {
					got = []message{m}
				}
				if !equal(got, ev.want) {
					t.Errorf("event %d at %ds: sent %+v, want %+v", i, ev.at, got, ev.want)
				}
			}
		})
	}
}

func TestDebouncerNextAndFlush(t *testing.T) {
	start := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	d := newDebouncer(30 * time.Second)
	if !d.next().IsZero() {
		t.Fatal("next with nothing held")
	}
	d.add(Event{Provider: "openai", Source: SourceProbe}, start)
	d.add(Event{Provider: "openai", Source: SourceProbe, Up: true}, start.Add(5*time.Second))
	if got, want := d.next(), start.Add(35*time.Second); !got.Equal(want) {
		t.Errorf("next %v, want %v", got, want)
	}
	if got := d.flush(start.Add(6 * time.Second)); len(got) != 1 || !got[0].Up {
		t.Errorf("flush %+v, want the held up", got)
	}
	if !d.next().IsZero() || len(d.flush(start)) != 0 {
		t.Error("something still held after the flush")
	}
}

func equal(a, b []message) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
