package router

import (
	"slices"
	"sync"
	"testing"

	"github.com/gocim/gocim/cim-route/internal/event"
	"github.com/gocim/gocim/proto/cimpb"
)

// sink records the events of the types it wants (nil: all).
type sink struct {
	t    testing.TB
	only map[event.Type]bool
	mu   sync.Mutex
	evs  []event.Event
}

func (s *sink) Wants(typ event.Type) bool { return s.only == nil || s.only[typ] }

func (s *sink) Emit(ev event.Event) {
	if !s.Wants(ev.Type) {
		// Presence events come unasked (cheap to make, and rare); the
		// message path must ask first.
		if ev.Type != event.UserOnline && ev.Type != event.UserOffline {
			s.t.Errorf("emitted unwanted %s: %+v", ev.Type, ev.Data)
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evs = append(s.evs, ev)
}

// take returns and forgets the events of the given types so far.
func (s *sink) take(types ...event.Type) []event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out, rest []event.Event
	for _, ev := range s.evs {
		if slices.Contains(types, ev.Type) {
			out = append(out, ev)
		} else {
			rest = append(rest, ev)
		}
	}
	s.evs = rest
	return out
}

// messages returns and forgets the message events as typ:to, with their
// data.
func (s *sink) messages() map[string]event.Message {
	out := map[string]event.Message{}
	for _, ev := range s.take(event.MessageApp, event.MessageOffline) {
		m := ev.Data.(event.Message)
		k := string(ev.Type) + ":" + m.To
		if len(m.Recipients) > 0 {
			k = string(ev.Type) + ":" + slicesJoin(m.Recipients)
		}
		if _, dup := out[k]; dup {
			s.t.Errorf("two events %s", k)
		}
		out[k] = m
	}
	return out
}

func slicesJoin(s []string) string {
	s = slices.Clone(s)
	slices.Sort(s)
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ","
		}
		out += v
	}
	return out
}

func keysOf(m map[string]event.Message) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestWebhookMessages: message.app for every new message stored for an
// app user (named by name, resolved on first use), message.offline for
// every one stored for a recipient not reached (no route, or the gateway
// no longer holds it), one per thousand offline members for a timeline
// message; nothing for resends, broadcasts or the system user's messages.
func TestWebhookMessages(t *testing.T) {
	hooks := &sink{t: t}
	e := newEnv(t, PolicyKick, 2, func(c *Config) {
		c.Events = hooks
		c.AppUsers = NewAppUsers([]string{"bot", "999"})
		c.GroupTimelineMin = 4
	})
	alice, bot := e.connect("alice"), e.connect("bot")
	bob, carol := e.account("bob"), e.account("carol")

	e.uplink(alice, msgFrame(1, "c1", bob.UserID), msgFrame(2, "c2", "bot"))
	got := hooks.messages()
	if ks := keysOf(got); !slices.Equal(ks, []string{"message.app:" + bot.UserID, "message.offline:" + bob.UserID}) {
		t.Fatalf("events %v", ks)
	}
	off := got["message.offline:"+bob.UserID]
	if off.From != alice.UserID || off.FromName != "alice" || off.Text != "body c1" || off.Kind != "text" || off.Seq != 1 || off.MsgID == "" || off.TimestampMs == 0 {
		t.Fatalf("message.offline %+v", off)
	}
	if app := got["message.app:"+bot.UserID]; app.Text != "body c2" || app.Seq != 1 || app.Group != "" {
		t.Fatalf("message.app %+v", app)
	}

	// A reaction to an offline user: its op and emoji.
	e.uplink(alice, opFrame(3, "r1", bob.UserID, "", off.MsgID, cimpb.MsgOp_MSG_OP_REACT, "👍"))
	if rx := hooks.messages()["message.offline:"+bob.UserID]; rx.Op != "react" || rx.RefMsgID != off.MsgID || rx.Text != "👍" {
		t.Fatalf("a reaction's message.offline %+v", rx)
	}

	// A resend, a broadcast, the system user's message: nothing.
	e.uplink(alice, msgFrame(4, "c1", bob.UserID))
	e.uplink(alice, &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "b1", Broadcast: true, Body: []byte("all")}})
	if _, err := e.r.Push(e.ctx, PushRequest{To: []string{"bob", "bot"}, Text: "from the back-end"}); err != nil {
		t.Fatal(err)
	}
	if got := hooks.messages(); len(got) != 0 {
		t.Fatalf("events %v", keysOf(got))
	}

	// A group below the timeline size: one event per copy.
	small := e.newGroup(alice, "small", bob, bot)
	hooks.messages() // the invitations, from alice
	e.uplink(alice, groupFrame(5, "g1", small))
	got = hooks.messages()
	if ks := keysOf(got); !slices.Equal(ks, []string{"message.app:" + bot.UserID, "message.offline:" + bob.UserID}) {
		t.Fatalf("group events %v", ks)
	}
	if m := got["message.offline:"+bob.UserID]; m.Group != small || m.Seq == 0 || m.GroupSeq != 0 {
		t.Fatalf("group message.offline %+v", m)
	}

	// A timeline: the offline members together, the app user on its own.
	big := e.newGroup(alice, "big", bob, bot, carol)
	hooks.messages()
	e.uplink(alice, groupFrame(6, "g2", big))
	got = hooks.messages()
	pair := slicesJoin([]string{bob.UserID, carol.UserID})
	if ks := keysOf(got); len(ks) != 2 || got["message.offline:"+pair].GroupSeq == 0 || got["message.app:"+bot.UserID].GroupSeq == 0 {
		t.Fatalf("timeline events %v", ks)
	}

	// A session the gateway no longer holds: the push finds it gone.
	e.gateway(bot.Gateway.ID).Disconnect(bot.UserID)
	e.uplink(alice, msgFrame(8, "c8", "bot"))
	got = hooks.messages()
	if ks := keysOf(got); !slices.Equal(ks, []string{"message.app:" + bot.UserID, "message.offline:" + bot.UserID}) {
		t.Fatalf("events after the disconnect %v", ks)
	}
}

