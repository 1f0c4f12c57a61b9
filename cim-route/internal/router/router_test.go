package router

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"github.com/gocim/gocim/cim-route/internal/balance"
	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/fanout"
	"github.com/gocim/gocim/cim-route/internal/files"
	"github.com/gocim/gocim/cim-route/internal/gatewaytest"
	"github.com/gocim/gocim/cim-route/internal/memstore"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/cim-route/internal/store"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
	"github.com/gocim/gocim/proto/token"
)

var (
	quiet = slog.New(slog.DiscardHandler)
	keys  = [][]byte{[]byte("test-secret-0123456789")}
)

func TestMain(m *testing.M) {
	store.SetRedisLogger(quiet)
	// go-redis keeps redialling a Redis that a test killed for a second
	// after its client closed; everything else must be gone.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

// countingStore counts the round trips the hot path makes.
type countingStore struct {
	Store
	// routes counts Routes calls (route reads of their own), routed the
	// users they read; writes counts Write calls (appends, acks and route
	// reads in one round trip).
	lookups, routes, routed, onlineIDs, writes, ranges atomic.Int32
	// failWrite, when set, fails the Writes it returns true for.
	failWrite atomic.Pointer[func(model.Write) bool]
}

func (c *countingStore) Write(ctx context.Context, w model.Write) (model.Written, error) {
	c.writes.Add(1)
	if f := c.failWrite.Load(); f != nil && (*f)(w) {
		return model.Written{}, errs.ErrUnavailable
	}
	return c.Store.Write(ctx, w)
}

func (c *countingStore) Ranges(ctx context.Context, qs []model.RangeQuery) ([]model.Range, error) {
	c.ranges.Add(1)
	return c.Store.Ranges(ctx, qs)
}

func (c *countingStore) Lookup(ctx context.Context, ids, names []string) (map[string]string, map[string]string, error) {
	c.lookups.Add(1)
	return c.Store.Lookup(ctx, ids, names)
}

func (c *countingStore) Routes(ctx context.Context, uids []string) (map[string]model.Route, error) {
	c.routes.Add(1)
	c.routed.Add(int32(len(uids)))
	return c.Store.Routes(ctx, uids)
}

func (c *countingStore) OnlineIDs(ctx context.Context) ([]string, error) {
	c.onlineIDs.Add(1)
	return c.Store.OnlineIDs(ctx)
}

type env struct {
	t     testing.TB
	ctx   context.Context
	redis *testenv.Redis
	rdb   redis.UniversalClient
	st    *countingStore
	bal   *balance.Balancer
	r     *Router
	gws   []*gatewaytest.Gateway
}

// redisTests are the tests that reach Redis itself (e.rdb, e.redis: its
// keys, killing it, hooks counting its round trips); newEnv gives them the
// Redis store on a real Redis, every other test the memory store. With
// CIM_ROUTER_STORE=redis every test runs on Redis.
var redisTests = map[string]bool{
	"TestGroupMessages":                   true,
	"TestBlocks":                          true,
	"TestGroupTimeline":                   true,
	"TestGroupHistory":                    true,
	"TestGroupFanout5000":                 true,
	"TestSentOnlyAfterStore":              true,
	"TestSyncAfterTrimming":               true,
	"TestReceipts":                        true,
	"TestAckManyEntries":                  true,
	"TestResendDedup":                     true,
	"TestRegisterAndLogin":                true,
	"TestResumeToken":                     true,
	"TestResumeTokenPerPlatform":          true,
	"TestResumeTokenReused":               true,
	"TestResumeTokenGrace":                true,
	"TestChangePassword":                  true,
	"TestUplinkPrivate":                   true,
	"TestHTTPRoutes":                      true,
	"TestLogoffAndOnlineUsers":            true,
	"TestJanitorClearsDeadGateways":       true,
	"TestRedisDown":                       true,
	"TestExternalAuthenticator":           true,
	"TestPushFromSystem":                  true,
	"TestPlatformPolicy":                  true,
	"TestDeviceLogin":                     true,
	"TestGroupCopiesCountAgainstTheShare": true,
	"TestPlatformCopyFollowsItsMessage":   true,
}

// onRedis reports whether t's env runs on Redis.
func onRedis(t testing.TB) bool {
	top, _, _ := strings.Cut(t.Name(), "/")
	return redisTests[top] || os.Getenv("CIM_ROUTER_STORE") == "redis"
}

// newEnv starts a Router with gateways on the memory store, or on the
// Redis store and a real Redis for the tests in redisTests.
func newEnv(t testing.TB, policy string, gateways int, opts ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	e.ctx = ctx
	if onRedis(t) {
		e.redis = testenv.StartRedis(t)
		e.rdb = store.NewClient(store.ClientConfig{Addrs: []string{e.redis.Addr}})
		t.Cleanup(func() { e.rdb.Close() })
		var opts []store.Option
		if policy == PolicyPlatform {
			opts = append(opts, store.WithDeviceSlots())
		}
		e.st = &countingStore{Store: store.New(e.rdb, "cim:", opts...)}
	} else {
		e.st = &countingStore{Store: memstore.New()}
	}
	var ids []string
	for range gateways {
		g := gatewaytest.Start(t)
		e.gws = append(e.gws, g)
		ids = append(ids, g.ID)
	}
	e.bal = balance.New(balance.Config{Logger: quiet})
	e.bal.SetGateways(ids)
	push := fanout.New(fanout.Config{Timeout: 2 * time.Second, Logger: quiet})
	t.Cleanup(push.Close)
	cfg := Config{
		Store: e.st, Gateways: e.bal, Pusher: push, Files: files.New(t.TempDir(), 1<<10),
		TokenKeys: keys, TokenTTL: time.Minute, LoginPolicy: policy, BcryptCost: bcrypt.MinCost,
		JanitorSettle: 10 * time.Millisecond, Logger: quiet,
	}
	for _, o := range opts {
		o(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.r = r
	return e
}

func (e *env) gateway(id string) *gatewaytest.Gateway {
	for _, g := range e.gws {
		if g.ID == id {
			return g
		}
	}
	e.t.Fatalf("no gateway %s", id)
	return nil
}

// connect registers (if needed) and logs in name, and plays the gateway's
// part: confirm the session and hold the connection.
func (e *env) connect(name string) Session {
	e.t.Helper()
	if _, err := e.r.Register(e.ctx, name, "password1"); err != nil && !errors.Is(err, errs.ErrNameTaken) {
		e.t.Fatal(err)
	}
	s, err := e.r.Login(e.ctx, LoginRequest{UserName: name, Password: "password1"})
	if err != nil {
		e.t.Fatalf("login %s: %v", name, err)
	}
	if err := e.r.SessionOnline(e.ctx, contract.Session{UserID: s.UserID, SessionID: s.SessionID, GatewayID: s.Gateway.ID}); err != nil {
		e.t.Fatalf("online %s: %v", name, err)
	}
	e.waitPushes() // the presence change
	e.gateway(s.Gateway.ID).Connect(s.UserID, s.SessionID)
	return s
}

func TestRegisterAndLogin(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	u, err := e.r.Register(e.ctx, "alice", "secret-pw")
	if err != nil || u.Name != "alice" || u.ID == "" {
		t.Fatalf("register: %+v %v", u, err)
	}
	bad := []struct{ name, pw string }{
		{"", "secret-pw"}, {"a", "secret-pw"}, {"1abc", "secret-pw"}, {"has space", "secret-pw"},
		{"abcdefghijabcdefghijabcdefghijabc", "secret-pw"}, {"bob", "short"}, {"bob", string(make([]rune, 129))},
	}
	for _, b := range bad {
		if _, err := e.r.Register(e.ctx, b.name, b.pw); !errors.Is(err, errs.ErrBadArgument) {
			t.Errorf("Register(%q, %d chars): %v, want ErrBadArgument", b.name, len(b.pw), err)
		}
	}
	if _, err := e.r.Register(e.ctx, "alice", "other-pw"); !errors.Is(err, errs.ErrNameTaken) {
		t.Fatalf("duplicate: %v", err)
	}
	// A long password is not truncated to bcrypt's 72 bytes.
	long := string(slices.Repeat([]byte("x"), 100))
	if _, err := e.r.Register(e.ctx, "carol", long); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.Login(e.ctx, LoginRequest{UserName: "carol", Password: long[:99] + "y"}); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("password differing after byte 72 accepted: %v", err)
	}

	for _, req := range []LoginRequest{
		{UserName: "alice", Password: "wrong-pw"},
		{UserName: "nobody", Password: "secret-pw"},
		{UserID: "999", Password: "secret-pw"},
		{UserID: u.ID, UserName: "carol", Password: "secret-pw"},
	} {
		if _, err := e.r.Login(e.ctx, req); !errors.Is(err, errs.ErrBadAccount) {
			t.Errorf("Login(%+v): %v, want ErrBadAccount", req, err)
		}
	}
	for _, req := range []LoginRequest{{Password: "x"}, {UserName: "alice"}, {UserID: "abc", Password: "secret-pw"}} {
		if _, err := e.r.Login(e.ctx, req); !errors.Is(err, errs.ErrBadArgument) {
			t.Errorf("Login(%+v): %v, want ErrBadArgument", req, err)
		}
	}

	s, err := e.r.Login(e.ctx, LoginRequest{UserID: u.ID, Password: "secret-pw"})
	if err != nil {
		t.Fatal(err)
	}
	if s.UserName != "alice" || s.Gateway.ID != e.gws[0].ID || len(s.SessionID) != 32 {
		t.Fatalf("session = %+v", s)
	}
	c, err := token.Verify(keys, s.Token, e.gws[0].ID, time.Now())
	if err != nil || c.UserID != u.ID || c.SessionID != s.SessionID || c.UserName != "alice" || c.ExpiresAt != s.ExpiresAt {
		t.Fatalf("token claims %+v, %v", c, err)
	}
	if ttl := e.rdb.PTTL(e.ctx, "cim:route:{"+u.ID+"}").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("pending route TTL = %v, want the token TTL", ttl)
	}

	e.bal.SetGateways(nil)
	if _, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "secret-pw"}); !errors.Is(err, errs.ErrNoGateway) {
		t.Fatalf("no gateway: %v", err)
	}
}

