package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// durable is the part of Embedded that survives a restart: documents,
// usage aggregates and the snapshot of quota counters. The arguments are
// already validated.
type durable interface {
	get(bucket, key string) ([]byte, int64, error)
	put(bucket, key string, value []byte) (int64, error)
	compareAndSwap(bucket, key string, oldVersion int64, value []byte) (int64, bool, error)
	delete(bucket, key string) error
	list(bucket string) ([]Doc, error)
	// addUsage adds d, whose Day is midnight UTC, unless id was applied
	// less than AppliedTTL before now; it then records id as applied at
	// now, and forgets ids applied AppliedTTL before.
	addUsage(id string, d Usage, now time.Time) error
	// addUsageSeq is addUsage under the mark of seq.Source and d's
	// aggregate (see Aggregates.AddUsageSeq): it returns the mark it
	// found, and adds d and moves the mark to seq.Last only if the mark
	// is below seq.First.
	addUsageSeq(id string, d Usage, seq UsageSeq, now time.Time) (uint64, error)
	// queryUsage returns the sorted aggregates from one UTC midnight to
	// another, both included, of supplier or of all if it is empty.
	queryUsage(supplier string, from, to time.Time) ([]Usage, error)
	saveCounters(data []byte) error
	loadCounters() ([]byte, error)
	close() error
}

// notFound returns the error of Get for a missing document.
func notFound(bucket, key string) error {
	return fmt.Errorf("%w: %q in bucket %q", ErrNotFound, key, bucket)
}

// memDurable keeps documents and aggregates in memory.
type memDurable struct {
	mu      sync.Mutex
	closed  bool
	buckets map[string]*memBucket
	usage   map[usageKey]*Usage
	// applied maps the id of each delta applied to its expiry (unix
	// nanoseconds); expiries lists them in the order they were applied,
	// for the sweep.
	applied  map[string]int64
	expiries []appliedID
	// marks holds the highest record number applied per source and
	// aggregate. They are kept as long as the store, as the aggregates.
	marks map[markKey]uint64
}

// markKey identifies the mark of a source and an aggregate.
type markKey struct {
	source string
	usageKey
}

// appliedID is an applied delta's id and its expiry.
type appliedID struct {
	id     string
	expiry int64 // unix nanoseconds
}

// memBucket is one bucket of documents.
type memBucket struct {
	seq  int64
	docs map[string]memDoc
}

// memDoc is a document and its version.
type memDoc struct {
	value   []byte
	version int64
}

// usageKey identifies a usage aggregate.
type usageKey struct {
	day                                                 int64 // unix seconds
	supplier, provider, model, keySrc, billed, workflow string
}

func newMemDurable() *memDurable {
	return &memDurable{buckets: make(map[string]*memBucket), usage: make(map[usageKey]*Usage), applied: make(map[string]int64),
		marks: make(map[markKey]uint64)}
}

func (m *memDurable) get(bucket, key string) ([]byte, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, 0, ErrClosed
	}
	b := m.buckets[bucket]
	if b == nil {
		return nil, 0, notFound(bucket, key)
	}
	d, ok := b.docs[key]
	if !ok {
		return nil, 0, notFound(bucket, key)
	}
	return bytes.Clone(d.value), d.version, nil
}

func (m *memDurable) put(bucket, key string, value []byte) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	return m.write(bucket, key, value), nil
}

// write stores a document with the next version of its bucket. It runs
// under m.mu.
func (m *memDurable) write(bucket, key string, value []byte) int64 {
	b := m.buckets[bucket]
	if b == nil {
		b = &memBucket{docs: make(map[string]memDoc)}
		m.buckets[bucket] = b
	}
	b.seq++
	b.docs[key] = memDoc{value: append([]byte{}, value...), version: b.seq}
	return b.seq
}

func (m *memDurable) compareAndSwap(bucket, key string, oldVersion int64, value []byte) (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, false, ErrClosed
	}
	var cur int64
	if b := m.buckets[bucket]; b != nil {
		cur = b.docs[key].version
	}
	if cur != oldVersion {
		return cur, false, nil
	}
	return m.write(bucket, key, value), true, nil
}

