// Package hrtimer is a one-shot timer for waits of a millisecond or less.
//
// A Go timer in a process with nothing else to run fires at the next whole
// millisecond at best: the runtime then sleeps in epoll_wait, whose timeout
// counts milliseconds, so a 600 µs timer waits about 1.07 ms and one of
// 1.4 ms wakes at 1 ms only to sleep again. On Linux a Timer is a timerfd in
// the runtime's poller instead: epoll returns when the kernel's timer
// expires, within its timer slack (50 µs by default). Elsewhere, or when
// the timerfd cannot be made, it is a Go timer.
//
// A Timer is used by one goroutine at a time: Reset, Stop and reading C
// from one goroutine; Close from any.
package hrtimer

import (
	"sync"
	"time"
)

// Timer sends on C once its wait has passed, at most once per Reset.
type Timer struct {
	// C receives once the wait has passed. It is drained by Reset and
	// Stop, so a receive after either is never for an earlier wait.
	C <-chan struct{}
	c chan struct{}

	mu       sync.Mutex
	deadline time.Time // zero: not armed
	closed   bool
	src      source
}

// source arms and disarms the clock behind a Timer; it calls fire at (or
// after) the deadline, possibly late and possibly for an earlier arming:
// fire sorts those out.
type source interface {
	arm(d time.Duration)
	disarm()
	close()
}

// New returns a stopped Timer. Close it when done: on Linux it holds a file
// descriptor and a goroutine.
func New() *Timer {
	c := make(chan struct{}, 1)
	t := &Timer{C: c, c: c}
	if s := openFD(t.fire); s != nil {
		t.src = s
	} else {
		t.src = &goTimer{fire: t.fire}
	}
	return t
}

// Reset makes C receive once d has passed (at once for d <= 0), dropping
// whatever wait was set before.
func (t *Timer) Reset(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.drain()
	if t.closed {
		return
	}
	if d <= 0 {
		t.deadline = time.Time{}
		t.src.disarm()
		t.c <- struct{}{}
		return
	}
	t.deadline = time.Now().Add(d)
	t.src.arm(d)
}

// Stop drops the wait set by Reset: C receives nothing for it. A wait that
// already fired needs no disarming (the clock is one-shot), which spares
// the batcher a syscall per batch that waited out its linger.
func (t *Timer) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.deadline.IsZero() && !t.closed {
		t.src.disarm()
	}
	t.deadline = time.Time{}
	t.drain()
}

// Close stops t for good and frees what it holds. Safe to call more than
// once.
func (t *Timer) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	t.deadline = time.Time{}
	t.src.close()
}

// fire sends on C if the wait armed now has passed: a source may call it
// for an earlier arming (it expired while Reset armed the next one), or
// after Stop.
func (t *Timer) fire() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deadline.IsZero() || time.Now().Before(t.deadline) {
		return
	}
	t.deadline = time.Time{}
	select {
	case t.c <- struct{}{}:
	default:
	}
}

func (t *Timer) drain() {
	select {
	case <-t.c:
	default:
	}
}

// goTimer is the fallback source: a Go timer.
type goTimer struct {
	fire func()
	t    *time.Timer
}

func (g *goTimer) arm(d time.Duration) {
	if g.t == nil {
		g.t = time.AfterFunc(d, g.fire)
		return
	}
	g.t.Reset(d)
}

func (g *goTimer) disarm() {
	if g.t != nil {
		g.t.Stop()
	}
}

func (g *goTimer) close() { g.disarm() }