func TestLoginKickPolicy(t *testing.T) {
	e := newEnv(t, PolicyKick, 2)
	first := e.connect("alice")
	second := e.connect("alice") // round robin: the other gateway
	if second.Gateway.ID == first.Gateway.ID {
		t.Fatalf("both logins on %s; want the second on the other gateway", first.Gateway.ID)
	}
	old := e.gateway(first.Gateway.ID)
	frames := old.Frames(first.UserID)
	if len(frames) != 1 || frames[0].Type != cimpb.Type_KICK || frames[0].Kick.GetReason() == "" {
		t.Fatalf("old session got %v, want one KICK", frames)
	}
	if _, ok := old.Connected(first.UserID); ok {
		t.Fatal("old connection still open")
	}
	// The old connection's late disconnect does not log the new one out.
	if err := e.r.SessionOffline(e.ctx, contract.Session{UserID: first.UserID, SessionID: first.SessionID}); err != nil {
		t.Fatal(err)
	}
	if err := e.r.SessionOnline(e.ctx, contract.Session{UserID: first.UserID, SessionID: first.SessionID, GatewayID: first.Gateway.ID}); !errors.Is(err, errs.ErrStaleSession) {
		t.Fatalf("old session confirmed again: %v", err)
	}
	users, err := e.r.OnlineUsers(e.ctx, Page{})
	if err != nil || len(users) != 1 || users[0] != (User{first.UserID, "alice"}) {
		t.Fatalf("online = %v, %v", users, err)
	}
	// The new session receives messages.
	bob := e.connect("bob")
	if _, err := e.r.P2P(e.ctx, bob.UserID, "alice", "hi"); err != nil {
		t.Fatal(err)
	}
	if f := e.gateway(second.Gateway.ID).Frames(second.UserID); len(f) != 1 || string(f[0].Msg.GetBody()) != "hi" {
		t.Fatalf("new session got %v", f)
	}
}

