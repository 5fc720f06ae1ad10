package cache

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newStore(t *testing.T, o Options) *Answers {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func testKey(t *testing.T, n int) Key {
	t.Helper()
	return mustKey(t, "test", fmt.Sprintf(`{"model":"m","n":%d}`, n))
}

func testEntry(body string) *Entry {
	return &Entry{Status: 200, ContentType: "application/json", Body: []byte(body), Model: "m", Provider: "openai"}
}

// setAndWait stores e and waits until the write is applied.
func setAndWait(t *testing.T, s *Answers, scope string, k Key, e *Entry) {
	t.Helper()
	if !s.Set(scope, k, e) {
		t.Fatalf("Set(%q, %v) dropped the entry", scope, k)
	}
	s.Wait()
}

func TestNewOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		o       Options
		wantErr bool
		wantTTL time.Duration
	}{
		{"defaults", Options{}, false, DefaultTTL},
		{"custom", Options{MaxCostBytes: 1 << 20, ExpectedEntries: 10, TTL: time.Minute, BufferItems: 8}, false, time.Minute},
		{"no expiry", Options{TTL: -1}, false, 0},
		{"negative cost", Options{MaxCostBytes: -1}, true, 0},
		{"negative entries", Options{ExpectedEntries: -1}, true, 0},
		{"negative buffer", Options{BufferItems: -1}, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := New(tt.o)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidOptions) {
					t.Fatalf("New(%+v) error = %v, want %v", tt.o, err, ErrInvalidOptions)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.ttl != tt.wantTTL {
				t.Errorf("ttl = %v, want %v", s.ttl, tt.wantTTL)
			}
			if s.o.MaxCostBytes <= 0 || s.o.ExpectedEntries <= 0 || s.o.BufferItems <= 0 {
				t.Errorf("defaults not applied: %+v", s.o)
			}
		})
	}
}

func TestStoreGetSet(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	k1, k2 := testKey(t, 1), testKey(t, 2)
	e := testEntry(`{"answer":1}`)
	setAndWait(t, s, "supplier-1", k1, e)

	tests := []struct {
		name  string
		scope string
		key   Key
		want  *Entry
	}{
		{"stored", "supplier-1", k1, e},
		{"other key", "supplier-1", k2, nil},
		{"other scope", "supplier-2", k1, nil},
		{"empty scope", "", k1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := s.Get(tt.scope, tt.key)
			if ok != (tt.want != nil) || got != tt.want {
				t.Errorf("Get(%q, %v) = %p, %v; want %p", tt.scope, tt.key, got, ok, tt.want)
			}
		})
	}

	t.Run("replace", func(t *testing.T) {
		e2 := testEntry(`{"answer":2}`)
		setAndWait(t, s, "supplier-1", k1, e2)
		if got, ok := s.Get("supplier-1", k1); !ok || got != e2 {
			t.Errorf("Get after replace = %p, %v; want %p", got, ok, e2)
		}
	})

	st := s.Stats()
	if st.Hits != 2 || st.Misses != 3 || st.Sets != 2 || st.Dropped != 0 || st.Entries != 1 {
		t.Errorf("Stats() = %+v", st)
	}
	if st.CostBytes <= 0 {
		t.Errorf("CostBytes = %d, want > 0", st.CostBytes)
	}
}

// TestStoreCollision checks that an item found under a slot's hash is
// returned only when its scope, key and generation match.
func TestStoreCollision(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	k1, k2 := testKey(t, 1), testKey(t, 2)
	sl := s.slot("a", k1)
	tests := []struct {
		name string
		it   *item
		hit  bool
	}{
		{"match", &item{scope: "a", key: k1, epoch: sl.epoch, gen: sl.gen}, true},
		{"other key", &item{scope: "a", key: k2, epoch: sl.epoch, gen: sl.gen}, false},
		{"other scope", &item{scope: "b", key: k1, epoch: sl.epoch, gen: sl.gen}, false},
		{"old generation", &item{scope: "a", key: k1, epoch: sl.epoch, gen: sl.gen + 1}, false},
		{"old epoch", &item{scope: "a", key: k1, epoch: sl.epoch + 1, gen: sl.gen}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.it.entry = testEntry(`{}`)
			if !s.c.Set(sl.hash, tt.it, 1) {
				t.Fatal("ristretto dropped the item")
			}
			s.Wait()
			if _, ok := s.Get("a", k1); ok != tt.hit {
				t.Errorf("Get hit = %v, want %v", ok, tt.hit)
			}
		})
	}
}

