package router

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Deliveries run in parallel (deliverLater), so the push of a large group's
// later message could reach a gateway's queue before an earlier one's: the
// job that stored the earlier message may still be reading routes or
// building its batches. Its members would then see a gap, wait
// (Config.GroupGapWait in the SDK) and, when the queue is long, SYNC — one
// SYNC per member, the fan-out doing its work twice. So the deliveries of
// jobs with timeline messages of one group are handed to the gateways'
// queues (fanout.Pusher.Enqueue) in the order the jobs finished storing;
// each gateway's queue is sent in order. Only the hand-off waits, and at
// most orderWait: building the batches still runs in parallel, and a slow
// job cannot hold a group's later messages back for long.

// orderWait bounds how long a delivery waits for the ones of its groups
// stored before it.
const orderWait = 2 * time.Second

// groupOrder hands out turns per group.
type groupOrder struct {
	limit time.Duration // how long a turn waits; 0: orderWait
	mu    sync.Mutex
	tails map[string]chan struct{} // per group: closed when its last turn is done
}

// turn is one job's place in its groups' order. A nil turn waits for
// nothing.
type turn struct {
	o      *groupOrder
	groups []string
	after  []chan struct{} // the turns before this one
	done   chan struct{}
	once   sync.Once
}

// take returns the next turn of every group in groups (nil for none).
func (o *groupOrder) take(groups []string) *turn {
	if len(groups) == 0 {
		return nil
	}
	slices.Sort(groups)
	groups = slices.Compact(groups)
	t := &turn{o: o, groups: groups, done: make(chan struct{})}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tails == nil {
		o.tails = map[string]chan struct{}{}
	}
	for _, g := range groups {
		if prev := o.tails[g]; prev != nil {
			t.after = append(t.after, prev)
		}
		o.tails[g] = t.done
	}
	return t
}

// wait returns when the turns before t are done, after orderWait, or when
// ctx ends, whichever comes first.
func (t *turn) wait(ctx context.Context) {
	if t == nil || len(t.after) == 0 {
		return
	}
	limit := t.o.limit
	if limit <= 0 {
		limit = orderWait
	}
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for _, c := range t.after {
		select {
		case <-c:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// finish ends t: the next turns may go. It may be called more than once.
func (t *turn) finish() {
	if t == nil {
		return
	}
	t.once.Do(func() {
		close(t.done)
		t.o.mu.Lock()
		for _, g := range t.groups {
			if t.o.tails[g] == t.done {
				delete(t.o.tails, g)
			}
		}
		t.o.mu.Unlock()
	})
}
