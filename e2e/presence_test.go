package e2e

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// isPresence matches a presence change (not a snapshot) of user uid.
func isPresence(uid string, online bool) func(client.Event) bool {
	return func(e client.Event) bool {
		if e.Kind != client.EventPresence || e.Presence.GetSnapshot() {
			return false
		}
		for _, s := range e.Presence.States {
			if s.UserId == uid && s.Online == online {
				return true
			}
		}
		return false
	}
}

func isSnapshot(e client.Event) bool {
	return e.Kind == client.EventPresence && e.Presence.GetSnapshot()
}

func isTyping(from, group string, stopped bool) func(client.Event) bool {
	return func(e client.Event) bool {
		return e.Kind == client.EventTyping && e.Typing.From == from && e.Typing.Group == group && e.Typing.Stopped == stopped
	}
}

// stateOf finds uid's state in states.
func stateOf(states []*cimpb.PresenceState, uid string) *cimpb.PresenceState {
	for _, s := range states {
		if s.UserId == uid {
			return s
		}
	}
	return nil
}

// cutter records a client's gateway connections so a test can cut them.
type cutter struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (c *cutter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		c.mu.Lock()
		c.conns = append(c.conns, nc)
		c.mu.Unlock()
	}
	return nc, err
}

func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nc := range c.conns {
		nc.Close()
	}
	c.conns = nil
}

