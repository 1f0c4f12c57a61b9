package term

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// TestReactFormats: the syntax of :react and :unreact (a first integer is
// N, the emoji one word, a known :code: turned into its emoji, an unknown
// one refused), the reaction lines, history's counts, :status and :help.
func TestReactFormats(t *testing.T) {
	usage := Command{Op: OpInvalid, Text: "usage: :react [N] <emoji> (N: my N-th most recent incoming message, 1 the last; emoji: 👍 or :thumbsup:)"}
	unusage := Command{Op: OpInvalid, Text: "usage: :unreact [N] (N: my N-th most recent incoming message, 1 the last)"}
	for _, tc := range []struct {
		line string
		want Command
	}{
		{":react 👍", Command{Op: OpReact, N: 1, Text: "👍"}},
		{":react  👍 ", Command{Op: OpReact, N: 1, Text: "👍"}},
		{":react 2 ❤️", Command{Op: OpReact, N: 2, Text: "❤️"}},
		{":react :thumbsup:", Command{Op: OpReact, N: 1, Text: "👍"}},
		{":react 3 :heart:", Command{Op: OpReact, N: 3, Text: "❤️"}},
		{":react :fire::100:", Command{Op: OpReact, N: 1, Text: "🔥💯"}},
		{":react +1", Command{Op: OpReact, N: 1, Text: "+1"}},
		{":react :)", Command{Op: OpReact, N: 1, Text: ":)"}},
		{":react :nosuch:", Command{Op: OpInvalid, Text: "unknown emoji :nosuch: (:emoji lists the codes)"}},
		{":react 2 :nosuch:", Command{Op: OpInvalid, Text: "unknown emoji :nosuch: (:emoji lists the codes)"}},
		{":react", usage},
		{":react 2", usage},
		{":react 0 👍", usage},
		{":react -1 👍", usage},
		{":react 👍 👍", usage},
		{":react 1 👍 ok", usage},
		{":unreact", Command{Op: OpReact, N: 1}},
		{":unreact 4", Command{Op: OpReact, N: 4}},
		{":unreact 0", unusage},
		{":unreact 👍", unusage},
		{":unreact 2 x", unusage},
	} {
		if got := Parse(tc.line); got != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.line, got, tc.want)
		}
	}

	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	react := func(from, to, group, emoji string) *cimpb.Msg {
		return &cimpb.Msg{From: from, FromName: map[string]string{"2": "bob", "1": "alice"}[from], To: to, Group: group,
			Op: cimpb.MsgOp_MSG_OP_REACT, RefMsgId: "m1", Body: []byte(emoji)}
	}
	for _, tc := range []struct {
		name, got, want string
	}{
		{"reacted", Reacted(react("2", "1", "", "👍"), "", "are you there?", true, false), "* bob reacted 👍 to: are you there?"},
		{"unknown message", Reacted(react("2", "1", "", "👍"), "", "", false, false), "* bob reacted 👍 to a message"},
		{"recalled message", Reacted(react("2", "1", "", "👍"), "", "secret", true, true), "* bob reacted 👍 to a recalled message"},
		{"in a group", Reacted(react("2", "", "7", "❤️"), "team", "lunch?", true, false), "* bob@team reacted ❤️ to: lunch?"},
		{"in a group, name unknown", Reacted(react("2", "", "7", "❤️"), "", "", false, false), "* bob@#7 reacted ❤️ to a message"},
		{"taken back", Reacted(react("2", "1", "", ""), "", "are you there?", true, false), "* bob took back a reaction to: are you there?"},
		{"taken back, unknown", Reacted(react("2", "1", "", ""), "", "", false, false), "* bob took back a reaction to a message"},
		{"sender without a name", Reacted(react("5", "1", "", "👍"), "", "", false, false), "* 5 reacted 👍 to a message"},
		{"long text", Reacted(react("2", "1", "", "👍"), "", strings.Repeat("o", 50), true, false), "* bob reacted 👍 to: " + strings.Repeat("o", 39) + "…"},
		{"control characters", Reacted(react("2", "1", "", "\x1b[2J"), "", "hi\r\nthere", true, false), "* bob reacted  [2J to: hi  there"},
		{"mine elsewhere", OwnReacted(react("1", "2", "", "👍"), "bob", "", "are you there?", true, false),
			"* me → bob: reacted 👍 to: are you there? (from another device)"},
		{"mine elsewhere, in a group", OwnReacted(react("1", "", "7", ""), "", "team", "", false, false),
			"* me@team: took back a reaction to a message (from another device)"},
		{"sent", ReactionSent("👍", "bob", "are you there?"), "* ✓ reacted 👍 to bob: are you there?"},
		{"sent, group", ReactionSent("❤️", "bob@team", "lunch?"), "* ✓ reacted ❤️ to bob@team: lunch?"},
		{"taken back, sent", ReactionSent("", "bob", ""), "* ✓ took back your reaction to bob"},
		{"nothing to react to", NothingToReact(1), "! no message received to react to"},
		{"nothing to react to, N", NothingToReact(3), "! no message 3 received to react to (the terminal keeps the last 100)"},
		{"bad emoji", BadReaction("a\x07b"), `! not an emoji: "a\ab" (one emoji or :code:, at most 32 bytes; :emoji lists the codes)`},
		{"counts", ReactionCounts([]client.Reaction{{Emoji: "👍", Count: 2, Mine: true}, {Emoji: "❤️", Count: 1}}), " [👍 2* ❤️ 1]"},
		{"counts, not mine", ReactionCounts([]client.Reaction{{Emoji: "🎉", Count: 3}}), " [🎉 3]"},
		{"counts, control characters", ReactionCounts([]client.Reaction{{Emoji: "\x1b]0;x\x07", Count: 1}}), " [ ]0;x  1]"},
		{"no counts", ReactionCounts(nil), ""},
		{"status", StatusLine(client.SentMessage{To: "2", Op: cimpb.MsgOp_MSG_OP_REACT, Text: "👍", Status: client.StatusSent, At: at}, time.UTC),
			"* [07:08:09] to 2: (reaction 👍) ✓"},
		{"status, taken back", StatusLine(client.SentMessage{Group: "7", Op: cimpb.MsgOp_MSG_OP_REACT, Status: client.StatusPending, At: at}, time.UTC),
			"* [07:08:09] to #7: (reaction taken back) …"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, tc.got, tc.want)
		}
	}
	help := strings.Join(Help(), "\n")
	for _, want := range []string{"\n*   :react [N] <emoji> ", "\n*   :unreact [N] ", "[👍 2* ❤️ 1]"} {
		if !strings.Contains(help, want) {
			t.Errorf(":help has no %q:\n%s", want, help)
		}
	}
}

