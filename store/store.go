package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

var (
	// ErrNotFound means a document does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrUnavailable means the store could not be reached or could not
	// answer in time (network error, timeout, server loading or read-only).
	// The operation may or may not have taken effect. Callers choose
	// whether to fail open or closed on it.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrInvalid means an argument was invalid, such as an empty subject or
	// a window that is not a whole number of seconds. It is a bug in the
	// caller, never a reason to fail open.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("store: closed")
)

// WindowMonth is the Window of a Limit counted per calendar month in UTC.
const WindowMonth time.Duration = -1

// CounterGrace is how long a quota counter outlives its window. Within it
// a reservation made in the window can still be settled or refunded, and a
// replica whose clock lags slightly still finds the counter.
const CounterGrace = time.Minute

// Limit is one limit checked by Reserve.
type Limit struct {
	// Name identifies the counter within the subject, such as "rpm",
	// "tpm", "month_tokens" or "month_cost_micros". The counter of a
	// window is the subject, the name and the window's start, so a name
	// should always be used with the same Window. It must not be empty or
	// contain ':'.
	Name string
	// Window is the length of the fixed windows, aligned to the Unix
	// epoch (time.Minute counts each minute from :00), or WindowMonth. It
	// must be a whole number of seconds.
	Window time.Duration
	// Max is the most a window may hold. Zero or less means unlimited:
	// Reserve skips the limit and adds nothing to it.
	Max int64
	// Amount is what the request takes now: 1 request, the estimated
	// tokens, the estimated cost in micros. It must not be negative. Used
	// ignores it.
	Amount int64
}

// Reservation is what Reserve added. It holds everything Settle and Refund
// need, so it may be serialized (it has JSON tags) and settled later by
// another replica.
type Reservation struct {
	Subject string     `json:"subject"`
	Items   []Reserved `json:"items"`
	// ID names the reservation: the store keeps it until it is settled
	// or refunded, and settles a reservation it holds, only once. A
	// process can so settle what it reserved, after a kill, from its own
	// journal: a reservation that was never made, or already settled, is
	// left alone. Without an ID, Settle and Refund apply every time.
	ID string `json:"id,omitempty"`
}

// ReservationTTL is how long a store keeps an unsettled reservation's ID:
// long enough for a killed process to be restarted and settle what it
// left open.
const ReservationTTL = 24 * time.Hour

// PlanReservation is the Reservation that ReserveAs(id, subject, limits,
// now) makes when it succeeds, without its Used: what a caller journals
// before reserving.
func PlanReservation(id, subject string, limits []Limit, now time.Time) Reservation {
	r := Reservation{Subject: subject, ID: id}
	for _, l := range limits {
		if l.Max <= 0 {
			continue
		}
		start, end := window(l.Window, now)
		r.Items = append(r.Items, Reserved{Name: l.Name, Start: start, End: end, Amount: l.Amount})
	}
	return r
}

// Reserved is the part of a Reservation for one limit.
type Reserved struct {
	// Name is the limit's name.
	Name string `json:"name"`
	// Start and End bound the window the amount was added to, in UTC.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Amount is what was added.
	Amount int64 `json:"amount"`
	// Used is the window's usage right after the reservation, this one
	// included: enough for X-RateLimit-Remaining without asking again.
	Used int64 `json:"used"`
}

// Denial tells why Reserve refused.
type Denial struct {
	// Limit is the name of the first limit, in the order given, without
	// room for the request.
	Limit string
	// Max is the limit's maximum, Used its current usage and Amount what
	// the request asked for. When Amount > Max, waiting does not help.
	Max, Used, Amount int64
	// RetryAfter is the time until the window rolls over.
	RetryAfter time.Duration
}

// Slot is a concurrency slot taken by AcquireSlot. Its ID is unique across
// replicas. The zero Slot, and a Slot taken with no maximum, holds nothing:
// renewing or releasing it does nothing.
type Slot struct {
	Subject string `json:"subject"`
	ID      string `json:"id"`
}

// Doc is a document listed by List.
type Doc struct {
	Key     string
	Value   []byte
	Version int64
}

