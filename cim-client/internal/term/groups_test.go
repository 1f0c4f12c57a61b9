package term

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

func TestParseGroups(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Command
	}{
		{":g 3 hello team", Command{Op: OpGroupSend, Group: "3", Text: "hello team"}},
		{":g\t3\t hi ", Command{Op: OpGroupSend, Group: "3", Text: "hi"}},
		{":g 3", Command{Op: OpInvalid, Text: "usage: :g <gid> <text>"}},
		{":g", Command{Op: OpInvalid, Text: "usage: :g <gid> <text>"}},
		{":g team hi", Command{Op: OpInvalid, Text: "usage: :g <gid> <text> (a group id is a number: see :groups)"}},
		{":groups", Command{Op: OpGroups}},
		{":members 12", Command{Op: OpGroupMembers, Group: "12"}},
		{":members", Command{Op: OpInvalid, Text: "usage: :members <gid>"}},
		{":members 1 2", Command{Op: OpInvalid, Text: "usage: :members <gid>"}},
		{":gcreate team", Command{Op: OpGroupCreate, Text: "team"}},
		{":gcreate my team open", Command{Op: OpGroupCreate, Text: "my team", Open: true}},
		{":gcreate open", Command{Op: OpGroupCreate, Text: "open"}},
		{":gcreate opener", Command{Op: OpGroupCreate, Text: "opener"}},
		{":gcreate", Command{Op: OpInvalid, Text: "usage: :gcreate <name> [open]"}},
		{":gjoin 4", Command{Op: OpGroupJoin, Group: "4"}},
		{":gjoin team", Command{Op: OpInvalid, Text: "usage: :gjoin <gid> (a group id is a number: see :groups)"}},
		{":ginvite 4 bob  carol 7", Command{Op: OpGroupInvite, Group: "4", Text: "bob carol 7"}},
		{":ginvite 4", Command{Op: OpInvalid, Text: "usage: :ginvite <gid> <user>..."}},
		{":gleave 4", Command{Op: OpGroupLeave, Group: "4"}},
		{":gleave", Command{Op: OpInvalid, Text: "usage: :gleave <gid>"}},
		{":gkick 4 bob", Command{Op: OpGroupKick, Group: "4", To: "bob"}},
		{":gkick 4 bob carol", Command{Op: OpInvalid, Text: "usage: :gkick <gid> <user>"}},
		{":gkick 4", Command{Op: OpInvalid, Text: "usage: :gkick <gid> <user>"}},
		{":grename 4 dream  team", Command{Op: OpGroupRename, Group: "4", Text: "dream  team"}},
		{":grename 4", Command{Op: OpInvalid, Text: "usage: :grename <gid> <name>"}},
		{":gdissolve 4", Command{Op: OpGroupDissolve, Group: "4"}},
		{":gdissolve", Command{Op: OpInvalid, Text: "usage: :gdissolve <gid>"}},
		{":gowner 4 bob", Command{Op: OpGroupOwner, Group: "4", To: "bob"}},
		{":gowner\t4   7 ", Command{Op: OpGroupOwner, Group: "4", To: "7"}},
		{":gowner 4 bob carol", Command{Op: OpInvalid, Text: "usage: :gowner <gid> <user>"}},
		{":gowner 4", Command{Op: OpInvalid, Text: "usage: :gowner <gid> <user>"}},
		{":gowner", Command{Op: OpInvalid, Text: "usage: :gowner <gid> <user>"}},
		{":gowner team bob", Command{Op: OpInvalid, Text: "usage: :gowner <gid> <user> (a group id is a number: see :groups)"}},
		{":gx 4", Command{Op: OpInvalid, Text: "unknown command :gx (try :help)"}},
	} {
		if got := Parse(tc.line); got != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.line, got, tc.want)
		}
	}
	if got := Parse(":ginvite 4 bob  carol").Users(); strings.Join(got, "|") != "bob|carol" {
		t.Errorf("Users() = %q", got)
	}
}

