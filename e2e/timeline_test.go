package e2e

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// TestGroupTimeline: with --group-timeline-min 3 every message of a group
// of five is stored once, in the group's timeline (docs/ARCHITECTURE.md,
// "Group timelines"). Members see each exactly once and in order: one
// online throughout, one whose gateway is killed mid-stream, one offline
// until the end, one who joins mid-stream (from the join on) and one who
// leaves mid-stream (up to the leave).
func TestGroupTimeline(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 3, RouteArgs: []string{"--group-timeline-min", "3"}})
	ctx := ctxT(t)
	sam := c.Connect(t, "sam")
	tom := c.Connect(t, "tom") // online throughout
	kim := c.Connect(t, "kim") // its gateway dies mid-stream
	wes := c.Connect(t, "wes") // offline during the stream
	una := c.Connect(t, "una") // leaves mid-stream
	vic := c.Connect(t, "vic") // joins mid-stream
	g, err := sam.CreateGroup(ctx, "hall", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []*harness.User{tom, kim, wes, una} {
		if _, err := u.JoinGroup(ctx, g.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := wes.Close(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 30
	send := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			id, err := sam.SendGroup(ctx, g.ID, fmt.Sprintf("crew %02d", i))
			if err != nil {
				t.Fatal(err)
			}
			sam.WaitFor(t, 0, wait, "SENT "+id, func(e client.Event) bool {
				return e.Kind == client.EventReceipt && e.Receipt.ClientMsgId == id && e.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT
			})
		}
	}
	send(0, 10)
	if _, err := vic.JoinGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	kim.WaitFor(t, 0, wait, "crew 09 before its gateway dies", isGroupMessage(g.ID, "crew 09"))
	c.Gateway(kim.Info().Gateway).Kill()
	send(10, 20)
	una.WaitFor(t, 0, wait, "crew 19 before leaving", isGroupMessage(g.ID, "crew 19"))
	if err := una.LeaveGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	send(20, n)

	last := fmt.Sprintf("crew %02d", n-1)
	for _, u := range []*harness.User{tom, kim, vic} {
		u.WaitFor(t, 0, wait, "the last group message", isGroupMessage(g.ID, last))
	}
	wes2 := c.Connect(t, "wes")
	wes2.WaitFor(t, 0, wait, "group messages after coming back", isGroupMessage(g.ID, last))
	for _, u := range []*harness.User{tom, kim, wes2} {
		checkRun(t, u, g.ID, 0, n)
	}
	checkRun(t, vic, g.ID, 10, n)
	// una left after crew 19 reached her: she has exactly 0…19 (the
	// later ones went only to the members of the time).
	checkRun(t, una, g.ID, 0, 20)
	// The group's history (GET /history?group=) reads its timeline: all
	// 30, newest first, with their group_seqs; a keyword narrows it; una,
	// no member any more, is refused.
	page, err := tom.HistoryFill(ctx, client.HistoryQuery{Group: g.ID}, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != n {
		t.Fatalf("tom's group history holds %d messages, want %d", len(page.Messages), n)
	}
	for i, m := range page.Messages {
		if want := fmt.Sprintf("crew %02d", n-1-i); string(m.Body) != want || m.Group != g.ID || m.GroupSeq != uint64(n-i) {
			t.Fatalf("group history entry %d = %v, want %q at group_seq %d", i, m, want, n-i)
		}
	}
	if page, err := tom.History(ctx, client.HistoryQuery{Group: g.ID, Keyword: "crew 07"}); err != nil ||
		len(page.Messages) != 1 || string(page.Messages[0].Body) != "crew 07" {
		t.Fatalf("group history for crew 07 = %v, %v", page.Messages, err)
	}
	_, err = una.History(ctx, client.HistoryQuery{Group: g.ID})
	wantCode(t, err, codes.Forbidden, "group history of a group she left")
	// Each message was stored once: every member's inbox holds none of it
	// (a SYNC from 0 of the inbox brings no group message).
	for _, e := range wes2.Seen() {
		if e.Kind == client.EventMessage && e.Msg.Group == g.ID && (e.Msg.Seq != 0 || e.Msg.GroupSeq == 0) {
			t.Fatalf("a timeline group's message came as an inbox entry: %v", e.Msg)
		}
	}
}

// checkRun fails unless u saw crew from…crew to-1 of group gid once each,
// in order, and no other message of the group.
func checkRun(t *testing.T, u *harness.User, gid string, from, to int) {
	t.Helper()
	var got []string
	for _, e := range u.Seen() {
		if e.Kind == client.EventMessage && e.Msg.Group == gid {
			got = append(got, string(e.Msg.Body))
		}
	}
	if len(got) != to-from {
		t.Fatalf("%s saw %d group messages, want %d (crew %02d…%02d): %q", u.Name, len(got), to-from, from, to-1, got)
	}
	for i, b := range got {
		if want := fmt.Sprintf("crew %02d", from+i); b != want {
			t.Fatalf("%s: message %d is %q, want %q (got %q)", u.Name, i, b, want, got)
		}
	}
}

// TestGroupTimelineFrozenGateway: the gateway of some members of a
// timeline group is frozen (SIGSTOP) mid-stream. Members elsewhere keep
// getting the group's messages while it is stopped (the route's pushes to
// a frozen gateway hold up nobody else), and once it runs again its
// members, like everyone, have every message exactly once and in order.
func TestGroupTimelineFrozenGateway(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 3, RouteArgs: []string{"--group-timeline-min", "3"}})
	ctx := ctxT(t)
	sam := c.Connect(t, "sam")
	var members []*harness.User
	byGateway := map[string][]*harness.User{}
	for i := range 6 {
		u := c.Connect(t, fmt.Sprintf("crew%d", i))
		members = append(members, u)
		byGateway[u.Info().Gateway] = append(byGateway[u.Info().Gateway], u)
	}
	var victim *harness.Gateway
	var witness *harness.User
	for id, us := range byGateway {
		switch {
		case id != sam.Info().Gateway && victim == nil:
			victim = c.Gateway(id)
		case witness == nil:
			witness = us[0]
		}
	}
	if victim == nil || witness == nil {
		t.Fatalf("members over %d gateways: want one frozen besides sam's and one running", len(byGateway))
	}
	g, err := sam.CreateGroup(ctx, "hall", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range members {
		if _, err := u.JoinGroup(ctx, g.ID); err != nil {
			t.Fatal(err)
		}
	}
	const n = 30
	send := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if _, err := sam.SendGroup(ctx, g.ID, fmt.Sprintf("crew %02d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(0, 10)
	victim.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { victim.Signal(syscall.SIGCONT) })
	send(10, 20)
	witness.WaitFor(t, 0, wait, "crew 19 while a gateway is frozen", isGroupMessage(g.ID, "crew 19"))
	victim.Signal(syscall.SIGCONT)
	send(20, n)

	last := fmt.Sprintf("crew %02d", n-1)
	for _, u := range members {
		u.WaitFor(t, 0, wait, "the last group message", isGroupMessage(g.ID, last))
	}
	for _, u := range members {
		checkRun(t, u, g.ID, 0, n)
	}
}