// Usage is a usage aggregate: added to by AddUsage (a delta) and returned
// by QueryUsage (a total). Supplier, Provider, Model, KeySource and Billed
// must not contain '|' or NUL; Supplier must not be empty. Workflow may
// hold any text: the stores escape it.
type Usage struct {
	// Day is the UTC day; AddUsage takes any time of the day, in any
	// location, and QueryUsage returns midnight UTC.
	Day       time.Time
	Supplier  string
	Provider  string
	Model     string
	KeySource string
	// Billed is who pays: platform, client, or none when no provider was
	// asked. It may differ from KeySource: a comparison's shadow call on a
	// supplier's key is paid by the platform. Aggregates written before
	// veil kept it are read with Billed derived from KeySource (LegacyBilled).
	Billed string
	// Workflow is the requests' workflow (X-Workflow); empty when they
	// named none, and for aggregates written before veil kept it.
	Workflow string

	Requests         int64
	PromptTokens     int64
	CompletionTokens int64
	CachedTokens     int64
	// CostMicros is the cost in millionths of a US dollar, an integer so
	// that sums do not drift.
	CostMicros int64
}

// UsageQuery selects usage aggregates.
type UsageQuery struct {
	// Supplier selects one supplier; empty selects all.
	Supplier string
	// From and To are the first and last UTC days, both included; the time
	// of day is ignored.
	From, To time.Time
}

// Quotas counts usage in fixed windows and enforces limits atomically
// across replicas.
type Quotas interface {
	// Reserve checks every limit of subject (such as
	// "supplier:bella-photography") and, only if all have room
	// (used+amount <= max), adds every amount, atomically: concurrent
	// reservations never take a window past its maximum. On a denial
	// nothing is added and the first limit without room is described.
	// Limits with Max <= 0 are skipped and absent from the Reservation.
	Reserve(ctx context.Context, subject string, limits []Limit, now time.Time) (Reservation, *Denial, error)
	// ReserveAs is Reserve with the reservation's ID chosen by the caller
	// (1 to 64 printable ASCII bytes), so that it can journal the
	// reservation (PlanReservation) before making it.
	ReserveAs(ctx context.Context, id, subject string, limits []Limit, now time.Time) (Reservation, *Denial, error)
	// Settle replaces reserved amounts with actual ones, by limit name.
	// Names absent from actual keep their reserved amount; names not in
	// the reservation are ignored. The result may exceed the maximum:
	// settling never fails for being over. A window whose counter has
	// expired (CounterGrace after its end) is left alone. A reservation
	// with an ID is settled (or refunded) once, and only when the store
	// made it (see Reservation.ID).
	Settle(ctx context.Context, r Reservation, actual map[string]int64) error
	// Refund gives a reservation back, as Settle with every actual amount
	// zero.
	Refund(ctx context.Context, r Reservation) error
	// Used reports the current usage of each limit's window, in the order
	// given, whatever its Max.
	Used(ctx context.Context, subject string, limits []Limit, now time.Time) ([]int64, error)
}

// Slots bounds concurrent work per subject across replicas.
type Slots interface {
	// AcquireSlot takes one of at most maxSlots concurrent slots of subject
	// until now+ttl. It reports false when all are held. Slots of a
	// crashed replica free themselves when they expire. maxSlots <= 0 means
	// unlimited: it returns a Slot holding nothing, without I/O.
	AcquireSlot(ctx context.Context, subject string, maxSlots int64, ttl time.Duration, now time.Time) (Slot, bool, error)
	// RenewSlot extends a held slot to now+ttl, for work that outlives
	// the ttl it was acquired with. It reports false if the slot has
	// already expired or been released: it may have been taken since.
	RenewSlot(ctx context.Context, s Slot, ttl time.Duration, now time.Time) (bool, error)
	// ReleaseSlot frees a slot. Releasing a slot that is not held does
	// nothing.
	ReleaseSlot(ctx context.Context, s Slot) error
}

// Documents is a durable, versioned key/value store of documents grouped
// in buckets, such as supplier overrides and migration state.
//
// Versions are positive and increase with every write to a bucket; they
// are never reused, even after Delete, so CompareAndSwap cannot succeed
// against a document that was deleted and created again.
type Documents interface {
	// Get returns a document and its version, or an error wrapping
	// ErrNotFound.
	Get(ctx context.Context, bucket, key string) (value []byte, version int64, err error)
	// Put writes a document and returns its new version.
	Put(ctx context.Context, bucket, key string, value []byte) (version int64, err error)
	// CompareAndSwap writes a document only if its version is oldVersion
	// (0: only if it does not exist). It returns the new version and true,
	// or the current version (0 if none) and false.
	CompareAndSwap(ctx context.Context, bucket, key string, oldVersion int64, value []byte) (version int64, ok bool, err error)
	// Delete removes a document. Deleting a missing document does nothing.
	Delete(ctx context.Context, bucket, key string) error
	// List returns every document of a bucket, sorted by key.
	List(ctx context.Context, bucket string) ([]Doc, error)
}

