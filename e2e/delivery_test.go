package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// dropper lets a test cut a client's TCP connection the way a network would,
// and keep it from reconnecting for a while.
type dropper struct {
	mu      sync.Mutex
	conns   []net.Conn
	blocked bool
}

var errBlocked = errors.New("dropper: network down")

func (d *dropper) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.blocked {
		return nil, errBlocked
	}
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, network, addr)
	if err == nil {
		d.conns = append(d.conns, conn)
	}
	return conn, err
}

// cut closes every connection; with block, new dials fail until unblock.
func (d *dropper) cut(block bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.Close()
	}
	d.conns = nil
	d.blocked = block
}

func (d *dropper) unblock() {
	d.mu.Lock()
	d.blocked = false
	d.mu.Unlock()
}

func fastResend(cfg *client.Config) {
	cfg.ResendTimeout = time.Second
	cfg.ResendMax = 20
}

func received(u *harness.User) []*cimpb.Msg {
	var out []*cimpb.Msg
	for _, e := range u.Seen() {
		if e.Kind == client.EventMessage && e.Msg != nil && !e.Msg.Broadcast {
			out = append(out, e.Msg)
		}
	}
	return out
}

// receipts returns, per status, the distinct client message ids (SENT) or
// message ids (DELIVERED, READ) u got receipts for.
func receipts(u *harness.User) map[cimpb.ReceiptStatus]map[string]bool {
	out := map[cimpb.ReceiptStatus]map[string]bool{}
	for _, e := range u.Seen() {
		if e.Kind != client.EventReceipt || e.Receipt == nil {
			continue
		}
		st := e.Receipt.Status
		if out[st] == nil {
			out[st] = map[string]bool{}
		}
		if st == cimpb.ReceiptStatus_RECEIPT_SENT {
			out[st][e.Receipt.ClientMsgId] = true
		} else {
			out[st][e.Receipt.MsgId] = true
		}
	}
	return out
}

// TestNoLossUnderFailures is the loss test: three clients send 10,000
// numbered private messages to each other across two gateways while a
// gateway is SIGKILLed (its clients move), a recipient drops off the network
// and comes back, and the route is restarted. Afterwards every recipient has
// every message exactly once, in per-sender order, and every sender has a
// SENT and a DELIVERED receipt for each.
func TestNoLossUnderFailures(t *testing.T) {
	testNoLossUnderFailures(t, harness.Options{Gateways: 2})
}

