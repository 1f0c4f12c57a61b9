package e2e

import (
	"slices"
	"testing"

	"github.com/gocim/gocim/e2e/harness"
)

// TestWebhookMutesAndMentions, on the real cluster with a back-end: a
// private message to a recipient who muted its sender is reported muted, to
// one who did not (or unmuted) not; a large group's message lists its
// offline recipients, marks those who muted the group, and names those it
// mentions, so the back-end can notify exactly whom it wants.
func TestWebhookMutesAndMentions(t *testing.T) {
	rcv := newHookReceiver(t)
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{
		"--webhook-url", rcv.srv.URL + "/gocim/events",
		"--webhook-secret", webhookSecret,
		"--webhook-retry-max", "2s",
		"--group-timeline-min", "3",
	}})
	ctx := ctxT(t)
	alice, bob, carol := c.Connect(t, "alice"), c.Connect(t, "bob"), c.Connect(t, "carol")
	g, err := alice.CreateGroup(ctx, "team", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []*harness.User{bob, carol} {
		if _, err := u.JoinGroup(ctx, g.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.MuteUser(ctx, "alice", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.MuteGroup(ctx, g.ID, 0); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*harness.User{bob, carol} {
		if err := u.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
	}
	marks := func(text string) hookData {
		t.Helper()
		return rcv.wait(t, "message.offline", "message.offline of "+text, func(d hookData) bool { return d.Text == text }).Data
	}
	for _, to := range []string{"bob", "carol"} {
		if _, err := alice.Send(ctx, to, "hi "+to); err != nil {
			t.Fatal(err)
		}
	}
	if m := marks("hi bob"); m.To != bob.ID || !m.Muted {
		t.Fatalf("to bob, who muted alice: %+v", m)
	}
	if m := marks("hi carol"); m.To != carol.ID || m.Muted {
		t.Fatalf("to carol: %+v", m)
	}
	if _, err := alice.SendGroupMentions(ctx, g.ID, "lunch @bob?", "bob"); err != nil {
		t.Fatal(err)
	}
	m := marks("lunch @bob?")
	slices.Sort(m.Recipients)
	want := []string{bob.ID, carol.ID}
	slices.Sort(want)
	if !slices.Equal(m.Recipients, want) || !slices.Equal(m.MutedRecipients, []string{bob.ID}) || !slices.Equal(m.Mentions, []string{bob.ID}) {
		t.Fatalf("the group's message.offline %+v, want both offline, bob muted and mentioned", m)
	}
}
