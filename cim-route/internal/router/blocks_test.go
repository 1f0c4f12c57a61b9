package router

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// TestBlocks: once alice blocks bob, bob's private messages to her (over
// a gateway, /p2pRoute, delayed, an invitation) are answered as sent but
// neither stored nor pushed, his typing does not reach her, she is never
// online to him, and hers to him are refused with 4030; a group message
// still reaches her; carol is not affected; after the unblock everything flows again. The list names
// the blocked users; blocking oneself, the system or nobody is refused.
func TestBlocks(t *testing.T) {
	e := newEnv(t, PolicyKick, 2)
	alice, bob, carol := e.connect("alice"), e.connect("bob"), e.connect("carol")
	gid := e.newGroup(bob, "team", alice)

	if u, err := e.r.Block(e.ctx, alice.UserID, "bob"); err != nil || u.ID != bob.UserID || u.Name != "bob" {
		t.Fatalf("Block = %+v, %v", u, err)
	}
	if _, err := e.r.Block(e.ctx, alice.UserID, bob.UserID); err != nil {
		t.Fatalf("blocking again, by id: %v", err)
	}
	for _, who := range []string{"alice", alice.UserID} {
		if _, err := e.r.Block(e.ctx, alice.UserID, who); !errors.Is(err, errs.ErrBadArgument) {
			t.Fatalf("blocking herself as %q: %v, want ErrBadArgument", who, err)
		}
	}
	if _, err := e.r.Block(e.ctx, alice.UserID, "nobody"); !errors.Is(err, errs.ErrBadAccount) {
		t.Fatalf("blocking nobody: %v, want ErrBadAccount", err)
	}
	if _, err := e.r.Block(e.ctx, alice.UserID, SystemUserID); err == nil {
		t.Fatal("blocked the system")
	}
	if us, err := e.r.Blocked(e.ctx, alice.UserID); err != nil || fmt.Sprint(us) != fmt.Sprintf("[{%s bob}]", bob.UserID) {
		t.Fatalf("Blocked = %v, %v", us, err)
	}
	// bob's gateway is told to stop showing him alice (a subscription of
	// his from before the block), and he sees her offline.
	e.waitPushes()
	var unwatch *cimpb.Presence
	for _, f := range e.frames(bob) {
		if p := f.GetPresence(); len(p.GetUnwatch()) > 0 {
			unwatch = p
		}
	}
	if unwatch == nil || !slices.Equal(unwatch.Unwatch, []string{alice.UserID}) || len(unwatch.States) != 1 ||
		unwatch.States[0].UserId != alice.UserID || unwatch.States[0].Online {
		t.Fatalf("bob's gateway got %v, want alice unwatched and offline", unwatch)
	}

	before := len(e.frames(alice))
	// bob -> alice: SENT, never stored or pushed.
	sentIDs(t, e.uplink(bob, msgFrame(1, "b1", "alice")))
	if _, err := e.r.P2P(e.ctx, bob.UserID, "alice", "over http"); err != nil {
		t.Fatalf("/p2pRoute from bob: %v", err)
	}
	if err := e.r.sendDelayed(e.ctx, model.DelayedMsg{ID: "d1", From: bob.UserID, To: alice.UserID, Text: "delayed"}); err != nil {
		t.Fatalf("bob's delayed message: %v", err)
	}
	g2, err := e.r.CreateGroup(e.ctx, bob.UserID, "another", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.InviteToGroup(e.ctx, bob.UserID, g2.ID, []string{"alice"}); err != nil {
		t.Fatalf("bob's invitation: %v", err)
	}
	e.uplink(bob, &cimpb.Frame{Type: cimpb.Type_TYPING, Typing: &cimpb.Typing{To: "alice"}})
	// What does reach her: carol's message and typing, bob's group message.
	sentIDs(t, e.uplink(carol, msgFrame(1, "c1", "alice")))
	e.uplink(carol, &cimpb.Frame{Type: cimpb.Type_TYPING, Typing: &cimpb.Typing{To: "alice"}})
	groupSent(t, e.uplink(bob, groupFrame(2, "g1", gid))[0], "g1", gid, 1)

	var got []string
	for _, f := range e.frames(alice)[before:] {
		switch {
		case f.GetMsg() != nil:
			got = append(got, f.Msg.From+":"+string(f.Msg.Body))
		case f.GetTyping() != nil:
			got = append(got, f.Typing.From+":typing")
		}
	}
	want := []string{carol.UserID + ":body c1", carol.UserID + ":typing", bob.UserID + ":body g1"}
	if !slices.Equal(got, want) {
		t.Fatalf("alice got %v, want %v", got, want)
	}
	var stored []string
	for _, f := range e.inbox(alice.UserID) {
		stored = append(stored, f.GetMsg().GetFrom()+":"+string(f.GetMsg().GetBody()))
	}
	if !slices.Equal(stored[len(stored)-2:], []string{carol.UserID + ":body c1", bob.UserID + ":body g1"}) || slices.ContainsFunc(stored, func(s string) bool {
		return s == bob.UserID+":body b1" || s == bob.UserID+":over http" || s == bob.UserID+":delayed"
	}) {
		t.Fatalf("alice's inbox %v holds bob's private messages, or lacks carol's and the group's", stored)
	}

	// bob does not see alice online: not in GET /presence (carol and an
	// application do), not in a SUBSCRIBE's snapshot, where she is offline
	// like anyone offline, and unheard by his gateway (unwatch).
	online := func(viewer string) bool {
		t.Helper()
		ps, err := e.r.Presence(e.ctx, viewer, []string{"alice", "carol"})
		if err != nil || len(ps) != 2 || ps[0].ID != alice.UserID || !ps[1].Online {
			t.Fatalf("Presence for %q = %+v, %v", viewer, ps, err)
		}
		return ps[0].Online
	}
	if online(bob.UserID) || !online(carol.UserID) || !online("") {
		t.Fatal("alice's presence: shown to bob, whom she blocked, or hidden from carol or the application")
	}
	sub := e.uplink(bob, &cimpb.Frame{Type: cimpb.Type_SUBSCRIBE, ReqId: 9, Subscribe: &cimpb.Subscribe{Users: []string{"alice", "carol"}, Groups: []string{gid}}})
	var watched []string
	for _, st := range sub[0].Frame.GetPresence().GetStates() {
		watched = append(watched, fmt.Sprintf("%s:%v:%d:%q", st.UserId, st.Online, st.AtMs, st.Platform))
	}
	if want := []string{alice.UserID + `:false:0:""`, carol.UserID + ":true"}; len(watched) != 2 || watched[0] != want[0] || !strings.HasPrefix(watched[1], want[1]) {
		t.Fatalf("bob's snapshot %v, want alice offline as anyone offline, carol online", watched)
	}
	if p := sub[0].Frame.GetPresence(); !slices.Equal(p.GetUnwatch(), []string{alice.UserID}) {
		t.Fatalf("bob's snapshot hides %v from his gateway, want alice (watched, unheard until an unblock)", p.GetUnwatch())
	}

	// alice -> bob: refused, nothing stored for him.
	bobHad := len(e.inbox(bob.UserID))
	ds := e.uplink(alice, msgFrame(1, "a1", "bob"))
	if len(ds) != 1 || ds[0].Frame.GetError().GetCode() != int32(codes.Forbidden) || ds[0].Frame.GetError().GetClientMsgId() != "a1" {
		t.Fatalf("alice's message to bob answered %v, want ERROR 4030", ds)
	}
	if _, err := e.r.P2P(e.ctx, alice.UserID, "bob", "over http"); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("alice's /p2pRoute to bob: %v, want ErrForbidden", err)
	}
	if n := len(e.inbox(bob.UserID)); n != bobHad {
		t.Fatalf("bob's inbox grew from %d to %d", bobHad, n)
	}
	sentIDs(t, e.uplink(alice, msgFrame(2, "a2", "carol")))

	// Unblocked: both ways work again; bob's client message id b1 was not
	// remembered, so his resend is a new message.
	if u, err := e.r.Unblock(e.ctx, alice.UserID, "bob"); err != nil || u.ID != bob.UserID {
		t.Fatalf("Unblock = %+v, %v", u, err)
	}
	if us, err := e.r.Blocked(e.ctx, alice.UserID); err != nil || len(us) != 0 {
		t.Fatalf("Blocked after unblock = %v, %v", us, err)
	}
	// bob's gateway is told to show him alice again, online, as of now
	// (after the offline state the block sent).
	var rewatch *cimpb.Presence
	for _, f := range e.frames(bob) {
		if p := f.GetPresence(); len(p.GetRewatch()) > 0 {
			rewatch = p
		}
	}
	if rewatch == nil || !slices.Equal(rewatch.Rewatch, []string{alice.UserID}) || len(rewatch.States) != 1 ||
		rewatch.States[0].UserId != alice.UserID || !rewatch.States[0].Online || rewatch.States[0].AtMs < unwatch.States[0].AtMs {
		t.Fatalf("bob's gateway got %v after the unblock, want alice rewatched and online, no older than %v", rewatch, unwatch)
	}
	sentIDs(t, e.uplink(bob, msgFrame(3, "b1", "alice")))
	sentIDs(t, e.uplink(alice, msgFrame(3, "a1", "bob")))
	if f := e.frames(alice); string(f[len(f)-1].GetMsg().GetBody()) != "body b1" {
		t.Fatalf("alice's last frame %v, want bob's b1", f[len(f)-1])
	}
	if f := e.frames(bob); string(f[len(f)-1].GetMsg().GetBody()) != "body a1" {
		t.Fatalf("bob's last frame %v, want alice's a1", f[len(f)-1])
	}
	if !online(bob.UserID) {
		t.Fatal("alice still hidden from bob after the unblock")
	}
}