func testNoLossUnderFailures(t *testing.T, opts harness.Options) {
	const total = 10000
	// The senders write as fast as they can while a recipient is away, far
	// past a sender's share of an absent user's inbox, which this test is
	// not about (TestOneSenderCannotFloodAnInbox is): no share here.
	opts.RouteArgs = append(opts.RouteArgs, "--inbox-per-sender", "0")
	c := harness.Start(t, opts)
	names := []string{"ann", "ben", "cat"}
	drops := make([]*dropper, len(names))
	users := make([]*harness.User, len(names))
	for i, n := range names {
		drops[i] = &dropper{}
		d := drops[i]
		users[i] = c.Connect(t, n, fastResend, func(cfg *client.Config) {
			cfg.Dial = d.dial
			cfg.EventBuffer = 1 << 16
		})
	}
	victim := c.Gateways[0]
	onVictim := 0
	for _, u := range users {
		if u.Info().Gateway == victim.ID {
			onVictim++
		}
	}
	if onVictim == 0 || onVictim == len(users) {
		t.Fatalf("%d of %d clients on %s: want them spread over both gateways", onVictim, len(users), victim.ID)
	}

	var progress atomic.Int64
	var bodyIDs sync.Map // body -> client message id
	milestones := map[int64]chan struct{}{2000: make(chan struct{}), 5000: make(chan struct{}), 6500: make(chan struct{}), 8000: make(chan struct{})}
	sentIDs := make([]map[string]bool, len(users)) // client message ids per sender
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i := range users {
		sentIDs[i] = map[string]bool{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			from := users[i]
			counts := map[string]int{}
			for n := i; n < total; n += len(users) {
				to := users[(i+1+n/len(users)%2)%len(users)]
				body := fmt.Sprintf("%s>%s#%05d", from.Name, to.Name, counts[to.Name])
				counts[to.Name]++
				id, err := from.Send(ctx, to.Name, body)
				if err != nil {
					t.Errorf("%s send %s: %v", from.Name, body, err)
					return
				}
				sentIDs[i][id] = true
				bodyIDs.Store(body, id)
				if ch, ok := milestones[progress.Add(1)]; ok {
					close(ch)
				}
			}
		}(i)
	}

	<-milestones[2000]
	t.Logf("SIGKILL gateway %s", victim.ID)
	victim.Kill()
	<-milestones[5000]
	t.Logf("%s drops off the network", users[1].Name)
	drops[1].cut(true)
	<-milestones[6500]
	t.Logf("%s comes back", users[1].Name)
	drops[1].unblock()
	<-milestones[8000]
	t.Log("route restart")
	c.Route.Kill()
	c.StartRoute()
	wg.Wait()
	if t.Failed() {
		return
	}

	// Expected: per (sender, recipient) pair, bodies #00000.. in order.
	want := map[string]map[string]int{}
	for i, u := range users {
		want[u.Name] = map[string]int{}
		for n := i; n < total; n += len(users) {
			to := users[(i+1+n/len(users)%2)%len(users)]
			want[u.Name][to.Name]++
		}
	}
	deadline := 90 * time.Second
	for _, u := range users {
		exp := 0
		for _, from := range users {
			exp += want[from.Name][u.Name]
		}
		if !harness.Within(deadline, func() error {
			if got := len(received(u)); got < exp {
				return fmt.Errorf("%s has %d of %d messages", u.Name, got, exp)
			}
			return nil
		}) {
			t.Fatalf("%s has %d of %d messages; %s", u.Name, len(received(u)), exp, diagnoseMissing(t, c, u, users, want, &bodyIDs))
		}
	}
	for i, u := range users {
		var last error
		if !harness.Within(deadline, func() error {
			r := receipts(u)
			last = fmt.Errorf("%s: %d SENT and %d DELIVERED receipts for %d messages", u.Name,
				len(r[cimpb.ReceiptStatus_RECEIPT_SENT]), len(r[cimpb.ReceiptStatus_RECEIPT_DELIVERED]), len(sentIDs[i]))
			if len(r[cimpb.ReceiptStatus_RECEIPT_SENT]) != len(sentIDs[i]) || len(r[cimpb.ReceiptStatus_RECEIPT_DELIVERED]) != len(sentIDs[i]) {
				return last
			}
			return nil
		}) {
			r := receipts(u)
			var lacking []string
			for id := range sentIDs[i] {
				if !r[cimpb.ReceiptStatus_RECEIPT_SENT][id] && len(lacking) < 5 {
					var evs []string
					for _, e := range u.Seen() {
						if e.Kind == client.EventError && e.Err.GetClientMsgId() == id {
							evs = append(evs, fmt.Sprintf("error %d %q", e.Err.Code, e.Err.Text))
						}
						if e.Kind == client.EventReceipt && e.Receipt.GetClientMsgId() == id {
							evs = append(evs, e.Receipt.Status.String())
						}
					}
					lacking = append(lacking, fmt.Sprintf("%s %v", id, evs))
				}
			}
			t.Fatalf("%v; without SENT: %v", last, lacking)
		}
	}

	for _, u := range users {
		next := map[string]int{}
		dups := 0
		for _, m := range received(u) {
			from, rest, _ := strings.Cut(string(m.Body), ">")
			_, num, _ := strings.Cut(rest, "#")
			var n int
			fmt.Sscanf(num, "%d", &n)
			switch {
			case n == next[from]:
				next[from]++
			case n < next[from]:
				dups++
			default:
				t.Errorf("%s: from %s got #%d, expected #%d (reordered or lost)", u.Name, from, n, next[from])
			}
		}
		if dups > 0 {
			t.Errorf("%s: %d duplicate messages shown", u.Name, dups)
		}
		for _, from := range users {
			if next[from.Name] != want[from.Name][u.Name] {
				t.Errorf("%s: %d of %d messages from %s", u.Name, next[from.Name], want[from.Name][u.Name], from.Name)
			}
		}
	}
	for i, u := range users {
		r := receipts(u)
		line := fmt.Sprintf("loss test: %s sent %d, SENT %d, DELIVERED %d, received %d",
			u.Name, len(sentIDs[i]), len(r[cimpb.ReceiptStatus_RECEIPT_SENT]), len(r[cimpb.ReceiptStatus_RECEIPT_DELIVERED]), len(received(u)))
		t.Log(line)
		fmt.Println(line)
	}
}

