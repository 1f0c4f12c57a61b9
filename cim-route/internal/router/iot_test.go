package router

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/token"
)

// testClock is a clock the test moves (Config.Now).
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// newDevice creates a device and returns it with its credential.
func (e *env) newDevice(name string) DeviceSecret {
	e.t.Helper()
	d, err := e.r.CreateDevice(e.ctx, name)
	if err != nil {
		e.t.Fatalf("create device %s: %v", name, err)
	}
	return d
}

// deviceLogin logs a device in at gw as its gateway does.
func (e *env) deviceLogin(device, secret, gw string, clean bool) (contract.DeviceToken, error) {
	return e.r.DeviceLogin(e.ctx, contract.DeviceLogin{Device: device, Secret: secret, GatewayID: gw, Clean: clean})
}

// connectDevice logs a device in at gw and plays the gateway's part, as
// connect does for a user.
func (e *env) connectDevice(d DeviceSecret, gw string, clean bool) (Session, contract.DeviceToken) {
	e.t.Helper()
	tok, err := e.deviceLogin(d.Name, d.Secret, gw, clean)
	if err != nil {
		e.t.Fatalf("device login %s: %v", d.Name, err)
	}
	if err := e.r.SessionOnline(e.ctx, contract.Session{UserID: tok.UserID, SessionID: tok.SessionID, GatewayID: gw, Platform: contract.PlatformDevice}); err != nil {
		e.t.Fatalf("online %s: %v", d.Name, err)
	}
	e.waitPushes()
	e.gateway(gw).Connect(tok.UserID, tok.SessionID)
	addr, err := contract.ParseGatewayID(gw)
	if err != nil {
		e.t.Fatal(err)
	}
	return Session{UserID: tok.UserID, UserName: tok.UserName, SessionID: tok.SessionID, Gateway: addr}, tok
}

// disconnect plays the gateway's part when a connection closes.
func (e *env) disconnect(s Session) {
	e.t.Helper()
	e.gateway(s.Gateway.ID).Disconnect(contract.DeviceKey(s.UserID, s.SessionID))
	if err := e.r.SessionOffline(e.ctx, contract.Session{UserID: s.UserID, SessionID: s.SessionID, GatewayID: s.Gateway.ID, Platform: contract.PlatformDevice}); err != nil {
		e.t.Fatal(err)
	}
	e.waitPushes() // the presence change, and the device's lastSeen
}

