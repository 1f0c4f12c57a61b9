package mqttconn

import (
	"container/list"
	"context"
	"fmt"
	"sync"
)

// Gate bounds the device logins a gateway has at the route at once, and
// holds the ones over that bound in a queue of bounded length, first come
// first served. A fleet behind one address that reconnects at once (after a
// power cut) neither starves the route nor waits without an answer: a
// login finds a free turn, or a place in the queue, or is told at once that
// the server is busy; a place in the queue lasts at most as long as the
// login may take (the caller's context). Safe for concurrent use.
type Gate struct {
	parallel, queue int

	mu      sync.Mutex
	running int
	waiting list.List // of chan struct{}: closed when the turn is handed over
}

// NewGate returns a Gate for parallel logins at once (at least one) and
// queue more waiting (0: none wait).
func NewGate(parallel, queue int) *Gate {
	return &Gate{parallel: max(parallel, 1), queue: max(queue, 0)}
}

// Enter waits for a turn and returns the function that ends it (call it
// once). It fails with ErrBusy at once when the queue is full, and when ctx
// ends before the turn came.
func (g *Gate) Enter(ctx context.Context) (leave func(), err error) {
	g.mu.Lock()
	if g.running < g.parallel && g.waiting.Len() == 0 {
		g.running++
		g.mu.Unlock()
		return g.leave, nil
	}
	if g.waiting.Len() >= g.queue {
		g.mu.Unlock()
		return nil, fmt.Errorf("%w: %d device logins at the route and %d waiting", ErrBusy, g.parallel, g.queue)
	}
	turn := make(chan struct{})
	el := g.waiting.PushBack(turn)
	g.mu.Unlock()
	select {
	case <-turn:
		return g.leave, nil
	case <-ctx.Done():
		g.mu.Lock()
		select {
		case <-turn:
			// Handed over just now: pass it on.
			g.mu.Unlock()
			g.leave()
		default:
			g.waiting.Remove(el)
			g.mu.Unlock()
		}
		return nil, fmt.Errorf("%w: no turn for a device login in time: %v", ErrBusy, ctx.Err())
	}
}

// leave ends a turn: the first in the queue takes it over.
func (g *Gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if front := g.waiting.Front(); front != nil {
		g.waiting.Remove(front)
		close(front.Value.(chan struct{}))
		return
	}
	g.running--
}

// Load returns the logins at the route and those waiting for a turn.
func (g *Gate) Load() (running, waiting int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running, g.waiting.Len()
}