func TestStoreTTL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ttl     time.Duration
		wantTTL time.Duration // 0: no expiry
	}{
		{"default", 0, DefaultTTL},
		{"custom", 10 * time.Minute, 10 * time.Minute},
		{"no expiry", -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t, Options{TTL: tt.ttl})
			k := testKey(t, 1)
			setAndWait(t, s, "a", k, testEntry(`{}`))
			got, ok := s.c.GetTTL(s.slot("a", k).hash)
			if !ok {
				t.Fatal("entry not found")
			}
			if tt.wantTTL == 0 {
				if got != 0 {
					t.Errorf("TTL = %v, want no expiry", got)
				}
				return
			}
			if got <= 0 || got > tt.wantTTL {
				t.Errorf("TTL = %v, want in (0, %v]", got, tt.wantTTL)
			}
		})
	}

	t.Run("expired entry misses", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, Options{TTL: time.Nanosecond})
		k := testKey(t, 1)
		setAndWait(t, s, "a", k, testEntry(`{}`))
		// The entry expires a nanosecond after Set; poll rather than sleep.
		for {
			if _, ok := s.Get("a", k); !ok {
				break
			}
			runtime.Gosched()
		}
	})
}

func TestStorePurge(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	k1, k2 := testKey(t, 1), testKey(t, 2)
	ea, eb := testEntry(`{"a":1}`), testEntry(`{"b":1}`)
	for _, k := range []Key{k1, k2} {
		setAndWait(t, s, "a", k, ea)
		setAndWait(t, s, "b", k, eb)
	}
	s.Purge("a")
	for _, k := range []Key{k1, k2} {
		if _, ok := s.Get("a", k); ok {
			t.Errorf("purged scope a still has %v", k)
		}
		if got, ok := s.Get("b", k); !ok || got != eb {
			t.Errorf("scope b lost %v after purging a", k)
		}
	}

	ea2 := testEntry(`{"a":2}`)
	setAndWait(t, s, "a", k1, ea2)
	if got, ok := s.Get("a", k1); !ok || got != ea2 {
		t.Errorf("Get after purge and Set = %p, %v; want %p", got, ok, ea2)
	}
	s.Purge("a")
	s.Purge("never-used")
	if _, ok := s.Get("a", k1); ok {
		t.Error("second purge kept the entry")
	}
}

func TestStorePurgeAll(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	k := testKey(t, 1)
	for _, scope := range []string{"a", "b"} {
		setAndWait(t, s, scope, k, testEntry(`{}`))
	}
	s.PurgeAll()
	for _, scope := range []string{"a", "b"} {
		if _, ok := s.Get(scope, k); ok {
			t.Errorf("scope %s kept its entry after PurgeAll", scope)
		}
	}
	if st := s.Stats(); st.Entries != 0 || st.CostBytes != 0 || st.Sets != 2 {
		t.Errorf("Stats() after PurgeAll = %+v", st)
	}
	setAndWait(t, s, "a", k, testEntry(`{}`))
	if _, ok := s.Get("a", k); !ok {
		t.Error("Set after PurgeAll missed")
	}
}

func TestStoreDropped(t *testing.T) {
	t.Parallel()
	const maxCost = 4 << 10
	tests := []struct {
		name  string
		entry *Entry
		close bool
	}{
		{"nil entry", nil, false},
		{"larger than the store", &Entry{Body: make([]byte, maxCost)}, false},
		{"closed store", testEntry(`{}`), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t, Options{MaxCostBytes: maxCost})
			if tt.close {
				s.Close()
			}
			k := testKey(t, 1)
			if s.Set("a", k, tt.entry) {
				t.Fatal("Set returned true")
			}
			s.Wait()
			if _, ok := s.Get("a", k); ok {
				t.Error("Get hit a dropped entry")
			}
			if st := s.Stats(); st.Dropped != 1 || st.Sets != 0 {
				t.Errorf("Stats() = %+v, want 1 dropped", st)
			}
		})
	}
}

func TestStoreEviction(t *testing.T) {
	t.Parallel()
	const maxCost = 64 << 10
	s := newStore(t, Options{MaxCostBytes: maxCost, ExpectedEntries: 100})
	for i := range 200 {
		s.Set("a", testKey(t, i), &Entry{Body: make([]byte, 2<<10)})
		s.Wait()
	}
	st := s.Stats()
	if st.CostBytes > maxCost {
		t.Errorf("CostBytes = %d, over the maximum %d", st.CostBytes, maxCost)
	}
	if st.Evictions+st.Rejected+st.Dropped == 0 {
		t.Errorf("Stats() = %+v: nothing evicted, rejected or dropped", st)
	}
}

