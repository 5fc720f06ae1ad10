package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// sweepEvery is how often, in the injected clock, Reserve drops counters
// whose window ended more than CounterGrace ago.
const sweepEvery = time.Minute

// Embedded is the Store of a single replica: quota counters, slots and
// leases in memory; documents and usage aggregates in a bbolt file, or in
// memory too. Create it with NewEmbedded. Its methods are safe for
// concurrent use.
type Embedded struct {
	ids  *idGen
	docs durable

	mu        sync.Mutex // guards the fields below
	closed    bool
	counters  map[counterKey]*counter
	nextSweep int64                       // unix nanoseconds of the injected clock
	slots     map[string]map[string]int64 // subject -> slot ID -> expiry (unix nanoseconds)
	leases    map[string]lease
	// held holds the IDs of the reservations not yet settled, for at most
	// ReservationTTL (expiry, unix nanoseconds of the wall clock).
	held map[string]int64
	// headroom is the providers' shared headroom, by provider and
	// account (Headroom.field).
	headroom map[string]Headroom
}

// counterKey identifies the counter of one window of a limit.
type counterKey struct {
	subject, name string
	start         int64 // unix seconds
}

// counter is the usage of one window.
type counter struct {
	used int64
	end  int64 // unix nanoseconds
}

// lease is a held lease.
type lease struct {
	holder  string
	expires int64 // unix nanoseconds
}

// savedCounter is a counter in the snapshot Close writes.
type savedCounter struct {
	Subject string `json:"subject"`
	Name    string `json:"name"`
	Start   int64  `json:"start"`
	End     int64  `json:"end"`
	Used    int64  `json:"used"`
}

var _ Store = (*Embedded)(nil)

// NewEmbedded returns a store for a single replica. Documents, usage
// aggregates and, when Close is called, the quota counters are kept in
// dataDir/veil.db (created with mode 0600, its directory with 0700), so a
// restart keeps supplier overrides, migration state, aggregates and
// monthly quotas. An empty dataDir keeps everything in memory.
//
// The file is locked while open: a second store on the same dataDir waits
// up to one second, then fails.
func NewEmbedded(dataDir string) (*Embedded, error) {
	var (
		docs durable
		err  error
	)
	if dataDir == "" {
		docs = newMemDurable()
	} else if docs, err = openBolt(dataDir); err != nil {
		return nil, err
	}
	e := &Embedded{
		ids:      newIDGen(),
		docs:     docs,
		counters: make(map[counterKey]*counter),
		slots:    make(map[string]map[string]int64),
		leases:   make(map[string]lease),
		headroom: make(map[string]Headroom),
	}
	if err := e.loadCounters(); err != nil {
		return nil, errors.Join(err, docs.close())
	}
	return e, nil
}

// loadCounters restores the counters saved by the last Close.
func (e *Embedded) loadCounters() error {
	data, err := e.docs.loadCounters()
	if err != nil || len(data) == 0 {
		return err
	}
	var saved []savedCounter
	if err := json.Unmarshal(data, &saved); err != nil {
		return fmt.Errorf("store: reading saved quota counters: %w", err)
	}
	for _, c := range saved {
		e.counters[counterKey{c.Subject, c.Name, c.Start}] = &counter{used: c.Used, end: c.End}
	}
	return nil
}

// Reserve implements Quotas.
func (e *Embedded) Reserve(ctx context.Context, subject string, limits []Limit, now time.Time) (Reservation, *Denial, error) {
	return e.ReserveAs(ctx, e.ids.next(), subject, limits, now)
}