// TestDeviceAdmin: devices are created with a credential shown once (a
// passwordless account that cannot log in at /login), listed in pages,
// shown with their presence, revoked (credential gone, sessions logged
// off, record kept) and given new credentials; names are shared with
// users; the total is bounded.
func TestDeviceAdmin(t *testing.T) {
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.MaxDevices = 3 })
	gw := e.gws[0].ID
	e.connect("alice")
	d1 := e.newDevice("sensor-1")
	if d1.ID == "" || d1.Name != "sensor-1" || d1.Created == 0 || len(d1.Secret) != 43 || strings.ContainsAny(d1.Secret, "+/=") {
		t.Fatalf("created %+v: want an id and a 43-character base64url credential", d1)
	}
	for _, name := range []string{"alice", "SENSOR-1", "system"} {
		if _, err := e.r.CreateDevice(e.ctx, name); !errors.Is(err, errs.ErrNameTaken) {
			t.Errorf("device %q: %v, want ErrNameTaken", name, err)
		}
	}
	for _, name := range []string{"", "1abc", "has space"} {
		if _, err := e.r.CreateDevice(e.ctx, name); !errors.Is(err, errs.ErrBadArgument) {
			t.Errorf("device %q: %v, want ErrBadArgument", name, err)
		}
	}
	if _, err := e.r.Register(e.ctx, "sensor-1", "password1"); !errors.Is(err, errs.ErrNameTaken) {
		t.Fatalf("user named like a device: %v", err)
	}
	// No password: never a /login, whatever is tried.
	for _, pw := range []string{d1.Secret, "password1"} {
		if _, err := e.r.Login(e.ctx, LoginRequest{UserName: "sensor-1", Password: pw}); !errors.Is(err, errs.ErrBadAccount) {
			t.Fatalf("/login as a device: %v, want ErrBadAccount", err)
		}
	}

	d2, d3 := e.newDevice("sensor-2"), e.newDevice("sensor-3")
	if _, err := e.r.CreateDevice(e.ctx, "sensor-4"); !errors.Is(err, errs.ErrQuotaExceeded) || !strings.Contains(err.Error(), "--max-devices") {
		t.Fatalf("device over --max-devices: %v", err)
	}

	// Pages in id order, with next; bad arguments.
	page, next, err := e.r.Devices(e.ctx, "", 2)
	if err != nil || len(page) != 2 || page[0].ID != d1.ID || page[1].ID != d2.ID || next != d2.ID {
		t.Fatalf("first page %+v next %q, %v", page, next, err)
	}
	page, next, err = e.r.Devices(e.ctx, next, 2)
	if err != nil || len(page) != 1 || page[0].ID != d3.ID || page[0].Name != "sensor-3" || next != "" {
		t.Fatalf("second page %+v next %q, %v", page, next, err)
	}
	if page, _, err := e.r.Devices(e.ctx, "", 0); err != nil || len(page) != 3 {
		t.Fatalf("default page %+v, %v", page, err)
	}
	for _, bad := range []struct {
		after string
		limit int
	}{{"x", 10}, {"", -1}, {"", MaxDeviceList + 1}} {
		if _, _, err := e.r.Devices(e.ctx, bad.after, bad.limit); !errors.Is(err, errs.ErrBadArgument) {
			t.Errorf("Devices(%q, %d): %v, want ErrBadArgument", bad.after, bad.limit, err)
		}
	}

	// Shown by id or name, with its presence.
	dev, _ := e.connectDevice(d1, gw, false)
	for _, ref := range []string{d1.ID, "sensor-1", "Sensor-1"} {
		info, err := e.r.Device(e.ctx, ref)
		if err != nil || info.ID != d1.ID || info.Name != "sensor-1" || !info.Online || info.Gateway != gw ||
			info.Platform != contract.PlatformDevice || info.LastSeen == 0 || info.Revoked != 0 || info.Created != d1.Created {
			t.Fatalf("Device(%s) = %+v, %v", ref, info, err)
		}
	}
	for _, ref := range []string{"alice", "nobody", "999"} {
		if _, err := e.r.Device(e.ctx, ref); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("Device(%s): %v, want ErrNotFound", ref, err)
		}
	}
	if _, err := e.r.Device(e.ctx, "no way"); !errors.Is(err, errs.ErrBadArgument) {
		t.Errorf("Device of a malformed ref: %v", err)
	}
	if page, _, _ := e.r.Devices(e.ctx, "", 1); len(page) != 1 || !page[0].Online || page[0].Gateway != gw {
		t.Fatalf("listed %+v, want it online", page)
	}

	// Revoked: the connection is kicked, every later login refused, the
	// record shown revoked.
	if err := e.r.RevokeDevice(e.ctx, "sensor-1"); err != nil {
		t.Fatal(err)
	}
	if f := e.frames(dev); len(f) != 1 || f[0].Type != cimpb.Type_KICK {
		t.Fatalf("revoked device's connection got %v, want a KICK", f)
	}
	info, err := e.r.Device(e.ctx, d1.ID)
	if err != nil || info.Revoked == 0 || info.Online || info.Name != "sensor-1" {
		t.Fatalf("revoked device = %+v, %v", info, err)
	}
	if _, err := e.deviceLogin("sensor-1", d1.Secret, gw, false); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("login of a revoked device: %v", err)
	}
	if err := e.r.RevokeDevice(e.ctx, "nobody"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("revoke of no device: %v", err)
	}

	// A new credential reinstates it; the old one stays refused. Rotating
	// a connected device's credential leaves its connection alone.
	rot, err := e.r.RotateDeviceSecret(e.ctx, d1.ID)
	if err != nil || rot.Secret == d1.Secret || len(rot.Secret) != 43 || rot.Name != "sensor-1" || rot.Created != d1.Created {
		t.Fatalf("new credential %+v, %v", rot, err)
	}
	if _, err := e.deviceLogin(d1.ID, d1.Secret, gw, false); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("login with the old credential: %v", err)
	}
	d1.Secret = rot.Secret
	dev, _ = e.connectDevice(d1, gw, false)
	before := len(e.frames(dev)) // the earlier connection's KICK
	if info, _ := e.r.Device(e.ctx, d1.ID); info.Revoked != 0 || !info.Online {
		t.Fatalf("device with a new credential = %+v", info)
	}
	rot2, err := e.r.RotateDeviceSecret(e.ctx, "sensor-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.deviceLogin(d1.ID, rot.Secret, gw, false); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("login with the replaced credential: %v", err)
	}
	if f := e.frames(dev)[before:]; len(f) != 0 {
		t.Fatalf("rotation sent the connected device %v", f)
	}
	if _, err := e.deviceLogin(d1.ID, rot2.Secret, gw, false); err != nil {
		t.Fatalf("login with the new credential: %v", err)
	}
	if _, err := e.r.RotateDeviceSecret(e.ctx, "alice"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("new credential for a user: %v", err)
	}
}