// Leases elect one holder at a time, such as the replica driving a
// migration.
type Leases interface {
	// AcquireLease takes the lease name for holder until now+ttl. It
	// reports true if holder now holds it: newly acquired, taken over
	// after the previous holder's expiry, or renewed.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error)
	// ReleaseLease gives the lease up if holder holds it, and does
	// nothing otherwise.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Aggregates keeps durable usage totals per UTC day, supplier, provider,
// model, key source, payer (billed) and workflow.
type Aggregates interface {
	// AddUsage adds the counts of d to its day's aggregate, at most once
	// per id: the check that id was not applied yet and the addition are
	// one atomic step, and a later call with the same id (within
	// AppliedTTL) does nothing and returns nil. So a call that failed,
	// even a timeout that may have reached the store, can be retried with
	// the same id without counting twice. id is 1 to MaxUsageIDLen
	// printable ASCII bytes, unique per delta: a random batch id and the
	// delta's index, say. A delta of only zeros does nothing.
	AddUsage(ctx context.Context, id string, d Usage) error
	// AddUsageSeq is AddUsage for a delta whose records are numbered by
	// one sequence (seq.Source, such as a replica's usage spool) and are
	// added, per aggregate, in the order of their numbers. Besides the
	// id, the store keeps per source and aggregate a mark: the highest
	// number applied. In the same atomic step it reads the mark W and
	// adds d only if every record is above it (seq.First > W), moving
	// the mark to seq.Last; otherwise it adds nothing. It returns W, the
	// mark before the call: W < seq.First means d was applied (or its id
	// had been), W >= seq.Last that every record was applied before, and
	// anything between that the records up to W were applied and those
	// above were not: the caller sends them again as a delta of their
	// own. So records replayed after a crash, batched otherwise, are
	// added once. Marks are kept for UsageMarkTTL after their last move.
	// A delta of only zeros does nothing and returns 0.
	AddUsageSeq(ctx context.Context, id string, d Usage, seq UsageSeq) (uint64, error)
	// QueryUsage returns the aggregates of q, sorted by day, supplier,
	// provider, model, key source, billed and workflow.
	QueryUsage(ctx context.Context, q UsageQuery) ([]Usage, error)
}

// Store is veil's shared state.
type Store interface {
	Quotas
	Slots
	Documents
	Leases
	Aggregates
	Headrooms
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	// Close releases the store's resources; later calls fail with
	// ErrClosed. Closing twice does nothing.
	Close() error
}

// window returns the bounds of the window of length w (or WindowMonth)
// holding now, in UTC.
func window(w time.Duration, now time.Time) (start, end time.Time) {
	if w == WindowMonth {
		u := now.UTC()
		start = time.Date(u.Year(), u.Month(), 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	}
	sec := int64(w / time.Second)
	s := now.Unix()
	s -= mod(s, sec)
	start = time.Unix(s, 0).UTC()
	return start, start.Add(w)
}

// mod returns a mod b in [0, b), also for negative a.
func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// checkSubject validates a quota or slot subject.
func checkSubject(subject string) error {
	if subject == "" {
		return fmt.Errorf("%w: empty subject", ErrInvalid)
	}
	return nil
}

// checkLimits validates limits; reserving also checks amounts and
// duplicate names.
func checkLimits(limits []Limit, reserving bool) error {
	for i, l := range limits {
		switch {
		case l.Name == "":
			return fmt.Errorf("%w: limit %d has no name", ErrInvalid, i)
		case strings.ContainsRune(l.Name, ':'):
			return fmt.Errorf("%w: limit name %q contains ':'", ErrInvalid, l.Name)
		case l.Window != WindowMonth && (l.Window < time.Second || l.Window%time.Second != 0):
			return fmt.Errorf("%w: limit %q: window %v is not a positive whole number of seconds", ErrInvalid, l.Name, l.Window)
		case reserving && l.Amount < 0:
			return fmt.Errorf("%w: limit %q: negative amount %d", ErrInvalid, l.Name, l.Amount)
		}
		if reserving {
			for _, prev := range limits[:i] {
				if prev.Name == l.Name {
					return fmt.Errorf("%w: limit %q given twice", ErrInvalid, l.Name)
				}
			}
		}
	}
	return nil
}

// checkReservation validates a reservation given to Settle or Refund.
func checkReservation(r Reservation, actual map[string]int64) error {
	if err := checkSubject(r.Subject); err != nil {
		return err
	}
	for _, it := range r.Items {
		if it.Name == "" || strings.ContainsRune(it.Name, ':') {
			return fmt.Errorf("%w: reserved limit name %q", ErrInvalid, it.Name)
		}
	}
	for name, v := range actual {
		if v < 0 {
			return fmt.Errorf("%w: limit %q: negative actual amount %d", ErrInvalid, name, v)
		}
	}
	return nil
}

// delta returns what settling it with actual adds to its counter.
func (it Reserved) delta(actual map[string]int64) int64 {
	v, ok := actual[it.Name]
	if !ok {
		return 0
	}
	return v - it.Amount
}

// settleDeltas returns what settling r with actual (or refunding it) adds
// to each of its counters.
func settleDeltas(r Reservation, actual map[string]int64, refund bool) []int64 {
	d := make([]int64, len(r.Items))
	for i, it := range r.Items {
		if refund {
			d[i] = -it.Amount
		} else {
			d[i] = it.delta(actual)
		}
	}
	return d
}

// checkTTL validates a slot or lease ttl.
func checkTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%w: ttl %v is not positive", ErrInvalid, ttl)
	}
	return nil
}