func TestLoginRejectPolicy(t *testing.T) {
	e := newEnv(t, PolicyReject, 2)
	first := e.connect("alice")
	if _, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "password1"}); !errors.Is(err, errs.ErrRepeatLogin) {
		t.Fatalf("second login: %v, want ErrRepeatLogin", err)
	}
	if f := e.gateway(first.Gateway.ID).Frames(first.UserID); len(f) != 0 {
		t.Fatalf("reject policy kicked the first session: %v", f)
	}
	if err := e.r.SessionOffline(e.ctx, contract.Session{UserID: first.UserID, SessionID: first.SessionID}); err != nil {
		t.Fatal(err)
	}
	second := e.connect("alice")
	// Online on a gateway that died (not cleared yet): not a repeat login.
	var live []string
	for _, g := range e.gws {
		if g.ID != second.Gateway.ID {
			live = append(live, g.ID)
		}
	}
	e.bal.SetGateways(live)
	if _, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "password1"}); err != nil {
		t.Fatalf("login while the old session's gateway is dead: %v", err)
	}
}

// msgFrame is an uplink MSG.
func msgFrame(reqID uint64, cmid, to string) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: reqID, Msg: &cimpb.Msg{ClientMsgId: cmid, To: to, Body: []byte("body " + cmid)}}
}

