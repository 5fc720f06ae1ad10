package quota

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
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

// lateStore applies the next reservation but answers as if unreachable,
// as a store that stalled past the timeout and then ran the command.
type lateStore struct {
	store.Store
	late atomic.Bool
}

func (s *lateStore) ReserveAs(ctx context.Context, id, subject string, limits []store.Limit, now time.Time) (store.Reservation, *store.Denial, error) {
	r, d, err := s.Store.ReserveAs(ctx, id, subject, limits, now)
	if s.late.CompareAndSwap(true, false) {
		return store.Reservation{}, nil, store.ErrUnavailable
	}
	return r, d, err
}

// TestReservationAppliedLateIsGivenBack: a reservation the store applied
// after its caller gave up on it (a stall) is given back once the store
// answers again, so the counters hold only what calls used.
func TestReservationAppliedLateIsGivenBack(t *testing.T) {
	inner, err := store.NewEmbedded("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inner.Close() })
	st := &lateStore{Store: inner}
	var settles sync.WaitGroup
	e, _ := newEnforcer(t, Options{
		Store:       st,
		Tiers:       []config.Tier{{Name: "big", MonthlyTokens: 1_000_000, DefaultMaxTokens: 500, OnExhausted: "reject"}},
		DefaultTier: "big",
		Timeout:     time.Millisecond,
		Settles:     &settles,
	})
	req := Request{Supplier: []byte("bella"), Provider: "openai", Model: "gpt-4o-mini", Prompt: 100, Completion: true, Now: june}
	st.late.Store(true)
	if tk, _, _ := e.Admit(context.Background(), req); tk.Active() { // served without a quota check (fail open)
		t.Fatal("a call whose reservation got no answer holds a ticket")
	}
	time.Sleep(2 * time.Millisecond) // past the store timeout
	tk, ref, err := e.Admit(context.Background(), req)
	if err != nil || ref != nil {
		t.Fatalf("admit: %v %v", ref, err)
	}
	e.Settle(&tk, true, 90, 30, 0)
	settles.Wait()
	used, err := e.Used(context.Background(), []byte("bella"), june)
	if err != nil {
		t.Fatal(err)
	}
	if used[LimitMonthTokens] != 120 {
		t.Fatalf("month tokens %d, want the settled call's 120 and nothing of the late reservation", used[LimitMonthTokens])
	}
}
