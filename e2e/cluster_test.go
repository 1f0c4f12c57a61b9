package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
	"github.com/gocim/gocim/proto/codes"
)

const wait = 30 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// rawLogin logs name in through the route and opens a bare TCP connection to
// the gateway it was given, sending LOGIN with the token; it returns once
// the login SYNC is answered.
func rawLogin(t *testing.T, c *harness.Cluster, name string) (net.Conn, *codec.Reader, client.LoginResult) {
	t.Helper()
	c.Register(t, name)
	lr, err := client.NewAPI(c.Route.URL, nil).Login(ctxT(t), name, harness.Password)
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	conn := dial(t, net.JoinHostPort(lr.Server.Host, strconv.Itoa(lr.Server.TCPPort)))
	writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 1, Login: &cimpb.Login{Token: lr.Token}})
	r := codec.NewReader(conn, 0)
	f := readFrame(t, conn, r)
	if f.Type != cimpb.Type_LOGIN_ACK || f.ReqId != 1 || f.LoginAck.GetUserId() != lr.UserID {
		t.Fatalf("want LOGIN_ACK for %s, got %v", lr.UserID, f)
	}
	// The gateway asks the route for the inbox on the client's behalf; wait
	// for that answer (a new user's inbox is empty: just the SYNC frame) so
	// that the caller's exchange is not interleaved with it.
	for f.Type != cimpb.Type_SYNC {
		f = readFrame(t, conn, r)
	}
	return conn, r, lr
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func writeFrame(t *testing.T, conn net.Conn, f *cimpb.Frame) {
	t.Helper()
	b, err := codec.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
}

func readFrame(t *testing.T, conn net.Conn, r *codec.Reader) *cimpb.Frame {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(wait))
	f, err := r.ReadFrame()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

// expectClosed reads until the gateway closes the connection and returns the
// ERROR frame it sent before closing, if any.
func expectClosed(t *testing.T, conn net.Conn, r *codec.Reader) *cimpb.Error {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(wait))
	var last *cimpb.Error
	for {
		f, err := r.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection still open after %v", wait)
			}
			return last
		}
		if f.Type == cimpb.Type_ERROR {
			last = f.Error
		}
	}
}

// TestHeartbeat: PING is answered with PONG; a connection silent past the
// gateway's read timeout is closed; a client heartbeating faster than that
// stays connected all the while.
func TestHeartbeat(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1, GatewayArgs: []string{"--read-timeout", "1s"}})
	chatty := c.Connect(t, "chatty", func(cfg *client.Config) { cfg.Heartbeat = 200 * time.Millisecond })
	// Three silent connections in a row, each closed by the gateway after a
	// full read timeout: the heartbeating client outlives all of them.
	for i := 0; i < 3; i++ {
		conn, r, _ := rawLogin(t, c, fmt.Sprintf("silent%d", i))
		writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_PING})
		if f := readFrame(t, conn, r); f.Type != cimpb.Type_PONG {
			t.Fatalf("PING answered with %v, want PONG", f.Type)
		}
		expectClosed(t, conn, r)
	}
	for _, e := range chatty.Seen() {
		if e.Kind == client.EventDisconnected {
			t.Fatalf("heartbeating client was disconnected: %+v", e)
		}
	}
	if !chatty.Info().Connected {
		t.Fatal("heartbeating client is not connected")
	}
}

// TestMissingPongMeansDeadLink freezes the gateway a client is on (SIGSTOP:
// its sockets stay open but nothing answers): the client must notice the
// missing PONG, log in again, and land on the other gateway.
func TestMissingPongMeansDeadLink(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	u := c.Connect(t, "frozen", func(cfg *client.Config) {
		cfg.Heartbeat = 200 * time.Millisecond
		cfg.PongTimeout = 500 * time.Millisecond
		cfg.DialTimeout = time.Second
	})
	first := u.Info().Gateway
	g := c.Gateway(first)
	g.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { g.Signal(syscall.SIGCONT) })

	u.WaitFor(t, 0, wait, "disconnect", harness.IsKind(client.EventDisconnected))
	i := u.WaitFor(t, 0, wait, "reconnect to the other gateway", func(e client.Event) bool {
		return e.Kind == client.EventConnected && e.Gateway != first
	})
	_ = i
	peer := c.Connect(t, "peer")
	if _, err := peer.Send(ctxT(t), "frozen", "still there?"); err != nil {
		t.Fatal(err)
	}
	u.WaitFor(t, 0, wait, "message after moving", harness.IsMessage("still there?"))
}

