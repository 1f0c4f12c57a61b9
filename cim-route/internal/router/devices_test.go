package router

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/event"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// connectOn logs name in from platform and plays the gateway's part (as
// connect).
func (e *env) connectOn(name, platform string) Session {
	e.t.Helper()
	if _, err := e.r.Register(e.ctx, name, "password1"); err != nil && !errors.Is(err, errs.ErrNameTaken) {
		e.t.Fatal(err)
	}
	s, err := e.r.Login(e.ctx, LoginRequest{UserName: name, Password: "password1", Platform: platform})
	if err != nil {
		e.t.Fatalf("login %s on %s: %v", name, platform, err)
	}
	if err := e.r.SessionOnline(e.ctx, contract.Session{UserID: s.UserID, SessionID: s.SessionID, GatewayID: s.Gateway.ID, Platform: platform}); err != nil {
		e.t.Fatalf("online %s on %s: %v", name, platform, err)
	}
	e.waitPushes()
	e.gateway(s.Gateway.ID).Connect(s.UserID, s.SessionID)
	return s
}

// msgsOf returns the MSG frames among fs, as "from>to:body@seq".
func msgsOf(fs []*cimpb.Frame) []string {
	var out []string
	for _, f := range fs {
		if m := f.GetMsg(); f.Type == cimpb.Type_MSG {
			out = append(out, m.From+">"+m.To+":"+string(m.Body)+"@"+strconv.FormatUint(m.Seq, 10))
		}
	}
	return out
}

// receiptsOf returns the RECEIPT frames among fs.
func receiptsOf(fs []*cimpb.Frame) []*cimpb.Receipt {
	var out []*cimpb.Receipt
	for _, f := range fs {
		if f.Type == cimpb.Type_RECEIPT {
			out = append(out, f.Receipt)
		}
	}
	return out
}

