package app

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/internal/testenv"
)

// pings reads how many PINGs Redis has answered.
func pings(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_ping:calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

// TestReadinessPingIsShared: /readyz is open to anybody on the public
// listener; a flood of requests costs Redis at most one PING per
// readyPingFresh (plus the first), not one each.
func TestReadinessPingIsShared(t *testing.T) {
	r := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, Protocol: 2})
	defer rdb.Close()
	var p redisPing
	before := pings(t, rdb)
	start := time.Now()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for range 50 {
				if p.failed(context.Background(), rdb) {
					t.Error("PING failed against a live Redis")
					return
				}
			}
		})
	}
	wg.Wait()
	got := pings(t, rdb) - before
	if bound := int(time.Since(start)/readyPingFresh) + 1; got > bound || got < 1 {
		t.Fatalf("1,000 readiness checks sent %d PINGs in %v: want 1..%d", got, time.Since(start), bound)
	}
	r.Kill()
	p.at = time.Time{} // the next check asks again
	if !p.failed(context.Background(), rdb) {
		t.Fatal("PING of a dead Redis reported fine")
	}
}