func (m *memDurable) delete(bucket, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if b := m.buckets[bucket]; b != nil {
		delete(b.docs, key)
	}
	return nil
}

func (m *memDurable) list(bucket string) ([]Doc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	b := m.buckets[bucket]
	if b == nil {
		return nil, nil
	}
	docs := make([]Doc, 0, len(b.docs))
	for k, d := range b.docs {
		docs = append(docs, Doc{Key: k, Value: bytes.Clone(d.value), Version: d.version})
	}
	slices.SortFunc(docs, func(a, b Doc) int { return strings.Compare(a.Key, b.Key) })
	return docs, nil
}

func (m *memDurable) addUsage(id string, d Usage, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.addLocked(id, d, now)
	return nil
}

func (m *memDurable) addUsageSeq(id string, d Usage, seq UsageSeq, now time.Time) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	k := markKey{seq.Source, newUsageKey(d)}
	w := m.marks[k]
	if w >= seq.First {
		return w, nil
	}
	m.addLocked(id, d, now)
	m.marks[k] = seq.Last
	return w, nil
}

// addLocked is addUsage with m.mu held.
func (m *memDurable) addLocked(id string, d Usage, now time.Time) {
	t := now.UnixNano()
	m.sweepApplied(t)
	if exp, ok := m.applied[id]; ok && exp > t {
		return
	}
	exp := t + int64(AppliedTTL)
	m.applied[id] = exp
	m.expiries = append(m.expiries, appliedID{id, exp})
	k := newUsageKey(d)
	u := m.usage[k]
	if u == nil {
		u = &Usage{Day: d.Day, Supplier: d.Supplier, Provider: d.Provider, Model: d.Model, KeySource: d.KeySource,
			Billed: d.Billed, Workflow: d.Workflow}
		m.usage[k] = u
	}
	u.add(d)
}

// newUsageKey returns the key of d's aggregate.
func newUsageKey(d Usage) usageKey {
	return usageKey{d.Day.Unix(), d.Supplier, d.Provider, d.Model, d.KeySource, d.Billed, d.Workflow}
}

// sweepApplied forgets the ids that expired by now (unix nanoseconds).
// Expiries are listed in the order they were set, which is their order
// unless the wall clock stepped back: an id may then be kept longer.
func (m *memDurable) sweepApplied(now int64) {
	n := 0
	for ; n < len(m.expiries) && m.expiries[n].expiry <= now; n++ {
		a := m.expiries[n]
		if m.applied[a.id] == a.expiry { // else applied again since
			delete(m.applied, a.id)
		}
	}
	// Resliced, not shifted: append moves the live part when it grows.
	clear(m.expiries[:n])
	m.expiries = m.expiries[n:]
}

func (m *memDurable) queryUsage(supplier string, from, to time.Time) ([]Usage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	var rows []Usage
	for k, u := range m.usage {
		if k.day < from.Unix() || k.day > to.Unix() || (supplier != "" && k.supplier != supplier) {
			continue
		}
		rows = append(rows, *u)
	}
	slices.SortFunc(rows, usageCompare)
	return rows, nil
}

func (m *memDurable) saveCounters([]byte) error { return nil }

func (m *memDurable) loadCounters() ([]byte, error) { return nil, nil }

func (m *memDurable) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.buckets, m.usage, m.applied, m.expiries, m.marks = nil, nil, nil, nil, nil
	return nil
}