// answerSlot answers AcquireSlot without asking the store when it can:
// with an error for invalid arguments, or with a slot that holds nothing
// when maxSlots sets no limit. done reports that it answered.
func answerSlot(subject string, maxSlots int64, ttl time.Duration) (slot Slot, done bool, err error) {
	if err := checkSubject(subject); err != nil {
		return Slot{}, true, err
	}
	if err := checkTTL(ttl); err != nil {
		return Slot{}, true, err
	}
	if maxSlots <= 0 {
		return Slot{Subject: subject}, true, nil
	}
	return Slot{}, false, nil
}

// checkDoc validates a bucket and a key.
func checkDoc(bucket, key string) error {
	if err := checkBucket(bucket); err != nil {
		return err
	}
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalid)
	}
	return nil
}

// checkBucket validates a bucket name.
func checkBucket(bucket string) error {
	if bucket == "" {
		return fmt.Errorf("%w: empty bucket", ErrInvalid)
	}
	return nil
}

// checkLease validates a lease's name and holder.
func checkLease(name, holder string) error {
	if name == "" || holder == "" {
		return fmt.Errorf("%w: lease name and holder must not be empty", ErrInvalid)
	}
	return nil
}

// dayLayout formats usage days.
const dayLayout = "2006-01-02"

// utcDay returns midnight UTC of t's UTC day.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// AppliedTTL is how long a store remembers the id of a delta it applied,
// and so how long a retry of it is recognized. A retry comes within the
// caller's retry budget (veil's usage sink gives up after 30 seconds);
// the margin covers an attempt held up in the network or in a stalled
// server, which would otherwise be applied after its id was forgotten.
const AppliedTTL = time.Hour

// MaxUsageIDLen is the longest id AddUsage takes.
const MaxUsageIDLen = 64

// UsageSeq places the records of a delta in a sequence: see AddUsageSeq.
type UsageSeq struct {
	// Source names the sequence, such as a usage spool's identity: 1 to
	// MaxUsageIDLen printable ASCII bytes.
	Source string
	// First and Last are the lowest and highest numbers of the delta's
	// records, 1 <= First <= Last <= MaxUsageSeq. The records between
	// them need not all be in the delta: other aggregates' take numbers
	// too.
	First, Last uint64
}

// MaxUsageSeq is the highest record number AddUsageSeq takes: 2^53, the
// integers a Lua number (Redis's scripts) holds exactly.
const MaxUsageSeq = 1 << 53

// UsageMarkTTL is how long a store keeps a mark of AddUsageSeq after its
// last move: longer than a replica may stay down with records it has not
// acknowledged, which are replayed when it comes back.
const UsageMarkTTL = 7 * 24 * time.Hour

// checkAddUsageSeq validates the arguments of AddUsageSeq; zero reports a
// delta with nothing to add, which an implementation answers at once.
func checkAddUsageSeq(id string, d Usage, seq UsageSeq) (zero bool, err error) {
	if err := checkUsageID(id); err != nil {
		return false, err
	}
	if err := checkUsage(d); err != nil {
		return false, err
	}
	if err := checkUsageSeq(seq); err != nil {
		return false, err
	}
	return d.isZero(), nil
}

// checkUsageSeq validates the sequence of a usage delta.
func checkUsageSeq(seq UsageSeq) error {
	if err := checkUsageID(seq.Source); err != nil {
		return fmt.Errorf("%w: usage sequence source", err)
	}
	if seq.First == 0 || seq.First > seq.Last || seq.Last > MaxUsageSeq {
		return fmt.Errorf("%w: usage sequence %d to %d, want 1 <= first <= last <= 2^53", ErrInvalid, seq.First, seq.Last)
	}
	return nil
}