func TestUplinkPrivate(t *testing.T) {
	e := newEnv(t, PolicyKick, 2)
	alice := e.connect("alice")
	var bobs []Session
	for i := range 20 {
		bobs = append(bobs, e.connect(fmt.Sprintf("bob%d", i)))
	}
	gone := e.connect("gone") // the gateway will report it missing
	e.gateway(gone.Gateway.ID).Disconnect(gone.UserID)
	if _, err := e.r.Register(e.ctx, "offline", "password1"); err != nil {
		t.Fatal(err)
	}

	batch := &cimpb.UplinkBatch{GatewayId: alice.Gateway.ID}
	up := func(f *cimpb.Frame) {
		batch.Uplinks = append(batch.Uplinks, &cimpb.Uplink{UserId: alice.UserID, SessionId: alice.SessionID, Frame: f})
	}
	for i, b := range bobs {
		to := b.UserName // by name for half of them, by id for the rest
		if i%2 == 1 {
			to = b.UserID
		}
		up(msgFrame(uint64(i+1), fmt.Sprint("c", i), to))
	}
	up(msgFrame(100, "c-unknown", "nobody"))
	up(msgFrame(101, "c-unknown-id", "99999"))
	up(msgFrame(102, "c-offline", "offline"))
	up(msgFrame(103, "c-gone", gone.UserID))
	up(msgFrame(104, "c-empty", ""))
	up(&cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: 3}})
	up(&cimpb.Frame{Type: cimpb.Type_READ, Read: &cimpb.Read{MsgIds: []string{"x"}}})
	up(&cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: 1}})
	up(&cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 105}) // no Msg

	pushes := e.gws[0].Pushes() + e.gws[1].Pushes()
	e.st.lookups.Store(0)
	e.st.routes.Store(0)
	e.st.writes.Store(0)
	out, err := e.r.Uplink(e.ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	e.waitPushes()
	// One lookup, one read of the senders' routes (the fence), and one
	// pipeline appending everything and reading the recipients' routes,
	// for the whole batch; one push per gateway.
	if l, r, w := e.st.lookups.Load(), e.st.routes.Load(), e.st.writes.Load(); l > 1 || r != 1 || w != 1 {
		t.Fatalf("%d lookups, %d separate route reads, %d write pipelines for one batch, want <=1, 1 and 1", l, r, w)
	}
	// Plus one each for the presence change: gone was found unreachable.
	if p := e.gws[0].Pushes() + e.gws[1].Pushes() - pushes; p != 4 {
		t.Fatalf("%d pushes for one batch over two gateways, want 2 and 2 for gone's presence change", p)
	}
	// One answer per MSG and per SYNC (its entries, none here, then the
	// SYNC frame), in uplink order; ACK and READ answer nothing.
	if len(out.Deliveries) != len(bobs)+7 {
		t.Fatalf("%d answers, want %d", len(out.Deliveries), len(bobs)+7)
	}
	msgIDs := map[string]bool{}
	for i, b := range bobs {
		d := out.Deliveries[i]
		if d.UserId != alice.UserID || d.SessionId != alice.SessionID || d.Frame.Type != cimpb.Type_RECEIPT || d.Frame.ReqId != uint64(i+1) {
			t.Fatalf("answer %d = %v", i, d)
		}
		rc := d.Frame.Receipt
		if rc.Status != cimpb.ReceiptStatus_RECEIPT_SENT || rc.ClientMsgId != fmt.Sprint("c", i) || len(rc.MsgId) != 32 || msgIDs[rc.MsgId] {
			t.Fatalf("receipt %d = %v", i, rc)
		}
		msgIDs[rc.MsgId] = true
		got := e.gateway(b.Gateway.ID).Frames(b.UserID)
		if len(got) != 1 {
			t.Fatalf("%s got %d frames", b.UserName, len(got))
		}
		m := got[0].Msg
		if got[0].Type != cimpb.Type_MSG || m.MsgId != rc.MsgId || m.From != alice.UserID || m.FromName != "alice" ||
			m.To != b.UserID || m.TimestampMs == 0 || string(m.Body) != fmt.Sprint("body c", i) || m.ClientMsgId != fmt.Sprint("c", i) || m.Seq != 1 {
			t.Fatalf("%s got %v", b.UserName, m)
		}
	}
	// Offline recipients (never connected, or gone without the route
	// knowing) are not an error: the message waits in their inbox.
	wantAnswer := []struct {
		code codes.Code // 0: RECEIPT_SENT
		cmid string
	}{{codes.BadAccount, "c-unknown"}, {codes.BadAccount, "c-unknown-id"}, {0, "c-offline"}, {0, "c-gone"}, {codes.BadArgument, "c-empty"}}
	for i, w := range wantAnswer {
		f := out.Deliveries[len(bobs)+i].Frame
		if w.code == 0 {
			if f.Type != cimpb.Type_RECEIPT || f.Receipt.Status != cimpb.ReceiptStatus_RECEIPT_SENT || f.Receipt.ClientMsgId != w.cmid || f.Receipt.Seq != 0 {
				t.Errorf("answer for %q = %v, want RECEIPT_SENT", w.cmid, f)
			}
			continue
		}
		if f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != w.code || f.Error.ClientMsgId != w.cmid || f.Error.Text == "" {
			t.Errorf("answer for %q = %v, want ERROR %d", w.cmid, f, w.code)
		}
	}
	if f := out.Deliveries[len(bobs)+5].Frame; f.Type != cimpb.Type_SYNC || f.Sync.HeadSeq != 0 || f.Sync.AfterSeq != 1 || f.Sync.LastSeq != 0 {
		t.Errorf("SYNC answer = %v", f)
	}
	if f := out.Deliveries[len(bobs)+6].Frame; f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.BadArgument || f.ReqId != 105 {
		t.Errorf("answer to a MSG without a message = %v", f)
	}
	for _, name := range []string{"offline", "gone"} {
		u, _ := e.st.UserByName(e.ctx, name)
		if n := e.rdb.LLen(e.ctx, "cim:inbox:{"+u.ID+"}").Val(); n != 1 {
			t.Errorf("%s's inbox holds %d entries, want 1", name, n)
		}
	}
	// The missing session's route was cleaned; the others' were not.
	routes, _ := e.st.Routes(e.ctx, []string{gone.UserID, bobs[0].UserID})
	if _, ok := routes[gone.UserID]; ok || len(routes) != 1 {
		t.Fatalf("routes after a missing report = %+v", routes)
	}

	// Second batch: names and ids are cached, so only the inboxes and the
	// routes are touched.
	e.st.lookups.Store(0)
	e.st.routes.Store(0)
	e.st.writes.Store(0)
	batch.Uplinks = batch.Uplinks[:4]
	if _, err := e.r.Uplink(e.ctx, batch); err != nil {
		t.Fatal(err)
	}
	e.waitPushes()
	if l, r, w := e.st.lookups.Load(), e.st.routes.Load(), e.st.writes.Load(); l != 0 || r != 0 || w != 1 {
		t.Fatalf("warm batch: %d lookups, %d separate route reads, %d writes; want 0, 0 (the fence knows the sender's session) and 1", l, r, w)
	}
}

