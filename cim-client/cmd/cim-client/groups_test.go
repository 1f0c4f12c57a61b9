package main

import (
	"context"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
)

// inboxes hands each user its own fake inbox.
type inboxes struct {
	mu sync.Mutex
	m  map[string]*clienttest.Inbox
}

func (b *inboxes) of(uid string) *clienttest.Inbox {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]*clienttest.Inbox{}
	}
	if b.m[uid] == nil {
		b.m[uid] = clienttest.NewInbox()
	}
	return b.m[uid]
}

// TestGroupCommands: every group command against the fake route, group
// messages out (:g) and in (alice@team), READs for them, :status with the
// member counts, and the error lines.
func TestGroupCommands(t *testing.T) {
	s := newSession(t)
	var boxes inboxes
	s.gw.SetInbox(boxes.of)
	s.gw.SetGroups(s.route)
	uid := s.route.AddUser("alice", "secret1")
	bob := s.route.AddUser("bob", "secret1")
	carol := s.route.AddUser("carol", "secret1")
	s.start(t)
	n := s.out.expect(t, 0, `^\* logged in as alice`)
	conn := s.gw.Accept(t)
	in := boxes.of(uid)
	ctx := context.Background()
	bearer := "Bearer " + clienttest.AccessToken(uid, "s1")

	s.send(t, ":gcreate team")
	n = s.out.expect(t, n, `^\* created group team \(id 1\)$`)
	s.send(t, ":gcreate open house open")
	n = s.out.expect(t, n, `^\* created group open house \(id 2, open\)$`)
	s.send(t, ":ginvite 1 bob carol")
	n = s.out.expect(t, n, `^\* invited bob, carol to team$`)
	if !s.route.GroupInvited("1", bob) || !s.route.GroupInvited("1", carol) {
		t.Fatal("bob and carol are not invited")
	}
	bobAPI := client.NewAPI(s.route.URL, nil)
	if _, err := bobAPI.Login(ctx, "bob", "secret1"); err != nil {
		t.Fatal(err)
	}
	if _, err := bobAPI.JoinGroup(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	s.send(t, ":groups")
	n = s.out.expect(t, n, `^\* groups: team \(id 1, owner, 2 members\), open house \(id 2, owner, open, 1 member\)$`)
	s.send(t, ":members 1")
	n = s.out.expect(t, n, `^\* members of team: alice\(1\), bob\(2\)$`)
	for _, endpoint := range []string{"POST /groups", "POST /groups/{gid}/invite", "GET /groups", "GET /groups/{gid}/members"} {
		if got := s.route.Bearer(endpoint); got != bearer {
			t.Errorf("%s: Authorization %q, want %q", endpoint, got, bearer)
		}
	}

	// Out: a group message, stored for bob, ✓ with the group's name.
	s.send(t, ":g 1 hello team")
	m := conn.Next(t, cimpb.Type_MSG).GetMsg()
	if m.GetGroup() != "1" || m.GetTo() != "" || string(m.GetBody()) != "hello team" {
		t.Fatalf("group uplink %v", m)
	}
	n = s.out.expect(t, n, `^\* ✓ sent to team: hello team$`)
	if got := boxes.of(bob).Head(); got != 1 {
		t.Errorf("bob's inbox holds %d entries, want the group message", got)
	}
	mid := "m-" + m.GetClientMsgId()

	// In: named from the cache, from one lookup, or #gid.
	ops := s.route.AddGroup("ops", bob, false, uid) // never listed by this client
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.Local)
	stamp := regexp.QuoteMeta(at.Format("[15:04:05]"))
	lookups := s.route.Calls("GET /groups/{gid}")
	for _, f := range []*cimpb.Frame{
		clienttest.GroupMsg("g1", bob, "bob", "1", "hi alice"),
		clienttest.GroupMsg("g2", bob, "bob", ops, "ops here"),
		clienttest.GroupMsg("g3", bob, "bob", "99", "ghost one"),
		clienttest.GroupMsg("g4", bob, "bob", "99", "ghost two"),
	} {
		f.Msg.TimestampMs = at.UnixMilli()
		if err := conn.Send(in.Append(f)); err != nil {
			t.Fatal(err)
		}
	}
	n = s.out.expect(t, n, `^`+stamp+` bob@team: hi alice$`)
	n = s.out.expect(t, n, `^`+stamp+` bob@ops: ops here$`)
	n = s.out.expect(t, n, `^`+stamp+` bob@#99: ghost one$`)
	n = s.out.expect(t, n, `^`+stamp+` bob@#99: ghost two$`)
	if got := s.route.Calls("GET /groups/{gid}") - lookups; got != 2 {
		t.Errorf("%d group lookups, want 2 (ops once, 99 once)", got)
	}
	// Read receipts: one READ per sender and group, naming both.
	var reads []string
	for len(reads) < 4 {
		r := conn.Next(t, cimpb.Type_READ).GetRead()
		for _, id := range r.GetMsgIds() {
			reads = append(reads, r.GetPeer()+"/"+r.GetGroup()+"/"+id)
		}
	}
	slices.Sort(reads)
	if want := []string{bob + "/1/g1", bob + "/3/g2", bob + "/99/g3", bob + "/99/g4"}; !slices.Equal(reads, want) {
		t.Errorf("READs %v, want %v", reads, want)
	}

	// Live group receipts, then the stored counts, show in :status.
	if err := conn.SendAll(
		clienttest.GroupReceipt(cimpb.ReceiptStatus_RECEIPT_DELIVERED, mid, "1", 1, bob),
		clienttest.GroupReceipt(cimpb.ReceiptStatus_RECEIPT_READ, mid, "1", 1, bob),
	); err != nil {
		t.Fatal(err)
	}
	n = s.statusShows(t, n, `^\* \[\d\d:\d\d:\d\d\] to team: hello team ✓ delivered 1, read 1$`)
	s.route.SetGroupCount(mid, 3, 2)
	n = s.statusShows(t, n, `^\* \[\d\d:\d\d:\d\d\] to team: hello team ✓ delivered 3, read 2$`)
	if got := s.route.Bearer("GET /groups/receipts"); got != bearer {
		t.Errorf("/groups/receipts: Authorization %q", got)
	}

	// Refusals.
	secret := s.route.AddGroup("secret", carol, false)
	s.send(t, ":g 77 anyone?")
	n = s.out.expect(t, n, `^! no such group: 77$`)
	s.send(t, ":g "+secret+" psst")
	n = s.out.expect(t, n, `^! not a member of group `+secret+`$`)
	s.send(t, ":gjoin "+secret)
	n = s.out.expect(t, n, `^! group `+secret+` is closed: you need an invitation$`)
	s.send(t, ":members "+secret)
	n = s.out.expect(t, n, `^! not a member of group `+secret+`$`)
	s.send(t, ":gkick 1 zed")
	n = s.out.expect(t, n, `^! no such user: zed$`)
	s.send(t, ":gleave 1")
	n = s.out.expect(t, n, `^! you own group 1: :gowner 1 <user> hands it to a member, :gdissolve 1 deletes it$`)
	s.send(t, ":gjoin team")
	n = s.out.expect(t, n, `^! usage: :gjoin <gid> \(a group id is a number: see :groups\)$`)

	// Managing.
	s.send(t, ":gkick 1 bob")
	n = s.out.expect(t, n, `^\* removed bob from team$`)
	if slices.Contains(s.route.GroupMembers("1"), bob) {
		t.Error("bob is still a member after :gkick")
	}
	s.send(t, ":grename 1 dream team")
	n = s.out.expect(t, n, `^\* renamed group 1 to dream team$`)
	if err := conn.Send(in.Append(clienttest.GroupMsg("g5", carol, "carol", "1", "new name"))); err != nil {
		t.Fatal(err)
	}
	n = s.out.expect(t, n, `\] carol@dream team: new name$`)
	s.send(t, ":gleave "+ops)
	n = s.out.expect(t, n, `^\* left group ops \(id `+ops+`\)$`)
	lobby := s.route.AddGroup("lobby", carol, true)
	s.send(t, ":gjoin "+lobby)
	n = s.out.expect(t, n, `^\* joined group lobby \(id `+lobby+`, 2 members\)$`)
	s.send(t, ":gdissolve 1")
	n = s.out.expect(t, n, `^\* dissolved group dream team \(id 1\)$`)
	s.send(t, ":members 1")
	n = s.out.expect(t, n, `^! no such group: 1$`)
	for _, endpoint := range []string{"POST /groups/{gid}/kick", "POST /groups/{gid}/rename", "POST /groups/{gid}/leave",
		"POST /groups/{gid}/join", "POST /groups/{gid}/dissolve"} {
		if got := s.route.Bearer(endpoint); got != bearer {
			t.Errorf("%s: Authorization %q, want %q", endpoint, got, bearer)
		}
	}

	s.send(t, ":help")
	for _, cmd := range []string{":g <gid>", ":groups", ":members", ":gcreate", ":gjoin", ":ginvite", ":gleave", ":gkick", ":grename", ":gdissolve"} {
		s.out.expect(t, n, `^\*   `+regexp.QuoteMeta(cmd)+` `)
	}
	s.send(t, ":q")
	if code := s.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, s.err.String())
	}
}

// statusShows sends :status until its line for our message to team
// matches re (receipts arrive asynchronously) and returns the index after
// it.
func (s *session) statusShows(t *testing.T, from int, re string) int {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(clienttest.Wait)
	for {
		s.send(t, ":status")
		var line string
		from, line = s.out.expectLine(t, from, `^\* \[\d\d:\d\d:\d\d\] to team: hello team `)
		if rx.MatchString(line) {
			return from
		}
		if time.Now().After(deadline) {
			t.Fatalf(":status shows %q, want %q", line, re)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
