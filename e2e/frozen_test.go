package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
)

// TestFrozenGatewayKeepsOrder: 20 sender→recipient pairs send numbered
// messages, 300 a second in all, over two gateways with their default rate
// limits; the gateway holding half of the senders and half of the
// recipients is paused (SIGSTOP) for 10 s, past its ZooKeeper session, and
// then resumed. Its clients notice (a sender too: it PINGs once it has read
// nothing for a heartbeat) and move to the other gateway, where they write
// everything still unanswered at once; the paused gateway, when it runs
// again, reads the backlog its sockets kept. Both bursts are over the
// gateways' MSG rate. Every recipient must be shown each sender's messages
// once, all of them, in the order sent. (A gateway used to refuse a MSG
// over the rate with ERROR RateLimited, and the client sent it again after
// newer ones: about one message in 300 was shown out of order. Now it
// waits its turn.)
func TestFrozenGatewayKeepsOrder(t *testing.T) {
	testFrozenGatewayKeepsOrder(t, false)
}

// TestFrozenGatewayKeepsOrderRouteReplicas is TestFrozenGatewayKeepsOrder
// with a route replica inside every gateway: the paused gateway's replica
// pauses with it, holding uplinks it took and pushes it had not made.
func TestFrozenGatewayKeepsOrderRouteReplicas(t *testing.T) {
	testFrozenGatewayKeepsOrder(t, true)
}

func testFrozenGatewayKeepsOrder(t *testing.T, replicas bool) {
	const (
		pairs    = 20
		perSec   = 300
		before   = 3 * time.Second
		pause    = 10 * time.Second
		after    = 4 * time.Second
		duration = before + pause + after
	)
	// The gateways' default rate limits (20 MSG/s, bursts of 100): the
	// messages a client replays on its new link come as a burst.
	c := harness.Start(t, harness.Options{Gateways: 2, GatewayArgs: []string{"--msg-rate", "20", "--msg-burst", "100"}, RouteReplica: replicas})
	tune := func(cfg *client.Config) {
		cfg.Heartbeat = 5 * time.Second
		cfg.PongTimeout = 3 * time.Second
		cfg.ResendTimeout = 2 * time.Second
		cfg.ResendMax = 30
		cfg.DialTimeout = 2 * time.Second
		cfg.EventBuffer = 1 << 14
	}
	victim := c.Gateways[0]
	// Half the senders and half the recipients on the gateway to pause,
	// each paired with a client on the other one.
	var on, off []*harness.User
	for i := 0; len(on) < pairs || len(off) < pairs; i++ {
		u := c.Connect(t, fmt.Sprintf("f%02d", i), tune)
		switch {
		case u.Info().Gateway == victim.ID && len(on) < pairs:
			on = append(on, u)
		case u.Info().Gateway != victim.ID && len(off) < pairs:
			off = append(off, u)
		default:
			u.Close(context.Background())
		}
	}
	senders := make([]*harness.User, pairs)
	recipients := make([]*harness.User, pairs)
	for i := range pairs {
		senders[i], recipients[i] = on[i], off[i]
		if i%2 == 1 {
			senders[i], recipients[i] = off[i], on[i]
		}
	}
	onVictim := len(on)

	ctx, cancel := context.WithTimeout(context.Background(), duration+2*time.Minute)
	defer cancel()
	sent := make([]int, pairs)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second * pairs / perSec)
			defer tick.Stop()
			for time.Since(start) < duration {
				if _, err := senders[i].Send(ctx, recipients[i].Name, fmt.Sprintf("n%05d", sent[i])); err != nil {
					t.Errorf("%s: send #%d: %v", senders[i].Name, sent[i], err)
					return
				}
				sent[i]++
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	time.Sleep(before) // load before the pause: the senders pace themselves
	t.Logf("SIGSTOP %s (%d of %d clients)", victim.ID, onVictim, 2*pairs)
	victim.Signal(syscall.SIGSTOP)
	time.Sleep(pause) // the fault under test is a pause of this length
	t.Logf("SIGCONT %s", victim.ID)
	victim.Signal(syscall.SIGCONT)
	wg.Wait()
	if t.Failed() {
		return
	}

	total := 0
	for i, r := range recipients {
		total += sent[i]
		if !harness.Within(2*time.Minute, func() error {
			if got := len(received(r)); got < sent[i] {
				return fmt.Errorf("%s has %d of %d", r.Name, got, sent[i])
			}
			return nil
		}) {
			t.Errorf("%s was shown %d of %d messages", r.Name, len(received(r)), sent[i])
		}
	}
	reordered, dups := 0, 0
	for i, r := range recipients {
		next := 0
		var seen []string
		for _, m := range received(r) {
			var n int
			if _, err := fmt.Sscanf(string(m.Body), "n%d", &n); err != nil {
				t.Errorf("%s: unexpected message %q", r.Name, m.Body)
				continue
			}
			seen = append(seen, fmt.Sprint(n))
			switch {
			case n == next:
				next++
			case n < next:
				dups++
			default:
				if reordered == 0 {
					from := max(len(seen)-8, 0)
					t.Errorf("%s: from %s #%d where #%d was due (out of order or lost); shown: %s",
						r.Name, senders[i].Name, n, next, strings.Join(seen[from:], " "))
				}
				reordered++
				next = n + 1
			}
		}
		if next != sent[i] {
			t.Errorf("%s: last in order #%d, %d sent", r.Name, next-1, sent[i])
		}
	}
	t.Logf("frozen gateway: %d messages, %d out of order, %d duplicates", total, reordered, dups)
	if reordered+dups > 0 {
		t.Errorf("%d messages out of order, %d duplicates", reordered, dups)
	}
}

