package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
)

// uplinkBatches is the route metric counting the uplink batches a route
// (or replica) handled.
const uplinkBatches = "gocim_route_uplink_batch_messages_count"

// TestRouteReplicaInGateway: with a route replica inside every gateway
// (--route-replica), private messages between users on two gateways are
// stored, acknowledged and delivered, each once and in order, both ways,
// and the standalone route handles none of the uplinks: each gateway's own
// replica does, in its process.
func TestRouteReplicaInGateway(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2, RouteReplica: true})
	a, b := onTwoGateways(t, c)
	exchangeBoth(t, a, b, 200)
	if n := metric(t, c.Route.InternalURL, uplinkBatches); n != 0 {
		t.Errorf("the standalone route handled %v uplink batches; want none (the replicas in the gateways take them)", n)
	}
	for _, g := range c.Gateways {
		if n := metric(t, g.ReplicaURL, uplinkBatches); n == 0 {
			t.Errorf("the route replica in gateway %s handled no uplink batch", g.ID)
		}
	}
}

// localPushes is the route metric counting the frames a replica pushed to
// the gateway it runs in as function calls.
const localPushes = "gocim_route_push_local_frames_total"

// TestRouteReplicaPushesLocally: two users on one gateway with a replica
// inside it; the replica hands the pushes to its own gateway as calls (no
// stream, no encoding), and every message still arrives once, in order,
// with its SENT receipt, both ways.
func TestRouteReplicaPushesLocally(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1, RouteReplica: true})
	a := c.Connect(t, "loc0", fastResend)
	b := c.Connect(t, "loc1", fastResend)
	const n = 200
	exchangeBoth(t, a, b, n)
	// The count follows the push's return, which may come just after the
	// frames reached the clients.
	deadline := time.Now().Add(30 * time.Second)
	for got := metric(t, c.Gateways[0].ReplicaURL, localPushes); got < 2*n; got = metric(t, c.Gateways[0].ReplicaURL, localPushes) {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want at least %d (every message pushed to the replica's own gateway)", localPushes, got, 2*n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := metric(t, c.Route.InternalURL, localPushes); got != 0 {
		t.Errorf("the standalone route pushed %v frames locally; it has no gateway in its process", got)
	}
}

// TestRouteReplicaFailsOver: a replica inside the gateways that cannot
// reach Redis fails every uplink; the gateways send them to the standalone
// route instead (--route), and every message still arrives once, in order,
// with its SENT receipt.
func TestRouteReplicaFailsOver(t *testing.T) {
	nowhere := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	c := harness.Start(t, harness.Options{Gateways: 2, RouteReplica: true, ReplicaArgs: []string{"--redis", nowhere}})
	a, b := onTwoGateways(t, c)
	exchangeBoth(t, a, b, 20)
	if n := metric(t, c.Route.InternalURL, uplinkBatches); n == 0 {
		t.Errorf("the standalone route handled no uplink batch; the gateways should have sent it the ones their replicas failed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := testenv.WaitLog(ctx, c.Gateways[0].Process, "uplink to the route replica in this process failed"); err != nil {
		t.Errorf("gateway log: %v", err)
	}
}

// TestNoLossUnderFailuresRouteReplicas is the loss test (see
// TestNoLossUnderFailures) with a route replica inside every gateway: the
// SIGKILLed gateway takes its replica, and the pushes it had not made yet,
// with it.
func TestNoLossUnderFailuresRouteReplicas(t *testing.T) {
	testNoLossUnderFailures(t, harness.Options{Gateways: 2, RouteReplica: true})
}

// onTwoGateways connects users until two of them are on different
// gateways, and returns those two.
func onTwoGateways(t *testing.T, c *harness.Cluster) (*harness.User, *harness.User) {
	t.Helper()
	first := c.Connect(t, "rep0", fastResend)
	for i := 1; i < 6; i++ {
		u := c.Connect(t, fmt.Sprintf("rep%d", i), fastResend)
		if u.Info().Gateway != first.Info().Gateway {
			return first, u
		}
	}
	t.Fatalf("six users all on gateway %s", first.Info().Gateway)
	return nil, nil
}

// exchangeBoth has a and b send n numbered messages to each other at once, and
// checks that each gets all of the other's, once and in order, and a SENT
// receipt for each of its own.
func exchangeBoth(t *testing.T, a, b *harness.User, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errs := make(chan error, 2)
	send := func(from, to *harness.User) {
		for i := range n {
			if _, err := from.Send(ctx, to.Name, fmt.Sprintf("%s#%04d", from.Name, i)); err != nil {
				errs <- fmt.Errorf("%s sends #%d: %w", from.Name, i, err)
				return
			}
		}
		errs <- nil
	}
	go send(a, b)
	go send(b, a)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range [][2]*harness.User{{a, b}, {b, a}} {
		from, to := p[0], p[1]
		harness.Eventually(t, time.Minute, func() error {
			if got := len(received(to)); got < n {
				return fmt.Errorf("%s has %d of %d messages from %s", to.Name, got, n, from.Name)
			}
			if got := len(receipts(from)[cimpb.ReceiptStatus_RECEIPT_SENT]); got < n {
				return fmt.Errorf("%s has %d of %d SENT receipts", from.Name, got, n)
			}
			return nil
		})
		for i, m := range received(to) {
			if want := fmt.Sprintf("%s#%04d", from.Name, i); string(m.Body) != want {
				t.Fatalf("%s's message %d is %q, want %q (lost, repeated or out of order)", to.Name, i, m.Body, want)
			}
		}
		if got := len(received(to)); got != n {
			t.Fatalf("%s has %d messages, want %d", to.Name, got, n)
		}
	}
	for _, u := range []*harness.User{a, b} {
		for _, e := range u.Seen() {
			if e.Kind == client.EventError {
				t.Errorf("%s got an error: %v", u.Name, e.Err)
			}
		}
	}
}

// metric returns the value of a sample named name (no labels) on the
// internal listener at base.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-CIM-Internal", harness.InternalSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("metrics at %s: %v", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics at %s: %s", base, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metrics at %s: %s %q: %v", base, name, v, err)
			}
			return f
		}
	}
	t.Fatalf("metrics at %s: no %s (%v)", base, name, sc.Err())
	return 0
}