// checkUsageID validates the id of a usage delta.
func checkUsageID(id string) error {
	if id == "" || len(id) > MaxUsageIDLen {
		return fmt.Errorf("%w: usage id of %d bytes, want 1 to %d", ErrInvalid, len(id), MaxUsageIDLen)
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return fmt.Errorf("%w: usage id %q: not printable ASCII", ErrInvalid, id)
		}
	}
	return nil
}

// checkID validates a reservation's ID: as a usage delta's.
func checkID(id string) error {
	if err := checkUsageID(id); err != nil {
		return fmt.Errorf("%w: reservation id %q", ErrInvalid, id)
	}
	return nil
}

// checkUsage validates a usage delta.
func checkUsage(d Usage) error {
	if d.Supplier == "" {
		return fmt.Errorf("%w: usage without a supplier", ErrInvalid)
	}
	if d.Day.IsZero() {
		return fmt.Errorf("%w: usage without a day", ErrInvalid)
	}
	for _, s := range [...]string{d.Supplier, d.Provider, d.Model, d.KeySource, d.Billed} {
		if strings.ContainsAny(s, "|\x00") {
			return fmt.Errorf("%w: usage field %q contains '|' or NUL", ErrInvalid, s)
		}
	}
	return nil
}

// isZero reports whether a usage delta adds nothing.
func (u Usage) isZero() bool {
	return u.Requests == 0 && u.PromptTokens == 0 && u.CompletionTokens == 0 &&
		u.CachedTokens == 0 && u.CostMicros == 0
}

// add adds the counts of d to u.
func (u *Usage) add(d Usage) {
	u.Requests += d.Requests
	u.PromptTokens += d.PromptTokens
	u.CompletionTokens += d.CompletionTokens
	u.CachedTokens += d.CachedTokens
	u.CostMicros += d.CostMicros
}

// checkQuery validates a usage query and returns its first and last days.
func checkQuery(q UsageQuery) (from, to time.Time, err error) {
	if q.From.IsZero() || q.To.IsZero() {
		return from, to, fmt.Errorf("%w: usage query without a range", ErrInvalid)
	}
	from, to = utcDay(q.From), utcDay(q.To)
	if to.Before(from) {
		return from, to, fmt.Errorf("%w: usage query ends (%s) before it starts (%s)",
			ErrInvalid, to.Format(dayLayout), from.Format(dayLayout))
	}
	return from, to, nil
}

// usageCompare orders usage rows by day, supplier, provider, model, key
// source, billed and workflow.
func usageCompare(a, b Usage) int {
	if c := a.Day.Compare(b.Day); c != 0 {
		return c
	}
	for _, p := range [...][2]string{
		{a.Supplier, b.Supplier}, {a.Provider, b.Provider}, {a.Model, b.Model}, {a.KeySource, b.KeySource},
		{a.Billed, b.Billed}, {a.Workflow, b.Workflow},
	} {
		if c := strings.Compare(p[0], p[1]); c != 0 {
			return c
		}
	}
	return 0
}

// sortUsage sorts rows as QueryUsage returns them and merges the rows of
// one aggregate: an aggregate written before veil kept billed and
// workflow is read as the same aggregate as a newer one when its derived
// payer matches and the newer one has no workflow.
func sortUsage(rows []Usage) []Usage {
	slices.SortFunc(rows, usageCompare)
	out := rows[:0]
	for _, u := range rows {
		if n := len(out); n > 0 && usageCompare(out[n-1], u) == 0 {
			out[n-1].add(u)
			continue
		}
		out = append(out, u)
	}
	return out
}

// LegacyBilled is the payer an aggregate written before veil kept one is
// read with: platform for the platform key source, client for the
// client's, empty (not known) for anything else, such as the empty key
// source of a cache hit.
func LegacyBilled(keySource string) string {
	switch keySource {
	case "platform", "client":
		return keySource
	}
	return ""
}

// workflowEscaper encodes a workflow for the stored keys and fields: '%',
// '|' and NUL become %25, %7C and %00, so that the separators never occur
// in it.
var workflowEscaper = strings.NewReplacer("%", "%25", "|", "%7C", "\x00", "%00")

// escapeWorkflow encodes a workflow with workflowEscaper.
func escapeWorkflow(w string) string { return workflowEscaper.Replace(w) }

// unescapeWorkflow decodes a workflow encoded by escapeWorkflow.
func unescapeWorkflow(w string) (string, error) {
	if !strings.Contains(w, "%") {
		return w, nil
	}
	return url.PathUnescape(w)
}