// TestOfflineDeliveryAndReceipts: messages to an offline user are stored
// (the sender gets SENT), delivered in order when the user logs in, and the
// DELIVERED and READ receipts reach the sender even though the sender was
// offline when they happened.
func TestOfflineDeliveryAndReceipts(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	c.Register(t, "bob")
	alice := c.Connect(t, "alice")
	var ids []string
	for i := 0; i < 5; i++ {
		id, err := alice.Send(ctxT(t), "bob", fmt.Sprintf("offline %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	msgIDs := map[string]string{}
	for _, id := range ids {
		i := alice.WaitFor(t, 0, wait, "SENT for "+id, func(e client.Event) bool {
			return e.Kind == client.EventReceipt && e.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT && e.Receipt.ClientMsgId == id
		})
		msgIDs[id] = alice.Seen()[i].Receipt.MsgId
	}
	alice.Close(ctxT(t)) // the sender goes offline before anything is delivered

	bob := c.Connect(t, "bob")
	next := 0
	for i := 0; i < 5; i++ {
		next = bob.WaitFor(t, next, wait, fmt.Sprintf("offline %d", i), harness.IsMessage(fmt.Sprintf("offline %d", i))) + 1
	}
	var got []string
	for _, m := range received(bob) {
		got = append(got, m.MsgId)
	}
	if len(got) != 5 {
		t.Fatalf("bob got %d messages, want 5 exactly once", len(got))
	}
	if err := bob.MarkRead(ctxT(t), "alice", got...); err != nil {
		t.Fatal(err)
	}

	// Alice comes back: the receipts wait in her inbox.
	alice2 := c.Connect(t, "alice")
	for _, id := range ids {
		mid := msgIDs[id]
		for _, st := range []cimpb.ReceiptStatus{cimpb.ReceiptStatus_RECEIPT_DELIVERED, cimpb.ReceiptStatus_RECEIPT_READ} {
			alice2.WaitFor(t, 0, wait, fmt.Sprintf("%v for %s", st, mid), func(e client.Event) bool {
				return e.Kind == client.EventReceipt && e.Receipt.Status == st && e.Receipt.MsgId == mid
			})
		}
	}
}

// TestResendIsDeduplicated sends the same clientMsgId twice over a bare
// connection, as a client retrying after a timeout would: one message is
// stored and shown, and both answers name the same msgId.
func TestResendIsDeduplicated(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1})
	bob := c.Connect(t, "bob")
	conn, r, _ := rawLogin(t, c, "alice")
	msg := &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "same-id", To: "bob", Body: []byte("once")}}
	var msgIDs []string
	for i := 0; i < 2; i++ {
		writeFrame(t, conn, msg)
		for {
			f := readFrame(t, conn, r)
			if f.Type == cimpb.Type_RECEIPT && f.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT {
				msgIDs = append(msgIDs, f.Receipt.MsgId)
				break
			}
		}
	}
	if msgIDs[0] == "" || msgIDs[0] != msgIDs[1] {
		t.Fatalf("resend got msgIds %v, want the same one twice", msgIDs)
	}
	bob.WaitFor(t, 0, wait, "the message", harness.IsMessage("once"))
	// A later message proves the resend was not queued behind it.
	writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "other", To: "bob", Body: []byte("twice?")}})
	bob.WaitFor(t, 0, wait, "the next message", harness.IsMessage("twice?"))
	if n := len(received(bob)); n != 2 {
		t.Fatalf("bob was shown %d messages, want 2 (the resend must not count)", n)
	}
}

