package offline

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeReporter struct {
	mu    sync.Mutex
	got   map[string]string
	gate  chan struct{} // if set, every call waits for it or ctx
	calls int
}

func (r *fakeReporter) Offline(ctx context.Context, userID, sessionID, _ string) error {
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			r.mu.Lock()
			r.calls++
			r.mu.Unlock()
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.got == nil {
		r.got = map[string]string{}
	}
	r.got[userID] = sessionID
	return nil
}

func (r *fakeReporter) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func TestReportsEverything(t *testing.T) {
	r := &fakeReporter{gate: make(chan struct{})}
	q := New(r, 3, nil)
	q.Start()
	// Add never blocks, even while every worker is stuck on the route.
	for i := range 500 {
		q.Add(strconv.Itoa(i), "s"+strconv.Itoa(i), "")
	}
	close(r.gate)
	if err := q.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r.count() != 500 {
		t.Fatalf("reported %d, want 500", r.count())
	}
	if r.got["42"] != "s42" {
		t.Fatalf("user 42 reported with session %q", r.got["42"])
	}
	// After Shutdown, reports are dropped rather than queued forever.
	q.Add("late", "x", "")
	if q.Len() != 0 {
		t.Fatal("report queued after Shutdown")
	}
}

func TestWorkersPickUpLaterReports(t *testing.T) {
	r := &fakeReporter{}
	q := New(r, 2, nil)
	q.Start()
	defer q.Shutdown(context.Background())
	for i := range 5 {
		q.Add(strconv.Itoa(i), "s", "")
		deadline := time.Now().Add(10 * time.Second)
		for r.count() != i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("report %d not sent by idle workers", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

func TestShutdownGivesUp(t *testing.T) {
	r := &fakeReporter{gate: make(chan struct{})} // route never answers
	q := New(r, 1, nil)
	q.Start()
	for i := range 10 {
		q.Add(strconv.Itoa(i), "s", "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := q.Shutdown(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Shutdown = %v, want ErrClosed", err)
	}
	r.mu.Lock()
	calls := r.calls
	r.mu.Unlock()
	// The stuck call was abandoned and the rest not attempted.
	if calls != 1 {
		t.Fatalf("%d calls after giving up, want 1", calls)
	}
}