// TestGatewayKill SIGKILLs a gateway: its clients log in again and land on
// the survivor, the route stops handing out the dead gateway once its
// ZooKeeper node is gone and clears the sessions it held, and chat goes on.
func TestGatewayKill(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	var users []*harness.User
	for i := 0; i < 6; i++ {
		users = append(users, c.Connect(t, fmt.Sprintf("user%d", i)))
	}
	victim := c.Gateways[0]
	var moved, stayed []*harness.User
	for _, u := range users {
		if u.Info().Gateway == victim.ID {
			moved = append(moved, u)
		} else {
			stayed = append(stayed, u)
		}
	}
	if len(moved) == 0 || len(stayed) == 0 {
		t.Fatalf("round-robin put %d users on %s and %d elsewhere; want both non-zero", len(moved), victim.ID, len(stayed))
	}
	marks := make([]int, len(users))
	for i, u := range users {
		marks[i] = u.Len()
	}

	passwordLogins := func() int {
		return int(metric(t, c.Route.InternalURL, "gocim_route_logins_total") - metric(t, c.Route.InternalURL, "gocim_route_resumed_logins_total"))
	}
	before := passwordLogins()
	victim.Kill()

	survivor := c.Gateways[1].ID
	for _, u := range moved {
		u.WaitFor(t, 0, wait, u.Name+" reconnecting to the survivor", func(e client.Event) bool {
			return e.Kind == client.EventConnected && e.Gateway == survivor
		})
	}
	// They came back with their resume tokens: no password checked (no
	// bcrypt) since the kill.
	if after, resumed := passwordLogins(), metric(t, c.Route.InternalURL, "gocim_route_resumed_logins_total"); after != before || int(resumed) < len(moved) {
		t.Fatalf("%d password logins before the kill, %d after; %v resumed: want no password login and at least %d resumed (the moved users)",
			before, after, resumed, len(moved))
	}
	// The route drops the dead gateway once ZooKeeper says so...
	harness.Eventually(t, wait, func() error {
		if n, err := c.LiveGateways(); err != nil || n != 1 {
			return fmt.Errorf("route hands out %d gateways (%v), want 1", n, err)
		}
		return nil
	})
	api := client.NewAPI(c.Route.URL, nil)
	for i := 0; i < 4; i++ {
		name := fmt.Sprintf("late%d", i)
		c.Register(t, name)
		lr, err := api.Login(ctxT(t), name, harness.Password)
		if err != nil {
			t.Fatal(err)
		}
		if lr.Server.ID == victim.ID {
			t.Fatalf("route handed out the dead gateway %s after its node disappeared", victim.ID)
		}
	}
	// ...and clears the sessions it held.
	rdb := redis.NewClient(&redis.Options{Addr: c.Redis.Addr})
	defer rdb.Close()
	harness.Eventually(t, wait, func() error {
		n, err := rdb.SCard(context.Background(), "cim:server:"+victim.ID+":users").Result()
		if err != nil || n != 0 {
			return fmt.Errorf("dead gateway still holds %d sessions (%v)", n, err)
		}
		return nil
	})
	// Everybody keeps chatting: each moved user talks to a user who stayed.
	for i, u := range moved {
		to := stayed[i%len(stayed)]
		body := fmt.Sprintf("after kill %d", i)
		if _, err := u.Send(ctxT(t), to.Name, body); err != nil {
			t.Fatal(err)
		}
		to.WaitFor(t, 0, wait, body, harness.IsMessage(body))
		back := "reply " + body
		if _, err := to.Send(ctxT(t), u.Name, back); err != nil {
			t.Fatal(err)
		}
		u.WaitFor(t, 0, wait, back, harness.IsMessage(back))
	}
	for i, u := range stayed {
		_ = i
		for _, e := range u.Seen() {
			if e.Kind == client.EventDisconnected {
				t.Fatalf("%s on the surviving gateway was disconnected: %+v", u.Name, e)
			}
		}
	}
}