// TestRedisStopped stops Redis while clients send: they get clear errors (not
// SENT), nothing crashes, and once Redis is back sending resumes and every
// message that got SENT is delivered.
func TestRedisStopped(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1, GatewayArgs: []string{"--route-retry", "1s"}})
	// The client waits longer than the gateway retries the route, so the
	// answer it gets is the gateway's definitive ERROR, not its own timeout.
	tune := func(cfg *client.Config) { cfg.ResendTimeout = 10 * time.Second; cfg.ResendMax = 1 }
	alice := c.Connect(t, "alice", tune)
	bob := c.Connect(t, "bob")
	sent := map[string]bool{}
	send := func(body string) string {
		id, err := alice.Send(ctxT(t), "bob", body)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	for i := 0; i < 5; i++ {
		id := send(fmt.Sprintf("before %d", i))
		alice.WaitFor(t, 0, wait, "SENT for "+id, func(e client.Event) bool {
			return e.Kind == client.EventReceipt && e.Receipt.ClientMsgId == id && e.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT
		})
	}
	if err := c.Redis.Stop(10 * time.Second); err != nil {
		t.Logf("redis stop: %v", err)
	}
	var failed []string
	for i := 0; i < 3; i++ {
		failed = append(failed, send(fmt.Sprintf("during %d", i)))
	}
	for _, id := range failed {
		alice.WaitFor(t, 0, wait, "a clear error for "+id, func(e client.Event) bool {
			return e.Kind == client.EventError && e.Err.ClientMsgId == id && codes.Code(e.Err.Code) == codes.Unavailable
		})
	}
	if c.Route.Exited() || c.Gateways[0].Exited() {
		t.Fatal("a cluster process died while Redis was down")
	}
	c.Redis.Restart()
	for i := 0; i < 5; i++ {
		send(fmt.Sprintf("after %d", i))
	}
	harness.Eventually(t, wait, func() error {
		for _, e := range alice.Seen() {
			if e.Kind == client.EventReceipt && e.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT {
				sent[e.Receipt.ClientMsgId] = true
			}
		}
		if len(sent) < 10 {
			return fmt.Errorf("%d SENT receipts, want 10 (5 before, 5 after)", len(sent))
		}
		return nil
	})
	for _, id := range failed {
		if sent[id] {
			t.Fatalf("message %s got both an error and SENT", id)
		}
	}
	next := 0
	for _, body := range []string{"before 0", "before 1", "before 2", "before 3", "before 4", "after 0", "after 1", "after 2", "after 3", "after 4"} {
		next = bob.WaitFor(t, next, wait, body, harness.IsMessage(body)) + 1
	}
}

// diagnoseMissing says, for the messages u lacks, whether the route stored
// them in u's inbox (a delivery bug) or not (a sending bug).
func diagnoseMissing(t *testing.T, c *harness.Cluster, u *harness.User, users []*harness.User, want map[string]map[string]int, bodyIDs *sync.Map) string {
	byName := map[string]*harness.User{}
	for _, x := range users {
		byName[x.Name] = x
	}
	got := map[string]bool{}
	for _, m := range received(u) {
		got[string(m.Body)] = true
	}
	rdb := redis.NewClient(&redis.Options{Addr: c.Redis.Addr})
	defer rdb.Close()
	entries, err := rdb.LRange(context.Background(), "cim:inbox:{"+u.ID+"}", 0, -1).Result()
	if err != nil {
		return err.Error()
	}
	stored := map[string]string{} // body -> seq (the entry's "<seq>|" prefix)
	for _, m := range entries {
		seq, _, _ := strings.Cut(m, "|")
		for _, from := range users {
			if i := strings.Index(m, from.Name+">"+u.Name+"#"); i >= 0 {
				stored[m[i:i+len(from.Name)+len(u.Name)+7]] = seq
			}
		}
	}
	var b strings.Builder
	n := 0
	for _, from := range users {
		for k := 0; k < want[from.Name][u.Name]; k++ {
			body := fmt.Sprintf("%s>%s#%05d", from.Name, u.Name, k)
			if got[body] {
				continue
			}
			n++
			if n <= 20 {
				if seq, ok := stored[body]; ok {
					fmt.Fprintf(&b, "%s stored as seq %v; ", body, seq)
				} else {
					id, _ := bodyIDs.Load(body)
					var seen []string
					for _, e := range byName[from.Name].Seen() {
						switch {
						case e.Kind == client.EventError && e.Err.GetClientMsgId() == id:
							seen = append(seen, fmt.Sprintf("error %d %s", e.Err.Code, e.Err.Text))
						case e.Kind == client.EventReceipt && e.Receipt.GetClientMsgId() == id:
							seen = append(seen, fmt.Sprintf("%v %s", e.Receipt.Status, e.Receipt.MsgId))
						}
					}
					fmt.Fprintf(&b, "%s (%v) NOT stored (sender saw %v); ", body, id, seen)
				}
			}
		}
	}
	kinds := map[client.EventKind]int{}
	var reasons []string
	for _, e := range u.Seen() {
		kinds[e.Kind]++
		if e.Kind == client.EventDisconnected || e.Kind == client.EventKicked || (e.Kind == client.EventError && e.Err.GetClientMsgId() == "") {
			reasons = append(reasons, fmt.Sprintf("%v:%s%v", e.Kind, e.Reason, e.Err))
		}
	}
	return fmt.Sprintf("%d missing (inbox holds %d entries; client info %+v; events %v; disconnects %v): %s",
		n, len(entries), u.Info(), kinds, reasons, b.String())
}