// TestPrinterReactions: a reaction prints a status line quoting the
// message it names as the printer showed it (its latest text), or "a
// message"; one from another device of mine is mine; it changes nothing
// of the message (a later reply quotes its text), is never a message :reply
// or :react can name, and our own reaction's ✓ line quotes the message.
// History lines end with their reactions.
func TestPrinterReactions(t *testing.T) {
	var out bytes.Buffer
	p := NewPrinter(&out, time.UTC, func() client.Info { return client.Info{UserID: "1", UserName: "alice"} })
	p.RememberGroup(client.Group{ID: "7", Name: "team"})
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	msg := func(id, from, group, body string) client.Event {
		return client.Event{Kind: client.EventMessage, At: at, Msg: &cimpb.Msg{MsgId: id, From: from, FromName: from, To: "1", Group: group,
			Body: []byte(body)}}
	}
	react := func(id, from, group, ref, emoji string) client.Event {
		ev := msg(id, from, group, emoji)
		ev.Msg.Op, ev.Msg.RefMsgId = cimpb.MsgOp_MSG_OP_REACT, ref
		return ev
	}
	mine := react("x1", "1", "", "q1", "🎉")
	mine.Msg.To, mine.Outgoing = "bob", true
	recall := msg("r1", "carol", "", "")
	recall.Msg.Op, recall.Msg.RefMsgId = cimpb.MsgOp_MSG_OP_RECALL, "q3"
	p.Sending("c1", "bob", "my question")
	for _, ev := range []client.Event{
		msg("q1", "bob", "", "are you there?"),
		{Kind: client.EventReceipt, Receipt: &cimpb.Receipt{ClientMsgId: "c1", MsgId: "s1", Status: cimpb.ReceiptStatus_RECEIPT_SENT}},
		msg("q2", "carol", "7", "lunch?"),
		msg("q3", "carol", "", "oops"),
		recall,
		react("e1", "bob", "", "q1", "👍"),
		react("e2", "bob", "", "s1", "❤️"),
		react("e3", "carol", "7", "q2", "🍺"),
		react("e4", "carol", "", "q3", "😢"),
		react("e5", "dave", "", "0190f1c2d3e4f5a6b7c8d9e0f1a2b3c4", "👀"),
		react("e6", "bob", "", "q1", ""),
		mine,
		msg("a1", "dave", "", "yes"),
	} {
		if ev.Msg.GetMsgId() == "a1" {
			ev.Msg.ReplyTo = "q1"
		}
		p.Event(ev)
	}
	want := strings.Join([]string{
		"[07:08:09] bob: are you there?",
		"* ✓ sent to bob: my question",
		"[07:08:09] carol@team: lunch?",
		"[07:08:09] carol: oops",
		"* carol recalled a message: oops",
		"* bob reacted 👍 to: are you there?",
		"* bob reacted ❤️ to: my question",
		"* carol@team reacted 🍺 to: lunch?",
		"* carol reacted 😢 to a recalled message",
		"* dave reacted 👀 to a message",
		"* bob took back a reaction to: are you there?",
		"* me → bob: reacted 🎉 to: are you there? (from another device)",
		"[07:08:09] dave: yes (↪ bob: are you there?)",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
	}

	// :reply and :react number only the messages: a1, q2, q1 (q3 recalled).
	var got []string
	for n := 1; ; n++ {
		r, ok := p.Received(n)
		if !ok {
			break
		}
		got = append(got, r.MsgID)
	}
	if strings.Join(got, " ") != "a1 q2 q1" {
		t.Errorf("received %v, want a1 q2 q1: no reaction among them", got)
	}

	// Our reactions: the ✓ line names whose message (and where) and quotes
	// it; an error names the group of a group message.
	out.Reset()
	q1, _ := p.Received(3)
	q2, _ := p.Received(2)
	p.SendingReaction("c2", q1, "👍")
	p.SendingReaction("c3", q2, "")
	p.SendingReaction("c4", q2, "🍺")
	if n := p.Unanswered(); n != 3 {
		t.Errorf("Unanswered() = %d, want 3", n)
	}
	for _, ev := range []client.Event{
		{Kind: client.EventReceipt, Receipt: &cimpb.Receipt{ClientMsgId: "c2", MsgId: "s2", Status: cimpb.ReceiptStatus_RECEIPT_SENT}},
		{Kind: client.EventReceipt, Receipt: &cimpb.Receipt{ClientMsgId: "c3", MsgId: "s3", Status: cimpb.ReceiptStatus_RECEIPT_SENT}},
		{Kind: client.EventError, Err: &cimpb.Error{ClientMsgId: "c4", Code: int32(codes.Forbidden)}},
		// A reply to our reaction's msgId: a reaction is no message to quote.
		msg("a2", "bob", "", "what?"),
	} {
		if ev.Kind == client.EventMessage {
			ev.Msg.ReplyTo = "s2"
		}
		p.Event(ev)
	}
	want = strings.Join([]string{
		"* ✓ reacted 👍 to bob: are you there?",
		"* ✓ took back your reaction to carol@team: lunch?",
		"! not a member of group 7",
		"[07:08:09] bob: what? (↪ a message)",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
	}

	// History: each line with its reactions, after a reply's quote.
	out.Reset()
	h := func(id, from, body, replyTo string) *cimpb.Msg {
		return &cimpb.Msg{MsgId: id, From: from, FromName: from, Body: []byte(body), ReplyTo: replyTo, TimestampMs: at.UnixMilli()}
	}
	p.History(client.HistoryPage{
		Messages: []*cimpb.Msg{
			h("h3", "bob", "plain", ""),
			h("h2", "alice", "fine", "h1"),
			h("h1", "bob", "how are you?", ""),
		},
		Reactions: map[string][]client.Reaction{
			"h1": {{Emoji: "👍", Count: 2, Mine: true}, {Emoji: "❤️", Count: 1}},
			"h2": {{Emoji: "🎉", Count: 1}},
		},
	})
	want = strings.Join([]string{
		"[2024-05-06 07:08:09] bob: how are you? [👍 2* ❤️ 1]",
		"[2024-05-06 07:08:09] alice: fine (↪ bob: how are you?) [🎉 1]",
		"[2024-05-06 07:08:09] bob: plain",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("history printed:\n%s\nwant:\n%s", out.String(), want)
	}
}
