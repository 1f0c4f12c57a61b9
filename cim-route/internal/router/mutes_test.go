package router

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/event"
)

// describeMutes is "bob:until g3:until" for ms, until relative to now (0
// for none).
func describeMutes(ms []Mute, now time.Time) []string {
	var out []string
	for _, m := range ms {
		until := int64(0)
		if m.UntilMs != 0 {
			until = (m.UntilMs - now.UnixMilli()) / 1000
		}
		if m.Group != "" {
			out = append(out, fmt.Sprintf("g%s:%d", m.Group, until))
		} else {
			out = append(out, fmt.Sprintf("%s:%d", m.User.Name, until))
		}
	}
	return out
}

// TestMutes: a user mutes a peer or a group it is in, for a while or for
// good; the list shows those in force, users first; unmuting undoes it;
// what cannot be muted is refused; and the message webhooks mark the
// recipients who muted the conversation — a private message's, a small
// group's copy, a timeline message's recipients.
func TestMutes(t *testing.T) {
	clock := newTestClock()
	hooks := &sink{t: t}
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.Now = clock.now; c.Events = hooks; c.GroupTimelineMin = 4 })
	alice := e.connect("alice")
	bob, carol, dave := e.account("bob"), e.account("carol"), e.account("dave")
	small := e.newGroup(alice, "small", bob, carol)
	big := e.newGroup(alice, "big", bob, carol, dave)
	mute := func(s Session, user, gid string, d time.Duration) {
		t.Helper()
		if _, err := e.r.Mute(e.ctx, s.UserID, user, gid, d); err != nil {
			t.Fatalf("%s mutes %s%s: %v", s.UserName, user, gid, err)
		}
	}
	mute(bob, "alice", "", 0)
	mute(bob, "", small, time.Hour)
	mute(bob, "carol", "", time.Minute)
	mute(carol, "", big, 0)
	m, err := e.r.Muted(e.ctx, bob.UserID)
	if got := describeMutes(m, clock.now()); err != nil || !slices.Equal(got, []string{"alice:0", "carol:60", "g" + small + ":3600"}) {
		t.Fatalf("bob's mutes %v, %v", got, err)
	}
	clock.advance(2 * time.Minute)
	if m, _ := e.r.Muted(e.ctx, bob.UserID); len(m) != 2 {
		t.Fatalf("bob's mutes after carol's ran out: %v", describeMutes(m, clock.now()))
	}

	hooks.take(event.MessageOffline) // the invitations
	e.uplink(alice, msgFrame(1, "p", "bob"), msgFrame(2, "q", "carol"), groupFrame(3, "s", small), groupFrame(4, "b", big))
	var got []string
	for _, ev := range hooks.take(event.MessageOffline) {
		m := ev.Data.(event.Message)
		switch {
		case m.Group == big:
			got = append(got, fmt.Sprintf("big to %d muted %v", len(m.Recipients), m.MutedRecipients))
		case m.Group == small:
			got = append(got, fmt.Sprintf("small to %s muted %v", m.To, m.Muted))
		default:
			got = append(got, fmt.Sprintf("%s to %s muted %v", m.Text, m.To, m.Muted))
		}
	}
	slices.Sort(got)
	want := []string{
		"big to 3 muted [" + carol.UserID + "]",
		"body p to " + bob.UserID + " muted true", "body q to " + carol.UserID + " muted false",
		"small to " + bob.UserID + " muted true", "small to " + carol.UserID + " muted false",
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("message.offline events\n%q\nwant\n%q", got, want)
	}

	// Unmuted: no mark.
	if _, err := e.r.Unmute(e.ctx, bob.UserID, "alice", ""); err != nil {
		t.Fatal(err)
	}
	e.uplink(alice, msgFrame(5, "p2", "bob"))
	if ev := hooks.messages()["message.offline:"+bob.UserID]; ev.MsgID == "" || ev.Muted {
		t.Fatalf("after the unmute: %+v", ev)
	}

	for _, tc := range []struct {
		name      string
		user, gid string
		d         time.Duration
		want      error
	}{
		{"self", "bob", "", 0, errs.ErrBadArgument},
		{"neither", "", "", 0, errs.ErrBadArgument},
		{"both", "alice", small, 0, errs.ErrBadArgument},
		{"unknown", "nobody", "", 0, errs.ErrBadAccount},
		{"negative", "alice", "", -time.Second, errs.ErrBadArgument},
		{"not a member", "", e.newGroup(alice, "other"), 0, errs.ErrForbidden},
	} {
		if _, err := e.r.Mute(e.ctx, bob.UserID, tc.user, tc.gid, tc.d); !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