// TestWebhookKicksAndGroups: user.kicked for a second login, and the
// group changes with who did them to whom.
func TestWebhookKicksAndGroups(t *testing.T) {
	hooks := &sink{t: t, only: map[event.Type]bool{event.UserKicked: true, event.GroupCreated: true, event.GroupJoined: true,
		event.GroupLeft: true, event.GroupKicked: true, event.GroupRenamed: true, event.GroupOwner: true, event.GroupDissolved: true}}
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.Events = hooks })
	alice, bob := e.connect("alice"), e.connect("bob")
	carol := e.account("carol")
	again := e.connect("alice")
	kicked := hooks.take(event.UserKicked)
	if len(kicked) != 1 {
		t.Fatalf("kicks %+v", kicked)
	}
	if p := kicked[0].Data.(event.Presence); p.UserID != alice.UserID || p.UserName != "alice" || p.SessionID != alice.SessionID ||
		p.Gateway != alice.Gateway.ID || p.Reason != "logged in elsewhere" || kicked[0].ID == "" || kicked[0].TimeMs == 0 {
		t.Fatalf("user.kicked %+v", p)
	}

	g, err := e.r.CreateGroup(e.ctx, again.UserID, "team", true)
	if err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error { _, err := e.r.JoinGroup(e.ctx, bob.UserID, g.ID); return err },
		func() error { _, err := e.r.JoinGroup(e.ctx, carol.UserID, g.ID); return err },
		func() error { return e.r.LeaveGroup(e.ctx, bob.UserID, g.ID) },
		func() error { return e.r.KickFromGroup(e.ctx, alice.UserID, g.ID, "carol") },
		func() error { _, err := e.r.RenameGroup(e.ctx, alice.UserID, g.ID, "crew"); return err },
		func() error { return e.r.LeaveGroup(e.ctx, carol.UserID, g.ID) }, // refused: not a member
		func() error { _, err := e.r.JoinGroup(e.ctx, bob.UserID, g.ID); return err },
		func() error { _, err := e.r.TransferGroup(e.ctx, alice.UserID, g.ID, "bob"); return err },
		func() error { return e.r.DissolveGroup(e.ctx, bob.UserID, g.ID) },
	}
	for i, step := range steps {
		if err := step(); (err != nil) != (i == 5) {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	want := []struct {
		typ          event.Type
		name, by, to string
	}{
		{event.GroupCreated, "team", alice.UserID, alice.UserID},
		{event.GroupJoined, "team", bob.UserID, bob.UserID},
		{event.GroupJoined, "team", carol.UserID, carol.UserID},
		{event.GroupLeft, "", bob.UserID, bob.UserID},
		{event.GroupKicked, "", alice.UserID, carol.UserID},
		{event.GroupRenamed, "crew", alice.UserID, ""},
		{event.GroupJoined, "crew", bob.UserID, bob.UserID},
		{event.GroupOwner, "crew", alice.UserID, bob.UserID},
		{event.GroupDissolved, "", bob.UserID, ""},
	}
	evs := hooks.take(event.Types...)
	if len(evs) != len(want) {
		t.Fatalf("%d events, want %d: %+v", len(evs), len(want), evs)
	}
	for i, w := range want {
		d := evs[i].Data.(event.Group)
		if evs[i].Type != w.typ || d.GroupID != g.ID || d.Name != w.name || d.By != w.by || (w.to != "" && !slices.Equal(d.Users, []string{w.to})) {
			t.Errorf("event %d: %s %+v, want %+v", i, evs[i].Type, d, w)
		}
	}
}

// TestWebhooksNotWantedCostNothing: with no message type wanted, no
// payload is built and app user names are never looked up.
func TestWebhooksNotWantedCostNothing(t *testing.T) {
	hooks := &sink{t: t, only: map[event.Type]bool{}} // Emit of anything fails the test
	e := newEnv(t, PolicyKick, 1, func(c *Config) {
		c.Events = hooks
		c.AppUsers = NewAppUsers([]string{"bob"})
	})
	alice, bob := e.connect("alice"), e.account("bob")
	lookups := e.st.lookups.Load()
	e.uplink(alice, msgFrame(1, "c1", bob.UserID))
	if n := e.st.lookups.Load() - lookups; n != 0 {
		t.Fatalf("%d lookups", n)
	}
	if ms := hooks.messages(); len(ms) != 0 {
		t.Fatalf("events %v", keysOf(ms))
	}
}
