package ratelimit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/redistest"
	"github.com/gocim/gocim/internal/testenv"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// process is one route process: its own Redis client, its own Maker.
func process(t *testing.T, addrs ...string) (Maker, redis.UniversalClient) {
	t.Helper()
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, IsClusterMode: len(addrs) > 1})
	t.Cleanup(func() { rdb.Close() })
	return Shared(rdb, "cim:"), rdb
}

// TestShared: the buckets in Redis behave as the ones in memory (burst,
// both dimensions, a refusal takes nothing, n at once) and two processes
// take from one budget.
func TestShared(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx := ctxT(t)
	makeA, rdb := process(t, srv.Addr)
	makeB, _ := process(t, srv.Addr)
	// A token per 1,000 s: nothing refills while the test runs.
	cfg := Config{Name: "login", Rate: 0.001, Burst: 3, Dimensions: 2}
	a, b := makeA(cfg), makeB(cfg)
	take := func(l *Limiter, n int, keys ...string) time.Duration {
		t.Helper()
		d, err := l.AllowN(ctx, n, keys...)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// Two attempts on one process, one on the other: the burst of 3.
	for i, l := range []*Limiter{a, a, b} {
		if d := take(l, 1, "ip1", "alice"); d != 0 {
			t.Fatalf("attempt %d refused (%v) within the burst", i+1, d)
		}
	}
	for _, l := range []*Limiter{a, b} {
		if d := take(l, 1, "ip1", "alice"); d <= 0 || d > 1000*time.Second {
			t.Fatalf("4th attempt: wait %v, want (0, 1000s]", d)
		}
	}
	if d := take(b, 1, "ip1", "bob"); d == 0 {
		t.Fatal("the IP's budget is not shared")
	}
	if d := take(b, 1, "ip2", "alice"); d == 0 {
		t.Fatal("the name's budget is not shared")
	}
	// The refusals above took nothing from ip2 or bob.
	for i := range 3 {
		if d := take(b, 1, "ip2", "bob"); d != 0 {
			t.Fatalf("ip2/bob attempt %d refused (%v): a refusal consumed tokens", i+1, d)
		}
	}
	// Another limiter's buckets are its own.
	if d := take(makeB(Config{Name: "history", Rate: 0.001, Burst: 3, Dimensions: 2}), 1, "ip1", "alice"); d != 0 {
		t.Fatalf("another limiter's bucket refused: %v", d)
	}
	// n at once: all or none, never more than the burst.
	inv := makeA(Config{Name: "invite", Rate: 0.001, Burst: 10})
	if d := take(inv, 7, "carol"); d != 0 {
		t.Fatalf("7 of 10: %v", d)
	}
	if d := take(inv, 4, "carol"); d <= 0 || d == Never {
		t.Fatalf("4 with 3 left: %v, want a wait", d)
	}
	if d := take(inv, 3, "carol"); d != 0 {
		t.Fatalf("the 3 left after a refusal: %v", d)
	}
	if d := take(inv, 11, "dave"); d != Never {
		t.Fatalf("more than the burst: %v, want Never", d)
	}
	// Every bucket expires once it would be full again (here ≤ 3,000 s);
	// a key of any length costs at most maxKey bytes of the name.
	long := strings.Repeat("x", 10_000)
	if d := take(a, 1, "ip3", long); d != 0 {
		t.Fatalf("a long key: %v", d)
	}
	keys, err := rdb.Keys(ctx, "cim:limit:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 9 { // login: ip1 ip2 alice bob ip3 long; history: ip1 alice; invite: carol
		t.Errorf("%d keys, want 9: %v", len(keys), keys)
	}
	for _, k := range keys {
		if len(k) > len("cim:limit:history:0:")+maxKey {
			t.Errorf("key %d bytes long: %.80s…", len(k), k)
		}
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > 10_000*time.Second {
			t.Errorf("%s: TTL %v (%v), want one within the bucket's refill", k, ttl, err)
		}
	}
}

// TestSharedRefills: a refused key passes again once its wait is over.
func TestSharedRefills(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx := ctxT(t)
	mk, _ := process(t, srv.Addr)
	l := mk(Config{Name: "upload", Rate: 50, Burst: 1})
	if d, err := l.Allow(ctx, "erin"); d != 0 || err != nil {
		t.Fatalf("first: %v %v", d, err)
	}
	d, err := l.Allow(ctx, "erin")
	if err != nil || d <= 0 || d > 20*time.Millisecond {
		t.Fatalf("second at once: %v %v, want a wait of at most 20ms", d, err)
	}
	for {
		select {
		case <-ctx.Done():
			t.Fatal("the bucket never refilled")
		case <-time.After(d):
		}
		if d, err = l.Allow(ctx, "erin"); err != nil {
			t.Fatal(err)
		}
		if d == 0 {
			return
		}
	}
}

// TestSharedCluster: on Redis Cluster the dimensions of a request live on
// different nodes; a refusal in one still takes nothing from the other.
func TestSharedCluster(t *testing.T) {
	rc := testenv.StartRedisCluster(t, 3, 0)
	ctx := ctxT(t)
	mk, rdb := process(t, rc.Addrs()...)
	l := mk(Config{Name: "login", Rate: 0.001, Burst: 2, Dimensions: 2})
	// The 1st dimension's keys must land on other masters than "frank"'s.
	owner := func(key string) string {
		t.Helper()
		n, err := rc.MasterOf(key)
		if err != nil {
			t.Fatal(err)
		}
		return n.Addr
	}
	frank := owner("cim:limit:login:1:frank")
	var ips []string
	for i := 0; len(ips) < 2; i++ {
		ip := "10.0.0." + string(rune('a'+i))
		if owner("cim:limit:login:0:"+ip) != frank {
			ips = append(ips, ip)
		}
	}
	for range 2 {
		if d, err := l.Allow(ctx, ips[0], "frank"); d != 0 || err != nil {
			t.Fatalf("within the burst: %v %v", d, err)
		}
	}
	if d, err := l.Allow(ctx, ips[1], "frank"); d == 0 || err != nil {
		t.Fatalf("frank's 3rd attempt: %v %v, want a refusal", d, err)
	}
	// ips[1] was taken from, then given back: its full burst is left.
	for i := range 2 {
		if d, err := l.Allow(ctx, ips[1], "grace"); d != 0 || err != nil {
			t.Fatalf("%s attempt %d: %v %v: the refusal kept its token", ips[1], i+1, d, err)
		}
	}
	if n, err := rdb.Exists(ctx, "cim:limit:login:0:"+ips[1]).Result(); err != nil || n != 1 {
		t.Fatalf("the bucket is not in the cluster: %v %v", n, err)
	}
}

// TestSharedRedisDown: a limiter whose Redis is gone answers an error and
// admits nothing.
func TestSharedRedisDown(t *testing.T) {
	srv := testenv.StartRedis(t)
	mk, _ := process(t, srv.Addr)
	l := mk(Config{Name: "login", Rate: 1, Burst: 5})
	srv.Kill()
	ctx, cancel := context.WithTimeout(ctxT(t), 3*time.Second)
	defer cancel()
	if d, err := l.Allow(ctx, "heidi"); err == nil {
		t.Fatalf("Redis down: admitted (wait %v) without an error", d)
	}
}

// TestSharedTakesOnceAfterTimeouts: a take whose answer timed out (Redis
// frozen) fails and takes at most its one token when Redis runs it later.
// go-redis retried it on another connection, and Redis ran every attempt
// when it thawed: the whole burst gone for one attempt.
func TestSharedTakesOnceAfterTimeouts(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx := ctxT(t)
	cfg := Config{Name: "login", Rate: 0.001, Burst: 3}
	// go-redis's default client retries a command twice or more, as the
	// route's does.
	c := redistest.NewClient(t, srv, &redis.UniversalOptions{})
	l := Shared(c, "cim:")(cfg)
	if _, err := l.Allow(ctx, "warm"); err != nil { // the script loaded, as in a running route
		t.Fatal(err)
	}
	c.Frozen(t, func() {
		if _, err := l.Allow(ctx, "alice"); err == nil {
			t.Fatal("a take on a frozen Redis passed")
		}
	})
	makeB, _ := process(t, srv.Addr)
	b := makeB(cfg)
	for i := range 2 {
		if d, err := b.Allow(ctx, "alice"); err != nil || d != 0 {
			t.Fatalf("attempt %d after the failed one: wait %v (%v), want a pass: the failed one took more than one token", i+1, d, err)
		}
	}
}
