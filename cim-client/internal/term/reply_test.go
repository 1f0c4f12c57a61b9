package term

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/proto/cimpb"
)

// TestReplyFormats: :reply's syntax (a first integer is N), the quote a
// reply's line ends with, the error lines and :help.
func TestReplyFormats(t *testing.T) {
	usage := Command{Op: OpInvalid, Text: "usage: :reply [N] <text> (N: my N-th most recent incoming message, 1 the last)"}
	for _, tc := range []struct {
		line string
		want Command
	}{
		{":reply yes", Command{Op: OpReply, N: 1, Text: "yes"}},
		{":reply  sure,  why not ", Command{Op: OpReply, N: 1, Text: "sure,  why not"}},
		{":reply 2 x", Command{Op: OpReply, N: 2, Text: "x"}},
		{":reply 1 3 apples", Command{Op: OpReply, N: 1, Text: "3 apples"}},
		{":reply 3", usage},
		{":reply 0 x", usage},
		{":reply -1 x", usage},
		{":reply", usage},
	} {
		if got := Parse(tc.line); got != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.line, got, tc.want)
		}
	}
	for _, tc := range []struct {
		name, got, want string
	}{
		{"known", Quote("bob", "are you there?", true, false), " (↪ bob: are you there?)"},
		{"unknown", Quote("", "", false, false), " (↪ a message)"},
		{"long", Quote("bob", strings.Repeat("o", 50), true, false), " (↪ bob: " + strings.Repeat("o", 39) + "…)"},
		{"control characters", Quote("b\x1b[2Job", "hi\x1b]0;pwned\x07\r\nthere", true, false), " (↪ b [2Job: hi ]0;pwned   there)"},
		{"recalled", Quote("bob", "secret", true, true), " (↪ bob (recalled))"},
		{"nothing to reply to", NothingToReply(1), "! no message received to reply to"},
		{"nothing to reply to, N", NothingToReply(3), "! no message 3 received to reply to (the terminal keeps the last 100)"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, tc.got, tc.want)
		}
	}
	if help := strings.Join(Help(), "\n"); !strings.Contains(help, "\n*   :reply [N] <text> ") {
		t.Errorf(":help has no line for :reply:\n%s", help)
	}
}

