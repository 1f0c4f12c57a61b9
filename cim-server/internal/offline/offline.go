// Package offline reports client disconnects to the route in the background,
// so a connection's reader never waits for the route.
//
// Reports are queued without a bound: each connection produces at most one,
// so the queue is bounded by the number of connections. A few workers send
// them; a report that still fails after the Reporter's own retries is logged
// and dropped (the route's session check makes a lost offline harmless apart
// from a stale route entry, which the next login replaces).
//
// Add is safe for concurrent use and never blocks.
package offline

import (
	"context"
	"errors"
	"log/slog"
	"sync"
)

// ErrClosed is returned by Shutdown when it gave up with reports pending.
var ErrClosed = errors.New("offline: shut down with reports pending")

// Reporter sends one offline report (routeclient.Client satisfies it).
type Reporter interface {
	Offline(ctx context.Context, userID, sessionID, platform string) error
}

type report struct{ userID, sessionID, platform string }

// Queue holds offline reports until a worker has sent them.
type Queue struct {
	r       Reporter
	log     *slog.Logger
	workers int

	mu      sync.Mutex
	pending []report
	closed  bool
	wake    chan struct{} // one token per wakeup; workers re-check pending
	stop    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New returns a Queue that sends through r with the given number of workers
// (at least one).
func New(r Reporter, workers int, logger *slog.Logger) *Queue {
	if workers < 1 {
		workers = 1
	}
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Queue{
		r: r, log: logger.With("component", "offline"), workers: workers,
		wake: make(chan struct{}, workers), stop: make(chan struct{}),
		ctx: ctx, cancel: cancel,
	}
}

// Start starts the workers.
func (q *Queue) Start() {
	for range q.workers {
		q.wg.Add(1)
		go q.work()
	}
}

// Add queues a report. After Shutdown began it is dropped.
func (q *Queue) Add(userID, sessionID, platform string) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.log.Warn("offline report dropped: shutting down", "user", userID, "session", sessionID)
		return
	}
	q.pending = append(q.pending, report{userID, sessionID, platform})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default: // every worker already has a wakeup waiting
	}
}

// Len returns the number of reports not yet taken by a worker.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

func (q *Queue) take() (report, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		if cap(q.pending) > 1024 {
			q.pending = nil // give back the memory of a burst
		}
		return report{}, false
	}
	r := q.pending[0]
	q.pending[0] = report{}
	q.pending = q.pending[1:]
	return r, true
}

func (q *Queue) work() {
	defer q.wg.Done()
	for {
		for q.ctx.Err() == nil {
			r, ok := q.take()
			if !ok {
				break
			}
			if err := q.r.Offline(q.ctx, r.userID, r.sessionID, r.platform); err != nil {
				q.log.Warn("offline report failed", "user", r.userID, "session", r.sessionID, "err", err)
			}
		}
		select {
		case <-q.wake:
		case <-q.stop:
			// Send what is left, then leave.
			if q.Len() == 0 || q.ctx.Err() != nil {
				return
			}
		}
	}
}

// Shutdown stops taking reports, sends the pending ones until ctx ends, and
// waits for the workers. Safe to call more than once.
func (q *Queue) Shutdown(ctx context.Context) error {
	q.mu.Lock()
	first := !q.closed
	q.closed = true
	q.mu.Unlock()
	if first {
		close(q.stop)
	}
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		q.cancel() // abort in-flight retries
		<-done
		left := q.Len()
		q.log.Warn("offline reports dropped at shutdown", "count", left)
		return ErrClosed
	}
}