// ReserveAs implements Quotas.
func (e *Embedded) ReserveAs(ctx context.Context, id, subject string, limits []Limit, now time.Time) (Reservation, *Denial, error) {
	if err := checkID(id); err != nil {
		return Reservation{}, nil, err
	}
	if err := ctx.Err(); err != nil {
		return Reservation{}, nil, fmt.Errorf("store: reserve: %w", err)
	}
	if err := checkSubject(subject); err != nil {
		return Reservation{}, nil, err
	}
	if err := checkLimits(limits, true); err != nil {
		return Reservation{}, nil, err
	}
	n := 0
	for _, l := range limits {
		if l.Max > 0 {
			n++
		}
	}
	r := Reservation{Subject: subject, ID: id}
	if n > 0 {
		r.Items = make([]Reserved, 0, n)
	}

	if err := e.lock(); err != nil {
		return Reservation{}, nil, err
	}
	defer e.mu.Unlock()
	e.sweep(now)
	for _, l := range limits {
		if l.Max <= 0 {
			continue
		}
		start, end := window(l.Window, now)
		var used int64
		if c := e.counters[counterKey{subject, l.Name, start.Unix()}]; c != nil {
			used = c.used
		}
		if used+l.Amount > l.Max {
			return Reservation{}, &Denial{
				Limit: l.Name, Max: l.Max, Used: used, Amount: l.Amount, RetryAfter: end.Sub(now),
			}, nil
		}
		r.Items = append(r.Items, Reserved{Name: l.Name, Start: start, End: end, Amount: l.Amount, Used: used})
	}
	for i := range r.Items {
		it := &r.Items[i]
		k := counterKey{subject, it.Name, it.Start.Unix()}
		c := e.counters[k]
		if c == nil {
			c = &counter{end: it.End.UnixNano()}
			e.counters[k] = c
		}
		c.used += it.Amount
		it.Used = c.used
	}
	e.hold(id)
	return r, nil, nil
}

// sweep drops the counters whose window ended more than CounterGrace
// before now, at most once per sweepEvery. It runs under e.mu.
func (e *Embedded) sweep(now time.Time) {
	ns := now.UnixNano()
	if ns < e.nextSweep {
		return
	}
	e.nextSweep = ns + int64(sweepEvery)
	limit := ns - int64(CounterGrace)
	for k, c := range e.counters {
		if c.end <= limit {
			delete(e.counters, k)
		}
	}
}

// Settle implements Quotas.
func (e *Embedded) Settle(ctx context.Context, r Reservation, actual map[string]int64) error {
	return e.settle(ctx, "settle", r, actual, false)
}

// Refund implements Quotas.
func (e *Embedded) Refund(ctx context.Context, r Reservation) error {
	return e.settle(ctx, "refund", r, nil, true)
}

// settle adds the deltas of settling (or refunding) r to its counters
// that still exist, never taking one below zero.
func (e *Embedded) settle(ctx context.Context, op string, r Reservation, actual map[string]int64, refund bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if err := checkReservation(r, actual); err != nil {
		return err
	}
	deltas := settleDeltas(r, actual, refund)
	if err := e.lock(); err != nil {
		return err
	}
	defer e.mu.Unlock()
	if !e.take(r.ID) {
		return nil
	}
	for i, it := range r.Items {
		if deltas[i] == 0 {
			continue
		}
		c := e.counters[counterKey{r.Subject, it.Name, it.Start.Unix()}]
		if c == nil {
			continue
		}
		c.used = max(c.used+deltas[i], 0)
	}
	return nil
}

// hold keeps reservation id until it is settled. Called with e.mu held.
func (e *Embedded) hold(id string) {
	now := time.Now().UnixNano()
	if e.held == nil {
		e.held = map[string]int64{}
	}
	if len(e.held) >= 4096 && len(e.held)%4096 == 0 {
		for k, exp := range e.held {
			if exp <= now {
				delete(e.held, k)
			}
		}
	}
	e.held[id] = now + int64(ReservationTTL)
}

// take reports whether reservation id is to be settled: the store holds it
// (and lets it go), or it has no ID. Called with e.mu held.
func (e *Embedded) take(id string) bool {
	if id == "" {
		return true
	}
	exp, ok := e.held[id]
	delete(e.held, id)
	return ok && exp > time.Now().UnixNano()
}

// Used implements Quotas.
func (e *Embedded) Used(ctx context.Context, subject string, limits []Limit, now time.Time) ([]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: used: %w", err)
	}
	if err := checkSubject(subject); err != nil {
		return nil, err
	}
	if err := checkLimits(limits, false); err != nil {
		return nil, err
	}
	used := make([]int64, len(limits))
	if err := e.lock(); err != nil {
		return nil, err
	}
	defer e.mu.Unlock()
	for i, l := range limits {
		start, _ := window(l.Window, now)
		if c := e.counters[counterKey{subject, l.Name, start.Unix()}]; c != nil {
			used[i] = c.used
		}
	}
	return used, nil
}