// The top-level buckets of the bbolt file.
var (
	// boltDocs holds one nested bucket per document bucket; each value is
	// the version (8 bytes, big-endian) followed by the document, and the
	// nested bucket's sequence gives the versions.
	boltDocs = []byte("docs")
	// boltUsage maps
	// "day\x00supplier\x00provider\x00model\x00key_source\x00billed\x00workflow"
	// (the workflow escaped by escapeWorkflow) to the five counts (8 bytes
	// each, big-endian), so that a cursor walks a range of days. Keys of
	// five parts, without billed and workflow, were written by earlier
	// versions: they are read with LegacyBilled and no workflow.
	boltUsage = []byte("usage")
	// boltApplied maps the id of each delta added to the aggregates to
	// its expiry (unix nanoseconds, 8 bytes, big-endian);
	// boltAppliedByExpiry holds the same as keys "<expiry><id>" with
	// empty values, so that the sweep walks them oldest first.
	boltApplied         = []byte("usage_applied")
	boltAppliedByExpiry = []byte("usage_applied_by_expiry")
	// boltMarks maps the key of an aggregate (as in boltUsage) followed
	// by "\x00source" to the highest record number of the source applied
	// to it and the mark's expiry (unix nanoseconds), 8 bytes each,
	// big-endian. Keys start with the day, so that the sweep walks the
	// oldest days first.
	boltMarks = []byte("usage_marks")
	// boltMeta holds the snapshot of quota counters under boltCounters.
	boltMeta     = []byte("meta")
	boltCounters = []byte("quota_counters")
)

// boltFile is the name of the data file in the data directory.
const boltFile = "veil.db"

// usageWidth is the size of an encoded aggregate.
const usageWidth = 5 * 8

// boltDurable keeps documents and aggregates in a bbolt file.
type boltDurable struct {
	db *bolt.DB
}

// openBolt opens (or creates) dataDir/veil.db with its buckets.
func openBolt(dataDir string) (*boltDurable, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("store: creating data directory: %w", err)
	}
	path := filepath.Join(dataDir, boltFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{boltDocs, boltUsage, boltApplied, boltAppliedByExpiry, boltMarks, boltMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("store: creating buckets in %s: %w", path, err), db.Close())
	}
	return &boltDurable{db: db}, nil
}

// boltErr wraps an error of bbolt for op.
func boltErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

func (s *boltDurable) get(bucket, key string) (value []byte, version int64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(boltDocs).Bucket([]byte(bucket))
		if b == nil {
			return notFound(bucket, key)
		}
		v := b.Get([]byte(key))
		if v == nil {
			return notFound(bucket, key)
		}
		value, version = decodeDoc(v)
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, 0, err
	}
	return value, version, boltErr("get", err)
}

func (s *boltDurable) put(bucket, key string, value []byte) (version int64, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		version, err = writeDoc(tx, bucket, key, value)
		return err
	})
	return version, boltErr("put", err)
}

// writeDoc stores a document with the next version of its bucket.
func writeDoc(tx *bolt.Tx, bucket, key string, value []byte) (int64, error) {
	b, err := tx.Bucket(boltDocs).CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return 0, err
	}
	seq, err := b.NextSequence()
	if err != nil {
		return 0, err
	}
	v := make([]byte, 8+len(value))
	binary.BigEndian.PutUint64(v, seq)
	copy(v[8:], value)
	return int64(seq), b.Put([]byte(key), v)
}

// decodeDoc splits a stored document into a copy of its value and its
// version.
func decodeDoc(v []byte) ([]byte, int64) {
	if len(v) < 8 {
		return nil, 0
	}
	return bytes.Clone(v[8:]), int64(binary.BigEndian.Uint64(v))
}

func (s *boltDurable) compareAndSwap(bucket, key string, oldVersion int64, value []byte) (version int64, ok bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		var cur int64
		if b := tx.Bucket(boltDocs).Bucket([]byte(bucket)); b != nil {
			if v := b.Get([]byte(key)); len(v) >= 8 {
				cur = int64(binary.BigEndian.Uint64(v))
			}
		}
		if cur != oldVersion {
			version = cur
			return nil
		}
		version, err = writeDoc(tx, bucket, key, value)
		ok = err == nil
		return err
	})
	if err != nil {
		return 0, false, boltErr("compare and swap", err)
	}
	return version, ok, nil
}

func (s *boltDurable) delete(bucket, key string) error {
	return boltErr("delete", s.db.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(boltDocs).Bucket([]byte(bucket)); b != nil {
			return b.Delete([]byte(key))
		}
		return nil
	}))
}

func (s *boltDurable) list(bucket string) (docs []Doc, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(boltDocs).Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			value, version := decodeDoc(v)
			docs = append(docs, Doc{Key: string(k), Value: value, Version: version})
			return nil
		})
	})
	return docs, boltErr("list", err)
}