// TestLateDisconnectKeepsNewSession: a user logs in again (the old session is
// kicked); a disconnect report for the old session arriving late must not
// erase the new one.
func TestLateDisconnectKeepsNewSession(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	old := c.Connect(t, "erin")
	oldInfo := old.Info()
	fresh := c.Connect(t, "erin")
	old.WaitFor(t, 0, wait, "kick of the old session", harness.IsKind(client.EventKicked))

	// The old gateway's disconnect report, delivered late.
	var env harness.Envelope
	status, err := harness.Call("POST", c.Route.InternalURL+"/internal/offline", harness.Internal(), map[string]string{
		"userId": oldInfo.UserID, "sessionId": oldInfo.SessionID, "gatewayId": oldInfo.Gateway,
	}, &env)
	if err != nil || status != 200 {
		t.Fatalf("late offline: status %d, %v", status, err)
	}

	frank := c.Connect(t, "frank")
	if _, err := frank.Send(ctxT(t), "erin", "for the new session"); err != nil {
		t.Fatal(err)
	}
	fresh.WaitFor(t, 0, wait, "message on the new session", harness.IsMessage("for the new session"))
	for _, e := range old.Seen() {
		if harness.IsMessage("for the new session")(e) {
			t.Fatal("kicked session received a message")
		}
	}
}

// TestRejectPolicy: with --login-policy reject a second login of an online
// user is refused with CIM's code 5000, as CIM does.
func TestRejectPolicy(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{"--login-policy", "reject"}})
	c.Connect(t, "gina")
	_, err := client.NewAPI(c.Route.URL, nil).Login(ctxT(t), "gina", harness.Password)
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != codes.RepeatLogin || apiErr.HTTPStatus != 409 {
		t.Fatalf("second login: got %v, want code 5000 with HTTP 409", err)
	}
}

