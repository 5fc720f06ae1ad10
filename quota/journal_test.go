package quota

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/store"
)

// TestJournalLeftovers: the reservations a process opened and did not
// close are what the next one finds, whatever was cut short at the end.
func TestJournalLeftovers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reservations.journal")
	j, left, err := OpenJournal(path)
	if err != nil || len(left) != 0 {
		t.Fatalf("a new journal: %v %v", left, err)
	}
	res := func(subject string) store.Reservation {
		return store.Reservation{Subject: subject, Items: []store.Reserved{{Name: LimitMonthTokens, Amount: 100}}}
	}
	j.Opened("req-1", res("supplier:bella"))
	j.Opened("req-2", res("supplier:rose"))
	j.Opened("req-3", res("supplier:lily"))
	j.Closed("req-2")
	_ = j.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("+req-4\t{\"subject\":\"supp") // a kill in the middle of a line
	_ = f.Close()

	j, left, err = OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if len(left) != 2 || left[0].ID != "req-1" || left[1].ID != "req-3" || left[1].Reservation.Subject != "supplier:lily" {
		t.Fatalf("left open: %+v, want req-1 and req-3", left)
	}
	j.Forget([]string{"req-1", "req-3"})
	_ = j.Close()
	if _, left, err = OpenJournal(path); err != nil || len(left) != 0 {
		t.Fatalf("after Forget: %+v %v", left, err)
	}
}

// TestReconcile: a reservation whose call has a record is settled with the
// record's usage; one without a record is given back.
func TestReconcile(t *testing.T) {
	e, st := newEnforcer(t, Options{
		Tiers:       []config.Tier{{Name: "big", MonthlyTokens: 1_000_000, DefaultMaxTokens: 500, OnExhausted: "reject"}},
		DefaultTier: "big",
	})
	var left []OpenReservation
	for _, id := range []string{"answered", "never-answered"} {
		tk, ref, err := e.Admit(context.Background(), Request{Supplier: []byte("bella"), Provider: "openai", Model: "gpt-4o-mini",
			Prompt: 100, Completion: true, ID: id, Now: june})
		if err != nil || ref != nil {
			t.Fatalf("admit: %v %v", ref, err)
		}
		left = append(left, OpenReservation{ID: id, Reservation: tk.res})
	}
	settled, refunded, err := e.Reconcile(context.Background(), left, func(id string) (Used, bool) {
		return Used{OK: true, PromptTokens: 90, CompletionTokens: 30}, id == "answered"
	})
	if err != nil || settled != 1 || refunded != 1 {
		t.Fatalf("reconcile: %d settled, %d refunded, %v", settled, refunded, err)
	}
	used, err := st.Used(context.Background(), "supplier:bella", e.limits(e.Tier([]byte("bella"), june), 0, 0), june.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if used[2] != 120 { // month tokens: the answered call's 120, nothing of the other
		t.Fatalf("month tokens %d, want 120", used[2])
	}
}