// AcquireSlot implements Slots.
func (e *Embedded) AcquireSlot(ctx context.Context, subject string, maxSlots int64, ttl time.Duration, now time.Time) (Slot, bool, error) {
	if err := ctx.Err(); err != nil {
		return Slot{}, false, fmt.Errorf("store: acquire slot: %w", err)
	}
	if slot, done, err := answerSlot(subject, maxSlots, ttl); done {
		return slot, err == nil, err
	}
	if err := e.lock(); err != nil {
		return Slot{}, false, err
	}
	defer e.mu.Unlock()
	held := e.slots[subject]
	ns := now.UnixNano()
	for id, exp := range held {
		if exp <= ns {
			delete(held, id)
		}
	}
	if int64(len(held)) >= maxSlots {
		return Slot{}, false, nil
	}
	if held == nil {
		held = make(map[string]int64)
		e.slots[subject] = held
	}
	s := Slot{Subject: subject, ID: e.ids.next()}
	held[s.ID] = ns + int64(ttl)
	return s, true, nil
}

// RenewSlot implements Slots.
func (e *Embedded) RenewSlot(ctx context.Context, s Slot, ttl time.Duration, now time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("store: renew slot: %w", err)
	}
	if err := checkTTL(ttl); err != nil {
		return false, err
	}
	if s.ID == "" {
		return true, nil
	}
	if err := e.lock(); err != nil {
		return false, err
	}
	defer e.mu.Unlock()
	ns := now.UnixNano()
	held := e.slots[s.Subject]
	exp, ok := held[s.ID]
	if !ok || exp <= ns {
		return false, nil
	}
	held[s.ID] = ns + int64(ttl)
	return true, nil
}

// ReleaseSlot implements Slots.
func (e *Embedded) ReleaseSlot(ctx context.Context, s Slot) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: release slot: %w", err)
	}
	if s.ID == "" {
		return nil
	}
	if err := e.lock(); err != nil {
		return err
	}
	defer e.mu.Unlock()
	if held := e.slots[s.Subject]; held != nil {
		delete(held, s.ID)
		if len(held) == 0 {
			delete(e.slots, s.Subject)
		}
	}
	return nil
}

// AcquireLease implements Leases.
func (e *Embedded) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("store: acquire lease: %w", err)
	}
	if err := checkLease(name, holder); err != nil {
		return false, err
	}
	if err := checkTTL(ttl); err != nil {
		return false, err
	}
	if err := e.lock(); err != nil {
		return false, err
	}
	defer e.mu.Unlock()
	ns := now.UnixNano()
	if cur, ok := e.leases[name]; ok && cur.holder != holder && cur.expires > ns {
		return false, nil
	}
	e.leases[name] = lease{holder: holder, expires: ns + int64(ttl)}
	return true, nil
}

// ReleaseLease implements Leases.
func (e *Embedded) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: release lease: %w", err)
	}
	if err := checkLease(name, holder); err != nil {
		return err
	}
	if err := e.lock(); err != nil {
		return err
	}
	defer e.mu.Unlock()
	if cur, ok := e.leases[name]; ok && cur.holder == holder {
		delete(e.leases, name)
	}
	return nil
}

// Get implements Documents.
func (e *Embedded) Get(ctx context.Context, bucket, key string) ([]byte, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("store: get: %w", err)
	}
	if err := checkDoc(bucket, key); err != nil {
		return nil, 0, err
	}
	return e.docs.get(bucket, key)
}

// Put implements Documents.
func (e *Embedded) Put(ctx context.Context, bucket, key string, value []byte) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("store: put: %w", err)
	}
	if err := checkDoc(bucket, key); err != nil {
		return 0, err
	}
	return e.docs.put(bucket, key, value)
}

// CompareAndSwap implements Documents.
func (e *Embedded) CompareAndSwap(ctx context.Context, bucket, key string, oldVersion int64, value []byte) (int64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, fmt.Errorf("store: compare and swap: %w", err)
	}
	if err := checkDoc(bucket, key); err != nil {
		return 0, false, err
	}
	if oldVersion < 0 {
		return 0, false, fmt.Errorf("%w: negative version %d", ErrInvalid, oldVersion)
	}
	return e.docs.compareAndSwap(bucket, key, oldVersion, value)
}

