// Package redistest freezes a test's Redis under a go-redis client that
// holds connections to it, as a busy route's does, and waits until Redis
// has run what the client left with it.
package redistest

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/internal/testenv"
)

// Timeout is a Client's dial, read and write timeout: short, so that a
// command on a frozen Redis fails soon, and long enough for a loaded test
// machine's answers before the freeze.
const Timeout = 500 * time.Millisecond

// Pooled is how many idle connections a Client holds when made: go-redis
// retries a command on another one.
const Pooled = 4

// A Client is a go-redis client of one Redis made from the options a
// program uses, with Timeout, holding Pooled idle connections.
type Client struct {
	redis.UniversalClient
	srv    *testenv.Redis
	frozen atomic.Bool
}

// NewClient makes a Client of srv from o (o's addresses, timeouts and dialer
// are replaced).
func NewClient(t *testing.T, srv *testenv.Redis, o *redis.UniversalOptions) *Client {
	t.Helper()
	c := &Client{srv: srv}
	o.Addrs = []string{srv.Addr}
	o.ReadTimeout, o.WriteTimeout, o.DialTimeout = Timeout, Timeout, Timeout
	// A connection dialled while Redis is frozen fails its handshake
	// before a command is written on it: refusing it at once keeps the
	// wait in Frozen to the connections made before.
	o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if c.frozen.Load() {
			return nil, errors.New("redistest: redis is frozen")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	c.UniversalClient = redis.NewUniversalClient(o)
	t.Cleanup(func() { c.UniversalClient.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for c.PoolStats().IdleConns < Pooled {
		var wg sync.WaitGroup
		for range Pooled { // each held by a 50 ms WAIT for a replica at once
			wg.Go(func() {
				if err := c.Do(ctx, "wait", 1, 50).Err(); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if ctx.Err() != nil || t.Failed() {
			t.Fatalf("redistest: %d idle connections, want %d", c.PoolStats().IdleConns, Pooled)
		}
	}
	return c
}

// Frozen runs f with Redis stopped (SIGSTOP), then closes c, resumes
// Redis and returns once Redis has closed every connection of c: by then
// it has run every command c wrote before it gave up (Redis runs what a
// connection sent before it sees the connection's end). c is of no further
// use.
func (c *Client) Frozen(t *testing.T, f func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	check := redis.NewClient(&redis.Options{Addr: c.srv.Addr, PoolSize: 1, Protocol: 2})
	defer check.Close()
	others := clients(t, ctx, check) - int64(c.PoolStats().TotalConns)
	c.frozen.Store(true)
	c.srv.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { c.srv.Signal(syscall.SIGCONT) })
	f()
	c.UniversalClient.Close()
	c.srv.Signal(syscall.SIGCONT)
	for clients(t, ctx, check) > others {
		if ctx.Err() != nil {
			t.Fatal("redistest: Redis still holds the frozen client's connections")
		}
		time.Sleep(10 * time.Millisecond) // polling Redis's own count
	}
}

// clients is how many connections Redis holds.
func clients(t *testing.T, ctx context.Context, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(ctx, "clients").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "connected_clients:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("redistest: no connected_clients in INFO clients")
	return 0
}