// TestPlatformPolicy: with --login-policy platform a user keeps a session
// per platform; a newer login on a platform kicks only that platform's;
// every device gets every message, a message sent from one device reaches
// the others, DELIVERED and READ follow the first device, and a READ on
// one device tells the others.
func TestPlatformPolicy(t *testing.T) {
	e := newEnv(t, PolicyPlatform, 2)
	mobile1 := e.connectOn("alice", "mobile")
	web := e.connectOn("alice", "web")
	if !strings.HasPrefix(mobile1.SessionID, "mobile.") || !strings.HasPrefix(web.SessionID, "web.") {
		t.Fatalf("sessions %q and %q, want their slots as prefixes", mobile1.SessionID, web.SessionID)
	}
	mobile := e.connectOn("alice", "mobile") // replaces mobile1 only
	if f := e.frames(mobile1); len(f) != 1 || f[0].Type != cimpb.Type_KICK {
		t.Fatalf("first mobile session got %v, want one KICK", f)
	}
	if f := e.frames(web); len(f) != 0 {
		t.Fatalf("web session got %v, want nothing (another platform)", f)
	}
	bob := e.connectOn("bob", "terminal")

	// A message to alice reaches both her devices, with one seq.
	if _, err := e.r.P2P(e.ctx, bob.UserID, "alice", "hi"); err != nil {
		t.Fatal(err)
	}
	want := []string{bob.UserID + ">" + web.UserID + ":hi@1"}
	if got := msgsOf(e.frames(mobile)); !slices.Equal(got, want) {
		t.Fatalf("mobile got %v, want %v", got, want)
	}
	if got := msgsOf(e.frames(web)); !slices.Equal(got, want) {
		t.Fatalf("web got %v, want %v", got, want)
	}
	hiID := e.frames(web)[0].Msg.MsgId

	// alice answers from the web: bob gets it, and both her devices get her
	// copy (the web one recognises its own by client_msg_id).
	ds := e.uplink(web, msgFrame(1, "c1", "bob"))
	sentIDs(t, ds)
	// bob's own copy of what he sent, then alice's message.
	if got := msgsOf(e.frames(bob)); len(got) != 2 || got[0] != bob.UserID+">"+web.UserID+":hi@1" ||
		got[1] != web.UserID+">"+bob.UserID+":body c1@2" {
		t.Fatalf("bob got %v", got)
	}
	copyWant := []string{web.UserID + ">" + bob.UserID + ":body c1@2"}
	for _, s := range []Session{mobile, web} {
		got := msgsOf(e.frames(s))
		if !slices.Equal(got[1:], copyWant) {
			t.Fatalf("%s got %v, want the copy %v after bob's message", s.SessionID, got, copyWant)
		}
	}

	// The mobile acknowledges both entries: bob gets one DELIVERED, alice
	// none for her own copy; the web acknowledging later adds nothing.
	e.uplink(mobile, ackFrame(2))
	e.uplink(web, ackFrame(2))
	var delivered []*cimpb.Receipt
	for _, rc := range receiptsOf(e.frames(bob)) {
		if rc.Status == cimpb.ReceiptStatus_RECEIPT_DELIVERED {
			delivered = append(delivered, rc)
		}
	}
	if len(delivered) != 1 || delivered[0].MsgId != hiID || delivered[0].By != web.UserID {
		t.Fatalf("bob's DELIVERED receipts = %v, want one for %s", delivered, hiID)
	}
	if rs := receiptsOf(e.frames(web)); len(rs) != 0 {
		t.Fatalf("alice got receipts %v for acknowledging her own copy", rs)
	}

	// The mobile reads bob's message: bob gets READ, and both her devices
	// learn that she read it (By is herself, Peer bob). Reading it again on
	// the web changes nothing.
	e.uplink(mobile, e.readOf(mobile, "bob", hiID))
	e.uplink(web, e.readOf(web, "bob", hiID))
	var read []*cimpb.Receipt
	for _, rc := range receiptsOf(e.frames(bob)) {
		if rc.Status == cimpb.ReceiptStatus_RECEIPT_READ {
			read = append(read, rc)
		}
	}
	if len(read) != 1 || read[0].MsgId != hiID {
		t.Fatalf("bob's READ receipts = %v, want one for %s", read, hiID)
	}
	for _, s := range []Session{mobile, web} {
		rs := receiptsOf(e.frames(s))
		if len(rs) != 1 || rs[0].Status != cimpb.ReceiptStatus_RECEIPT_READ || rs[0].By != web.UserID ||
			rs[0].Peer != bob.UserID || rs[0].MsgId != hiID || rs[0].Seq == 0 {
			t.Fatalf("%s got receipts %v, want one READ by alice about bob's %s", s.SessionID, rs, hiID)
		}
	}

	// History shows the conversation once: the copy is not a second message.
	if h := e.history(web, "bob", "", ""); len(h) != 2 {
		t.Fatalf("history with bob = %+v, want 2 messages", h)
	}

	// alice stays online while one device is; logging off with no session
	// named ends both.
	if err := e.r.SessionOffline(e.ctx, contract.Session{UserID: web.UserID, SessionID: web.SessionID}); err != nil {
		t.Fatal(err)
	}
	users, err := e.r.OnlineUsers(e.ctx, Page{})
	if err != nil || !slices.ContainsFunc(users, func(u User) bool { return u.Name == "alice" }) {
		t.Fatalf("online users %v (%v), want alice (mobile still on)", users, err)
	}
	e.connectOn("alice", "web")
	if err := e.r.Logoff(e.ctx, web.UserID, ""); err != nil {
		t.Fatal(err)
	}
	users, _ = e.r.OnlineUsers(e.ctx, Page{})
	if slices.ContainsFunc(users, func(u User) bool { return u.Name == "alice" }) {
		t.Fatalf("online users %v after logging alice off everywhere", users)
	}
	if f := e.frames(mobile); f[len(f)-1].Type != cimpb.Type_KICK {
		t.Fatalf("mobile's last frame %v, want KICK after the log-off", f[len(f)-1])
	}
}