func TestDoSingleFlight(t *testing.T) {
	t.Parallel()
	const callers = 50
	s := newStore(t, Options{})
	k := testKey(t, 1)
	var calls atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	want := testEntry(`{"shared":true}`)
	fn := func() (*Entry, error) {
		calls.Add(1)
		close(started)
		<-release
		return want, nil
	}

	var wg sync.WaitGroup
	results := make(chan bool, callers)
	leader := func() {
		defer wg.Done()
		e, shared, err := s.Do("a", k, fn)
		if err != nil || e != want {
			t.Errorf("Do = %p, %v; want %p", e, err, want)
		}
		results <- shared
	}
	wg.Add(1)
	go leader()
	<-started
	wg.Add(callers - 1)
	for range callers - 1 {
		go leader()
	}
	// Release fn only once every other caller waits for it.
	for s.waiting("a", k) != callers-1 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	close(results)

	sharedCount := 0
	for shared := range results {
		if shared {
			sharedCount++
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("fn called %d times, want 1", n)
	}
	if sharedCount != callers-1 {
		t.Errorf("%d callers shared the result, want %d", sharedCount, callers-1)
	}

	s.Wait()
	e, shared, err := s.Do("a", k, func() (*Entry, error) {
		t.Error("fn called on a cache hit")
		return nil, nil
	})
	if err != nil || !shared || e != want {
		t.Errorf("Do after the flight = %p, %v, %v; want the stored entry", e, shared, err)
	}
}

func TestDoErrors(t *testing.T) {
	t.Parallel()
	errUpstream := errors.New("upstream failed")
	tests := []struct {
		name    string
		fn      func() (*Entry, error)
		wantErr error
	}{
		{"error", func() (*Entry, error) { return nil, errUpstream }, errUpstream},
		{"error with entry", func() (*Entry, error) { return testEntry(`{}`), errUpstream }, errUpstream},
		{"nothing to store", func() (*Entry, error) { return nil, nil }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t, Options{})
			k := testKey(t, 1)
			_, shared, err := s.Do("a", k, tt.fn)
			if !errors.Is(err, tt.wantErr) || shared {
				t.Errorf("Do = shared %v, error %v; want error %v", shared, err, tt.wantErr)
			}
			s.Wait()
			if _, ok := s.Get("a", k); ok {
				t.Error("Do stored an entry")
			}
		})
	}
}

func TestDoPanic(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	k := testKey(t, 1)
	started, release := make(chan struct{}), make(chan struct{})
	leaderDone := make(chan any)
	go func() {
		defer func() { leaderDone <- recover() }()
		_, _, _ = s.Do("a", k, func() (*Entry, error) {
			close(started)
			<-release
			panic("boom")
		})
	}()
	<-started
	waiterDone := make(chan error)
	go func() {
		_, _, err := s.Do("a", k, func() (*Entry, error) { return nil, nil })
		waiterDone <- err
	}()
	for s.waiting("a", k) != 1 {
		runtime.Gosched()
	}
	close(release)
	if r := <-leaderDone; r != "boom" {
		t.Errorf("leader recovered %v, want the panic", r)
	}
	if err := <-waiterDone; !errors.Is(err, ErrFlightAborted) {
		t.Errorf("waiter error = %v, want %v", err, ErrFlightAborted)
	}
}

func BenchmarkStoreGet(b *testing.B) {
	s, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	k, err := NewKey("bench", chatBody(1<<10))
	if err != nil {
		b.Fatal(err)
	}
	s.Set("supplier-1", k, testEntry(`{}`))
	s.Wait()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := s.Get("supplier-1", k); !ok {
				b.Error("miss")
				return
			}
		}
	})
}

// TestStoreConcurrent runs every operation at once, for the race detector.
func TestStoreConcurrent(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{MaxCostBytes: 1 << 20, ExpectedEntries: 1000})
	keys := make([]Key, 16)
	for i := range keys {
		keys[i] = testKey(t, i)
	}
	scopes := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 300 {
				scope, k := scopes[(w+i)%len(scopes)], keys[(w*7+i)%len(keys)]
				switch i % 10 {
				case 0:
					s.Purge(scope)
				case 1:
					if w == 0 {
						s.PurgeAll()
					}
				case 2:
					_ = s.Stats()
				case 3, 4:
					if _, _, err := s.Do(scope, k, func() (*Entry, error) { return testEntry(`{"do":1}`), nil }); err != nil {
						t.Error(err)
					}
				case 5, 6:
					s.Set(scope, k, testEntry(`{"set":1}`))
				default:
					if e, ok := s.Get(scope, k); ok && e.Status != 200 {
						t.Errorf("bad entry %+v", e)
					}
				}
			}
		})
	}
	wg.Wait()
}

