package conn

import (
	"sync"
	"time"
)

// Throttle bounds how often a repeated event is logged: Allow lets one
// through per interval and counts the ones it held back meanwhile, so that a
// client that triggers a warning thousands of times a second costs a line
// now and then, not a flood of them. Safe for concurrent use.
type Throttle struct {
	every time.Duration

	mu   sync.Mutex
	next time.Time
	held int
}

// NewThrottle returns a Throttle letting one event through per every.
func NewThrottle(every time.Duration) *Throttle { return &Throttle{every: every} }

// Allow reports whether the event at now should be logged and, if so, how
// many were held back since the last one logged. A nil Throttle lets
// everything through.
func (t *Throttle) Allow(now time.Time) (ok bool, held int) {
	if t == nil {
		return true, 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Before(t.next) {
		t.held++
		return false, 0
	}
	held, t.held = t.held, 0
	t.next = now.Add(t.every)
	return true, held
}