// TestPlatformGroups: a group message a user sends from one device reaches
// its other devices, stored in its inbox (small groups) or pushed from the
// timeline (large ones), and nobody's receipt count includes the sender.
func TestPlatformGroups(t *testing.T) {
	for _, tc := range []struct {
		name     string
		timeline int
	}{{"inbox", 0}, {"timeline", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, PolicyPlatform, 2, func(c *Config) { c.GroupTimelineMin = tc.timeline })
			mobile := e.connectOn("alice", "mobile")
			web := e.connectOn("alice", "web")
			bob := e.connectOn("bob", "desktop")
			gid := e.newGroup(web, "team", bob)
			ds := e.uplink(web, groupFrame(1, "g1", gid))
			groupSent(t, ds[0], "g1", gid, 1)
			for _, s := range []Session{mobile, web, bob} {
				var got []*cimpb.Msg
				for _, f := range e.frames(s) {
					if f.Type == cimpb.Type_MSG && f.Msg.Group != "" { // not the invitation
						got = append(got, f.Msg)
					}
				}
				if len(got) != 1 || got[0].From != web.UserID || got[0].Group != gid || got[0].ClientMsgId != "g1" {
					t.Fatalf("%s/%s got %v, want alice's group message", s.UserName, s.SessionID, got)
				}
				if tc.timeline == 0 && got[0].Seq == 0 || tc.timeline > 0 && got[0].GroupSeq == 0 {
					t.Fatalf("%s got %v without its seq", s.SessionID, got[0])
				}
			}
			// Acknowledging her own copies sends nobody a receipt.
			if tc.timeline == 0 {
				e.uplink(mobile, ackFrame(2))
				for _, s := range []Session{mobile, web} {
					if rs := receiptsOf(e.frames(s)); len(rs) != 0 {
						t.Fatalf("%s got receipts %v for alice acknowledging her own message", s.SessionID, rs)
					}
				}
			}
		})
	}
}

// TestPlatformWebhooks: message.offline means no device of the recipient
// was reached: one device gone while another got the message is not
// offline, and the sender's own copies never are.
func TestPlatformWebhooks(t *testing.T) {
	hooks := &sink{t: t, only: map[event.Type]bool{event.MessageOffline: true}}
	e := newEnv(t, PolicyPlatform, 2, func(c *Config) { c.Events = hooks })
	phone := e.connectOn("alice", "mobile")
	web := e.connectOn("alice", "web")
	bob := e.connectOn("bob", "desktop")
	// The web's connection is gone, its route not yet: a push misses it.
	e.gateway(web.Gateway.ID).Disconnect(contract.DeviceKey(web.UserID, web.SessionID))
	e.uplink(bob, msgFrame(1, "c1", "alice"))
	if got := hooks.messages(); len(got) != 0 {
		t.Fatalf("events %v while alice's phone got the message", keysOf(got))
	}
	if f := msgsOf(e.frames(phone)); len(f) != 1 {
		t.Fatalf("phone got %v", f)
	}
	// Now neither device is there (and bob's own devices are not either).
	e.gateway(phone.Gateway.ID).Disconnect(contract.DeviceKey(phone.UserID, phone.SessionID))
	e.gateway(bob.Gateway.ID).Disconnect(contract.DeviceKey(bob.UserID, bob.SessionID))
	e.uplink(bob, msgFrame(2, "c2", "alice"))
	if ks := keysOf(hooks.messages()); !slices.Equal(ks, []string{"message.offline:" + phone.UserID}) {
		t.Fatalf("events %v, want one message.offline for alice", ks)
	}
}