func TestUplinkBroadcastAndDeadGateway(t *testing.T) {
	e := newEnv(t, PolicyKick, 3)
	var users []Session
	for i := range 6 { // two per gateway
		users = append(users, e.connect(fmt.Sprintf("user%d", i)))
	}
	sender := users[0]
	// One gateway (not the sender's) dies; its ZooKeeper node has not gone yet.
	dead := e.gws[0]
	if dead.ID == sender.Gateway.ID {
		dead = e.gws[1]
	}
	dead.Close()
	var onDead, onLive []Session
	for _, u := range users[1:] {
		if u.Gateway.ID == dead.ID {
			onDead = append(onDead, u)
		} else {
			onLive = append(onLive, u)
		}
	}
	if len(onDead) != 2 {
		t.Fatalf("setup: %d users on the dead gateway", len(onDead))
	}
	batch := &cimpb.UplinkBatch{GatewayId: sender.Gateway.ID, Uplinks: []*cimpb.Uplink{
		{UserId: sender.UserID, SessionId: sender.SessionID, Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "b1", Broadcast: true, Body: []byte("all")}}},
		{UserId: sender.UserID, SessionId: sender.SessionID, Frame: msgFrame(2, "p1", onDead[0].UserName)},
		{UserId: sender.UserID, SessionId: sender.SessionID, Frame: msgFrame(3, "p2", onLive[0].UserName)},
	}}
	e.st.onlineIDs.Store(0)
	e.st.routes.Store(0)
	out, err := e.r.Uplink(e.ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	e.waitPushes()
	// The sender's route is read by the fence; the private messages'
	// recipients' routes come with the appends; the broadcast's
	// recipients' in one read of their own.
	if o, r := e.st.onlineIDs.Load(), e.st.routes.Load(); o != 1 || r != 2 {
		t.Fatalf("%d online-set reads and %d separate route reads, want 1 and 2", o, r)
	}
	if f := out.Deliveries[0].Frame; f.Type != cimpb.Type_RECEIPT {
		t.Fatalf("broadcast answer = %v", f)
	}
	if f := out.Deliveries[1].Frame; f.Type != cimpb.Type_RECEIPT {
		t.Fatalf("message to a user on the dead gateway: %v, want RECEIPT_SENT (it waits in the inbox)", f)
	}
	if f := out.Deliveries[2].Frame; f.Type != cimpb.Type_RECEIPT {
		t.Fatalf("message to a user on a live gateway: %v", f)
	}
	// Everybody on live gateways got the broadcast (not the sender).
	for _, u := range onLive {
		frames := e.gateway(u.Gateway.ID).Frames(u.UserID)
		if len(frames) == 0 || !frames[0].Msg.GetBroadcast() || string(frames[0].Msg.Body) != "all" || frames[0].Msg.FromName != "user0" {
			t.Fatalf("%s got %v", u.UserName, frames)
		}
	}
	if f := e.gateway(sender.Gateway.ID).Frames(sender.UserID); len(f) != 0 {
		t.Fatalf("sender got its own broadcast: %v", f)
	}
	// The dead gateway's recipients lost their routes and it is not handed
	// out any more.
	routes, _ := e.st.Routes(e.ctx, []string{onDead[0].UserID, onDead[1].UserID, onLive[0].UserID})
	if len(routes) != 1 {
		t.Fatalf("routes after the dead push = %+v", routes)
	}
	for range 10 {
		if s, err := e.r.Login(e.ctx, LoginRequest{UserName: "user1", Password: "password1"}); err != nil || s.Gateway.ID == dead.ID {
			t.Fatalf("login after a failed push: %+v %v", s.Gateway, err)
		}
	}
}

func TestHTTPRoutes(t *testing.T) {
	e := newEnv(t, PolicyKick, 2)
	alice, bob, carol := e.connect("alice"), e.connect("bob"), e.connect("carol")
	id, err := e.r.P2P(e.ctx, alice.UserID, bob.UserID, "hello")
	if err != nil || len(id) != 32 {
		t.Fatalf("p2p: %q %v", id, err)
	}
	if f := e.gateway(bob.Gateway.ID).Frames(bob.UserID); len(f) != 1 || f[0].Msg.MsgId != id || f[0].Msg.FromName != "alice" {
		t.Fatalf("bob got %v", f)
	}
	if _, err := e.r.Register(e.ctx, "dave", "password1"); err != nil {
		t.Fatal(err)
	}
	if id, err := e.r.P2P(e.ctx, alice.UserID, "dave", "x"); err != nil || len(id) != 32 {
		t.Fatalf("p2p to an offline user: %q %v, want it stored", id, err)
	}
	if n := e.rdb.LLen(e.ctx, "cim:inbox:{4}").Val(); n != 1 {
		t.Fatalf("dave's inbox holds %d entries", n)
	}
	if _, err := e.r.P2P(e.ctx, alice.UserID, "nobody", "x"); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("p2p to an unknown user: %v", err)
	}
	if _, err := e.r.P2P(e.ctx, "424242", bob.UserID, "x"); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("p2p from an unknown user: %v", err)
	}
	if _, err := e.r.P2P(e.ctx, alice.UserID, bob.UserID, ""); !errors.Is(err, errs.ErrBadArgument) {
		t.Fatalf("p2p without text: %v", err)
	}
	id, n, err := e.r.Broadcast(e.ctx, alice.UserID, "to all")
	if err != nil || n != 2 || id == "" {
		t.Fatalf("broadcast: %q %d %v", id, n, err)
	}
	if f := e.gateway(carol.Gateway.ID).Frames(carol.UserID); len(f) != 1 || f[0].Msg.MsgId != id {
		t.Fatalf("carol got %v", f)
	}
}

