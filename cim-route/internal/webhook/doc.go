// Package webhook delivers the route's events (package event) to the app
// back-end: every configured URL gets each event as a signed JSON POST, at
// least once, from a queue in Redis that outlives a route restart and is
// shared by the route's replicas.
//
// # Path of an event
//
//  1. Emit puts the event in a bounded in-memory buffer and returns at once.
//     A full buffer drops the event (Stats.Dropped; a warning at most once
//     per Config.LogEvery): the message path never waits for webhooks.
//  2. One goroutine drains the buffer in batches and appends every event to
//     each URL's queue in Redis (one script run per URL per 100 events). When
//     Redis fails it retries the batch with backoff while the buffer fills
//     (and then drops). On shutdown it writes what the buffer holds, for at
//     most Config.FlushTimeout; what is still unwritten then is lost and
//     counted as dropped.
//  3. Per URL, a sender claims due events from the queue and POSTs them, at
//     most Config.Concurrency at once. A 2xx answer removes the event; any
//     other answer, a connection error or Config.Timeout schedules it again
//     after a backoff (Config.RetryMin doubling to Config.RetryMax, with
//     jitter). An attempt that fails when the event is older than
//     Config.MaxAge removes it with a warning (Stats.Expired).
//
// Events whose loss their cause must hear of (device.data: the sender's
// RECEIPT_SENT waits for it) skip steps 1 and 2: Enqueue writes them to
// every URL's queue itself and returns only once they are there, or an
// error (ErrQueueFull, or Redis failed) on which the caller fails what it
// was doing. Step 3 is the same for them.
//
// # Queue layout
//
// Per URL u (h = the first 16 hex digits of SHA-256(u), so keys show no
// credentials; all three keys share the {h} hash tag, so each script works on
// Redis Cluster):
//
//   - <prefix>webhook:{h}: a stream of the events not delivered yet, fields
//     id (the event id), t (its type), b (the JSON body). Its length is what
//     the Config.QueueMax bound counts.
//   - <prefix>webhook:{h}:due: a sorted set of the stream ids, scored with the
//     time (ms) each is due. A new event is due at once.
//   - <prefix>webhook:{h}:tries: a hash stream id -> failed attempts, which
//     sizes the next backoff.
//
// A sender claims due events with one script that also re-scores them to
// now + Config.Lease: a lease, so every replica can claim from the same
// queue and none sends an event another one holds. The lease outlasts a
// POST (Config.Timeout) by far; if the replica dies holding it, the event is
// due again when it runs out, and whoever claims it next sends it again.
// A replica that stops cleanly gives its leases back (due at once). A
// consumer group's pending list would also survive a crash, but an event
// that failed needs a time of its own to be retried at, which a sorted set
// gives for retries, new events and crashed replicas alike (as the route's
// delayed messages do with delayq).
//
// # Bounds
//
// A URL's queue holds at most Config.QueueMax events (default 100000):
// beyond that new events are refused (Stats.Refused, a warning at most once
// per Config.LogEvery) and the queued ones are kept, never trimmed. With
// chat-sized messages an event is well under 1 KiB of Redis memory; a
// message carries its whole body (at most the route's --max-frame).
//
// # What is lost when
//
// Events are lost when the memory buffer is full (Redis slow or down), when
// a URL's queue is full, when they are still in memory after
// Config.FlushTimeout at shutdown or on a crash (at most the buffer), and
// when they keep failing beyond Config.MaxAge. Anything in Redis is
// delivered at least once, in no particular order, with the same event id
// (Idempotency-Key) every time. A URL dropped from the configuration leaves
// its keys behind.
//
// A Dispatcher's Emit, Enqueue, Wants and Stats are safe for concurrent
// use; Run is called once.
package webhook
