// Package store is veil's shared state: quota counters, concurrency slots,
// leases, durable documents (supplier overrides, migration state) and daily
// usage aggregates. Limits must hold across every replica of veil, so the
// state lives behind one interface, Store, with two implementations:
//
//   - Embedded (NewEmbedded), the default for a single replica: counters,
//     slots and leases in memory; documents and aggregates in a bbolt file,
//     dataDir/veil.db, or in memory when dataDir is empty.
//   - Redis (NewRedis), for many replicas: everything in Redis (one
//     server, a primary behind Sentinel, or a Redis Cluster), every
//     check-and-update a Lua script on the keys of one hash slot.
//
// Both pass the same contract suite, package storetest.
//
// # Interfaces
//
// Store is made of smaller interfaces (Quotas, Slots, Documents, Leases,
// Aggregates, Headrooms), so that a consumer depends on what it uses: the
// usage sink on Aggregates, an admin API on Documents, the sharing of
// providers' rate-limit headroom (package health) on Headrooms.
//
// # Clocks
//
// Every method where time matters takes now, the caller's clock, and
// every expiry is decided against it: quota windows, slot and lease
// expiry. Redis stores the expiry instants in the values (a slot's score,
// a lease's "expires" field) and compares them with now inside the
// scripts; its own key expiry (PEXPIRE, relative to now, with a margin)
// only collects garbage. Tests therefore drive time by passing clocks,
// never by sleeping, and replicas must keep their clocks in step (NTP):
// skew between them shifts windows and expiries by as much.
//
// # Quotas
//
// Windows are fixed, aligned to the Unix epoch and a whole number of
// seconds long (time.Minute counts each minute from :00), or WindowMonth,
// the calendar month in UTC. A window's counter is identified by the
// subject, the limit's name and the window's start, so a name must keep
// its window: "rpm" is always a minute.
//
// Reserve checks every limit, then adds every amount, or adds nothing:
// Redis runs both passes in one script, Embedded under one mutex. Concurrent
// reservations, from any number of replicas, therefore never take a window
// past its maximum; the only overshoot is Settle replacing an estimate by a
// larger actual amount, which never fails. A limit with Max <= 0 is
// unlimited and skipped. The reservation records, per limit, the window it
// went to and the usage right after it (Reserved.Used, for
// X-RateLimit-Remaining without another round trip); it is plain data with
// JSON tags, so any replica can settle it. A denial names the first limit,
// in the order given, without room, with the time until its window rolls
// and the amount asked (more than Max: waiting will not help).
//
// Settle and Refund add the difference between actual and reserved amounts
// to the windows the reservation went to, not the current ones. They touch
// only counters that still exist, so a late settlement neither recreates
// an expired counter (one without expiry, in Redis) nor counts against the
// next window; counters outlive their window by CounterGrace for this. A
// counter never goes below zero. They are not idempotent: reservations
// carry no ID, so the store would need one record per call to recognise a
// repeat; callers settle or refund once and, on ErrUnavailable, let the
// reservation stand (it expires with its window).
//
// Redis compares amounts in Lua, as doubles: limits and usage are exact up
// to 2^53 (9e15 tokens, or 9 billion dollars in micros).
//
// # Slots
//
// AcquireSlot takes one of at most max slots of a subject until now+ttl;
// a crashed replica's slots free themselves when they expire. RenewSlot
// extends a held slot, for streams that outlive the ttl, so the ttl can
// stay short. Slot IDs are a random per-store prefix and a counter: unique
// across replicas without a random read per slot. Redis keeps a sorted set
// per subject, scored by expiry.
//
// # Documents
//
// Versions come from a sequence per bucket (bbolt's NextSequence; INCR of a
// kvseq key in Redis): positive, increasing, never reused, even after
// Delete, so a CompareAndSwap can never succeed against a document that was
// deleted and created again. List returns documents with their versions,
// sorted by key, rather than a map of values, so that an admin API can list
// and then edit with CompareAndSwap. Redis keeps a bucket in one hash whose
// values are "<version>:<value>" rather than a hash per document and an
// index: Get is one HGET, List one HGETALL, and both are consistent
// snapshots.
//
// # Leases
//
// AcquireLease takes, takes over (after expiry) or renews a lease in one
// step; ReleaseLease gives it up only for its holder. Redis runs both as
// scripts rather than SET NX PX, whose expiry would follow Redis's clock
// instead of the caller's.
//
// # Usage aggregates
//
// One type, Usage, is both the delta AddUsage adds and the row QueryUsage
// returns. An aggregate is a day, supplier, provider, model, key source,
// payer (billed: platform, client or none) and workflow: who pays is kept
// apart from whose key carried the call, since a comparison's shadow call
// on a supplier's key is paid by the platform. Money is in integer micros
// so that sums do not drift. Supplier, provider, model, key source and
// billed must not contain '|' or NUL, the separators of the stored keys;
// a workflow may hold anything, and is escaped in the keys ('%', '|' and
// NUL become %25, %7C and %00). Embedded keys aggregates
// "day\x00supplier\x00provider\x00model\x00key_source\x00billed\x00workflow",
// so a cursor walks a range of days, and adds them with bbolt's Batch, so
// that concurrent writers share one fsync. Redis keeps one hash per day
// and supplier, HINCRBY-ed by "provider|model|key_source|billed|workflow|count"
// fields, and a set of the day's suppliers for queries over all of them.
// Aggregates never expire.
//
// Aggregates written before billed and workflow were kept (Embedded keys
// of five parts, Redis fields of four) are still read: with the payer
// derived from the key source (LegacyBilled: platform for the platform
// key, client for the client's, none known for any other) and no
// workflow, summed with any newer aggregate they then equal. Calls nobody
// paid for (cache hits, veil's own refusals) mostly carry no key source
// and so no payer; one refused after its key was chosen is read as paid by
// that key's owner. Nothing rewrites them.
//
// Every delta comes with an id (veil's usage sink: a random id of the
// batch and the delta's index), and AddUsage applies an id at most once:
// the check, the record of the id and the addition are one atomic step, so
// a call whose outcome the caller did not see (a timeout that reached the
// server, a stalled server that runs the command when it resumes) can be
// sent again without counting twice. Redis sets a marker key, with the
// hash tag of the supplier's aggregates, in the script that adds the
// counts (SET NX EX, then HINCRBY); Embedded records the id in the same
// bbolt transaction, in a bucket by id and one by expiry that each
// AddUsage sweeps. Ids are remembered for AppliedTTL (an hour), far beyond
// any retry: one per delta applied in the hour, about 180 bytes each in
// Redis.
//
// A delta whose records are numbered (veil's usage spool: a run of the
// spool and the records' sequence numbers) goes through AddUsageSeq,
// which also keeps per source and aggregate a mark, the highest number
// applied, read and moved in the same atomic step as the counts: a delta
// at or below the mark is skipped and one that straddles it is refused,
// so records replayed after a crash, batched otherwise, count once (ADR
// 0033). Redis keeps a run's marks on a supplier's aggregates of a day in
// a hash with the supplier's hash tag, set by the script that adds the
// counts; Embedded in a bbolt bucket written in the same transaction.
// Marks outlive their last move, and their day, by UsageMarkTTL.
//
// # Errors
//
// ErrUnavailable wraps network errors, timeouts and a server that cannot
// serve (loading, read-only, out of memory): the caller chooses to fail
// open or closed. ErrInvalid marks the caller's bugs (never a reason to
// fail open), ErrNotFound a missing document and ErrClosed a closed store.
// When the caller's context is done, its error is returned as is, not as
// ErrUnavailable.
//
// # Embedded specifics
//
// Embedded starts no goroutine. Reserve drops counters more than
// CounterGrace past their window at most once a minute of the injected
// clock; slots are pruned when their subject is next acquired. Close saves
// the quota counters into the data file and NewEmbedded restores them, so
// monthly quotas survive a deploy; a crash loses what was counted since the
// last Close. Slots and leases are not saved.
//
// # Redis specifics
//
// The client never retries by itself (Reserve, Settle and Refund are not
// idempotent; AddUsage is, per id, and its caller retries) and dials once
// per attempt, so a down server shows as
// ErrUnavailable at once rather than after go-redis's dial back-off. Scripts
// run with EVALSHA, falling back to EVAL after a SCRIPT FLUSH or a restart.
// Every key carries a Redis Cluster hash tag on what its scripts group (a
// subject, a bucket, a supplier), so the store runs on one server, behind
// Sentinel or on a Cluster alike; work across groups (QueryUsage, the
// day's supplier index) reads one key per command. The key layout is
// described on Redis.
//
// # Redis failover
//
// With Sentinel, the client asks the sentinels for the primary and follows
// a failover without a restart; calls during it fail with ErrUnavailable,
// and the caller applies its store-failure policy (veil's
// store.on_unavailable: fail_open or fail_closed). Replication is
// asynchronous, so increments the old primary acknowledged in its last
// moments, before they reached the replica, are lost: quota is
// under-counted by at most what was in flight in the replication lag, and
// usage aggregates likewise. Slots and leases carry their expiry and free
// themselves by their TTL; documents written in that lag are lost too. A
// call that failed may still have run, once: none is resent (a
// non-idempotent write resent after a lost reply would count twice), on
// a Cluster either, where only MOVED and ASK redirects, which mean the
// command did not run, are followed.
//
// With Cluster, a master whose replica takes over behaves the same. A
// master without a replica takes its slots down: their calls fail with
// ErrUnavailable, and with cluster-require-full-coverage yes (Redis's
// default) the whole cluster refuses commands after cluster-node-timeout.
//
// Earlier versions kept the same keys without hash tags: after an upgrade
// counters count afresh (the old ones expire), and documents are moved to
// the tagged keys the first time their bucket is touched.
package store
