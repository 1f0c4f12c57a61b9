package client

import (
	"math/rand/v2"
	"sync"
	"time"
)

// acks batches cumulative ACKs: the route turns every ACK into DELIVERED
// receipts for the entries it covers and raises the user's acknowledged
// seq, so one ACK{seq: last} for many entries is as good as one each. An
// ACK goes out delay after the first entry it covers was shown, but no
// sooner than interval after the previous ACK, or at once when `every`
// entries wait: a message now and then is acknowledged within delay, a
// busy inbox about once per interval.
//
// Each batch's waits are scaled by a factor drawn by spread (between 0.5
// and 1.5 in a Client): clients that start together, or that all got a
// message in the same millisecond, would otherwise acknowledge together,
// and every ACK turns into DELIVERED receipts for the route to read and
// push. Bursts of them every interval stall the messages behind them.
//
// Pure bookkeeping: callers pass the time and send the ACK themselves. Safe
// for concurrent use.
type acks struct {
	delay    time.Duration
	interval time.Duration
	every    int
	spread   func() float64 // nil: waits are exact

	mu     sync.Mutex
	shown  uint64    // highest seq shown (or skipped) in order
	acked  uint64    // highest seq written in an ACK
	count  int       // entries shown since the last ACK
	since  time.Time // when the first of them was shown
	posted bool      // since is set
	sentAt time.Time // when the previous ACK was written
	scale  float64   // this batch's factor on delay and interval (0: 1)
}

// post starts a batch at now; a.mu is held.
func (a *acks) post(now time.Time) {
	a.posted, a.since, a.scale = true, now, 1
	if a.spread != nil {
		a.scale = a.spread()
	}
}

func (a *acks) scaled(d time.Duration) time.Duration {
	if a.scale == 0 {
		return d
	}
	return time.Duration(float64(d) * a.scale)
}

// show records that the inbox is shown up to seq, n entries of it newly,
// and reports whether an ACK is due at once (which the caller should make
// happen now rather than at the next timer).
func (a *acks) show(seq uint64, n int, now time.Time) (urgent bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if seq <= a.shown {
		return false
	}
	a.shown = seq
	a.count += n
	if !a.posted {
		a.post(now)
		return true // the caller's timer must learn the new deadline
	}
	return a.count >= a.every
}

// due returns the seq to acknowledge now, if any, and otherwise when the
// next ACK falls due (zero: nothing waits).
func (a *acks) due(now time.Time) (seq uint64, ok bool, next time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.posted || a.shown <= a.acked {
		return 0, false, time.Time{}
	}
	deadline := a.since.Add(a.scaled(a.delay))
	if next := a.sentAt.Add(a.scaled(a.interval)); next.After(deadline) {
		deadline = next
	}
	if a.count < a.every && now.Before(deadline) {
		return 0, false, deadline
	}
	return a.shown, true, time.Time{}
}

// unacked returns the seq to acknowledge when something shown is not yet
// acknowledged, regardless of timing (closing, a new link).
func (a *acks) unacked() (uint64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.shown, a.shown > a.acked
}

// last returns the highest seq acknowledged so far.
func (a *acks) last() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acked
}

// sent records that ACK{seq} was written at now.
func (a *acks) sent(seq uint64, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if seq > a.acked {
		a.acked = seq
	}
	a.sentAt = now
	if a.shown <= a.acked {
		a.count, a.posted = 0, false
		return
	}
	// More was shown while the ACK was on its way: a new batch starts.
	a.post(now)
	a.count = 1
}

// ackSpread is a Client's factor on its ACK waits: 0.5–1.5, drawn per batch.
func ackSpread() float64 { return 0.5 + rand.Float64() }