// TestRouteRestartLosesNothing kills the route while a client keeps sending:
// the gateway holds and retries the uplinks, and after the route is back
// every message arrives, in order, and every sender gets its SENT receipt.
func TestRouteRestartLosesNothing(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	alice := c.Connect(t, "alice")
	bob := c.Connect(t, "bob")
	const n = 30
	send := func(i int) {
		if _, err := alice.Send(ctxT(t), "bob", fmt.Sprintf("m%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n/3; i++ {
		send(i)
	}
	c.Route.Kill()
	for i := n / 3; i < 2*n/3; i++ {
		send(i)
	}
	c.StartRoute()
	for i := 2 * n / 3; i < n; i++ {
		send(i)
	}
	next := 0
	for i := 0; i < n; i++ {
		next = bob.WaitFor(t, next, wait, fmt.Sprintf("m%03d in order", i), harness.IsMessage(fmt.Sprintf("m%03d", i))) + 1
	}
	sent := 0
	harness.Eventually(t, wait, func() error {
		sent = 0
		for _, e := range alice.Seen() {
			if e.Kind == client.EventReceipt && e.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT {
				sent++
			}
		}
		if sent != n {
			return fmt.Errorf("%d SENT receipts, want %d", sent, n)
		}
		return nil
	})
	for _, e := range append(alice.Seen(), bob.Seen()...) {
		if e.Kind == client.EventDisconnected || e.Kind == client.EventError {
			t.Fatalf("route restart disturbed a client: %+v", e)
		}
	}
}

// TestZooKeeperRestart stops ZooKeeper while clients are connected: chat goes
// on, nobody is disconnected, and once ZooKeeper is back the gateways are
// registered again and new logins work.
func TestZooKeeperRestart(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	alice := c.Connect(t, "alice")
	bob := c.Connect(t, "bob")
	c.ZK.Kill()
	if _, err := alice.Send(ctxT(t), "bob", "zk is down"); err != nil {
		t.Fatal(err)
	}
	bob.WaitFor(t, 0, wait, "message while ZooKeeper is down", harness.IsMessage("zk is down"))
	c.ZK.Restart()
	harness.Eventually(t, wait, func() error {
		if n, err := c.LiveGateways(); err != nil || n != 2 {
			return fmt.Errorf("route sees %d gateways (%v), want 2", n, err)
		}
		return nil
	})
	carol := c.Connect(t, "carol")
	if _, err := carol.Send(ctxT(t), "alice", "zk is back"); err != nil {
		t.Fatal(err)
	}
	alice.WaitFor(t, 0, wait, "message after ZooKeeper returned", harness.IsMessage("zk is back"))
	for _, u := range []*harness.User{alice, bob} {
		for _, e := range u.Seen() {
			if e.Kind == client.EventDisconnected {
				t.Fatalf("%s was disconnected by a ZooKeeper restart: %+v", u.Name, e)
			}
		}
	}
}

// TestBadInput: hostile or broken input gets a clear error and a clean close
// or rejection, and the cluster keeps serving.
func TestBadInput(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2, GatewayArgs: []string{"--max-frame", "1024"}})
	g0, g1 := c.Gateways[0], c.Gateways[1]

	t.Run("garbage bytes", func(t *testing.T) {
		conn := dial(t, g0.TCPAddr)
		conn.Write([]byte{0x05, 0xff, 0xff, 0xff, 0xff, 0xff})
		e := expectClosed(t, conn, codec.NewReader(conn, 0))
		if e == nil || codes.Code(e.Code) != codes.BadFrame {
			t.Fatalf("got %v, want ERROR %d", e, codes.BadFrame)
		}
	})
	t.Run("oversized frame", func(t *testing.T) {
		conn := dial(t, g0.TCPAddr)
		writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_LOGIN, Login: &cimpb.Login{Token: string(make([]byte, 4096))}})
		e := expectClosed(t, conn, codec.NewReader(conn, 0))
		if e == nil || codes.Code(e.Code) != codes.FrameTooLarge {
			t.Fatalf("got %v, want ERROR %d", e, codes.FrameTooLarge)
		}
	})
	t.Run("forged token", func(t *testing.T) {
		conn := dial(t, g0.TCPAddr)
		writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_LOGIN, Login: &cimpb.Login{Token: "eyJ1aWQiOiIxIn0.AAAA"}})
		e := expectClosed(t, conn, codec.NewReader(conn, 0))
		if e == nil || codes.Code(e.Code) != codes.Unauthorized {
			t.Fatalf("got %v, want ERROR %d", e, codes.Unauthorized)
		}
	})
	t.Run("token for another gateway", func(t *testing.T) {
		c.Register(t, "henry")
		lr, err := client.NewAPI(c.Route.URL, nil).Login(ctxT(t), "henry", harness.Password)
		if err != nil {
			t.Fatal(err)
		}
		other := g0
		if lr.Server.ID == g0.ID {
			other = g1
		}
		conn := dial(t, other.TCPAddr)
		writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_LOGIN, Login: &cimpb.Login{Token: lr.Token}})
		e := expectClosed(t, conn, codec.NewReader(conn, 0))
		if e == nil || codes.Code(e.Code) != codes.WrongGateway {
			t.Fatalf("got %v, want ERROR %d", e, codes.WrongGateway)
		}
	})
	t.Run("chat before login", func(t *testing.T) {
		conn := dial(t, g0.TCPAddr)
		writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{To: "1", Body: []byte("x")}})
		e := expectClosed(t, conn, codec.NewReader(conn, 0))
		if e == nil {
			t.Fatal("no ERROR before close")
		}
	})
	t.Run("unknown frame type after login", func(t *testing.T) {
		conn, r, _ := rawLogin(t, c, "ivan")
		writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type(99)})
		f := readFrame(t, conn, r)
		if f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.BadFrame {
			t.Fatalf("got %v, want ERROR %d", f, codes.BadFrame)
		}
		writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_PING})
		if f := readFrame(t, conn, r); f.Type != cimpb.Type_PONG {
			t.Fatalf("connection unusable after an unknown frame: %v", f)
		}
	})
	t.Run("unknown recipient", func(t *testing.T) {
		u := c.Connect(t, "judy")
		c.Register(t, "kim") // exists, never logs in
		id, err := u.Send(ctxT(t), "nobody-here", "x")
		if err != nil {
			t.Fatal(err)
		}
		u.WaitFor(t, 0, wait, "unknown-user error", func(e client.Event) bool {
			return e.Kind == client.EventError && e.Err.ClientMsgId == id && codes.Code(e.Err.Code) == codes.BadAccount
		})
		id, err = u.Send(ctxT(t), "kim", "x")
		if err != nil {
			t.Fatal(err)
		}
		// An offline recipient is no error: the message waits in its inbox.
		u.WaitFor(t, 0, wait, "SENT for an offline recipient", func(e client.Event) bool {
			return e.Kind == client.EventReceipt && e.Receipt.ClientMsgId == id && e.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT
		})
	})
	t.Run("route rejects bad requests", func(t *testing.T) {
		cases := []struct {
			path   string
			body   any
			status int
			code   codes.Code
		}{
			{"/registerAccount", "not an object", 400, codes.BadArgument},
			{"/registerAccount", map[string]string{"userName": "x"}, 400, codes.BadArgument},
			{"/registerAccount", map[string]string{"userName": "9starts-with-digit", "password": "secret1"}, 400, codes.BadArgument},
			{"/login", map[string]string{"userName": "nobody", "password": "secret1"}, 401, codes.BadAccount},
			{"/login", map[string]string{"userName": "judy", "password": "wrong-password"}, 401, codes.BadAccount},
			{"/p2pRoute", map[string]string{"userId": "1", "receiveUserId": "nobody-here", "msg": "x"}, 401, codes.BadAccount},
			{"/p2pRoute", map[string]string{"userId": "1", "receiveUserId": "kim"}, 400, codes.BadArgument},
		}
		for _, tc := range cases {
			var env harness.Envelope
			status, err := harness.Call("POST", c.Route.URL+tc.path, harness.APIKey(harness.PushKey), tc.body, &env)
			if err != nil {
				t.Fatalf("%s: %v", tc.path, err)
			}
			if status != tc.status || codes.Code(env.Code) != tc.code {
				t.Errorf("%s %v: got HTTP %d code %d (%s), want %d/%d", tc.path, tc.body, status, env.Code, env.Message, tc.status, tc.code)
			}
		}
	})
	t.Run("cluster still serves", func(t *testing.T) {
		a := c.Connect(t, "leo")
		b := c.Connect(t, "mia")
		if _, err := a.Send(ctxT(t), "mia", "fine"); err != nil {
			t.Fatal(err)
		}
		b.WaitFor(t, 0, wait, "message", harness.IsMessage("fine"))
	})
	_ = io.EOF
}

