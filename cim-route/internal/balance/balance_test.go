package balance

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gocim/gocim/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

func TestRoundRobinOrder(t *testing.T) {
	b := New(Config{Logger: quiet})
	if _, ok := b.Pick("1"); ok {
		t.Fatal("Pick with no gateways succeeded")
	}
	b.SetGateways([]string{"h:3:3", "h:1:1", "not-a-gateway", "h:2:2", "h:1:1"})
	if got := b.Gateways(); !slices.Equal(got, []string{"h:1:1", "h:2:2", "h:3:3"}) {
		t.Fatalf("live = %v", got)
	}
	var got []string
	for range 7 {
		id, ok := b.Pick("any")
		if !ok {
			t.Fatal("no pick")
		}
		got = append(got, id)
	}
	want := []string{"h:1:1", "h:2:2", "h:3:3", "h:1:1", "h:2:2", "h:3:3", "h:1:1"}
	if !slices.Equal(got, want) {
		t.Fatalf("picks = %v, want %v", got, want)
	}
	if !b.Live("h:2:2") || b.Live("h:9:9") || b.Count() != 3 {
		t.Fatal("Live/Count wrong")
	}
}

func TestHashStableAndConsistent(t *testing.T) {
	b := New(Config{Strategy: Hash, Logger: quiet})
	gws := []string{"10.0.0.1:9000:9100", "10.0.0.2:9000:9100", "10.0.0.3:9000:9100"}
	b.SetGateways(gws)
	before := map[string]string{}
	count := map[string]int{}
	for i := range 3000 {
		k := strconv.Itoa(i)
		id, _ := b.Pick(k)
		before[k] = id
		count[id]++
		if again, _ := b.Pick(k); again != id {
			t.Fatalf("key %s: %s then %s", k, id, again)
		}
	}
	for _, g := range gws {
		if count[g] < 3000/3/2 {
			t.Fatalf("uneven spread: %v", count)
		}
	}
	// Drop one gateway: only its users move.
	b.SetGateways(gws[:2])
	for k, was := range before {
		now, _ := b.Pick(k)
		if was != gws[2] && now != was {
			t.Fatalf("key %s moved from %s to %s though its gateway stayed", k, was, now)
		}
		if now == gws[2] {
			t.Fatalf("key %s still on the removed gateway", k)
		}
	}
	// Bring it back: everybody is where they were.
	b.SetGateways(gws)
	for k, was := range before {
		if now, _ := b.Pick(k); now != was {
			t.Fatalf("key %s: %s after re-adding, want %s", k, now, was)
		}
	}
	// A gateway marked down is skipped but keeps its place on the ring.
	b.MarkDown(gws[0])
	for k, was := range before {
		now, _ := b.Pick(k)
		if now == gws[0] || (was != gws[0] && now != was) {
			t.Fatalf("key %s: %s with %s down (was %s)", k, now, gws[0], was)
		}
	}
}

// fakeGateway answers /healthz with 200 while healthy is true, else 503.
func fakeGateway(t *testing.T) (id string, healthy *atomic.Bool, hits *atomic.Int32) {
	healthy, hits = &atomic.Bool{}, &atomic.Int32{}
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"status":"ok","connections":0}`)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return "127.0.0.1:1:" + u.Port(), healthy, hits
}

func TestUnhealthySkipped(t *testing.T) {
	for _, strategy := range []string{RoundRobin, Hash} {
		t.Run(strategy, func(t *testing.T) {
			a, _, _ := fakeGateway(t)
			bad, badHealthy, _ := fakeGateway(t)
			dead := "127.0.0.1:1:" + strconv.Itoa(testenv.FreePort(t)) // nobody listens
			b := New(Config{Strategy: strategy, Logger: quiet, HealthTimeout: time.Second})
			b.SetGateways([]string{a, bad, dead})
			if got := b.Healthy(); len(got) != 3 {
				t.Fatalf("new gateways should count as healthy until checked: %v", got)
			}
			badHealthy.Store(false)
			b.Check(context.Background())
			if got := b.Healthy(); !slices.Equal(got, []string{a}) {
				t.Fatalf("healthy = %v, want only %s", got, a)
			}
			for i := range 50 {
				if id, ok := b.Pick(strconv.Itoa(i)); !ok || id != a {
					t.Fatalf("pick %d = %q %v, want %s", i, id, ok, a)
				}
			}
			// Still live (pushes go there), just not handed out.
			if !b.Live(bad) || !b.Live(dead) {
				t.Fatal("an unhealthy gateway left the live list")
			}
			badHealthy.Store(true)
			b.Check(context.Background())
			if got := b.Healthy(); !slices.Contains(got, bad) || slices.Contains(got, dead) {
				t.Fatalf("after recovery healthy = %v", got)
			}
			// A failed push marks a gateway down until the next passing check.
			b.MarkDown(bad)
			if slices.Contains(b.Healthy(), bad) {
				t.Fatal("MarkDown ignored")
			}
			b.Check(context.Background())
			if !slices.Contains(b.Healthy(), bad) {
				t.Fatal("a passing check did not restore the gateway")
			}
			// Everything down: no pick.
			b.SetGateways([]string{dead})
			b.Check(context.Background())
			if id, ok := b.Pick("1"); ok {
				t.Fatalf("picked %s with every gateway down", id)
			}
		})
	}
}

func TestRunChecksPeriodically(t *testing.T) {
	a, _, hits := fakeGateway(t)
	b := New(Config{Logger: quiet, HealthInterval: 10 * time.Millisecond})
	b.SetGateways([]string{a})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for hits.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d health checks", hits.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}