// TestRedisFrozen freezes Redis (SIGSTOP) while a client sends: the route's
// commands time out with their bytes already in Redis's socket buffers, and
// go-redis and the gateway retry them. When Redis runs again it executes
// the first tries and the retries alike. Every message is still stored once
// and delivered once, in order, and the sender gets SENT for each (its SDK
// resends with the same client_msg_id until it does).
func TestRedisFrozen(t *testing.T) {
	testRedisFrozen(t, harness.Options{})
}

// TestRedisFrozenRouteReplicas: the same with the gateways' uplinks handled
// by the route replicas inside them.
func TestRedisFrozenRouteReplicas(t *testing.T) {
	testRedisFrozen(t, harness.Options{RouteReplica: true})
}

// TestRedisFrozenSeveralDevices: the same with --login-policy platform,
// where each message also has a copy in alice's inbox, stored after it in
// a round trip of its own. The attempt that gets through finds the frozen
// messages stored by the earlier ones (resends): their copies are stored
// then, each once.
func TestRedisFrozenSeveralDevices(t *testing.T) {
	testRedisFrozen(t, harness.Options{RouteArgs: []string{"--login-policy", "platform"}})
}

// TestRedisFrozenGroup: the same for group messages stored per member
// (a small group), while Redis is frozen: the claim of each message's
// gdedup key, the copies and the finish are written and retried alike.
// Every member online sees each message once, in order, and one offline
// shows them once, in order, at its next login. (An attempt after one that
// died mid-fan-out marks its copies once, and a pipeline of copies is never
// replayed by go-redis, so the inboxes hold each message once, as logged;
// Redis's order among sockets when it thaws could still let a frozen
// attempt's copy land after its retry's, which the clients drop as a
// msgId they showed.)
func TestRedisFrozenGroup(t *testing.T) {
	testRedisFrozenGroup(t, nil)
}

// TestRedisFrozenGroupTimeline: the same with the group's messages stored
// once, in its timeline (--group-timeline-min 2).
func TestRedisFrozenGroupTimeline(t *testing.T) {
	testRedisFrozenGroup(t, []string{"--group-timeline-min", "2"})
}

func testRedisFrozenGroup(t *testing.T, routeArgs []string) {
	c := harness.Start(t, harness.Options{Gateways: 2, GatewayArgs: []string{"--route-retry", "1s"}, RouteArgs: routeArgs})
	ctx := ctxT(t)
	alice := c.Connect(t, "alice", fastResend)
	bob := c.Connect(t, "bob")
	carol := c.Connect(t, "carol")
	gid := openGroup(t, ctx, alice, "crew", bob, carol)
	carol.Close(ctx)
	var bodies, ids []string
	send := func(body string) {
		t.Helper()
		id, err := alice.SendGroup(ctx, gid, body)
		if err != nil {
			t.Fatal(err)
		}
		bodies, ids = append(bodies, body), append(ids, id)
	}
	for i := range 2 {
		send(fmt.Sprintf("before %d", i))
		alice.WaitFor(t, 0, wait, "SENT", isSent(ids[i]))
	}
	freezeRedis(t, c, func() {
		for i := range 4 {
			send(fmt.Sprintf("frozen %d", i))
		}
	})
	for i := range 2 {
		send(fmt.Sprintf("after %d", i))
	}
	for _, id := range ids {
		alice.WaitFor(t, 0, wait, "SENT for "+id, isSent(id))
	}
	groupBodies := func(u *harness.User) []string {
		var got []string
		for _, m := range received(u) {
			if m.Group == gid {
				got = append(got, string(m.Body))
			}
		}
		return got
	}
	check := func(u *harness.User) {
		t.Helper()
		harness.Eventually(t, wait, func() error {
			if n := len(groupBodies(u)); n < len(bodies) {
				return fmt.Errorf("%s has %d of %d messages", u.Name, n, len(bodies))
			}
			return nil
		})
		if got := groupBodies(u); !slices.Equal(got, bodies) {
			t.Fatalf("%s got %q, want %q (each once, in order)", u.Name, got, bodies)
		}
	}
	check(bob)
	carol = c.Connect(t, "carol")
	check(carol)
	rdb := redis.NewClient(&redis.Options{Addr: c.Redis.Addr})
	defer rdb.Close()
	for _, u := range []*harness.User{bob, carol} {
		n, _ := rdb.LLen(context.Background(), "cim:inbox:{"+u.ID+"}").Result()
		t.Logf("%s's inbox holds %d entries for %d messages", u.Name, n, len(bodies))
	}
}

