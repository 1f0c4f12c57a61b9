package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/internal/testenv"
)

// TestRedisHook: only failures count — not a missing key, not a script
// that is not cached yet, not a caller that gave up — and a pipeline counts
// once, even when its first answer is a missing key.
func TestRedisHook(t *testing.T) {
	rds := testenv.StartRedis(t)
	m := New()
	rdb := redis.NewClient(&redis.Options{Addr: rds.Addr, Protocol: 2, MaxRetries: -1})
	defer rdb.Close()
	rdb.AddHook(m.RedisHook())
	ctx := context.Background()
	errors := func() float64 { return testutil.ToFloat64(m.redisErrors) }

	if err := rdb.Get(ctx, "missing").Err(); err != redis.Nil {
		t.Fatalf("GET missing: %v", err)
	}
	if err := redis.NewScript(`return 1`).Run(ctx, rdb, nil).Err(); err != nil {
		t.Fatalf("script: %v", err) // EVALSHA answered NOSCRIPT first
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	rdb.Ping(cancelled)
	if n := errors(); n != 0 {
		t.Fatalf("redis_errors_total = %v after answers that are no failure", n)
	}

	rdb.Set(ctx, "s", "x", 0)
	if err := rdb.LPush(ctx, "s", "y").Err(); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("LPUSH on a string: %v", err)
	}
	if n := errors(); n != 1 {
		t.Fatalf("redis_errors_total = %v after a WRONGTYPE, want 1", n)
	}
	pipe := rdb.Pipeline()
	pipe.Get(ctx, "missing")
	pipe.LPush(ctx, "s", "y")
	pipe.LPush(ctx, "s", "z")
	if _, err := pipe.Exec(ctx); err != redis.Nil {
		t.Fatalf("pipeline: %v, want the first answer's redis.Nil", err)
	}
	if n := errors(); n != 2 {
		t.Fatalf("redis_errors_total = %v after a pipeline with failures, want 2", n)
	}

	rds.Kill()
	<-rds.Done()
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("PING answered with Redis stopped")
	}
	if n := errors(); n != 3 {
		t.Fatalf("redis_errors_total = %v after a PING to a stopped Redis, want 3", n)
	}
}

// TestNilRoute: a nil *Route records nothing and does not panic, so
// components built without metrics need no check.
func TestNilRoute(t *testing.T) {
	var m *Route
	m.LoggedIn()
	m.LoginFailed(RateLimited)
	m.Uplinked(1, time.Millisecond)
	m.Pushed(1, time.Millisecond, false, errors.New("x"))
	m.InboxAppended(time.Millisecond)
	m.Synced(1)
	m.GroupFanout(1)
	m.Resumed()
	m.RedisError()
	m.ZooKeeperError(nil)
	m.SetSources(Sources{})
	if m.Registry() != nil {
		t.Fatal("a nil Route has a registry")
	}
}

// TestGauges: live_gateways and webhook_queue_depth read their sources at
// scrape time; a failing depth leaves its sample out instead of failing
// the scrape.
func TestGauges(t *testing.T) {
	m := New()
	live := 0
	var depthErr error
	m.SetSources(Sources{
		LiveGateways: func() int { return live },
		WebhookDepth: func(ctx context.Context) (int64, error) {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("the depth is read without a deadline")
			}
			return 7, depthErr
		},
	})
	live = 3
	const want = `
# HELP gocim_route_live_gateways Gateways logins may be sent to: live in ZooKeeper, passing health checks, proven to hold the internal secret.
# TYPE gocim_route_live_gateways gauge
gocim_route_live_gateways 3
# HELP gocim_route_webhook_queue_depth Webhook events waiting for delivery: this replica's memory buffer plus every URL's queue in Redis (shared by the replicas).
# TYPE gocim_route_webhook_queue_depth gauge
gocim_route_webhook_queue_depth 7
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want),
		"gocim_route_live_gateways", "gocim_route_webhook_queue_depth"); err != nil {
		t.Fatal(err)
	}
	depthErr = errors.New("redis down")
	if n, err := testutil.GatherAndCount(m.reg, "gocim_route_webhook_queue_depth"); err != nil || n != 0 {
		t.Fatalf("depth failing: %d samples, %v; want none and no error", n, err)
	}
}