// TestPrinterReplies: a reply's line quotes the message it answers when
// the printer showed it (live, in a listing, or ours the route stored),
// with its latest text, neutralising control characters; "a message"
// otherwise. Received finds the incoming messages :reply answers, newest
// first, without recalled ones, outgoing ones or broadcasts, and keeps
// only the last 100.
func TestPrinterReplies(t *testing.T) {
	var out bytes.Buffer
	p := NewPrinter(&out, time.UTC, func() client.Info { return client.Info{UserID: "1", UserName: "alice"} })
	p.RememberGroup(client.Group{ID: "7", Name: "team"})
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	msg := func(id, from, group, body, replyTo string) client.Event {
		return client.Event{Kind: client.EventMessage, At: at, Msg: &cimpb.Msg{MsgId: id, From: from, FromName: from, Group: group,
			Body: []byte(body), ReplyTo: replyTo}}
	}
	edit := msg("e1", "bob", "", "are you there??", "")
	edit.Msg.Op, edit.Msg.RefMsgId = cimpb.MsgOp_MSG_OP_EDIT, "q1"
	recall := msg("r1", "carol", "", "", "")
	recall.Msg.Op, recall.Msg.RefMsgId = cimpb.MsgOp_MSG_OP_RECALL, "q3"
	mine := msg("o1", "1", "", "from my phone", "")
	mine.Msg.To, mine.Outgoing = "2", true
	all := msg("b1", "bob", "", "hi all", "")
	all.Msg.Broadcast = true
	p.Sending("c1", "bob", "my question")
	for _, ev := range []client.Event{
		msg("q1", "bob", "", "are you there?", ""),
		{Kind: client.EventReceipt, Receipt: &cimpb.Receipt{ClientMsgId: "c1", MsgId: "s1", Status: cimpb.ReceiptStatus_RECEIPT_SENT}},
		msg("q2", "carol", "7", "hi\x1b[31m team \x1b]0;pwned\x07", ""),
		msg("q3", "carol", "", "oops", ""),
		edit,
		recall,
		msg("a1", "dave", "", "yes", "q1"),
		msg("a2", "dave", "7", "hello", "q2"),
		msg("a3", "bob", "", "here it is", "s1"),
		msg("a4", "bob", "", "what?", "0190f1c2d3e4f5a6b7c8d9e0f1a2b3c4"),
		msg("a5", "bob", "", "no", "q3"),
		mine,
		all,
	} {
		p.Event(ev)
	}
	want := strings.Join([]string{
		"[07:08:09] bob: are you there?",
		"* ✓ sent to bob: my question",
		"[07:08:09] carol@team: hi [31m team  ]0;pwned ",
		"[07:08:09] carol: oops",
		"[07:08:09] bob (edited): are you there?? (was: are you there?)",
		"* carol recalled a message: oops",
		"[07:08:09] dave: yes (↪ bob: are you there??)",
		"[07:08:09] dave@team: hello (↪ carol: hi [31m team  ]0;pwned )",
		"[07:08:09] bob: here it is (↪ alice: my question)",
		"[07:08:09] bob: what? (↪ a message)",
		"[07:08:09] bob: no (↪ carol (recalled))",
		"[07:08:09] me → 2: from my phone (from another device)",
		"[07:08:09] bob (all): hi all",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
	}
	if strings.ContainsAny(out.String(), "\x1b\x07\r") {
		t.Errorf("control characters printed: %q", out.String())
	}

	// :reply N: the last incoming messages, newest first, the recalled
	// q3 left out.
	var got []string
	for n := 1; ; n++ {
		r, ok := p.Received(n)
		if !ok {
			break
		}
		got = append(got, r.MsgID+"/"+r.From+"/"+r.Group)
	}
	wantRecv := "a5/bob/ a4/bob/ a3/bob/ a2/dave/7 a1/dave/ q2/carol/7 q1/bob/"
	if strings.Join(got, " ") != wantRecv {
		t.Errorf("received %v, want %s", got, wantRecv)
	}
	if r, _ := p.Received(2); r.Name != "bob" {
		t.Errorf("Received(2).Name = %q, want bob", r.Name)
	}
	if _, ok := p.Received(0); ok {
		t.Error("Received(0) found a message")
	}
	for i := range maxReceived + 50 {
		p.Event(msg(fmt.Sprint("n", i), "bob", "", "x", ""))
	}
	if r, ok := p.Received(maxReceived); !ok || r.MsgID != "n50" || len(p.recv) != maxReceived {
		t.Errorf("Received(%d) = %v, %v; %d kept, want n50 and %d", maxReceived, r, ok, len(p.recv), maxReceived)
	}
	if _, ok := p.Received(maxReceived + 1); ok {
		t.Errorf("Received(%d) found a message", maxReceived+1)
	}

	// History: a reply quotes a message of the listing, or one shown.
	out.Reset()
	h := func(id, from, body, replyTo string) *cimpb.Msg {
		return &cimpb.Msg{MsgId: id, From: from, FromName: from, Body: []byte(body), ReplyTo: replyTo, TimestampMs: at.UnixMilli()}
	}
	p.History(client.HistoryPage{Messages: []*cimpb.Msg{
		h("h4", "bob", "nope", "unknown"),
		h("h3", "alice", "see above", "n149"),
		h("h2", "alice", "fine", "h1"),
		h("h1", "bob", "how are you?", ""),
	}})
	want = strings.Join([]string{
		"[2024-05-06 07:08:09] bob: how are you?",
		"[2024-05-06 07:08:09] alice: fine (↪ bob: how are you?)",
		"[2024-05-06 07:08:09] alice: see above (↪ bob: x)",
		"[2024-05-06 07:08:09] bob: nope (↪ a message)",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("history printed:\n%s\nwant:\n%s", out.String(), want)
	}
}