// TestPresenceAndTyping: a client subscribes to users and to a group's
// members over two gateways, gets the state at subscribe time and every
// change live (with the platform each login named), again after its own
// reconnect; typing indicators reach the peer or the group's online members
// and are never stored; back-ends ask GET /presence; the terminal shows all
// of it.
func TestPresenceAndTyping(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	ctx := ctxT(t)
	bobID := c.Register(t, "bob")
	var annLink cutter
	ann := c.Connect(t, "ann", func(cfg *client.Config) { cfg.Platform = "web"; cfg.Dial = annLink.dial })
	carol := c.Connect(t, "carol", func(cfg *client.Config) { cfg.Platform = "desktop" })
	g, err := ann.CreateGroup(ctx, "team", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.JoinGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}

	// The snapshot: bob offline, carol (a member of team) online.
	states, err := ann.Subscribe(ctx, []string{"bob"}, []string{g.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 2 || states[0].UserId != bobID || states[0].Online || states[0].UserName != "bob" ||
		states[1].UserId != carol.ID || !states[1].Online {
		t.Fatalf("snapshot %v, want bob offline then carol online", states)
	}
	// Refused subscriptions leave the one in force.
	var ge *client.GatewayError
	if _, err := ann.Subscribe(ctx, []string{"nobody-here"}, nil); !errors.As(err, &ge) || ge.Code != codes.BadAccount {
		t.Fatalf("subscribe to an unknown user: %v, want BadAccount", err)
	}
	other, err := carol.CreateGroup(ctx, "closed", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ann.Subscribe(ctx, nil, []string{other.ID}); !errors.As(err, &ge) || ge.Code != codes.Forbidden {
		t.Fatalf("subscribe to a group of which not a member: %v, want Forbidden", err)
	}

	// bob comes: ann hears it, with bob's platform, across gateways.
	from := ann.Len()
	bob := c.Connect(t, "bob", func(cfg *client.Config) { cfg.Platform = "mobile" })
	i := ann.WaitFor(t, from, wait, "bob online", isPresence(bobID, true))
	if s := stateOf(ann.Seen()[i].Presence.States, bobID); s.Platform != "mobile" || s.UserName != "bob" || s.AtMs == 0 {
		t.Fatalf("bob's state %v, want platform mobile, a name and a time", s)
	}
	if s, ok := ann.PresenceOf(bobID); !ok || !s.Online {
		t.Fatalf("PresenceOf(bob) = %v %v", s, ok)
	}

	// Back-ends ask the route: with the admin key, or a user's token.
	var got struct {
		Data struct {
			Users []struct {
				UserID   string `json:"userId"`
				UserName string `json:"userName"`
				Online   bool   `json:"online"`
				Since    int64  `json:"since"`
			} `json:"users"`
		} `json:"data"`
	}
	if st, err := c.API(http.MethodGet, "/presence?users=bob,"+carol.ID+",nobody-at-all", harness.APIKey(harness.AdminKey), nil, &got); err == nil && st == http.StatusOK {
		t.Fatalf("GET /presence with an unknown user: %d", st)
	}
	if st, err := c.API(http.MethodGet, "/presence?users=bob,"+carol.ID, harness.APIKey(harness.AdminKey), nil, &got); err != nil || st != http.StatusOK {
		t.Fatalf("GET /presence: %d %v", st, err)
	}
	if u := got.Data.Users; len(u) != 2 || u[0].UserID != bobID || !u[0].Online || u[0].Since == 0 || u[1].UserName != "carol" || !u[1].Online {
		t.Fatalf("GET /presence = %+v", got.Data.Users)
	}
	if st, _ := c.API(http.MethodGet, "/presence?users=bob", nil, nil, nil); st != http.StatusUnauthorized {
		t.Fatalf("GET /presence without credentials: %d, want 401", st)
	}
	ps, err := ann.API().Presence(ctx, "bob", "ann")
	if err != nil || len(ps) != 2 || !ps[0].Online || ps[1].UserID != ann.ID {
		t.Fatalf("SDK Presence = %+v, %v", ps, err)
	}

	// Typing: to the peer, live; in the group to the other members.
	from = ann.Len()
	if err := bob.Typing(ctx, "ann", false); err != nil {
		t.Fatal(err)
	}
	ann.WaitFor(t, from, wait, "bob typing", isTyping(bobID, "", false))
	if err := bob.Typing(ctx, ann.ID, true); err != nil {
		t.Fatal(err)
	}
	ann.WaitFor(t, from, wait, "bob stopped typing", isTyping(bobID, "", true))
	fromCarol := carol.Len()
	if err := carol.TypingInGroup(ctx, g.ID, false); err != nil {
		t.Fatal(err)
	}
	ann.WaitFor(t, from, wait, "carol typing in the group", isTyping(carol.ID, g.ID, false))

	// ann's link breaks: the client subscribes again on the new one (a
	// snapshot) and keeps getting changes.
	from = ann.Len()
	annLink.cut()
	ann.WaitFor(t, from, wait, "the snapshot after the reconnect", isSnapshot)

	// Typing is never stored: bob, offline when ann types, never sees it;
	// the message ann sends after it arrives, and nothing before it.
	bob.Close(ctx)
	ann.WaitFor(t, from, wait, "bob offline", isPresence(bobID, false))
	if err := ann.Typing(ctx, "bob", false); err != nil {
		t.Fatal(err)
	}
	if _, err := ann.Send(ctx, "bob", "after typing"); err != nil {
		t.Fatal(err)
	}
	bob2 := c.Connect(t, "bob")
	bob2.WaitFor(t, 0, wait, "the message", harness.IsMessage("after typing"))
	for _, e := range bob2.Seen() {
		if e.Kind == client.EventTyping {
			t.Fatalf("bob got a typing indicator sent while offline: %v", e.Typing)
		}
	}
	// carol never got her own indicator.
	for _, e := range carol.Seen()[fromCarol:] {
		if e.Kind == client.EventTyping {
			t.Fatalf("carol got a typing indicator: %v", e.Typing)
		}
	}

	// The terminal: :watch prints the snapshot, then changes and typing.
	dave := c.Terminal(t, "dave")
	n, _ := dave.Expect(t, 0, `^\* logged in as dave`)
	dave.Send(t, ":watch bob ann")
	n, _ = dave.Expect(t, n, `^\* watching: bob online, ann online \(web\)$`)
	bob2.Close(ctx)
	n, _ = dave.Expect(t, n, `^\* bob is offline$`)
	if err := ann.Typing(ctx, "dave", false); err != nil {
		t.Fatal(err)
	}
	n, _ = dave.Expect(t, n, `^\* ann is typing…$`)
	if err := ann.TypingInGroup(ctx, g.ID, false); err != nil { // dave is not a member
		t.Fatal(err)
	}
	if _, err := ann.Send(ctx, "dave", "marker"); err != nil {
		t.Fatal(err)
	}
	m, _ := dave.Expect(t, n, `marker`)
	for _, l := range dave.Lines()[n+1 : m] {
		if l != "" {
			t.Fatalf("the terminal printed %q for a group it is not in", l)
		}
	}
	dave.Send(t, ":typing ann")
	ann.WaitFor(t, from, wait, "dave typing from the terminal", func(e client.Event) bool {
		return e.Kind == client.EventTyping && e.Typing.FromName == "dave"
	})
}

// TestPresenceFrozenGateway: the gateway holding bob freezes (SIGSTOP, no
// clean exit). Once its ZooKeeper session is gone the route clears its
// users and ann, watching bob from the other gateway, hears that he is
// offline; when the gateway runs again it re-asserts bob's connection and
// ann hears that he is back.
func TestPresenceFrozenGateway(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	ctx := ctxT(t)
	ann := c.Connect(t, "ann")
	var bob *harness.User
	for i := 0; bob == nil; i++ {
		u := c.Connect(t, "bob"+strconv.Itoa(i))
		if u.Info().Gateway != ann.Info().Gateway {
			bob = u
		}
	}
	states, err := ann.Subscribe(ctx, []string{bob.ID}, nil)
	if err != nil || len(states) != 1 || !states[0].Online {
		t.Fatalf("snapshot %v, %v: want bob online", states, err)
	}
	victim := c.Gateway(bob.Info().Gateway)
	from := ann.Len()
	victim.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { victim.Signal(syscall.SIGCONT) })
	ann.WaitFor(t, from, wait, "bob offline while his gateway is frozen", isPresence(bob.ID, false))
	from = ann.Len()
	victim.Signal(syscall.SIGCONT)
	ann.WaitFor(t, from, wait, "bob online again", isPresence(bob.ID, true))
}