// Delete implements Documents.
func (e *Embedded) Delete(ctx context.Context, bucket, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: delete: %w", err)
	}
	if err := checkDoc(bucket, key); err != nil {
		return err
	}
	return e.docs.delete(bucket, key)
}

// List implements Documents.
func (e *Embedded) List(ctx context.Context, bucket string) ([]Doc, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	if err := checkBucket(bucket); err != nil {
		return nil, err
	}
	return e.docs.list(bucket)
}

// AddUsage implements Aggregates. The id is recorded with the counts, in
// the same transaction, and forgotten AppliedTTL later by the wall clock.
// With a data directory, concurrent calls share one transaction and one
// fsync (bbolt's Batch), so a call may wait up to 10ms for others to join.
func (e *Embedded) AddUsage(ctx context.Context, id string, d Usage) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: add usage: %w", err)
	}
	if err := checkUsageID(id); err != nil {
		return err
	}
	if err := checkUsage(d); err != nil {
		return err
	}
	if d.isZero() {
		return nil
	}
	d.Day = utcDay(d.Day)
	return e.docs.addUsage(id, d, time.Now())
}

// AddUsageSeq implements Aggregates. The mark is read and moved in the
// transaction that adds the counts. In memory marks are kept as long as
// the store; with a data directory they are swept UsageMarkTTL after
// their day ended or they last moved, whichever is later.
func (e *Embedded) AddUsageSeq(ctx context.Context, id string, d Usage, seq UsageSeq) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("store: add usage: %w", err)
	}
	if zero, err := checkAddUsageSeq(id, d, seq); zero || err != nil {
		return 0, err
	}
	d.Day = utcDay(d.Day)
	return e.docs.addUsageSeq(id, d, seq, time.Now())
}

// QueryUsage implements Aggregates.
func (e *Embedded) QueryUsage(ctx context.Context, q UsageQuery) ([]Usage, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: query usage: %w", err)
	}
	from, to, err := checkQuery(q)
	if err != nil {
		return nil, err
	}
	return e.docs.queryUsage(q.Supplier, from, to)
}

// Ping implements Store: it fails only once the store is closed.
func (e *Embedded) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	if err := e.lock(); err != nil {
		return err
	}
	defer e.mu.Unlock()
	return nil
}

// lock takes e.mu unless the store is closed (ErrClosed); when it returns
// nil the caller holds the lock and releases it.
func (e *Embedded) lock() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// Close implements Store. It saves the quota counters to the data file, if
// any, so that monthly quotas survive a restart, and closes the file.
func (e *Embedded) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	saved := make([]savedCounter, 0, len(e.counters))
	for k, c := range e.counters {
		saved = append(saved, savedCounter{Subject: k.subject, Name: k.name, Start: k.start, End: c.end, Used: c.used})
	}
	var saveErr error
	if data, err := json.Marshal(saved); err != nil {
		saveErr = fmt.Errorf("store: saving quota counters: %w", err)
	} else {
		saveErr = e.docs.saveCounters(data)
	}
	e.counters, e.slots, e.leases, e.headroom = nil, nil, nil, nil
	return errors.Join(saveErr, e.docs.close())
}

// PublishHeadroom implements Headrooms.
func (e *Embedded) PublishHeadroom(ctx context.Context, hs []Headroom, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: publish headroom: %w", err)
	}
	if err := checkHeadroom(hs); err != nil {
		return err
	}
	if err := e.lock(); err != nil {
		return err
	}
	defer e.mu.Unlock()
	for _, h := range hs {
		f := h.field()
		if held, ok := e.headroom[f]; ok {
			h = mergeHeadroom(held, h)
		}
		e.headroom[f] = h
	}
	for p, h := range e.headroom {
		if h.stale(now) {
			delete(e.headroom, p)
		}
	}
	return nil
}

// Headroom implements Headrooms.
func (e *Embedded) Headroom(ctx context.Context, now time.Time) ([]Headroom, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: headroom: %w", err)
	}
	if err := e.lock(); err != nil {
		return nil, err
	}
	defer e.mu.Unlock()
	out := make([]Headroom, 0, len(e.headroom))
	for _, h := range e.headroom {
		if !h.stale(now) {
			out = append(out, h)
		}
	}
	return sortHeadroom(out), nil
}