func TestGroupFormats(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	ms := at.UnixMilli()
	team := client.Group{ID: "3", Name: "team", Owner: "1", Members: 4}
	lobby := client.Group{ID: "5", Name: "lobby", Owner: "2", Open: true, Members: 1}
	apiErr := func(c codes.Code) error { return &client.APIError{Code: c, Message: c.Text(), HTTPStatus: 403} }
	sent := client.SentMessage{Group: "3", Text: "hello", Status: client.StatusRead, Recipients: 3, Delivered: 2, Read: 1, At: at}
	for _, tc := range []struct {
		name, got, want string
	}{
		{"incoming", GroupMessage(&cimpb.Msg{FromName: "alice", Group: "3", Body: []byte("hi\nall"), TimestampMs: ms}, "team", time.UTC, at), "[07:08:09] alice@team: hi all"},
		{"incoming, name unknown", Message(&cimpb.Msg{From: "1", Group: "3", Body: []byte("hi"), TimestampMs: ms}, time.UTC, at), "[07:08:09] 1@#3: hi"},
		{"incoming file", GroupMessage(&cimpb.Msg{FromName: "bob", Group: "3", Kind: cimpb.Kind_KIND_FILE, File: &cimpb.FileInfo{Name: "a.txt", Size: 2}}, "team", time.UTC, at), "[07:08:09] bob@team: [file a.txt, 2 bytes]"},
		{"label", GroupLabel("3", "team"), "team"},
		{"label unknown", GroupLabel("3", ""), "#3"},
		{"sent", Sent("team", "hello"), "* ✓ sent to team: hello"},
		{"status counts", GroupStatusLine(sent, "team", time.UTC), "* [07:08:09] to team: hello ✓ delivered 2, read 1"},
		{"status pending", GroupStatusLine(client.SentMessage{Group: "3", Text: "hello", Status: client.StatusPending, At: at}, "team", time.UTC), "* [07:08:09] to team: hello …"},
		{"status failed", GroupStatusLine(client.SentMessage{Group: "3", Text: "hello", Status: client.StatusFailed, At: at}, "team", time.UTC), "* [07:08:09] to team: hello failed"},
		{"status without a name", StatusLine(sent, time.UTC), "* [07:08:09] to #3: hello ✓ delivered 2, read 1"},
		{"not a member", GroupErrorLine(&cimpb.Error{Code: int32(codes.Forbidden), Text: "forbidden", ClientMsgId: "c"}, "3"), "! not a member of group 3"},
		{"no group", GroupErrorLine(&cimpb.Error{Code: int32(codes.NoGroup), ClientMsgId: "c"}, "9"), "! no such group: 9"},
		{"rate limited", GroupErrorLine(&cimpb.Error{Code: int32(codes.RateLimited)}, "3"), "! too many messages: message to group 3 not sent"},
		{"other send error", GroupErrorLine(&cimpb.Error{Code: int32(codes.Unavailable), Text: "route unavailable"}, "3"), "! route unavailable"},
		{"created", GroupCreated(team), "* created group team (id 3)"},
		{"created open", GroupCreated(lobby), "* created group lobby (id 5, open)"},
		{"joined", GroupJoined(team), "* joined group team (id 3, 4 members)"},
		{"groups", Groups([]client.Group{team, lobby}, "1"), "* groups: team (id 3, owner, 4 members), lobby (id 5, open, 1 member)"},
		{"no groups", Groups(nil, "1"), "* groups: none"},
		{"members", Members("team", []client.User{{UserID: "1", UserName: "alice"}, {UserID: "2", UserName: "bob"}}), "* members of team: alice(1), bob(2)"},
		{"no members", Members("#3", nil), "* members of #3: nobody"},
		{"invited", Invited("team", []string{"bob", "carol"}, []string{"2", "3"}), "* invited bob, carol to team"},
		{"invited some", Invited("team", []string{"bob", "carol"}, []string{"3"}), "* invited 1 of 2 to team (ids 3); the others are members already"},
		{"invited none", Invited("team", []string{"bob"}, nil), "* nobody new to invite to team"},
		{"left", GroupLeft("team", "3"), "* left group team (id 3)"},
		{"kicked", GroupKicked("team", "bob"), "* removed bob from team"},
		{"renamed", GroupRenamed(client.Group{ID: "3", Name: "dream team"}), "* renamed group 3 to dream team"},
		{"dissolved", GroupDissolved("team", "3"), "* dissolved group team (id 3)"},
		{"leave owner", LeaveOwner("3"), "! you own group 3: :gowner 3 <user> hands it to a member, :gdissolve 3 deletes it"},
		{"owned", GroupOwned("team", "3", "bob"), "* bob owns group team (3) now"},
		{"owned, name unknown", GroupOwned("#3", "3", "7"), "* 7 owns group #3 (3) now"},
		{"owned, a peer's name on one line", GroupOwned("a\nb", "3", "bo\tb"), "* bo b owns group a b (3) now"},
		{"not a member", NotGroupMember("3", "bob"), "! bob is not a member of group 3"},
		{"problem no group", GroupProblem(Parse(":gjoin 9"), apiErr(codes.NoGroup)), "! no such group: 9"},
		{"problem full", GroupProblem(Parse(":gjoin 9"), apiErr(codes.GroupFull)), "! group 9 is full"},
		{"problem join closed", GroupProblem(Parse(":gjoin 9"), apiErr(codes.Forbidden)), "! group 9 is closed: you need an invitation"},
		{"problem members", GroupProblem(Parse(":members 9"), apiErr(codes.Forbidden)), "! not a member of group 9"},
		{"problem leave", GroupProblem(Parse(":gleave 9"), apiErr(codes.Forbidden)), "! not a member of group 9"},
		{"problem kick", GroupProblem(Parse(":gkick 9 bob"), apiErr(codes.Forbidden)), "! only the owner of group 9 may do that"},
		{"problem rename", GroupProblem(Parse(":grename 9 x"), apiErr(codes.Forbidden)), "! only the owner of group 9 may do that"},
		{"problem dissolve", GroupProblem(Parse(":gdissolve 9"), apiErr(codes.Forbidden)), "! only the owner of group 9 may do that"},
		{"problem owner", GroupProblem(Parse(":gowner 9 bob"), apiErr(codes.Forbidden)), "! only the owner of group 9 may do that"},
		{"problem owner unknown", GroupProblem(Parse(":gowner 9 zed"), apiErr(codes.BadAccount)), "! no such user: zed"},
		{"problem owner no group", GroupProblem(Parse(":gowner 9 bob"), apiErr(codes.NoGroup)), "! no such group: 9"},
		{"problem invite", GroupProblem(Parse(":ginvite 9 bob"), apiErr(codes.Forbidden)), "! not allowed to invite to group 9 (owner only, or members of an open group)"},
		{"problem kick unknown", GroupProblem(Parse(":gkick 9 zed"), apiErr(codes.BadAccount)), "! no such user: zed"},
		{"problem invite unknown", GroupProblem(Parse(":ginvite 9 zed"), apiErr(codes.BadAccount)), "! no such user: zed"},
		{"problem name", GroupProblem(Parse(":gcreate x"), apiErr(codes.BadArgument)), "! bad group name: use 1-64 printable characters"},
		{"problem other", GroupProblem(Parse(":gjoin 9"), errors.New("client: not logged in")), "! not logged in"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, tc.got, tc.want)
		}
	}
}