// TestStaleGatewayUplinkRefused: alice's connection is on a gateway that
// freezes; she logs in again elsewhere, and the message she had written to
// the frozen gateway reaches the route only once it runs again, for a
// session that is no longer hers. The route refuses it (nothing is stored:
// storing it now would put it after what she sent since) and the old
// connection is closed.
func TestStaleGatewayUplinkRefused(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	bob := c.Connect(t, "bob")
	conn, r, first := rawLogin(t, c, "alice")
	victim := c.Gateway(first.Server.ID)
	victim.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { victim.Signal(syscall.SIGCONT) })

	alice := c.Connect(t, "alice", func(cfg *client.Config) { cfg.DialTimeout = time.Second })
	if alice.Info().Gateway == victim.ID || alice.Info().SessionID == first.SessionID {
		t.Fatalf("alice's new login %+v: want another gateway and session", alice.Info())
	}
	writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 2,
		Msg: &cimpb.Msg{ClientMsgId: "stale-1", To: "bob", Body: []byte("from the old connection"), Kind: cimpb.Kind_KIND_TEXT}})
	victim.Signal(syscall.SIGCONT)

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := testenv.WaitLog(ctx, c.Route.Process, "uplink from a stale session refused"); err != nil {
		t.Fatalf("the route never refused the old session's uplink: %v", err)
	}
	expectClosed(t, conn, r)
	if _, err := alice.Send(ctxT(t), "bob", "from the new connection"); err != nil {
		t.Fatal(err)
	}
	bob.WaitFor(t, 0, wait, "the new connection's message", harness.IsMessage("from the new connection"))
	for _, m := range received(bob) {
		if string(m.Body) == "from the old connection" {
			t.Fatalf("bob got the stale session's message: %v", m)
		}
	}
	page, err := bob.History(ctxT(t), client.HistoryQuery{Peer: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, m := range page.Messages {
		bodies = append(bodies, string(m.Body))
	}
	if strings.Join(bodies, ",") != "from the new connection" {
		t.Fatalf("bob's history with alice: %q, want only the new connection's message", bodies)
	}
}

// TestRouteOutageKeepsOrder: the route is gone for longer than the
// gateway retries it (--route-retry 1s) while alice sends steadily. The
// batch that fails is answered ERROR Unavailable, and the route may be back
// for the next one; storing alice's later messages then, before the failed
// ones she resends, would break her order. Her connection is ended instead
// (ERROR Reconnect) and nothing more of hers is forwarded from it: she logs
// in again and writes everything unanswered, in order. Bob is shown every
// message once, in order.
func TestRouteOutageKeepsOrder(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1, GatewayArgs: []string{"--route-retry", "1s"}})
	alice := c.Connect(t, "alice", func(cfg *client.Config) {
		cfg.ResendTimeout = 2 * time.Second
		cfg.ResendMax = 30
	})
	bob := c.Connect(t, "bob")
	const n = 150
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sent := make(chan struct{})
	half := make(chan struct{})
	go func() {
		defer close(sent)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := range n {
			if i == n/3 {
				close(half)
			}
			if _, err := alice.Send(ctx, "bob", fmt.Sprintf("n%03d", i)); err != nil {
				t.Errorf("send #%d: %v", i, err)
				return
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	<-half
	c.Route.Kill()
	wctx, wcancel := context.WithTimeout(ctx, wait)
	defer wcancel()
	if _, err := testenv.WaitLog(wctx, c.Gateways[0].Process, "uplink batch failed"); err != nil {
		t.Fatalf("no uplink batch failed while the route was down: %v", err)
	}
	c.StartRoute()
	<-sent
	var got []string
	if !harness.Within(2*time.Minute, func() error {
		got = got[:0]
		for _, m := range received(bob) {
			got = append(got, string(m.Body))
		}
		if len(got) < n {
			return fmt.Errorf("bob has %d of %d", len(got), n)
		}
		return nil
	}) {
		t.Fatalf("bob was shown %d of %d messages", len(got), n)
	}
	for i, body := range got {
		if want := fmt.Sprintf("n%03d", i); body != want {
			t.Fatalf("bob's message %d is %s, want %s (out of order, repeated or lost): %v", i, body, want, got[max(i-5, 0):min(i+5, len(got))])
		}
	}
}