// TestPlatformCopyFollowsItsMessage: the sender's copy of a message (for its
// other devices) is stored only if the message is. Once away bob's inbox
// holds twice alice's share of 2 (see TestSenderShare), her next message is refused (ERROR 4293) and no copy
// of it reaches her mobile, live or by SYNC; a resend once bob has read on is
// stored with one id for bob and for her copy, which her mobile gets.
func TestPlatformCopyFollowsItsMessage(t *testing.T) {
	e := newShareEnv(t, PolicyPlatform, 2)
	web, mobile := e.connectOn("alice", "web"), e.connectOn("alice", "mobile")
	bob := e.account("bob")
	sentIDs(t, e.uplink(web, msgFrame(1, "a1", "bob"), msgFrame(2, "a2", "bob"), msgFrame(3, "a3", "bob"), msgFrame(4, "a4", "bob")))
	ds := e.uplink(web, msgFrame(5, "a5", "bob"))
	if len(ds) != 1 || ds[0].Frame.GetError().GetCode() != int32(codes.QuotaExceeded) {
		t.Fatalf("answer %v, want ERROR 4293 for a5", ds)
	}
	bodies := func(fs []*cimpb.Frame) []string {
		var out []string
		for _, f := range fs {
			if m := f.GetMsg(); m != nil {
				out = append(out, string(m.Body))
			}
		}
		return out
	}
	want := "[body a1 body a2 body a3 body a4]"
	if got := fmt.Sprint(bodies(e.frames(mobile))); got != want {
		t.Fatalf("alice's mobile got %s live, want the copies %s only", got, want)
	}
	if got := fmt.Sprint(bodies(e.inbox(web.UserID))); got != want {
		t.Fatalf("alice's inbox holds %s, want the copies %s only", got, want)
	}

	// bob reads on; alice's web sends a5 again: one id everywhere.
	bob = e.connectOn("bob", "terminal")
	e.uplink(bob, syncFrame(1, 0, 0, false))
	e.uplink(bob, ackFrame(4))
	id := sentIDs(t, e.uplink(web, msgFrame(6, "a5", "bob")))[0]
	last := func(fs []*cimpb.Frame) *cimpb.Msg {
		if len(fs) == 0 {
			return nil
		}
		return fs[len(fs)-1].GetMsg()
	}
	if m := last(e.frames(bob)); m == nil || string(m.Body) != "body a5" || m.MsgId != id {
		t.Fatalf("bob's last frame %v, want a5 as %s", m, id)
	}
	if m := last(e.frames(mobile)); m == nil || string(m.Body) != "body a5" || m.MsgId != id {
		t.Fatalf("alice's mobile's last frame %v, want her copy of a5 as %s", m, id)
	}
	if m := last(e.inbox(web.UserID)); m == nil || string(m.Body) != "body a5" || m.MsgId != id {
		t.Fatalf("alice's inbox ends with %v, want her copy of a5 as %s", m, id)
	}
}

// TestPlatformCopyAfterAFailedBatch: when a batch fails after storing a
// message but before its sender's copy (Redis failed in between), the
// resend stores the copy with the first attempt's id and time, as the
// recipient has them, and alice's mobile gets it.
func TestPlatformCopyAfterAFailedBatch(t *testing.T) {
	now := time.Now() // the stores trim entries by age on their own clocks
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, PolicyPlatform, 1, func(c *Config) { c.Now = clock })
	web, mobile := e.connectOn("alice", "web"), e.connectOn("alice", "mobile")
	bob := e.connectOn("bob", "terminal")
	copies := func(w model.Write) bool {
		for _, a := range w.Appends {
			if a.UserID != web.UserID {
				return false
			}
		}
		return len(w.Appends) > 0
	}
	e.st.failWrite.Store(&copies)
	b := &cimpb.UplinkBatch{GatewayId: web.Gateway.ID, Uplinks: []*cimpb.Uplink{{UserId: web.UserID, SessionId: web.SessionID, Frame: msgFrame(1, "c1", "bob")}}}
	if _, err := e.r.Uplink(e.ctx, b); !errors.Is(err, errs.ErrUnavailable) {
		t.Fatalf("batch with its copies failing: %v, want ErrUnavailable", err)
	}
	e.st.failWrite.Store(nil)
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	id := sentIDs(t, e.uplink(web, msgFrame(2, "c1", "bob")))[0]
	fs := e.frames(bob)
	if len(fs) == 0 || fs[len(fs)-1].GetMsg().GetMsgId() != id {
		t.Fatalf("bob got %v, want c1 as %s", fs, id)
	}
	want := fs[len(fs)-1].Msg
	fs = e.frames(mobile)
	if len(fs) == 0 {
		t.Fatal("alice's mobile got no copy of c1")
	}
	if m := fs[len(fs)-1].GetMsg(); m.GetMsgId() != id || m.GetTimestampMs() != want.TimestampMs {
		t.Fatalf("alice's mobile got %v, want her copy of c1 as %s at %d (bob's)", m, id, want.TimestampMs)
	}
}