// TestOnlineUsersPagedAndCached: /onlineUser answers pages of at most the
// limit asked, by id, going on after the last id of the one before; the
// list is worked out once for every caller within OnlineCacheTTL; a session
// of this process that comes or goes shows at once, its route read again.
func TestOnlineUsersPagedAndCached(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.OnlineCacheTTL = 2 * time.Second; c.Now = clock })
	var want []User
	var ann Session
	for _, name := range []string{"ann", "ben", "cat", "dan", "eve"} {
		s := e.connect(name)
		want = append(want, User{s.UserID, name})
		if name == "ann" {
			ann = s
		}
	}
	var got []User
	after := ""
	for range 4 {
		page, err := e.r.OnlineUsers(e.ctx, Page{After: after, Limit: 2})
		if err != nil || len(page) > 2 {
			t.Fatalf("page after %q: %v %v", after, page, err)
		}
		if len(page) == 0 {
			break
		}
		got, after = append(got, page...), page[len(page)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages %v, want %v", got, want)
	}
	// Four pages and an empty one, one reading of the online list.
	if n := e.st.onlineIDs.Load(); n != 1 {
		t.Fatalf("%d readings of login-status for one listing, want 1", n)
	}
	if _, err := e.r.OnlineUsers(e.ctx, Page{After: "x"}); !errors.Is(err, errs.ErrBadArgument) {
		t.Fatalf("after=x: %v, want ErrBadArgument", err)
	}
	// A logoff and a login here show at once, for the price of their own
	// routes: two routes read, the whole list not read again
	// (a login storm through this process made every call read every
	// online user's route). The TTL's end reads the whole list again.
	if err := e.r.Logoff(e.ctx, ann.UserID, ann.SessionID); err != nil {
		t.Fatal(err)
	}
	fay := e.connect("fay")
	routed := e.st.routed.Load()
	want = append(want[1:], User{fay.UserID, "fay"})
	if all, _ := e.r.OnlineUsers(e.ctx, Page{}); !slices.Equal(all, want) {
		t.Fatalf("after ann's logoff and fay's login: %v, want %v", all, want)
	}
	e.r.OnlineUsers(e.ctx, Page{})
	if n, r := e.st.onlineIDs.Load(), e.st.routed.Load()-routed; n != 1 || r != 2 {
		t.Fatalf("%d readings of login-status and %d routes read for two changes, want 1 (the first) and 2", n, r)
	}
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	e.r.OnlineUsers(e.ctx, Page{})
	if n := e.st.onlineIDs.Load(); n != 2 {
		t.Fatalf("%d readings, want 2 (one after the TTL)", n)
	}
}