// TestDeviceLogin: a device logs in at the gateway it is connected to with
// its id or name and credential, under every login policy; its token is
// that gateway's, with platform device; refusals for unknown devices and
// wrong or revoked credentials; session present after a first connect
// unless clean; lastSeen follows connects and disconnects.
func TestDeviceLogin(t *testing.T) {
	for _, policy := range []string{PolicyKick, PolicyReject, PolicyPlatform} {
		t.Run(policy, func(t *testing.T) {
			clock := newTestClock()
			e := newEnv(t, policy, 2, func(c *Config) { c.Now = clock.now })
			gw := e.gws[1].ID
			d := e.newDevice("sensor-1")
			other := e.newDevice("sensor-2")
			alice := e.connect("alice")

			for _, bad := range []contract.DeviceLogin{
				{Device: "sensor-1", Secret: other.Secret, GatewayID: gw},
				{Device: other.ID, Secret: d.Secret, GatewayID: gw},
				{Device: "sensor-1", Secret: d.Secret + "x", GatewayID: gw},
				{Device: "sensor-1", Secret: strings.Repeat("x", 1000), GatewayID: gw},
				{Device: "nobody", Secret: d.Secret, GatewayID: gw},
				{Device: "999", Secret: d.Secret, GatewayID: gw},
				{Device: "alice", Secret: "password1", GatewayID: gw},
				{Device: alice.UserID, Secret: "password1", GatewayID: gw},
				{Device: "not a name", Secret: d.Secret, GatewayID: gw},
				{Device: "sensor-1", GatewayID: gw},
			} {
				if _, err := e.r.DeviceLogin(e.ctx, bad); !errors.Is(err, errs.ErrBadAccount) {
					t.Errorf("DeviceLogin(%s, %.10q): %v, want ErrBadAccount", bad.Device, bad.Secret, err)
				}
			}
			for _, gwID := range []string{"", "nonsense"} {
				if _, err := e.deviceLogin("sensor-1", d.Secret, gwID, false); !errors.Is(err, errs.ErrBadArgument) {
					t.Errorf("gateway %q: %v, want ErrBadArgument", gwID, err)
				}
			}

			at := clock.now()
			dev, tok := e.connectDevice(d, gw, false)
			if tok.UserID != d.ID || tok.UserName != "sensor-1" || tok.SessionPresent {
				t.Fatalf("first login %+v: want the device, no session present", tok)
			}
			if policy == PolicyPlatform && !strings.HasPrefix(tok.SessionID, "device.") {
				t.Fatalf("session %q, want the device slot", tok.SessionID)
			}
			c, err := token.Verify(keys, tok.Token, gw, time.Now())
			if err != nil || c.UserID != d.ID || c.UserName != "sensor-1" || c.SessionID != tok.SessionID ||
				c.GatewayID != gw || c.Platform != contract.PlatformDevice || c.Audience != token.AudienceGateway {
				t.Fatalf("token claims %+v, %v", c, err)
			}
			if _, err := token.Verify(keys, tok.Token, e.gws[0].ID, time.Now()); !errors.Is(err, token.ErrWrongGateway) {
				t.Fatalf("token at another gateway: %v", err)
			}
			if _, err := token.VerifyAPI(keys, tok.Token, time.Now()); err == nil {
				t.Fatal("a device's gateway token is an access token")
			}
			info, _ := e.r.Device(e.ctx, d.ID)
			if info.LastSeen != at.UnixMilli() || !info.Online || info.Gateway != gw {
				t.Fatalf("after the login: %+v, want lastSeen %d", info, at.UnixMilli())
			}

			// A message reaches the device; it goes away.
			if _, err := e.r.P2P(e.ctx, alice.UserID, "sensor-1", "cmd 1"); err != nil {
				t.Fatal(err)
			}
			if got := msgsOf(e.frames(dev)); len(got) != 1 {
				t.Fatalf("device got %v", got)
			}
			e.uplink(dev, ackFrame(1))
			clock.advance(time.Minute)
			e.disconnect(dev)
			info, _ = e.r.Device(e.ctx, d.ID)
			if info.LastSeen != clock.now().UnixMilli() || info.Online || info.Gateway != "" {
				t.Fatalf("after the disconnect: %+v, want lastSeen %d", info, clock.now().UnixMilli())
			}

			// Messages wait; the next login has a session, and its SYNC
			// from the acknowledged seq brings them.
			for _, text := range []string{"cmd 2", "cmd 3"} {
				if _, err := e.r.P2P(e.ctx, alice.UserID, d.ID, text); err != nil {
					t.Fatal(err)
				}
			}
			dev, tok = e.connectDevice(d, gw, false)
			if !tok.SessionPresent {
				t.Fatalf("second login %+v: want a session present", tok)
			}
			if got := msgsOf(framesOf(e.uplink(dev, syncFrame(1, 0, 0, true)))); len(got) != 2 {
				t.Fatalf("login SYNC of a persistent session brought %v, want cmd 2 and 3", got)
			}
			e.disconnect(dev)

			// A clean start takes the backlog as delivered.
			if _, err := e.r.P2P(e.ctx, alice.UserID, d.ID, "cmd 4"); err != nil {
				t.Fatal(err)
			}
			dev, tok = e.connectDevice(d, gw, true)
			if tok.SessionPresent {
				t.Fatalf("clean login %+v: want no session present", tok)
			}
			if got := msgsOf(framesOf(e.uplink(dev, syncFrame(1, 0, 0, true)))); len(got) != 0 {
				t.Fatalf("login SYNC of a clean session brought %v, want nothing", got)
			}
			before := len(e.frames(dev)) // what its earlier connections got
			if _, err := e.r.P2P(e.ctx, alice.UserID, d.ID, "cmd 5"); err != nil {
				t.Fatal(err)
			}
			if got := msgsOf(e.frames(dev)[before:]); len(got) != 1 || !strings.HasSuffix(got[0], ":cmd 5@5") {
				t.Fatalf("device got %v after its clean start, want cmd 5 (seq 5)", got)
			}

			// A second connection of the device: kicks the first, or is
			// refused (reject).
			_, err = e.deviceLogin(d.ID, d.Secret, e.gws[0].ID, false)
			if policy == PolicyReject {
				if !errors.Is(err, errs.ErrRepeatLogin) {
					t.Fatalf("second connection with reject: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f := e.frames(dev); f[len(f)-1].Type != cimpb.Type_KICK {
				t.Fatalf("first connection's last frame %v, want KICK", f[len(f)-1])
			}

			// Revoked: refused.
			if err := e.r.RevokeDevice(e.ctx, d.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := e.deviceLogin(d.ID, d.Secret, gw, false); !errors.Is(err, errs.ErrBadAccount) {
				t.Fatalf("revoked: %v", err)
			}
		})
	}
}

// framesOf returns the frames of deliveries.
func framesOf(ds []*cimpb.Delivery) []*cimpb.Frame {
	out := make([]*cimpb.Frame, len(ds))
	for i, d := range ds {
		out[i] = d.Frame
	}
	return out
}

// TestDeviceLoginStorm: device logins beyond the route-wide rate, or
// beyond the logins in progress, are refused with ErrBusy at once (never
// queued), and later ones pass again.
func TestDeviceLoginStorm(t *testing.T) {
	t.Run("rate", func(t *testing.T) {
		clock := newTestClock()
		e := newEnv(t, PolicyKick, 1, func(c *Config) {
			c.Now = clock.now
			c.DeviceLoginRate, c.DeviceLoginBurst = 10, 3
		})
		gw := e.gws[0].ID
		var ds []DeviceSecret
		for _, n := range []string{"d1", "d2", "d3", "d4"} {
			ds = append(ds, e.newDevice(n))
		}
		for _, d := range ds[:3] {
			if _, err := e.deviceLogin(d.Name, d.Secret, gw, false); err != nil {
				t.Fatalf("login %s within the burst: %v", d.Name, err)
			}
		}
		if _, err := e.deviceLogin(ds[3].Name, ds[3].Secret, gw, false); !errors.Is(err, errs.ErrBusy) {
			t.Fatalf("login beyond the burst: %v, want ErrBusy", err)
		}
		// Refused logins use no token: a wrong credential is checked after
		// the bound, so even it is Busy now.
		if _, err := e.deviceLogin(ds[3].Name, "wrong", gw, false); !errors.Is(err, errs.ErrBusy) {
			t.Fatalf("login beyond the burst, wrong credential: %v, want ErrBusy", err)
		}
		clock.advance(100 * time.Millisecond) // one token at 10/s
		if _, err := e.deviceLogin(ds[3].Name, ds[3].Secret, gw, false); err != nil {
			t.Fatalf("login after a token came back: %v", err)
		}
		if _, err := e.deviceLogin(ds[0].Name, ds[0].Secret, gw, false); !errors.Is(err, errs.ErrBusy) {
			t.Fatalf("login with the bucket empty again: %v", err)
		}
		// Users' logins are not counted here.
		if _, err := e.r.Register(e.ctx, "alice", "password1"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.r.Login(e.ctx, LoginRequest{UserName: "alice", Password: "password1"}); err != nil {
			t.Fatalf("user login while devices are busy: %v", err)
		}
	})
	t.Run("concurrency", func(t *testing.T) {
		e := newEnv(t, PolicyKick, 1, func(c *Config) { c.DeviceLoginConcurrency = 1 })
		gw := e.gws[0].ID
		d1, d2 := e.newDevice("d1"), e.newDevice("d2")
		e.connectDevice(d1, gw, false)
		// A second connection of d1 kicks the first: its push to the
		// gateway is held, so the login stays in progress.
		held, release := e.gws[0].Hold()
		done := make(chan error, 1)
		go func() {
			_, err := e.deviceLogin(d1.Name, d1.Secret, gw, false)
			done <- err
		}()
		<-held
		if _, err := e.deviceLogin(d2.Name, d2.Secret, gw, false); !errors.Is(err, errs.ErrBusy) {
			t.Errorf("login while another is in progress: %v, want ErrBusy", err)
		}
		release()
		if err := <-done; err != nil {
			t.Fatalf("held login: %v", err)
		}
		if _, err := e.deviceLogin(d2.Name, d2.Secret, gw, false); err != nil {
			t.Fatalf("login after the other finished: %v", err)
		}
	})
}

// TestDeviceLastSeenDropped: a device session found gone by a push (or
// cleared with its gateway) moves lastSeen too; a user's does not become a
// device's.
func TestDeviceLastSeenDropped(t *testing.T) {
	clock := newTestClock()
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.Now = clock.now })
	gw := e.gws[0].ID
	d := e.newDevice("sensor-1")
	dev, _ := e.connectDevice(d, gw, false)
	alice := e.connect("alice")
	e.gws[0].Disconnect(dev.UserID) // gone without the gateway telling
	clock.advance(time.Minute)
	if _, err := e.r.P2P(e.ctx, alice.UserID, d.ID, "cmd"); err != nil {
		t.Fatal(err)
	}
	e.waitPushes()
	info, err := e.r.Device(e.ctx, d.ID)
	if err != nil || info.Online || info.LastSeen != clock.now().UnixMilli() {
		t.Fatalf("device found gone: %+v, %v; want lastSeen %d", info, err, clock.now().UnixMilli())
	}
	e.gws[0].Disconnect(alice.UserID)
	if _, err := e.r.P2P(e.ctx, d.ID, alice.UserID, "x"); err != nil {
		t.Fatal(err)
	}
	e.waitPushes()
	if _, err := e.r.Device(e.ctx, alice.UserID); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("a user found gone is a device now: %v", err)
	}
}

// TestBinaryMessages: a KIND_BINARY message to a user (bytes that are no
// UTF-8) is stored and delivered unchanged, synced unchanged, reported to
// the webhooks as binary with its body, and shown by history with its bytes.
func TestBinaryMessages(t *testing.T) {
	hooks := &sink{t: t}
	e := newEnv(t, PolicyKick, 1, func(c *Config) {
		c.Events = hooks
		c.AppUsers = NewAppUsers([]string{"bob"})
	})
	alice, bob := e.connect("alice"), e.connect("bob")
	body := []byte{0, 1, 0xfe, 0xff, 'h', 'i', 0xc3}
	ids := sentIDs(t, e.uplink(alice, &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 1, Msg: &cimpb.Msg{
		ClientMsgId: "b1", To: "bob", Kind: cimpb.Kind_KIND_BINARY, Body: body}}))
	check := func(where string, m *cimpb.Msg) {
		t.Helper()
		if m == nil || m.MsgId != ids[0] || m.Kind != cimpb.Kind_KIND_BINARY || string(m.Body) != string(body) || m.From != alice.UserID || m.Seq != 1 {
			t.Fatalf("%s: %v", where, m)
		}
	}
	f := e.frames(bob)
	if len(f) != 1 {
		t.Fatalf("bob got %v", f)
	}
	check("pushed", f[0].Msg)
	check("stored", e.inbox(bob.UserID)[0].Msg)
	check("synced", framesOf(e.uplink(bob, syncFrame(1, 0, 0, false)))[0].Msg)
	msgs := hooks.messages()
	app := msgs["message.app:"+bob.UserID]
	if app.Kind != "binary" || string(app.Body) != string(body) || app.Text != "" || app.MsgID != ids[0] {
		t.Fatalf("message.app %+v", app)
	}
	h := e.history(bob, "alice", "", "")
	if len(h) != 1 || h[0].Kind != cimpb.Kind_KIND_BINARY || string(h[0].Body) != string(body) {
		t.Fatalf("history %+v", h)
	}
	if h := e.history(bob, "alice", "", "hi"); len(h) != 0 {
		t.Fatalf("keyword search matched bytes: %+v", h)
	}
	// Even bytes that happen to be UTF-8 are reported as bytes.
	e.uplink(alice, &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 2, Msg: &cimpb.Msg{ClientMsgId: "b2", To: "bob", Kind: cimpb.Kind_KIND_BINARY, Body: []byte("ok")}})
	if app := hooks.messages()["message.app:"+bob.UserID]; app.Kind != "binary" || string(app.Body) != "ok" || app.Text != "" {
		t.Fatalf("message.app of UTF-8 bytes %+v", app)
	}
	// A broadcast is still text only.
	ds := e.uplink(alice, &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 3, Msg: &cimpb.Msg{ClientMsgId: "b3", Broadcast: true, Kind: cimpb.Kind_KIND_BINARY, Body: body}})
	if ds[0].Frame.Type != cimpb.Type_ERROR {
		t.Fatalf("binary broadcast: %v", ds[0].Frame)
	}
}

