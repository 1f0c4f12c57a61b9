package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

func wantCode(t *testing.T, err error, want codes.Code, what string) {
	t.Helper()
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != want {
		t.Fatalf("%s: got %v, want code %d", what, err, want)
	}
}

// openGroup makes owner create an open group named name that members join,
// and returns its id.
func openGroup(t *testing.T, ctx context.Context, owner *harness.User, name string, members ...*harness.User) string {
	t.Helper()
	g, err := owner.CreateGroup(ctx, name, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range members {
		if _, err := u.JoinGroup(ctx, g.ID); err != nil {
			t.Fatal(err)
		}
	}
	return g.ID
}

func isGroupMessage(gid, body string) func(client.Event) bool {
	return func(e client.Event) bool {
		return e.Kind == client.EventMessage && e.Msg != nil && e.Msg.Group == gid && string(e.Msg.Body) == body
	}
}

// TestGroupOperations: every group operation through the SDK against the
// real route, with its permission rules.
func TestGroupOperations(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	ctx := ctxT(t)
	owner := c.Connect(t, "olga")
	pia := c.Connect(t, "pia")
	quinn := c.Connect(t, "quinn")
	ravi := c.Connect(t, "ravi")

	closed, err := owner.CreateGroup(ctx, "team", false)
	if err != nil {
		t.Fatal(err)
	}
	if closed.Owner != owner.ID || closed.Members != 1 || closed.Open {
		t.Fatalf("created %+v", closed)
	}
	// A closed group: no joining without an invitation.
	_, err = pia.JoinGroup(ctx, closed.ID)
	wantCode(t, err, codes.Forbidden, "join a closed group uninvited")
	// Only the owner invites to a closed group.
	_, err = quinn.InviteToGroup(ctx, closed.ID, "ravi")
	wantCode(t, err, codes.Forbidden, "non-member invites")
	if _, err := owner.InviteToGroup(ctx, closed.ID, "pia", "quinn"); err != nil {
		t.Fatal(err)
	}
	// The invitation arrives as a stored message from the owner (not the
	// system user) naming the group.
	pia.WaitFor(t, 0, wait, "invitation", func(e client.Event) bool {
		return e.Kind == client.EventMessage && e.Msg.From == owner.ID && strings.Contains(string(e.Msg.Body), "team") && strings.Contains(string(e.Msg.Body), ":gjoin "+closed.ID)
	})
	for _, u := range []*harness.User{pia, quinn} {
		if _, err := u.JoinGroup(ctx, closed.ID); err != nil {
			t.Fatalf("%s joins after the invitation: %v", u.Name, err)
		}
	}
	members, err := pia.GroupMembers(ctx, closed.ID)
	if err != nil || len(members) != 3 {
		t.Fatalf("members %+v %v, want 3", members, err)
	}
	_, err = ravi.GroupMembers(ctx, closed.ID)
	wantCode(t, err, codes.Forbidden, "non-member lists members of a closed group")

	// Open group: anyone joins.
	open, err := owner.CreateGroup(ctx, "lobby", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ravi.JoinGroup(ctx, open.ID); err != nil {
		t.Fatalf("join an open group: %v", err)
	}
	mine, err := owner.Groups(ctx)
	if err != nil || len(mine) != 2 {
		t.Fatalf("owner's groups %+v %v, want 2", mine, err)
	}

	// Kick, leave, rename: owner-only where it should be.
	wantCode(t, pia.KickFromGroup(ctx, closed.ID, "quinn"), codes.Forbidden, "non-owner kicks")
	if err := owner.KickFromGroup(ctx, closed.ID, "quinn"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, owner.LeaveGroup(ctx, closed.ID), codes.Forbidden, "owner leaves")
	if err := pia.LeaveGroup(ctx, closed.ID); err != nil {
		t.Fatal(err)
	}
	_, err = pia.RenameGroup(ctx, closed.ID, "mine now")
	wantCode(t, err, codes.Forbidden, "non-owner renames")
	renamed, err := owner.RenameGroup(ctx, closed.ID, "core team")
	if err != nil || renamed.Name != "core team" {
		t.Fatalf("rename: %+v %v", renamed, err)
	}
	if ms, err := owner.GroupMembers(ctx, closed.ID); err != nil || len(ms) != 1 {
		t.Fatalf("after kick and leave: members %+v %v, want only the owner", ms, err)
	}
	// A kicked member can no longer send to the group.
	id, err := quinn.SendGroup(ctx, closed.ID, "still here?")
	if err != nil {
		t.Fatal(err)
	}
	quinn.WaitFor(t, 0, wait, "not-a-member error", func(e client.Event) bool {
		return e.Kind == client.EventError && e.Err.ClientMsgId == id && codes.Code(e.Err.Code) == codes.Forbidden
	})

	// Dissolve: gone for everyone.
	wantCode(t, ravi.DissolveGroup(ctx, open.ID), codes.Forbidden, "non-owner dissolves")
	if err := owner.DissolveGroup(ctx, open.ID); err != nil {
		t.Fatal(err)
	}
	_, err = ravi.Group(ctx, open.ID)
	wantCode(t, err, codes.NoGroup, "dissolved group")
	if gs, err := ravi.Groups(ctx); err != nil || len(gs) != 0 {
		t.Fatalf("ravi's groups after dissolve: %+v %v", gs, err)
	}
}

// TestGroupMessages: group messages reach online members live, offline
// members after they reconnect, in order and once; the sender's group
// history holds them, and the sender gets DELIVERED and READ counts.
func TestGroupMessages(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	ctx := ctxT(t)
	sam := c.Connect(t, "sam")
	tom := c.Connect(t, "tom")
	una := c.Connect(t, "una") // goes offline
	gid := openGroup(t, ctx, sam, "crew", tom, una)
	// una leaves the building.
	if err := una.Close(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 30
	var ids []string
	for i := 0; i < n; i++ {
		id, err := sam.SendGroup(ctx, gid, fmt.Sprintf("crew %02d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	last := fmt.Sprintf("crew %02d", n-1)
	tom.WaitFor(t, 0, wait, "live group messages", isGroupMessage(gid, last))
	checkOrder(t, tom, gid, n)
	// Every message was SENT to the group.
	for _, id := range ids {
		sam.WaitFor(t, 0, wait, "SENT "+id, func(e client.Event) bool {
			return e.Kind == client.EventReceipt && e.Receipt.ClientMsgId == id && e.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT
		})
	}

	// sam's group history holds what he sent (his own copies, whatever
	// the login policy), newest first; his client never shows them to him
	// as received.
	var his []string
	for m, err := range sam.HistoryAll(ctx, client.HistoryQuery{Group: gid, Limit: 100}) {
		if err != nil {
			t.Fatal(err)
		}
		if m.From != sam.ID {
			t.Fatalf("sam's group history has %v, not from him", m)
		}
		his = append(his, string(m.Body))
	}
	if len(his) != n || his[0] != last || his[n-1] != "crew 00" {
		t.Fatalf("sam's group history = %q, want his %d messages, newest first", his, n)
	}
	if got := slices.IndexFunc(sam.Seen(), func(e client.Event) bool { return e.Kind == client.EventMessage && e.Msg.Group == gid }); got >= 0 {
		t.Fatalf("sam was shown his own message as received: %v", sam.Seen()[got].Msg)
	}

	// una comes back and gets all of them, in order.
	una2 := c.Connect(t, "una")
	una2.WaitFor(t, 0, wait, "group messages after reconnecting", isGroupMessage(gid, last))
	checkOrder(t, una2, gid, n)

	// tom reads the last one; sam sees counts: delivered to 2, read by 1.
	lastMsg := findMessage(tom, gid, last)
	if err := tom.MarkRead(ctx, lastMsg.From, lastMsg.MsgId); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, wait, func() error {
		counts, err := sam.GroupReceipts(ctx, lastMsg.MsgId)
		if err != nil {
			return err
		}
		got := counts[lastMsg.MsgId]
		if got.Delivered != 2 || got.Read != 1 {
			return fmt.Errorf("counts for the last message: %+v, want delivered 2, read 1", got)
		}
		return nil
	})
	sam.WaitFor(t, 0, wait, "live READ count", func(e client.Event) bool {
		return e.Kind == client.EventReceipt && e.Receipt.MsgId == lastMsg.MsgId && e.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_READ && e.Receipt.Count == 1
	})
	// Only the sender sees the counts.
	if counts, err := tom.GroupReceipts(ctx, lastMsg.MsgId); err == nil && counts[lastMsg.MsgId] != (client.GroupCount{}) {
		t.Fatalf("a member read the sender's counts: %+v", counts)
	}

	// The app push API reaches a group too (stored for every member).
	checkAPI(t, c, "POST", "/api/push", harness.APIKey(harness.PushKey), map[string]any{"group": gid, "msg": "from the app to the crew"}, 200, codes.OK)
	for _, u := range []*harness.User{sam, tom, una2} {
		u.WaitFor(t, 0, wait, "app push to the group", harness.IsMessage("from the app to the crew"))
	}
}

// checkOrder fails unless u saw crew 00…crew n-1 of group gid once each, in
// order.
func checkOrder(t *testing.T, u *harness.User, gid string, n int) {
	t.Helper()
	var got []string
	for _, e := range u.Seen() {
		if e.Kind == client.EventMessage && e.Msg.Group == gid {
			got = append(got, string(e.Msg.Body))
		}
	}
	if len(got) != n {
		t.Fatalf("%s saw %d group messages, want %d: %q", u.Name, len(got), n, got)
	}
	for i, b := range got {
		if want := fmt.Sprintf("crew %02d", i); b != want {
			t.Fatalf("%s: message %d is %q, want %q (order: %q)", u.Name, i, b, want, got)
		}
	}
}

func findMessage(u *harness.User, gid, body string) *cimpb.Msg {
	for _, e := range u.Seen() {
		if isGroupMessage(gid, body)(e) {
			return e.Msg
		}
	}
	return nil
}

// TestLargeGroupFanout: a group of 1,200 members (most offline) over three
// gateways: one message lands in every member's inbox and reaches the online
// ones live; the route's limit on members is enforced.
func TestLargeGroupFanout(t *testing.T) {
	const members = 1200
	c := harness.Start(t, harness.Options{Gateways: 3, RouteArgs: []string{"--group-max-members", fmt.Sprint(members)}})
	// Registering 1,200 users (bcrypt, race-built binaries, a busy CI
	// machine) takes a while: one generous bound for the whole test.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	owner := c.Connect(t, "boss")
	g, err := owner.CreateGroup(ctx, "everyone", false)
	if err != nil {
		t.Fatal(err)
	}
	// Invite 1,199 registered users in batches (most never connect).
	var names []string
	for i := 1; i < members; i++ {
		names = append(names, fmt.Sprintf("u%04d", i))
	}
	registerAll(t, c, names)
	for i := 0; i < len(names); i += 100 { // at most 100 per invite
		j := min(i+100, len(names))
		if _, err := owner.InviteToGroup(ctx, g.ID, names[i:j]...); err != nil {
			t.Fatal(err)
		}
	}
	online := []*harness.User{}
	for _, name := range names[:6] {
		u := c.Connect(t, name)
		if _, err := u.JoinGroup(ctx, g.ID); err != nil {
			t.Fatal(err)
		}
		online = append(online, u)
	}
	joinAs(t, c, names[6:], g.ID)
	if g, err := owner.Group(ctx, g.ID); err != nil || g.Members != members {
		t.Fatalf("group %+v %v, want %d members", g, err, members)
	}
	// One more than the limit: refused, at the invitation or at the join.
	extra := c.Connect(t, "extra")
	if _, err := owner.InviteToGroup(ctx, g.ID, "extra"); err != nil {
		wantCode(t, err, codes.GroupFull, "invite beyond the member limit")
	} else {
		_, err := extra.JoinGroup(ctx, g.ID)
		wantCode(t, err, codes.GroupFull, "join beyond the member limit")
	}
	if _, err := owner.SendGroup(ctx, g.ID, "hello everyone"); err != nil {
		t.Fatal(err)
	}
	for _, u := range online {
		u.WaitFor(t, 0, wait, "live group message", isGroupMessage(g.ID, "hello everyone"))
	}
	// An offline member picked at random gets it at login.
	late := c.Connect(t, names[len(names)-1])
	late.WaitFor(t, 0, wait, "stored group message", isGroupMessage(g.ID, "hello everyone"))
}

// registerAll registers names through the API, a few at a time.
func registerAll(t *testing.T, c *harness.Cluster, names []string) {
	t.Helper()
	errc := make(chan error, len(names))
	sem := make(chan struct{}, 16)
	for _, n := range names {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			_, err := client.NewAPI(c.Route.URL, nil).Register(ctxT(t), n, harness.Password)
			errc <- err
		}()
	}
	for range names {
		if err := <-errc; err != nil {
			t.Fatalf("register: %v", err)
		}
	}
}

// joinAs logs each name in over HTTP (no gateway connection needed: the
// session is current while pending) and joins the group with its bearer.
func joinAs(t *testing.T, c *harness.Cluster, names []string, gid string) {
	t.Helper()
	errc := make(chan error, len(names))
	sem := make(chan struct{}, 16)
	for _, n := range names {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			api := client.NewAPI(c.Route.URL, nil)
			if _, err := api.Login(ctxT(t), n, harness.Password); err != nil {
				errc <- err
				return
			}
			_, err := api.JoinGroup(ctxT(t), gid)
			errc <- err
		}()
	}
	for range names {
		if err := <-errc; err != nil {
			t.Fatalf("join: %v", err)
		}
	}
}