// freezeRedis stops Redis (SIGSTOP), runs during, and lets Redis run again
// once a gateway gave up on a batch (its retries included): the route's
// Redis commands for it were written and not answered.
func freezeRedis(t *testing.T, c *harness.Cluster, during func()) {
	t.Helper()
	c.Redis.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { c.Redis.Signal(syscall.SIGCONT) })
	during()
	for _, g := range c.Gateways {
		if _, err := testenv.WaitLog(ctxT(t), g.Process, "uplink batch failed"); err == nil {
			break
		} else if g == c.Gateways[len(c.Gateways)-1] {
			t.Fatal(err)
		}
	}
	c.Redis.Signal(syscall.SIGCONT)
}

func testRedisFrozen(t *testing.T, opts harness.Options) {
	devices := slices.Contains(opts.RouteArgs, "platform")
	opts.Gateways, opts.GatewayArgs = 2, []string{"--route-retry", "1s"}
	c := harness.Start(t, opts)
	alice := c.Connect(t, "alice", fastResend)
	bob := c.Connect(t, "bob")
	var bodies, ids []string
	send := func(body string) {
		t.Helper()
		id, err := alice.Send(ctxT(t), "bob", body)
		if err != nil {
			t.Fatal(err)
		}
		bodies, ids = append(bodies, body), append(ids, id)
	}
	for i := range 3 {
		send(fmt.Sprintf("before %d", i))
		alice.WaitFor(t, 0, wait, "SENT", isSent(ids[i]))
	}
	freezeRedis(t, c, func() {
		for i := range 5 {
			send(fmt.Sprintf("frozen %d", i))
		}
	})
	for i := range 3 {
		send(fmt.Sprintf("after %d", i))
	}
	for _, id := range ids {
		alice.WaitFor(t, 0, wait, "SENT for "+id, isSent(id))
	}
	for _, e := range alice.Seen() {
		// The gateway ends the link of a session whose batch failed (ERROR
		// Reconnect, no message named): a failure for a message is final.
		if e.Kind == client.EventError && e.Err.GetClientMsgId() != "" {
			t.Fatalf("alice got a final error for a message: %+v", e.Err)
		}
	}
	harness.Eventually(t, wait, func() error {
		if n := len(received(bob)); n < len(bodies) {
			return fmt.Errorf("bob has %d of %d messages", n, len(bodies))
		}
		return nil
	})
	var got []string
	for _, m := range received(bob) {
		got = append(got, string(m.Body))
	}
	if !slices.Equal(got, bodies) {
		t.Fatalf("bob got %q, want %q (each once, in order)", got, bodies)
	}
	rdb := redis.NewClient(&redis.Options{Addr: c.Redis.Addr})
	defer rdb.Close()
	inboxes := map[string]string{"bob": bob.ID}
	if devices {
		inboxes["alice"] = alice.ID // her copies
	}
	for name, id := range inboxes {
		entries, err := rdb.LRange(context.Background(), "cim:inbox:{"+id+"}", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, body := range bodies {
			n := 0
			for _, e := range entries {
				if strings.Contains(e, body) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%q is in %s's inbox %d times, want once", body, name, n)
			}
		}
	}
}