// TestGatewaySessionExpiry pauses a gateway (SIGSTOP) past its ZooKeeper
// session timeout, as a long GC or VM pause would: ZooKeeper drops its node
// and the route clears its sessions. Once it runs again it registers anew and
// re-asserts the connections it kept, so its users are reachable again
// without reconnecting.
func TestGatewaySessionExpiry(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	var paused, other *harness.User
	for i := 0; paused == nil || other == nil; i++ {
		u := c.Connect(t, fmt.Sprintf("u%d", i))
		if u.Info().Gateway == c.Gateways[0].ID {
			paused = u
		} else {
			other = u
		}
	}
	g := c.Gateways[0]
	g.Signal(syscall.SIGSTOP)
	harness.Eventually(t, wait, func() error {
		if n, err := c.LiveGateways(); err != nil || n != 1 {
			return fmt.Errorf("route sees %d gateways (%v), want 1 while paused", n, err)
		}
		return nil
	})
	rdb := redis.NewClient(&redis.Options{Addr: c.Redis.Addr})
	defer rdb.Close()
	harness.Eventually(t, wait, func() error {
		if n := rdb.Exists(context.Background(), "cim:route:{"+paused.ID+"}").Val(); n != 0 {
			return fmt.Errorf("route of the paused gateway's user not cleared yet")
		}
		return nil
	})
	g.Signal(syscall.SIGCONT)
	harness.Eventually(t, wait, func() error {
		if n, err := c.LiveGateways(); err != nil || n != 2 {
			return fmt.Errorf("route sees %d gateways (%v), want 2 after resume", n, err)
		}
		return nil
	})
	harness.Eventually(t, wait, func() error {
		if n := rdb.Exists(context.Background(), "cim:route:{"+paused.ID+"}").Val(); n != 1 {
			return fmt.Errorf("route of %s not re-asserted", paused.Name)
		}
		return nil
	})
	if _, err := other.Send(ctxT(t), paused.Name, "welcome back"); err != nil {
		t.Fatal(err)
	}
	paused.WaitFor(t, 0, wait, "message after the pause", harness.IsMessage("welcome back"))
	for _, e := range paused.Seen() {
		if e.Kind == client.EventDisconnected {
			t.Fatalf("paused gateway's user had to reconnect: %+v", e)
		}
	}
}

