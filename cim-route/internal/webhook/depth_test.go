package webhook

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/event"
	"github.com/gocim/gocim/internal/testenv"
)

// TestDepth: the events waiting are those in the memory buffer (once)
// plus every URL's queue in Redis; without Redis there is no answer.
func TestDepth(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2})
	t.Cleanup(func() { rdb.Close() })
	d := newDispatcher(t, fast(rdb, "http://127.0.0.1:1/a", "http://127.0.0.1:1/b")) // never Run: nothing leaves
	ctx := context.Background()
	if n, err := d.Depth(ctx); err != nil || n != 0 {
		t.Fatalf("depth of nothing: %d, %v", n, err)
	}
	emit(d, 2) // in the memory buffer
	if err := d.Enqueue(ctx, []event.Event{event.New(event.UserOnline, time.Now(), event.Presence{UserID: "1"})}); err != nil {
		t.Fatal(err)
	}
	if n, err := d.Depth(ctx); err != nil || n != 2+2*1 {
		t.Fatalf("depth: %d, %v; want 2 buffered + 1 queued for each of 2 URLs", n, err)
	}
	srv.Kill()
	<-srv.Done()
	if _, err := d.Depth(ctx); err == nil {
		t.Fatal("depth without Redis: no error")
	}
}