// usageBoltKey returns the key of d's aggregate.
func usageBoltKey(d Usage) []byte {
	return []byte(strings.Join([]string{
		d.Day.Format(dayLayout), d.Supplier, d.Provider, d.Model, d.KeySource, d.Billed, escapeWorkflow(d.Workflow),
	}, "\x00"))
}

// sweepBatch bounds the expired ids one addUsage forgets: each call
// records one, so the sweep keeps up while no transaction grows long.
const sweepBatch = 64

func (s *boltDurable) addUsage(id string, d Usage, now time.Time) error {
	t := now.UnixNano()
	// Batch may run the function more than once; it only touches tx.
	return boltErr("add usage", s.db.Batch(func(tx *bolt.Tx) error {
		return addUsageTx(tx, id, d, t)
	}))
}

func (s *boltDurable) addUsageSeq(id string, d Usage, seq UsageSeq, now time.Time) (uint64, error) {
	t := now.UnixNano()
	var w uint64
	// Batch may run the function more than once; it sets w each time.
	err := s.db.Batch(func(tx *bolt.Tx) error {
		if err := sweepMarks(tx, now); err != nil {
			return err
		}
		marks := tx.Bucket(boltMarks)
		k := append(append(usageBoltKey(d), 0), seq.Source...)
		w = 0
		if v := marks.Get(k); len(v) == 16 && int64(binary.BigEndian.Uint64(v[8:])) > t {
			w = binary.BigEndian.Uint64(v)
		}
		if w >= seq.First {
			return nil
		}
		if err := addUsageTx(tx, id, d, t); err != nil {
			return err
		}
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), seq.Last)
		return marks.Put(k, binary.BigEndian.AppendUint64(v, uint64(markExpiry(d.Day, now).UnixNano())))
	})
	return w, boltErr("add usage", err)
}

// markExpiry returns when the mark of an aggregate of day, moved at now,
// expires: UsageMarkTTL after now or after the day's end, the later.
func markExpiry(day, now time.Time) time.Time {
	exp := now.Add(UsageMarkTTL)
	if end := utcDay(day).AddDate(0, 0, 1).Add(UsageMarkTTL); end.After(exp) {
		return end
	}
	return exp
}

// sweepMarks deletes up to sweepBatch expired marks of the days that
// ended UsageMarkTTL before now, oldest first. Marks of those days that
// moved since are kept; the sweep looks at no more than 4*sweepBatch.
func sweepMarks(tx *bolt.Tx, now time.Time) error {
	// Marks of the days before this one all expired, unless moved since.
	before := []byte(utcDay(now.Add(-UsageMarkTTL)).AddDate(0, 0, -1).Format(dayLayout))
	var expired [][]byte
	c := tx.Bucket(boltMarks).Cursor()
	seen := 0
	for k, v := c.First(); k != nil && len(expired) < sweepBatch && seen < 4*sweepBatch; k, v = c.Next() {
		if bytes.Compare(k, before) >= 0 {
			break
		}
		seen++
		if len(v) != 16 || int64(binary.BigEndian.Uint64(v[8:])) <= now.UnixNano() {
			expired = append(expired, bytes.Clone(k))
		}
	}
	// Deleted after the walk: deleting under a cursor may skip keys.
	for _, k := range expired {
		if err := tx.Bucket(boltMarks).Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// addUsageTx adds d unless id was applied before t (unix nanoseconds),
// in tx.
func addUsageTx(tx *bolt.Tx, id string, d Usage, t int64) error {
	if err := sweepApplied(tx, t); err != nil {
		return err
	}
	applied, byExpiry := tx.Bucket(boltApplied), tx.Bucket(boltAppliedByExpiry)
	if v := applied.Get([]byte(id)); len(v) == 8 {
		old := int64(binary.BigEndian.Uint64(v))
		if old > t {
			return nil
		}
		if err := byExpiry.Delete(appliedExpiryKey(old, id)); err != nil {
			return err
		}
	}
	exp := t + int64(AppliedTTL)
	if err := applied.Put([]byte(id), binary.BigEndian.AppendUint64(nil, uint64(exp))); err != nil {
		return err
	}
	if err := byExpiry.Put(appliedExpiryKey(exp, id), nil); err != nil {
		return err
	}
	b := tx.Bucket(boltUsage)
	k := usageBoltKey(d)
	var u Usage
	if v := b.Get(k); len(v) == usageWidth {
		u = decodeUsage(v)
	}
	u.add(d)
	return b.Put(k, encodeUsage(u))
}

// appliedExpiryKey returns the key of an applied id in
// boltAppliedByExpiry.
func appliedExpiryKey(expiry int64, id string) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(id)), uint64(expiry)), id...)
}

