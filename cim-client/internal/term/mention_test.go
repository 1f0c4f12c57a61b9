package term

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/proto/cimpb"
)

// names returns n different "@name" words.
func names(n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = fmt.Sprintf("@u%d", i)
	}
	return strings.Join(w, " ")
}

// TestMentions: the "@name" words of a text, with the route's user-name
// characters, trailing punctuation cut off, once each in order; ids,
// addresses and other words are none.
func TestMentions(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"lunch @bob?", []string{"bob"}},
		{"@bob, @carol. @dave! @eve: @frank; @gina? @hal)", []string{"bob", "carol", "dave", "eve", "frank", "gina", "hal"}},
		{"@bob @carol @bob @bob!", []string{"bob", "carol"}},
		{"@bob...!? and @bob", []string{"bob"}},
		{"@Bob @bob", []string{"Bob", "bob"}}, // names are case-sensitive
		{"@bob.smith and @b_o-b.1", []string{"bob.smith", "b_o-b.1"}},
		{"tab\t@bob\nnew line @carol", []string{"bob", "carol"}},
		{"@" + strings.Repeat("a", 32), []string{strings.Repeat("a", 32)}},
		{"@" + strings.Repeat("a", 33), nil},
		{"@a is too short", nil},
		{"@42 @3pm @_x @-x", nil},         // ids and names not starting with a letter
		{"bob@example.com", nil},          // not a word starting with @
		{"@@bob (@bob) @bob's @bób", nil}, // not name characters
		{"@ @, @! alone", nil},            // no name at all
		{"hello everyone", nil},           // no @
		{"@bob:smile: @bob😄", nil},        // the name runs into more
		{"@carol: see @dave.", []string{"carol", "dave"}},
	} {
		if got := Mentions(tc.text); !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("Mentions(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

// TestParseMentions: :g sends its text as typed; more than 50 different
// names are refused (50, or more words naming fewer, are fine). Private
// messages, broadcasts and :reply are not checked here: an @word there is
// text (a :reply in a group is checked when it is sent).
func TestParseMentions(t *testing.T) {
	too := Command{Op: OpInvalid, Text: "too many mentions: 51 names (at most 50 a message); nothing sent"}
	for _, tc := range []struct {
		line string
		want Command
	}{
		{":g 3 lunch @bob? @carol", Command{Op: OpGroupSend, Group: "3", Text: "lunch @bob? @carol"}},
		{":g 3 " + names(50), Command{Op: OpGroupSend, Group: "3", Text: names(50)}},
		{":g 3 " + names(51), too},
		{":g 3 " + names(50) + " @u0 @u1!", Command{Op: OpGroupSend, Group: "3", Text: names(50) + " @u0 @u1!"}},
		{"bob;;" + names(51), Command{Op: OpPrivate, To: "bob", Text: names(51)}},
		{":p2p bob " + names(51), Command{Op: OpPrivate, To: "bob", Text: names(51)}},
		{names(51), Command{Op: OpBroadcast, Text: names(51)}},
		{":reply " + names(51), Command{Op: OpReply, N: 1, Text: names(51)}},
	} {
		if got := Parse(tc.line); got != tc.want {
			t.Errorf("Parse(%.40q…) = op %d group %q text %.60q…, want op %d group %q text %.60q…",
				tc.line, got.Op, got.Group, got.Text, tc.want.Op, tc.want.Group, tc.want.Text)
		}
	}
	if got, want := TooManyMentions(51), "! "+too.Text; got != want {
		t.Errorf("TooManyMentions(51) = %q, want %q", got, want)
	}
	help := strings.Join(Help(), "\n")
	if !strings.Contains(help, "\n*   :g <gid> <text>      message to a group (ids: see :groups); each @name in the text mentions") ||
		!strings.Contains(help, `(a group line that mentions me ends in "(mentions you)")`) {
		t.Errorf(":help says nothing of @name under :g:\n%s", help)
	}
}

// TestPrinterMentions: a group line mentioning the user (its id among
// Msg.Mentions) ends with " (mentions you)", after a reply's quote and
// before a file's :save hint; lines mentioning others, private lines, the
// user's own messages (from another device, or in a listing) never do;
// history lines likewise, before the reaction counts.
func TestPrinterMentions(t *testing.T) {
	var out bytes.Buffer
	me := client.Info{UserID: "1", UserName: "alice"}
	p := NewPrinter(&out, time.UTC, func() client.Info { return me })
	p.RememberGroup(client.Group{ID: "7", Name: "team"})
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	msg := func(id, from, group, body string, mentions ...string) client.Event {
		return client.Event{Kind: client.EventMessage, At: at, Msg: &cimpb.Msg{MsgId: id, From: from, FromName: map[string]string{"1": "alice", "2": "bob"}[from],
			Group: group, Body: []byte(body), Mentions: mentions}}
	}
	reply := msg("m3", "2", "7", "sure @alice", "1")
	reply.Msg.ReplyTo = "m1"
	file := msg("m4", "2", "7", "", "3", "1")
	file.Msg.Kind, file.Msg.File = cimpb.Kind_KIND_FILE, &cimpb.FileInfo{Name: "a.pdf", Size: 12}
	own := msg("m5", "1", "7", "note to self @alice", "1")
	own.Outgoing = true
	for _, ev := range []client.Event{
		msg("m1", "2", "7", "lunch @alice?", "1"),
		msg("m2", "2", "7", "lunch @carol?", "3"),
		reply,
		file,
		own,
		msg("m6", "2", "", "hi @alice", "1"), // a private message has no mentions; if it had, no mark
		msg("m7", "2", "7", "@alice! @carol", "3", "1", "4"),
	} {
		p.Event(ev)
	}
	want := strings.Join([]string{
		"[07:08:09] bob@team: lunch @alice? (mentions you)",
		"[07:08:09] bob@team: lunch @carol?",
		"[07:08:09] bob@team: sure @alice (↪ bob: lunch @alice?) (mentions you)",
		"[07:08:09] bob@team: [file a.pdf, 12 bytes] (mentions you) (:save 1)",
		"[07:08:09] me@team: note to self @alice (from another device)",
		"[07:08:09] bob: hi @alice",
		"[07:08:09] bob@team: @alice! @carol (mentions you)",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
	}

	out.Reset()
	h := func(id, from, body, replyTo string, mentions ...string) *cimpb.Msg {
		return &cimpb.Msg{MsgId: id, From: from, FromName: map[string]string{"1": "alice", "2": "bob"}[from], Group: "7",
			Body: []byte(body), ReplyTo: replyTo, Mentions: mentions, TimestampMs: at.UnixMilli()}
	}
	p.History(client.HistoryPage{
		Messages: []*cimpb.Msg{
			h("h4", "1", "me too @alice", "", "1"),
			h("h3", "2", "lunch @alice?", "h1", "2", "1"),
			h("h2", "2", "lunch @carol?", "", "3"),
			h("h1", "2", "hi @alice", "", "1"),
		},
		Reactions: map[string][]client.Reaction{"h3": {{Emoji: "👍", Count: 1}}},
	})
	want = strings.Join([]string{
		"[2024-05-06 07:08:09] bob: hi @alice (mentions you)",
		"[2024-05-06 07:08:09] bob: lunch @carol?",
		"[2024-05-06 07:08:09] bob: lunch @alice? (↪ bob: hi @alice) (mentions you) [👍 1]",
		"[2024-05-06 07:08:09] alice: me too @alice",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("history printed:\n%s\nwant:\n%s", out.String(), want)
	}

	// Before the login, nobody is "you".
	me = client.Info{}
	out.Reset()
	p.Event(msg("m8", "2", "7", "hi @alice", "1"))
	if got := out.String(); got != "[07:08:09] bob@team: hi @alice\n" {
		t.Errorf("printed before login: %q", got)
	}

	for _, tc := range []struct {
		m    *cimpb.Msg
		me   string
		want string
	}{
		{&cimpb.Msg{From: "2", Group: "7", Mentions: []string{"1"}}, "1", " (mentions you)"},
		{&cimpb.Msg{From: "2", Group: "7", Mentions: []string{"3", "1"}}, "1", " (mentions you)"},
		{&cimpb.Msg{From: "2", Group: "7", Mentions: []string{"11"}}, "1", ""},
		{&cimpb.Msg{From: "2", Group: "7"}, "1", ""},
		{&cimpb.Msg{From: "1", Group: "7", Mentions: []string{"1"}}, "1", ""},
		{&cimpb.Msg{From: "2", To: "1", Mentions: []string{"1"}}, "1", ""},
		{&cimpb.Msg{From: "2", Group: "7", Mentions: []string{""}}, "", ""},
	} {
		if got := MentionsYou(tc.m, tc.me); got != tc.want {
			t.Errorf("MentionsYou(%v, %q) = %q, want %q", tc.m, tc.me, got, tc.want)
		}
	}
}