// TestHelpListsGroupCommands: every group command is in :help with a
// description.
func TestHelpListsGroupCommands(t *testing.T) {
	help := strings.Join(Help(), "\n")
	for _, cmd := range []string{":gcreate <name> [open]", ":gjoin <gid>", ":ginvite <gid> <user>...", ":gleave <gid>",
		":gkick <gid> <user>", ":groups", ":members <gid>", ":grename <gid> <name>", ":gdissolve <gid>", ":gowner <gid> <user>", ":g <gid> <text>"} {
		if !regexp.MustCompile(`(?m)^\*   ` + regexp.QuoteMeta(cmd) + ` +\S`).MatchString(help) {
			t.Errorf(":help has no line for %s with a description:\n%s", cmd, help)
		}
	}
	if line := "*   :gowner <gid> <user> hand a group to a member (owner)"; !slices.Contains(Help(), line) {
		t.Errorf(":help has no line %q", line)
	}
}

// TestPrinterGroups: incoming group lines name the group (cached, or
// looked up once, else #gid), our group sends print ✓ with the name and
// errors with the id, and :status shows the member counts.
func TestPrinterGroups(t *testing.T) {
	var out bytes.Buffer
	p := NewPrinter(&out, time.UTC, func() client.Info { return client.Info{UserID: "1"} })
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	var lookups atomic.Int32
	p.SetGroupLookup(func(_ context.Context, gid string) (client.Group, error) {
		lookups.Add(1)
		if gid == "4" {
			return client.Group{ID: "4", Name: "ops"}, nil
		}
		return client.Group{}, &client.APIError{Code: codes.Forbidden}
	})
	p.RememberGroup(client.Group{ID: "3", Name: "team"})
	msg := func(gid, text string) client.Event {
		return client.Event{Kind: client.EventMessage, At: at, Msg: &cimpb.Msg{FromName: "bob", Group: gid, Body: []byte(text)}}
	}
	p.SendingGroup("c1", "3", "hello")
	p.SendingGroup("c2", "9", "anyone?")
	for _, ev := range []client.Event{
		msg("3", "cached"),
		msg("4", "looked up"),
		msg("4", "cached now"),
		msg("9", "unknown"),
		msg("9", "not asked again"),
		{Kind: client.EventReceipt, Receipt: &cimpb.Receipt{ClientMsgId: "c1", Status: cimpb.ReceiptStatus_RECEIPT_SENT, Group: "3", Count: 2}},
		{Kind: client.EventReceipt, Receipt: &cimpb.Receipt{MsgId: "m1", Status: cimpb.ReceiptStatus_RECEIPT_DELIVERED, Group: "3", Count: 1}},
		{Kind: client.EventError, Err: &cimpb.Error{Code: int32(codes.Forbidden), Text: "forbidden", ClientMsgId: "c2"}},
	} {
		p.Event(ev)
	}
	p.Status([]client.SentMessage{
		{Group: "3", Text: "hello", Status: client.StatusDelivered, Delivered: 1, At: at},
		{Group: "4", Text: "ops talk", Status: client.StatusPending, At: at},
		{To: "bob", Text: "private", Status: client.StatusSent, At: at},
	})
	want := strings.Join([]string{
		"[07:08:09] bob@team: cached",
		"[07:08:09] bob@ops: looked up",
		"[07:08:09] bob@ops: cached now",
		"[07:08:09] bob@#9: unknown",
		"[07:08:09] bob@#9: not asked again",
		"* ✓ sent to team: hello",
		"! not a member of group 9",
		"* [07:08:09] to team: hello ✓ delivered 1, read 0",
		"* [07:08:09] to ops: ops talk …",
		"* [07:08:09] to bob: private ✓",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
	}
	// 4 once, 9 once (SendingGroup asked first; the messages did not ask again).
	if n := lookups.Load(); n != 2 {
		t.Errorf("%d lookups, want 2", n)
	}
	if p.Unanswered() != 0 {
		t.Errorf("%d group sends unanswered", p.Unanswered())
	}
	// A rename replaces the cached name.
	p.RememberGroup(client.Group{ID: "3", Name: "dream team"})
	if got := p.GroupName("3"); got != "dream team" {
		t.Errorf("GroupName after a rename = %q", got)
	}
}