// sweepApplied forgets up to sweepBatch ids that expired by now (unix
// nanoseconds), oldest first.
func sweepApplied(tx *bolt.Tx, now int64) error {
	applied, byExpiry := tx.Bucket(boltApplied), tx.Bucket(boltAppliedByExpiry)
	var expired [][]byte
	c := byExpiry.Cursor()
	for k, _ := c.First(); k != nil && len(expired) < sweepBatch; k, _ = c.Next() {
		if len(k) < 8 || int64(binary.BigEndian.Uint64(k)) > now {
			break
		}
		expired = append(expired, bytes.Clone(k))
	}
	// Deleted after the walk: deleting under a cursor may skip keys.
	for _, k := range expired {
		if err := byExpiry.Delete(k); err != nil {
			return err
		}
		if err := applied.Delete(k[8:]); err != nil {
			return err
		}
	}
	return nil
}

// encodeUsage encodes the counts of u.
func encodeUsage(u Usage) []byte {
	v := make([]byte, 0, usageWidth)
	for _, n := range [...]int64{u.Requests, u.PromptTokens, u.CompletionTokens, u.CachedTokens, u.CostMicros} {
		v = binary.BigEndian.AppendUint64(v, uint64(n))
	}
	return v
}

// decodeUsage decodes counts encoded by encodeUsage.
func decodeUsage(v []byte) Usage {
	n := func(i int) int64 { return int64(binary.BigEndian.Uint64(v[8*i:])) }
	return Usage{Requests: n(0), PromptTokens: n(1), CompletionTokens: n(2), CachedTokens: n(3), CostMicros: n(4)}
}

func (s *boltDurable) queryUsage(supplier string, from, to time.Time) (rows []Usage, err error) {
	last := to.Format(dayLayout)
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(boltUsage).Cursor()
		for k, v := c.Seek([]byte(from.Format(dayLayout))); k != nil; k, v = c.Next() {
			parts := strings.Split(string(k), "\x00")
			if (len(parts) != 7 && len(parts) != 5) || len(v) != usageWidth {
				return fmt.Errorf("malformed aggregate %q", k)
			}
			if parts[0] > last {
				break
			}
			if supplier != "" && parts[1] != supplier {
				continue
			}
			day, err := time.Parse(dayLayout, parts[0])
			if err != nil {
				return fmt.Errorf("malformed aggregate %q: %w", k, err)
			}
			u := decodeUsage(v)
			u.Day, u.Supplier, u.Provider, u.Model, u.KeySource = day, parts[1], parts[2], parts[3], parts[4]
			if len(parts) == 5 {
				u.Billed = LegacyBilled(u.KeySource)
			} else {
				u.Billed = parts[5]
				if u.Workflow, err = unescapeWorkflow(parts[6]); err != nil {
					return fmt.Errorf("malformed aggregate %q: %w", k, err)
				}
			}
			rows = append(rows, u)
		}
		return nil
	})
	if err != nil {
		return nil, boltErr("query usage", err)
	}
	return sortUsage(rows), nil
}

func (s *boltDurable) saveCounters(data []byte) error {
	return boltErr("saving quota counters", s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(boltMeta).Put(boltCounters, data)
	}))
}

func (s *boltDurable) loadCounters() (data []byte, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		data = bytes.Clone(tx.Bucket(boltMeta).Get(boltCounters))
		return nil
	})
	return data, boltErr("loading quota counters", err)
}

func (s *boltDurable) close() error {
	return boltErr("close", s.db.Close())
}