// TestOnlineUsersReadRate: a list whose reading read more routes than
// OnlineReadRate allows in OnlineCacheTTL is kept longer, in proportion;
// a session of this process that comes or goes meanwhile still shows at
// once.
func TestOnlineUsersReadRate(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	e := newEnv(t, PolicyKick, 1, func(c *Config) {
		c.OnlineCacheTTL, c.OnlineReadRate, c.Now = 2*time.Second, 1, clock
	})
	var names []string
	for _, name := range []string{"ann", "ben", "cat", "dan", "eve"} {
		e.connect(name)
		names = append(names, name)
	}
	list := func() []string {
		t.Helper()
		users, err := e.r.OnlineUsers(e.ctx, Page{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, u := range users {
			out = append(out, u.Name)
		}
		return out
	}
	list()
	// Five routes read at one a second: the list is kept 5 s, not 2.
	advance(3 * time.Second)
	fay := e.connect("fay")
	if got := list(); !slices.Equal(got, append(names, "fay")) {
		t.Fatalf("at 3 s, after fay's login here: %v", got)
	}
	if n := e.st.onlineIDs.Load(); n != 1 {
		t.Fatalf("%d readings of the whole list within 5 s, want 1", n)
	}
	advance(2 * time.Second)
	list()
	if n := e.st.onlineIDs.Load(); n != 2 {
		t.Fatalf("%d readings at 5 s, want 2", n)
	}
	// Six routes now: kept 6 s.
	advance(5 * time.Second)
	if err := e.r.Logoff(e.ctx, fay.UserID, fay.SessionID); err != nil {
		t.Fatal(err)
	}
	if got := list(); !slices.Equal(got, names) || e.st.onlineIDs.Load() != 2 {
		t.Fatalf("at 10 s, after fay's logoff here: %v, %d readings (want 2)", got, e.st.onlineIDs.Load())
	}
	advance(time.Second)
	list()
	if n := e.st.onlineIDs.Load(); n != 3 {
		t.Fatalf("%d readings at 11 s, want 3", n)
	}
}

// TestOnlineUsersFollowChangesUnderLoad: sessions come and go through this
// process while others list the online users; once they stop, the list
// (read whole once, then kept up by the changes alone: a TTL of an hour)
// is exactly the users left online.
func TestOnlineUsersFollowChangesUnderLoad(t *testing.T) {
	e := newEnv(t, PolicyKick, 2, func(c *Config) { c.OnlineCacheTTL = time.Hour })
	if _, err := e.r.OnlineUsers(e.ctx, Page{}); err != nil {
		t.Fatal(err)
	}
	const users, rounds = 12, 6
	var want []User
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() { // a poller
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := e.r.OnlineUsers(e.ctx, Page{}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var mu sync.Mutex
	for i := range users {
		name := fmt.Sprint("u", i)
		u, err := e.r.Register(e.ctx, name, "password1")
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range rounds {
				s, err := e.r.Login(e.ctx, LoginRequest{UserName: name, Password: "password1"})
				if err == nil {
					err = e.r.SessionOnline(e.ctx, contract.Session{UserID: s.UserID, SessionID: s.SessionID, GatewayID: s.Gateway.ID})
				}
				if err != nil {
					t.Error(err)
					return
				}
				if round < rounds-1 || i%2 == 1 { // odd users end offline
					if err := e.r.SessionOffline(e.ctx, contract.Session{UserID: s.UserID, SessionID: s.SessionID}); err != nil {
						t.Error(err)
						return
					}
				}
			}
			if i%2 == 0 {
				mu.Lock()
				want = append(want, User{u.ID, name})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	slices.SortFunc(want, func(a, b User) int {
		x, _ := strconv.ParseUint(a.ID, 10, 64)
		y, _ := strconv.ParseUint(b.ID, 10, 64)
		return cmp.Compare(x, y)
	})
	got, err := e.r.OnlineUsers(e.ctx, Page{})
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("online users %v (%v), want %v", got, err, want)
	}
	if n := e.st.onlineIDs.Load(); n != 1 {
		t.Fatalf("login-status read %d times, want once (the changes kept the list)", n)
	}
}

func TestMergeOnline(t *testing.T) {
	for _, c := range []struct {
		ids, on, off, want []uint64
	}{
		{nil, nil, nil, []uint64{}},
		{[]uint64{2, 4, 6}, []uint64{1, 4, 7}, []uint64{6}, []uint64{1, 2, 4, 7}},
		{[]uint64{2, 4}, nil, []uint64{2, 4, 9}, []uint64{}},
		{nil, []uint64{3, 5}, nil, []uint64{3, 5}},
	} {
		off := map[uint64]bool{}
		for _, id := range c.off {
			off[id] = true
		}
		if got := mergeOnline(c.ids, c.on, off); !slices.Equal(got, c.want) {
			t.Errorf("mergeOnline(%v, %v, %v) = %v, want %v", c.ids, c.on, c.off, got, c.want)
		}
	}
}

func TestLogoffAndOnlineUsers(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	alice, bob := e.connect("alice"), e.connect("bob")
	e.rdb.SAdd(e.ctx, "cim:login-status", "777") // stale member
	users, err := e.r.OnlineUsers(e.ctx, Page{})
	want := []User{{alice.UserID, "alice"}, {bob.UserID, "bob"}}
	if err != nil || !slices.Equal(users, want) {
		t.Fatalf("online = %v %v, want %v", users, err, want)
	}
	if e.rdb.SIsMember(e.ctx, "cim:login-status", "777").Val() {
		t.Fatal("stale member not removed")
	}

	// An unknown or old session: no effect, no error.
	if err := e.r.Logoff(e.ctx, alice.UserID, "not-the-session"); err != nil {
		t.Fatal(err)
	}
	if f := e.gws[0].Frames(alice.UserID); len(f) != 0 {
		t.Fatalf("logoff of a wrong session kicked: %v", f)
	}
	if err := e.r.Logoff(e.ctx, alice.UserID, alice.SessionID); err != nil {
		t.Fatal(err)
	}
	f := e.gws[0].Frames(alice.UserID)
	if len(f) != 1 || f[0].Type != cimpb.Type_KICK || f[0].Kick.Reason != "logged off" {
		t.Fatalf("logoff pushed %v", f)
	}
	if users, _ := e.r.OnlineUsers(e.ctx, Page{}); !slices.Equal(users, want[1:]) {
		t.Fatalf("online after logoff = %v", users)
	}
	if _, err := e.r.P2P(e.ctx, bob.UserID, "alice", "x"); err != nil {
		t.Fatalf("message after logoff: %v, want it stored", err)
	}
	if f := e.gws[0].Frames(alice.UserID); len(f) != 1 {
		t.Fatalf("logged-off alice got %v", f)
	}
	if err := e.r.Logoff(e.ctx, "abc", "s"); !errors.Is(err, errs.ErrBadArgument) {
		t.Fatalf("bad user id: %v", err)
	}
}

func TestJanitorClearsDeadGateways(t *testing.T) {
	e := newEnv(t, PolicyKick, 2)
	var users []Session
	for i := range 4 {
		users = append(users, e.connect(fmt.Sprintf("user%d", i)))
	}
	// A gateway that died while no route ran: only in the servers set.
	e.rdb.SAdd(e.ctx, "cim:servers", "10.9.9.9:1:2")
	e.rdb.SAdd(e.ctx, "cim:server:10.9.9.9:1:2:users", users[0].UserID)

	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { e.r.RunJanitor(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	survivor, victim := e.gws[0].ID, e.gws[1].ID
	e.bal.SetGateways([]string{survivor})
	e.r.GatewaysChanged()
	deadline := time.Now().Add(10 * time.Second)
	for {
		gws, _ := e.st.Gateways(e.ctx)
		if slices.Equal(gws, []string{survivor}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("servers set still %v", gws)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, u := range users {
		routes, _ := e.st.Routes(e.ctx, []string{u.UserID})
		_, has := routes[u.UserID]
		if has != (u.Gateway.ID == survivor) {
			t.Errorf("%s on %s: route present = %v", u.UserName, u.Gateway.ID, has)
		}
	}
	if n := e.rdb.Exists(e.ctx, "cim:server:"+victim+":users", "cim:server:10.9.9.9:1:2:users").Val(); n != 0 {
		t.Fatalf("%d dead gateway sets left", n)
	}
}

func TestMsgIDs(t *testing.T) {
	now := time.Now()
	seen := map[string]bool{}
	for range 100000 {
		id := newMsgID(now)
		if len(id) != 32 || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
	a, b := newMsgID(now), newMsgID(now.Add(time.Millisecond))
	if a[:12] >= b[:12] {
		t.Fatalf("ids not time-ordered: %s then %s", a, b)
	}
	// Within a millisecond, in the order made.
	prev := newMsgID(now)
	for range 1000 {
		id := newMsgID(now)
		if id <= prev || id[:12] != prev[:12] {
			t.Fatalf("ids of one millisecond out of order: %s then %s", prev, id)
		}
		prev = id
	}
}

func TestRedisDown(t *testing.T) {
	e := newEnv(t, PolicyKick, 1)
	alice := e.connect("alice")
	e.redis.Kill()
	calls := map[string]func() error{
		"Login": func() error {
			_, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "password1"})
			return err
		},
		"Register": func() error { _, err := e.r.Register(e.ctx, "bob", "password1"); return err },
		"P2P":      func() error { _, err := e.r.P2P(e.ctx, alice.UserID, "nobody", "x"); return err },
		"Online": func() error {
			return e.r.SessionOnline(e.ctx, contract.Session{UserID: alice.UserID, SessionID: alice.SessionID, GatewayID: alice.Gateway.ID})
		},
		"Users":  func() error { _, err := e.r.OnlineUsers(e.ctx, Page{}); return err },
		"Health": func() error { _, err := e.r.Health(e.ctx); return err },
		"Uplink": func() error {
			_, err := e.r.Uplink(e.ctx, &cimpb.UplinkBatch{Uplinks: []*cimpb.Uplink{{UserId: alice.UserID, Frame: msgFrame(1, "c", "zed")}}})
			return err
		},
		"Sync": func() error {
			_, err := e.r.Uplink(e.ctx, &cimpb.UplinkBatch{Uplinks: []*cimpb.Uplink{{UserId: alice.UserID, Frame: syncFrame(1, 0, 0, true)}}})
			return err
		},
		"Ack": func() error {
			_, err := e.r.Uplink(e.ctx, &cimpb.UplinkBatch{Uplinks: []*cimpb.Uplink{{UserId: alice.UserID, Frame: ackFrame(1)}}})
			return err
		},
		"History": func() error {
			_, err := e.r.History(e.ctx, HistoryQuery{UserID: alice.UserID, SessionID: alice.SessionID})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, errs.ErrUnavailable) {
			t.Errorf("%s with Redis down: %v, want ErrUnavailable", name, err)
		}
	}
}

// BenchmarkUplink routes batches of 100 private messages between 200 users
// on two gateways (real Redis, fake gateways): once the caches are warm, one
// append pipeline and one route read per batch, then two /push calls.
func BenchmarkUplink(b *testing.B) {
	e := newEnv(b, PolicyKick, 2)
	var users []Session
	for i := range 200 {
		users = append(users, e.connect(fmt.Sprintf("user%d", i)))
	}
	// A gateway forwards its own users' frames: the senders are those on
	// the first user's gateway, the recipients anybody.
	var from []Session
	for _, u := range users {
		if u.Gateway.ID == users[0].Gateway.ID {
			from = append(from, u)
		}
	}
	batch := &cimpb.UplinkBatch{GatewayId: users[0].Gateway.ID}
	for i := range 100 {
		from, to := from[i%len(from)], users[(i+1)%len(users)]
		batch.Uplinks = append(batch.Uplinks, &cimpb.Uplink{UserId: from.UserID, SessionId: from.SessionID,
			Frame: msgFrame(uint64(i), fmt.Sprint(i), to.UserName)})
	}
	b.ReportAllocs()
	round := 0
	for b.Loop() {
		// Fresh client message ids: every message is new, not a resend.
		b.StopTimer()
		round++
		for i, up := range batch.Uplinks {
			up.Frame.Msg.ClientMsgId = strconv.Itoa(round) + "-" + strconv.Itoa(i)
		}
		b.StartTimer()
		if _, err := e.r.Uplink(e.ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch.Uplinks))/b.Elapsed().Seconds(), "msgs/s")
}