// TestBeginEnd: the first caller of a key leads its flight and the others
// follow until it ends; a purge starts a new flight; Wait gives up after
// its timeout.
func TestBeginEnd(t *testing.T) {
	s := newStore(t, Options{})
	k, _ := NewKey("bella", []byte(`{"model":"m"}`))
	f, leader := s.Begin("bella", k)
	if !leader {
		t.Fatal("the first caller does not lead")
	}
	g, leader := s.Begin("bella", k)
	if leader || g.c != f.c || s.waiting("bella", k) != 1 {
		t.Fatalf("the second caller leads %v, same flight %v", leader, g.c == f.c)
	}
	if other, leader := s.Begin("rose", k); !leader {
		t.Error("another scope shares the flight")
	} else {
		other.End(nil)
	}
	select {
	case <-g.Done():
		t.Error("the flight is done before End")
	default:
	}
	if g.Answer() != nil {
		t.Error("Answer returned an answer before End")
	}
	s.Purge("bella")
	if h, leader := s.Begin("bella", k); !leader {
		t.Error("after a purge the old flight is still followed")
	} else {
		h.End(nil)
	}
	done := make(chan *Entry)
	go func() { <-g.Done(); done <- g.Answer() }()
	answer := &Entry{Status: 200, Body: []byte(`{}`)}
	f.End(answer)
	if got := <-done; got != answer {
		t.Errorf("Answer got %v, want the leader's answer", got)
	}
	if h, leader := s.Begin("bella", k); !leader || s.waiting("bella", k) != 0 {
		t.Error("an ended flight is still followed")
	} else {
		h.End(nil)
	}
}

// TestStreamFromPlainIsKeptAndCharged: the stream made from a plain answer
// on its first streamed hit is kept in the entry, counted in its cost, and
// Recost charges the cache for it without extending the entry's life.
func TestStreamFromPlainIsKeptAndCharged(t *testing.T) {
	t.Parallel()
	body := `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant",` +
		`"content":"The lakeside pavilion seats eighty guests under fairy lights, with a barbecue at dusk.","refusal":null},` +
		`"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":17,"total_tokens":26}}`
	e := testEntry(body)
	e.StoredAt = time.Now().Add(-time.Minute)
	before := e.Cost()
	for _, includeUsage := range []bool{false, true} {
		first, err := e.StreamEvents(EndpointChatCompletions, includeUsage)
		if err != nil {
			t.Fatal(err)
		}
		again, err := e.StreamEvents(EndpointChatCompletions, includeUsage)
		if err != nil {
			t.Fatal(err)
		}
		if len(first) < 4 || &first[0] != &again[0] {
			t.Errorf("usage %v: the second replay made the stream again (%d events)", includeUsage, len(first))
		}
		fresh, err := SynthesizeChatStream([]byte(body), includeUsage)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(fresh) != fmt.Sprint(first) {
			t.Errorf("usage %v: the kept stream differs from a fresh one", includeUsage)
		}
	}
	kept := e.MemoBytes()
	if kept == 0 || e.Cost() != before+kept {
		t.Errorf("cost %d before, %d after, %d kept: the kept streams are not counted", before, e.Cost(), kept)
	}

	s := newStore(t, Options{TTL: 10 * time.Minute})
	k := testKey(t, 1)
	setAndWait(t, s, "a", k, testEntry(body))
	if !s.Recost("a", k, e) {
		t.Fatal("Recost declined the entry")
	}
	s.Wait()
	got, ok := s.Get("a", k)
	if !ok || got != e {
		t.Fatal("the recosted entry is not the one served")
	}
	if ttl, ok := s.c.GetTTL(s.slot("a", k).hash); !ok || ttl > 9*time.Minute+time.Second {
		t.Errorf("TTL after Recost = %v, want what the entry had left (at most 9m)", ttl)
	}
	old := testEntry(body)
	old.StoredAt = time.Now().Add(-time.Hour)
	if s.Recost("a", k, old) {
		t.Error("Recost stored an entry whose TTL had passed")
	}
}