// revokingStore revokes a device between the check of its credential and
// the claim of its session, once armed.
type revokingStore struct {
	Store
	armed atomic.Bool
}

func (s *revokingStore) ClaimRoute(ctx context.Context, uid string, c model.Claim) (model.Route, error) {
	if s.armed.CompareAndSwap(true, false) {
		if err := s.RevokeDevice(ctx, uid, 1); err != nil {
			return model.Route{}, err
		}
	}
	return s.Store.ClaimRoute(ctx, uid, c)
}

// TestDeviceRevokedDuringLogin: a device revoked after its login checked
// the credential is refused when the login records its connect, and the
// session it claimed goes again.
func TestDeviceRevokedDuringLogin(t *testing.T) {
	var st *revokingStore
	e := newEnv(t, PolicyKick, 1, func(c *Config) {
		st = &revokingStore{Store: c.Store}
		c.Store = st
	})
	d := e.newDevice("sensor-1")
	st.armed.Store(true)
	if _, err := e.deviceLogin(d.Name, d.Secret, e.gws[0].ID, false); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("login of a device revoked meanwhile: %v, want ErrBadAccount", err)
	}
	if routes, err := e.st.Routes(e.ctx, []string{d.ID}); err != nil || len(routes) != 0 {
		t.Fatalf("routes %+v, %v; want the claimed session gone", routes, err)
	}
}

// TestDeviceNotAnExternalUser: with an external authenticator, a directory
// user named like a device does not become that device's account; devices
// can still be created and log in.
func TestDeviceNotAnExternalUser(t *testing.T) {
	fa := &fakeAuth{users: map[string]string{"sensor-1": "ldap-pw-1"}}
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.Authenticator = fa })
	d := e.newDevice("sensor-1")
	for _, req := range []LoginRequest{{UserName: "sensor-1", Password: "ldap-pw-1"}, {UserID: d.ID, Password: "ldap-pw-1"}} {
		if _, err := e.r.Login(e.ctx, req); !errors.Is(err, errs.ErrBadAccount) {
			t.Fatalf("directory login as a device (%+v): %v, want ErrBadAccount", req, err)
		}
	}
	if _, err := e.deviceLogin(d.Name, d.Secret, e.gws[0].ID, false); err != nil {
		t.Fatalf("device login with an external authenticator: %v", err)
	}
}