// TestZooKeeperFrozen freezes ZooKeeper (SIGSTOP, as a long GC or VM pause
// would) past the gateways' session timeout, then thaws it: ZooKeeper may
// then expire every gateway's session at once. Chat goes on while it is
// frozen and while the cluster recovers, nobody is disconnected, every
// message is delivered once and in order, and both gateways are registered
// again.
func TestZooKeeperFrozen(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	alice := c.Connect(t, "alice")
	bob := c.Connect(t, "bob")
	send := func(body string) {
		t.Helper()
		id, err := alice.Send(ctxT(t), "bob", body)
		if err != nil {
			t.Fatal(err)
		}
		alice.WaitFor(t, 0, wait, "SENT for "+body, func(e client.Event) bool {
			return e.Kind == client.EventReceipt && e.Receipt.ClientMsgId == id && e.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT
		})
	}
	var bodies []string
	next := func() {
		t.Helper()
		bodies = append(bodies, fmt.Sprintf("msg %d", len(bodies)))
		send(bodies[len(bodies)-1])
	}
	next()

	frozen := time.Now()
	c.ZK.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { c.ZK.Signal(syscall.SIGCONT) })
	for _, g := range c.Gateways {
		harness.Eventually(t, wait, func() error {
			if code := status(g.HTTPAddr, "/readyz"); code != http.StatusServiceUnavailable {
				return fmt.Errorf("gateway %s /readyz %d while ZooKeeper is frozen, want 503", g.ID, code)
			}
			return nil
		})
	}
	next()
	// The fault's length, not a synchronisation: the freeze must outlast
	// the gateways' session timeout (2s in the harness) for ZooKeeper to
	// expire their sessions when it runs again.
	time.Sleep(time.Until(frozen.Add(3 * time.Second)))
	next()
	c.ZK.Signal(syscall.SIGCONT)

	// Messages keep flowing while the gateways find ZooKeeper again (each
	// waits for its SENT).
	deadline := time.Now().Add(wait)
	for {
		next()
		n, err := c.LiveGateways()
		ready := err == nil && n == 2
		for _, g := range c.Gateways {
			ready = ready && status(g.HTTPAddr, "/readyz") == http.StatusOK
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateways not back in ZooKeeper after %d messages: route sees %d (%v)", len(bodies), n, err)
		}
	}
	next()
	harness.Eventually(t, wait, func() error {
		if got := len(received(bob)); got < len(bodies) {
			return fmt.Errorf("bob has %d of %d messages", got, len(bodies))
		}
		return nil
	})
	got := received(bob)
	if len(got) != len(bodies) {
		t.Fatalf("bob got %d messages, want %d (each once)", len(got), len(bodies))
	}
	for i, m := range got {
		if string(m.Body) != bodies[i] {
			t.Fatalf("bob's message %d is %q, want %q (in order)", i, m.Body, bodies[i])
		}
	}
	carol := c.Connect(t, "carol")
	if _, err := carol.Send(ctxT(t), "alice", "zk thawed"); err != nil {
		t.Fatal(err)
	}
	alice.WaitFor(t, 0, wait, "message after the thaw", harness.IsMessage("zk thawed"))
	for _, u := range []*harness.User{alice, bob} {
		for _, e := range u.Seen() {
			if e.Kind == client.EventDisconnected {
				t.Fatalf("%s was disconnected by a frozen ZooKeeper: %+v", u.Name, e)
			}
		}
	}
}

// status is the HTTP status of GET http://addr+path (0: no answer).
func status(addr, path string) int {
	hc := http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
