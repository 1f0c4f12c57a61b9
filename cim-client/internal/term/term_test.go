package term

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Command
	}{
		{"", Command{Op: OpNone}},
		{"   \t", Command{Op: OpNone}},
		{"bob;;hello", Command{Op: OpPrivate, To: "bob", Text: "hello"}},
		{"3;;by id", Command{Op: OpPrivate, To: "3", Text: "by id"}},
		{" bob ;; hello there \r", Command{Op: OpPrivate, To: "bob", Text: "hello there"}},
		{"bob;;a;;b", Command{Op: OpPrivate, To: "bob", Text: "a;;b"}},
		{"bob;;", Command{Op: OpInvalid, Text: "usage: <user>;;<text>"}},
		{";;hello", Command{Op: OpBroadcast, Text: ";;hello"}},
		{"see you;;later", Command{Op: OpBroadcast, Text: "see you;;later"}},
		{":p2p bob hello  there", Command{Op: OpPrivate, To: "bob", Text: "hello  there"}},
		{":p2p\tbob\thi", Command{Op: OpPrivate, To: "bob", Text: "hi"}},
		{":p2p bob", Command{Op: OpInvalid, Text: "usage: :p2p <user> <text>"}},
		{":p2p", Command{Op: OpInvalid, Text: "usage: :p2p <user> <text>"}},
		{":olu", Command{Op: OpOnline}},
		{"  :olu  ", Command{Op: OpOnline}},
		{":info", Command{Op: OpInfo}},
		{":all", Command{Op: OpHelp}},
		{":help", Command{Op: OpHelp}},
		{":q", Command{Op: OpQuit}},
		{":q!", Command{Op: OpQuit}},
		{":logout", Command{Op: OpLogout}},
		{":logout now", Command{Op: OpInvalid, Text: "usage: :logout"}},
		{":quit", Command{Op: OpQuit}},
		{":q   ", Command{Op: OpQuit}},
		{":q hello", Command{Op: OpHistory, Text: "hello"}}, // CIM: search the history
		{":q  see you ", Command{Op: OpHistory, Text: "see you"}},
		{":q! now", Command{Op: OpQuit}},
		{":pu al", Command{Op: OpPrefix, Text: "al"}},
		{":pu", Command{Op: OpInvalid, Text: "usage: :pu <name prefix>"}},
		{":pu a b", Command{Op: OpInvalid, Text: "usage: :pu <name prefix>"}},
		{":emoji", Command{Op: OpEmoji, N: 1}},
		{":emoji 3", Command{Op: OpEmoji, N: 3}},
		{":emoji x", Command{Op: OpInvalid, Text: "usage: :emoji [page]"}},
		{":delay 60 bob;;see you", Command{Op: OpDelay, N: 60, To: "bob", Text: "see you"}},
		{":delay 1 3;; by id ", Command{Op: OpDelay, N: 1, To: "3", Text: "by id"}},
		{":delay 0 bob;;x", Command{Op: OpInvalid, Text: "usage: :delay <seconds> <user>;;<text> (seconds: 1 to 604800)"}},
		{":delay 604801 bob;;x", Command{Op: OpInvalid, Text: "usage: :delay <seconds> <user>;;<text> (seconds: 1 to 604800)"}},
		{":delay 5 bob hi", Command{Op: OpInvalid, Text: "usage: :delay <seconds> <user>;;<text>"}},
		{":delay 5 bob;;", Command{Op: OpInvalid, Text: "usage: :delay <seconds> <user>;;<text>"}},
		{":delay 5 see you;;x", Command{Op: OpInvalid, Text: "usage: :delay <seconds> <user>;;<text>"}},
		{":qq", Command{Op: OpInvalid, Text: "unknown command :qq (try :help)"}},
		{":olu2 x", Command{Op: OpInvalid, Text: "unknown command :olu2 (try :help)"}},
		{":)", Command{Op: OpBroadcast, Text: ":)"}},
		{":D nice", Command{Op: OpBroadcast, Text: ":D nice"}},
		{"hello everyone", Command{Op: OpBroadcast, Text: "hello everyone"}},
		{"  padded  ", Command{Op: OpBroadcast, Text: "padded"}},
		{":status", Command{Op: OpStatus}},
		{":watch bob  g:3 7", Command{Op: OpWatch, Text: "bob g:3 7"}},
		{":watch", Command{Op: OpWatch}},
		{":typing bob", Command{Op: OpTyping, To: "bob"}},
		{":typing- g:3", Command{Op: OpTyping, Group: "3", Open: true}},
		{":typing g:x", Command{Op: OpInvalid, Text: "usage: :typing <user>|g:<gid>"}},
		{":typing", Command{Op: OpInvalid, Text: "usage: :typing <user>|g:<gid>"}},
		{":typing bob alice", Command{Op: OpInvalid, Text: "usage: :typing <user>|g:<gid>"}},
		{":his", Command{Op: OpHistory}},
		{":his bob", Command{Op: OpHistory, To: "bob"}},
		{":his bob hello there", Command{Op: OpHistory, To: "bob", Text: "hello there"}},
		{":his * hello", Command{Op: OpHistory, Text: "hello"}},
		{":history 3", Command{Op: OpHistory, To: "3"}},
		{":ghis 3", Command{Op: OpHistory, Group: "3"}},
		{":ghis 3 hello there", Command{Op: OpHistory, Group: "3", Text: "hello there"}},
		{":ghis bob", Command{Op: OpInvalid, Text: "usage: :ghis <gid> [word] (a group id is a number: see :groups)"}},
		{":ghis", Command{Op: OpInvalid, Text: "usage: :ghis <gid> [word]"}},
		{":file bob ./x.png", Command{Op: OpFile, To: "bob", Text: "./x.png"}},
		{":file bob ./my file.png ", Command{Op: OpFile, To: "bob", Text: "./my file.png"}},
		{":file bob", Command{Op: OpInvalid, Text: "usage: :file <user> <path>"}},
		{":file", Command{Op: OpInvalid, Text: "usage: :file <user> <path>"}},
		{":save 3", Command{Op: OpSave, N: 3}},
		{":save 12 /tmp/a b.png", Command{Op: OpSave, N: 12, Text: "/tmp/a b.png"}},
		{":save", Command{Op: OpInvalid, Text: "usage: :save <N> [path]"}},
		{":save x", Command{Op: OpInvalid, Text: "usage: :save <N> [path]"}},
		{":save 0", Command{Op: OpInvalid, Text: "usage: :save <N> [path]"}},
		{":status2", Command{Op: OpInvalid, Text: "unknown command :status2 (try :help)"}},
		{":recall", Command{Op: OpRecall, N: 1}},
		{":recall 3", Command{Op: OpRecall, N: 3}},
		{":recall 0", Command{Op: OpInvalid, Text: "usage: :recall [N] (1: my last message)"}},
		{":recall x", Command{Op: OpInvalid, Text: "usage: :recall [N] (1: my last message)"}},
		{":edit  hello  again ", Command{Op: OpEdit, Text: "hello  again"}},
		{":edit", Command{Op: OpInvalid, Text: "usage: :edit <new text> (replaces my last message)"}},
		{":del 2", Command{Op: OpDelete, N: 2}},
		{":del", Command{Op: OpInvalid, Text: "usage: :del <N> (line N of the last :his or :ghis)"}},
		{":del -1", Command{Op: OpInvalid, Text: "usage: :del <N> (line N of the last :his or :ghis)"}},
		{":del 2 3", Command{Op: OpInvalid, Text: "usage: :del <N> (line N of the last :his or :ghis)"}},
		{":block bob", Command{Op: OpBlock, To: "bob"}},
		{":block  12 ", Command{Op: OpBlock, To: "12"}},
		{":block", Command{Op: OpInvalid, Text: "usage: :block <user>"}},
		{":block bob carol", Command{Op: OpInvalid, Text: "usage: :block <user>"}},
		{":unblock bob", Command{Op: OpUnblock, To: "bob"}},
		{":unblock", Command{Op: OpInvalid, Text: "usage: :unblock <user>"}},
		{":blocks", Command{Op: OpBlocks}},
		{":blocks bob", Command{Op: OpInvalid, Text: "usage: :blocks"}},
	} {
		if got := Parse(tc.line); got != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.line, got, tc.want)
		}
	}
}

func TestFormats(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	ms := at.UnixMilli()
	fallback := time.Date(2024, 1, 1, 23, 59, 58, 0, time.UTC)
	alice := client.Info{UserID: "3", UserName: "alice", SessionID: "s1", Gateway: "127.0.0.1:9000:9100", Connected: true}
	for _, tc := range []struct {
		name, got, want string
	}{
		{"private", Message(&cimpb.Msg{FromName: "alice", From: "3", Body: []byte("hello"), TimestampMs: ms}, time.UTC, fallback), "[07:08:09] alice: hello"},
		{"broadcast", Message(&cimpb.Msg{FromName: "alice", Body: []byte("hi all"), Broadcast: true, TimestampMs: ms}, time.UTC, fallback), "[07:08:09] alice (all): hi all"},
		{"group, name unknown", Message(&cimpb.Msg{FromName: "alice", Group: "7", Body: []byte("x"), TimestampMs: ms}, time.UTC, fallback), "[07:08:09] alice@#7: x"},
		{"other zone", Message(&cimpb.Msg{FromName: "alice", Body: []byte("x"), TimestampMs: ms}, time.FixedZone("X", 3600), fallback), "[08:08:09] alice: x"},
		{"no name, no time", Message(&cimpb.Msg{From: "3", Body: []byte("x")}, time.UTC, fallback), "[23:59:58] 3: x"},
		{"multi-line body", Message(&cimpb.Msg{FromName: "eve", Body: []byte("a\nb\r\x1b[2Jc\xff"), TimestampMs: ms}, time.UTC, fallback), "[07:08:09] eve: a b  [2Jc\uFFFD"},
		{"file", Message(&cimpb.Msg{FromName: "bob", Kind: cimpb.Kind_KIND_FILE, File: &cimpb.FileInfo{Name: "a.pdf", Size: 1200}, TimestampMs: ms}, time.UTC, fallback), "[07:08:09] bob: [file a.pdf, 1200 bytes]"},
		{"watching", Watching([]*cimpb.PresenceState{{UserId: "2", UserName: "bob", Online: true, Platform: "web"}, {UserId: "9"}}, time.UTC, at), "* watching: bob online (web), 9 offline"},
		{"watching nobody", Watching(nil, time.UTC, at), "* watching nobody"},
		{"presence", PresenceLine(&cimpb.PresenceState{UserId: "2", UserName: "bob\x1b[2J"}), "* bob [2J is offline"},
		{"typing", TypingLine(&cimpb.Typing{From: "2", FromName: "bob"}, ""), "* bob is typing…"},
		{"typing in a group", TypingLine(&cimpb.Typing{From: "2", FromName: "bob", Group: "3", Stopped: true}, "team"), "* bob stopped typing in team"},
		{"offline", ErrorLine(&cimpb.Error{Code: int32(codes.Offline), Text: "user offline", ClientMsgId: "c1"}, "bob"), "! bob is offline"},
		{"offline, recipient unknown", ErrorLine(&cimpb.Error{Code: int32(codes.Offline), Text: "user offline"}, ""), "! user offline"},
		{"no such user", ErrorLine(&cimpb.Error{Code: int32(codes.BadAccount), Text: "bad account"}, "zed"), "! no such user: zed"},
		{"other error", ErrorLine(&cimpb.Error{Code: int32(codes.Unavailable), Text: "route unavailable"}, "bob"), "! route unavailable"},
		{"error without text", ErrorLine(&cimpb.Error{Code: int32(codes.GoingAway)}, ""), "! gateway going away"},
		{"problem", Problem("client: message larger than the frame limit"), "! message larger than the frame limit"},
		{"logged in", LoggedIn(alice, "127.0.0.1:9000:9100"), "* logged in as alice (id 3) via 127.0.0.1:9000:9100"},
		{"reconnected", Reconnected("127.0.0.1:9001:9101"), "* reconnected via 127.0.0.1:9001:9101"},
		{"lost", ConnectionLost("no PONG within 10s"), "* connection lost: no PONG within 10s, reconnecting"},
		{"kicked", Kicked("logged in elsewhere"), "* kicked: logged in elsewhere"},
		{"registered", Registered(client.User{UserID: "3", UserName: "alice"}), "* registered as alice (id 3)"},
		{"online", Online([]client.User{{UserID: "1", UserName: "alice"}, {UserID: "2", UserName: "bob"}}), "* online: alice(1), bob(2)"},
		{"online empty", Online(nil), "* online: nobody"},
		{"info", InfoLine(alice), "* alice (id 3) session s1, gateway 127.0.0.1:9000:9100"},
		{"info down", InfoLine(client.Info{UserID: "3", UserName: "alice", SessionID: "s1", Gateway: "g"}), "* alice (id 3) session s1, gateway g, reconnecting"},
		{"sent", Sent("bob", "hello"), "* ✓ sent to bob: hello"},
		{"sent broadcast", Sent("", "hi all"), "* ✓ sent to all: hi all"},
		{"sent long", Sent("bob", strings.Repeat("é", 50)+"\n"), "* ✓ sent to bob: " + strings.Repeat("é", 39) + "…"},
		{"sent file", Sent("bob", FileWhat(&cimpb.FileInfo{Name: "x.png", Size: 1234})), "* ✓ sent to bob: [file x.png, 1234 bytes]"},
		{"history", HistoryLine(&cimpb.Msg{FromName: "alice", Body: []byte("hi\nthere"), TimestampMs: ms}, time.UTC), "[2024-05-06 07:08:09] alice: hi there"},
		{"history file", HistoryLine(&cimpb.Msg{From: "2", Kind: cimpb.Kind_KIND_FILE, File: &cimpb.FileInfo{Name: "x.png", Size: 1234}, TimestampMs: ms}, time.UTC), "[2024-05-06 07:08:09] 2: [file x.png, 1234 bytes]"},
		{"status sent", StatusLine(client.SentMessage{To: "bob", Text: "hello", Status: client.StatusSent, At: at}, time.UTC), "* [07:08:09] to bob: hello ✓"},
		{"status delivered", StatusLine(client.SentMessage{To: "bob", Text: "hello", Status: client.StatusDelivered, At: at}, time.UTC), "* [07:08:09] to bob: hello ✓✓"},
		{"status read", StatusLine(client.SentMessage{To: "bob", Text: "hello", Status: client.StatusRead, At: at}, time.UTC), "* [07:08:09] to bob: hello read"},
		{"status pending", StatusLine(client.SentMessage{To: "bob", Text: "hello", Status: client.StatusPending, At: at}, time.UTC), "* [07:08:09] to bob: hello …"},
		{"status failed broadcast", StatusLine(client.SentMessage{Broadcast: true, Text: "yo", Status: client.StatusFailed, At: at}, time.UTC), "* [07:08:09] to all: yo failed"},
		{"status file", StatusLine(client.SentMessage{To: "bob", Kind: cimpb.Kind_KIND_FILE, File: &cimpb.FileInfo{Name: "a.pdf", Size: 9}, Status: client.StatusSent, At: at}, time.UTC), "* [07:08:09] to bob: [file a.pdf, 9 bytes] ✓"},
		{"no status", NoStatus(), "* no messages sent yet"},
		{"no history", NoHistory(), "* no history"},
		{"saved", Saved("x.png", 1234, "/tmp/x.png"), "* saved x.png (1234 bytes) to /tmp/x.png"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, tc.got, tc.want)
		}
	}
	for _, l := range Help() {
		if !strings.HasPrefix(l, "* ") {
			t.Errorf("help line %q is not a status line", l)
		}
	}
}

func TestPrinter(t *testing.T) {
	var out bytes.Buffer
	info := client.Info{UserID: "3", UserName: "alice", SessionID: "s1", Gateway: "gw1", Connected: true}
	p := NewPrinter(&out, time.UTC, func() client.Info { return info })
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

	p.Sending("c1", "bob", "hello bob")
	p.Sending("c2", "carol", "hi")
	p.Sending("c3", "", "hi all")
	file := &cimpb.Msg{FromName: "bob", Kind: cimpb.Kind_KIND_FILE, File: &cimpb.FileInfo{Name: "x.png", Size: 5}}
	for _, ev := range []client.Event{
		{Kind: client.EventConnected, Gateway: "gw1"},
		{Kind: client.EventMessage, Msg: &cimpb.Msg{FromName: "bob", Body: []byte("hi")}, At: at},
		{Kind: client.EventMessage, Msg: file, At: at},
		{Kind: client.EventReceipt, Receipt: &cimpb.Receipt{ClientMsgId: "c1", Status: cimpb.ReceiptStatus_RECEIPT_SENT}},
		{Kind: client.EventReceipt, Receipt: &cimpb.Receipt{ClientMsgId: "c1", Status: cimpb.ReceiptStatus_RECEIPT_DELIVERED}},
		{Kind: client.EventReceipt, Receipt: &cimpb.Receipt{ClientMsgId: "c3", Status: cimpb.ReceiptStatus_RECEIPT_SENT}},
		{Kind: client.EventReceipt, Receipt: &cimpb.Receipt{ClientMsgId: "unknown", Status: cimpb.ReceiptStatus_RECEIPT_SENT}},
		{Kind: client.EventError, Err: &cimpb.Error{Code: int32(codes.Offline), ClientMsgId: "c2"}},
		{Kind: client.EventError, Err: &cimpb.Error{Code: int32(codes.Offline), ClientMsgId: "c2", Text: "user offline"}}, // answered already
		{Kind: client.EventDisconnected, Reason: "gateway closed the connection: EOF"},
		{Kind: client.EventConnected, Gateway: "gw2"},
		{Kind: client.EventKicked, Reason: "logged in elsewhere"},
		{Kind: client.EventClosed},
	} {
		p.Event(ev)
	}
	want := strings.Join([]string{
		"* logged in as alice (id 3) via gw1",
		"[07:08:09] bob: hi",
		"[07:08:09] bob: [file x.png, 5 bytes] (:save 1)",
		"* ✓ sent to bob: hello bob",
		"* ✓ sent to all: hi all",
		"! carol is offline",
		"! user offline",
		"* connection lost: gateway closed the connection: EOF, reconnecting",
		"* reconnected via gw2",
		"* kicked: logged in elsewhere",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
	}
	if m, ok := p.File(1); !ok || m != file {
		t.Errorf("File(1) = %v, %v", m, ok)
	}
	if _, ok := p.File(2); ok {
		t.Error("File(2) exists")
	}

	// History: oldest first, files numbered on.
	out.Reset()
	p.History(client.HistoryPage{Messages: []*cimpb.Msg{
		{FromName: "bob", Kind: cimpb.Kind_KIND_FILE, File: &cimpb.FileInfo{Name: "y.txt", Size: 2}, TimestampMs: at.UnixMilli() + 1000},
		{FromName: "alice", Body: []byte("first"), TimestampMs: at.UnixMilli()},
	}})
	p.History(client.HistoryPage{})
	p.Status([]client.SentMessage{{To: "bob", Text: "hello", Status: client.StatusDelivered, At: at}})
	p.Status(nil)
	want = strings.Join([]string{
		"[2024-05-06 07:08:09] alice: first",
		"[2024-05-06 07:08:10] bob: [file y.txt, 2 bytes] (:save 2)",
		"* no history",
		"* [07:08:09] to bob: hello ✓✓",
		"* no messages sent yet",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
	}
	for i := range maxFiles + 5 {
		p.keepFile(&cimpb.Msg{Kind: cimpb.Kind_KIND_FILE, File: &cimpb.FileInfo{Name: fmt.Sprint(i)}})
	}
	if len(p.files) != maxFiles {
		t.Errorf("%d files kept, want %d", len(p.files), maxFiles)
	}

	// Unanswered sends do not pile up forever.
	for i := range maxPending + 10 {
		p.Sending(fmt.Sprintf("id-%d", i), "bob", "x")
	}
	if len(p.pending) > maxPending || len(p.order) > maxPending {
		t.Errorf("pending %d / order %d above %d", len(p.pending), len(p.order), maxPending)
	}
}

func TestWaitAnswered(t *testing.T) {
	p := NewPrinter(io.Discard, time.UTC, func() client.Info { return client.Info{} })
	if n := p.WaitAnswered(context.Background()); n != 0 {
		t.Fatalf("nothing sent, %d unanswered", n)
	}
	p.Sending("a", "bob", "x")
	p.Sending("b", "", "x")
	p.Sending("c", "carol", "x")
	p.Forget("c") // failed locally: no answer will come
	done := make(chan int)
	go func() { done <- p.WaitAnswered(context.Background()) }()
	p.Event(client.Event{Kind: client.EventReceipt, Receipt: &cimpb.Receipt{ClientMsgId: "b"}})
	p.Event(client.Event{Kind: client.EventError, Err: &cimpb.Error{Code: int32(codes.Offline), ClientMsgId: "a"}})
	if n := <-done; n != 0 {
		t.Errorf("WaitAnswered = %d after every answer", n)
	}

	p.Sending("d", "bob", "x")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n := p.WaitAnswered(ctx); n != 1 {
		t.Errorf("WaitAnswered with an ended context = %d, want 1", n)
	}
}

// TestPrinterSlowDown: a rate-limited send prints one "slow down" line, the
// client resends it, and its later answer prints as usual.
func TestPrinterSlowDown(t *testing.T) {
	var out bytes.Buffer
	p := NewPrinter(&out, time.UTC, func() client.Info { return client.Info{} })
	p.Sending("c1", "bob", "hello")
	p.Sending("c2", "", "hi all")
	p.Sending("c3", "carol", "again")
	limited := func(id string) client.Event {
		return client.Event{Kind: client.EventRetrying, Err: &cimpb.Error{Code: int32(codes.RateLimited), Text: "rate limited", ClientMsgId: id}}
	}
	for _, ev := range []client.Event{limited("c1"), limited("c1"), limited("c2"), limited("c3"), limited("other")} {
		p.Event(ev)
	}
	if p.Retrying() != 3 || p.Unanswered() != 3 {
		t.Errorf("Retrying %d Unanswered %d, want 3 and 3", p.Retrying(), p.Unanswered())
	}
	for _, ev := range []client.Event{
		limited("c1"),
		{Kind: client.EventReceipt, Receipt: &cimpb.Receipt{ClientMsgId: "c1", Status: cimpb.ReceiptStatus_RECEIPT_SENT}},
		{Kind: client.EventError, Err: &cimpb.Error{Code: int32(codes.RateLimited), Text: "rate limited", ClientMsgId: "c3"}},
		{Kind: client.EventError, Err: &cimpb.Error{Code: int32(codes.RateLimited), Text: "rate limited", ClientMsgId: "c2"}},
	} {
		p.Event(ev)
	}
	want := strings.Join([]string{
		"! slow down: message to bob will be retried",
		"! slow down: message to all will be retried",
		"! slow down: message to carol will be retried",
		"! slow down: a message will be retried",
		"* ✓ sent to bob: hello",
		"! too many messages: message to carol not sent",
		"! rate limited",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
	}
	if p.Retrying() != 0 || p.Unanswered() != 0 {
		t.Errorf("Retrying %d Unanswered %d after the answers", p.Retrying(), p.Unanswered())
	}
}

// TestWatchingLastSeen: a :watch answer gives an offline user's last seen
// (the snapshot's at_ms) in the printer's zone, the time alone on the day
// of now there, with the date on another; never seen (0) or online: none.
// A live change is news and says no time.
func TestWatchingLastSeen(t *testing.T) {
	now := time.Date(2024, 5, 6, 15, 0, 0, 0, time.UTC)
	today := time.Date(2024, 5, 6, 14, 2, 30, 0, time.UTC).UnixMilli()
	yesterday := time.Date(2024, 5, 5, 23, 59, 0, 0, time.UTC).UnixMilli()
	// Two hours east, late is already tomorrow: days are the zone's.
	east, late := time.FixedZone("E", 2*3600), time.Date(2024, 5, 6, 23, 30, 0, 0, time.UTC)
	bob := func(ms int64) *cimpb.PresenceState {
		return &cimpb.PresenceState{UserId: "2", UserName: "bob", AtMs: ms}
	}
	for _, tc := range []struct {
		name, got, want string
	}{
		{"today", Watching([]*cimpb.PresenceState{bob(today)}, time.UTC, now), "* watching: bob offline (last seen 14:02)"},
		{"another day", Watching([]*cimpb.PresenceState{bob(yesterday)}, time.UTC, now), "* watching: bob offline (last seen 2024-05-05 23:59)"},
		{"another zone", Watching([]*cimpb.PresenceState{bob(yesterday)}, east, now), "* watching: bob offline (last seen 01:59)"},
		{"another zone, today there", Watching([]*cimpb.PresenceState{bob(late.Add(-20 * time.Minute).UnixMilli())}, east, late),
			"* watching: bob offline (last seen 01:10)"},
		{"another zone, yesterday there", Watching([]*cimpb.PresenceState{bob(late.Add(-100 * time.Minute).UnixMilli())}, east, late),
			"* watching: bob offline (last seen 2024-05-06 23:50)"},
		{"a year ago", Watching([]*cimpb.PresenceState{bob(now.AddDate(-1, 0, 0).UnixMilli())}, time.UTC, now), "* watching: bob offline (last seen 2023-05-06 15:00)"},
		{"never seen", Watching([]*cimpb.PresenceState{bob(0)}, time.UTC, now), "* watching: bob offline"},
		{"online", Watching([]*cimpb.PresenceState{{UserId: "3", UserName: "carol", Online: true, Platform: "web", AtMs: today}}, time.UTC, now),
			"* watching: carol online (web)"},
		{"several", Watching([]*cimpb.PresenceState{{UserId: "3", UserName: "carol", Online: true, AtMs: today}, bob(today), {UserId: "4", UserName: "dave"}}, time.UTC, now),
			"* watching: carol online, bob offline (last seen 14:02), dave offline"},
		{"live change", PresenceLine(bob(today)), "* bob is offline"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, tc.got, tc.want)
		}
	}

	// The printer: "today" is the day of the snapshot's event, in its zone.
	var out bytes.Buffer
	p := NewPrinter(&out, time.UTC, func() client.Info { return client.Info{UserID: "1"} })
	snapshot := func(at time.Time) client.Event {
		return client.Event{Kind: client.EventPresence, At: at,
			Presence: &cimpb.Presence{Snapshot: true, States: []*cimpb.PresenceState{bob(today), {UserId: "4", UserName: "dave"}}}}
	}
	p.Event(snapshot(now))
	p.Event(snapshot(now.AddDate(0, 0, 1)))
	p.Event(client.Event{Kind: client.EventPresence, At: now, Presence: &cimpb.Presence{States: []*cimpb.PresenceState{bob(now.UnixMilli())}}})
	want := strings.Join([]string{
		"* watching: bob offline (last seen 14:02), dave offline",
		"* watching: bob offline (last seen 2024-05-06 14:02), dave offline",
		"* bob is offline",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestWatchTargets(t *testing.T) {
	c := Parse(":watch bob g:3 7 g:12")
	if u, g := c.Users(), c.Groups(); !slices.Equal(u, []string{"bob", "7"}) || !slices.Equal(g, []string{"3", "12"}) {
		t.Fatalf("users %v groups %v", u, g)
	}
}

func TestChangeFormats(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	ms := at.UnixMilli()
	edit := &cimpb.Msg{FromName: "alice", Op: cimpb.MsgOp_MSG_OP_EDIT, RefMsgId: "m1", Body: []byte("new\ntext"), TimestampMs: ms}
	gedit := &cimpb.Msg{FromName: "alice", Group: "7", Op: cimpb.MsgOp_MSG_OP_EDIT, RefMsgId: "m1", Body: []byte("x"), TimestampMs: ms}
	recall := &cimpb.Msg{From: "3", Op: cimpb.MsgOp_MSG_OP_RECALL, RefMsgId: "m1"}
	grecall := &cimpb.Msg{FromName: "alice", Group: "7", Op: cimpb.MsgOp_MSG_OP_RECALL, RefMsgId: "m1"}
	for _, tc := range []struct {
		name, got, want string
	}{
		{"edited", Edited(edit, "", "", time.UTC, at), "[07:08:09] alice (edited): new text"},
		{"edited, was", Edited(edit, "", strings.Repeat("o", 50), time.UTC, at), "[07:08:09] alice (edited): new text (was: " + strings.Repeat("o", 39) + "…)"},
		{"edited in a group", Edited(gedit, "team", "old", time.UTC, at), "[07:08:09] alice@team (edited): x (was: old)"},
		{"edited in an unnamed group", Edited(gedit, "", "", time.UTC, at), "[07:08:09] alice@#7 (edited): x"},
		{"recalled", Recalled(recall, "", ""), "* 3 recalled a message"},
		{"recalled, known", Recalled(recall, "", "hello"), "* 3 recalled a message: hello"},
		{"recalled in a group", Recalled(grecall, "team", "hi\x1b"), "* alice recalled a message in team: hi "},
		{"recall sent", ChangeSent(cimpb.MsgOp_MSG_OP_RECALL, "bob", "hello"), "* ✓ recalled your message to bob: hello"},
		{"edit sent", ChangeSent(cimpb.MsgOp_MSG_OP_EDIT, "team", "hello again"), "* ✓ edited your message to team: hello again"},
		{"history edited", HistoryLine(&cimpb.Msg{FromName: "alice", Op: cimpb.MsgOp_MSG_OP_EDIT, Body: []byte("fixed"), TimestampMs: ms}, time.UTC), "[2024-05-06 07:08:09] alice (edited): fixed"},
		{"history recalled", HistoryLine(&cimpb.Msg{FromName: "alice", Op: cimpb.MsgOp_MSG_OP_RECALL, TimestampMs: ms}, time.UTC), "[2024-05-06 07:08:09] alice (recalled)"},
		{"status recall", StatusLine(client.SentMessage{To: "bob", Op: cimpb.MsgOp_MSG_OP_RECALL, RefMsgID: "m1", Status: client.StatusSent, At: at}, time.UTC), "* [07:08:09] to bob: (recall) ✓"},
		{"status group edit", GroupStatusLine(client.SentMessage{Group: "7", Op: cimpb.MsgOp_MSG_OP_EDIT, Text: "fixed", Status: client.StatusPending, At: at}, "team", time.UTC), "* [07:08:09] to team: (edit) fixed …"},
		{"nothing to recall", NothingToRecall(1), "! no message of yours to recall"},
		{"nothing to recall, N", NothingToRecall(3), "! no message 3 of yours to recall (:status lists them)"},
		{"nothing to edit", NothingToEdit(), "! no text message of yours to edit"},
		{"no listed line", NoListedLine(5), "! no line 5 in the last :his or :ghis listing"},
		{"deleted", DeletedLine(&cimpb.Msg{FromName: "bob", Body: []byte("hi"), TimestampMs: ms}, time.UTC), "* deleted from your history: [2024-05-06 07:08:09] bob: hi"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, tc.got, tc.want)
		}
	}
}

// TestPrinterChanges: incoming edits and recalls say what they changed
// when the printer showed the message, from its sender only; nothing
// changes a recalled message; a recalled file cannot be saved; our own
// changes get their ✓ lines; :del finds the lines of the last listing.
func TestPrinterChanges(t *testing.T) {
	var out bytes.Buffer
	p := NewPrinter(&out, time.UTC, func() client.Info { return client.Info{UserID: "3"} })
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	msg := func(id, from, body string) client.Event {
		return client.Event{Kind: client.EventMessage, At: at, Msg: &cimpb.Msg{MsgId: id, From: from, FromName: from, Body: []byte(body)}}
	}
	change := func(from, ref string, op cimpb.MsgOp, body string) client.Event {
		return client.Event{Kind: client.EventMessage, At: at, Msg: &cimpb.Msg{MsgId: "c-" + ref, From: from, FromName: from, Op: op, RefMsgId: ref, Body: []byte(body)}}
	}
	file := client.Event{Kind: client.EventMessage, At: at, Msg: &cimpb.Msg{MsgId: "f1", From: "bob", FromName: "bob", Kind: cimpb.Kind_KIND_FILE, File: &cimpb.FileInfo{Name: "x.png", Size: 5}}}
	edit, recall := cimpb.MsgOp_MSG_OP_EDIT, cimpb.MsgOp_MSG_OP_RECALL
	p.SendingChange("c1", "bob", "", recall, "my text")
	p.SendingChange("c2", "bob", "", edit, "better text")
	for _, ev := range []client.Event{
		msg("m1", "bob", "hello"),
		change("bob", "m1", edit, "hello!"),
		change("bob", "m1", edit, "hello!!"),
		change("eve", "m1", edit, "forged"), // not eve's message: applied to nothing
		change("bob", "m1", recall, ""),
		change("bob", "m1", edit, "after the recall"), // ignored
		change("bob", "m1", recall, ""),               // ignored
		change("bob", "unknown", recall, ""),
		file,
		change("bob", "f1", recall, ""),
		{Kind: client.EventReceipt, Receipt: &cimpb.Receipt{ClientMsgId: "c1", Status: cimpb.ReceiptStatus_RECEIPT_SENT}},
		{Kind: client.EventReceipt, Receipt: &cimpb.Receipt{ClientMsgId: "c2", Status: cimpb.ReceiptStatus_RECEIPT_SENT}},
	} {
		p.Event(ev)
	}
	want := strings.Join([]string{
		"[07:08:09] bob: hello",
		"[07:08:09] bob (edited): hello! (was: hello)",
		"[07:08:09] bob (edited): hello!! (was: hello!)",
		"[07:08:09] eve (edited): forged",
		"* bob recalled a message: hello!!",
		"* bob recalled a message",
		"[07:08:09] bob: [file x.png, 5 bytes] (:save 1)",
		"* bob recalled a message: [file x.png, 5 bytes]",
		"* ✓ recalled your message to bob: my text",
		"* ✓ edited your message to bob: better text",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
	}
	if _, ok := p.File(1); ok {
		t.Error("a recalled file can still be saved")
	}
	for i := range maxShown + 10 {
		p.remember(&cimpb.Msg{MsgId: fmt.Sprint(i)}, 0)
	}
	if len(p.shown) != maxShown || len(p.shownOrder) != maxShown {
		t.Errorf("remembers %d / %d messages, want %d", len(p.shown), len(p.shownOrder), maxShown)
	}

	// :del N is line N of the last listing, oldest first.
	out.Reset()
	newest := &cimpb.Msg{MsgId: "h2", FromName: "bob", Op: edit, Body: []byte("fixed"), TimestampMs: at.UnixMilli()}
	oldest := &cimpb.Msg{MsgId: "h1", FromName: "bob", Op: recall, TimestampMs: at.UnixMilli()}
	p.History(client.HistoryPage{Messages: []*cimpb.Msg{newest, oldest}})
	if m, ok := p.Listed(1); !ok || m != oldest {
		t.Errorf("Listed(1) = %v", m)
	}
	if m, ok := p.Listed(2); !ok || m != newest {
		t.Errorf("Listed(2) = %v", m)
	}
	if _, ok := p.Listed(3); ok {
		t.Error("Listed(3) exists")
	}
	want = "[2024-05-06 07:08:09] bob (recalled)\n[2024-05-06 07:08:09] bob (edited): fixed\n"
	if out.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
	}
	p.History(client.HistoryPage{})
	if _, ok := p.Listed(1); ok {
		t.Error("an empty listing still lists")
	}
}

// TestBlockFormats: what :block, :unblock and :blocks print, their
// refusals, and their :help lines.
func TestBlockFormats(t *testing.T) {
	bob := client.User{UserID: "2", UserName: "bob"}
	block, unblock := Parse(":block bob"), Parse(":unblock zed")
	for _, tc := range []struct {
		name, got, want string
	}{
		{"blocked", Blocked(bob), "* blocked bob: you will not get their messages"},
		{"blocked, no name", Blocked(client.User{UserID: "2"}), "* blocked 2: you will not get their messages"},
		{"unblocked", Unblocked(bob), "* unblocked bob"},
		{"list", BlockList([]client.User{bob, {UserID: "3", UserName: "carol\n"}}), "* blocked: bob(2), carol (3)"},
		{"empty list", BlockList(nil), "* nobody blocked"},
		{"unknown user", BlockProblem(unblock, &client.APIError{Code: codes.BadAccount, HTTPStatus: 404}), "! no such user: zed"},
		{"myself", BlockProblem(block, &client.APIError{Code: codes.BadArgument, HTTPStatus: 400}), "! you cannot block yourself"},
		{"too many", BlockProblem(block, &client.APIError{Code: codes.QuotaExceeded, HTTPStatus: 429}), "! too many users blocked (at most 1000): :unblock some first"},
		{"other", BlockProblem(block, &client.APIError{Code: codes.Unavailable, Message: "route unavailable", HTTPStatus: 503}), "! route: route unavailable (code 5030, HTTP 503)"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, tc.got, tc.want)
		}
	}
	help := strings.Join(Help(), "\n")
	for _, cmd := range []string{":block <user>", ":unblock <user>", ":blocks"} {
		if !strings.Contains(help, "\n*   "+cmd+" ") {
			t.Errorf(":help has no line for %s:\n%s", cmd, help)
		}
	}
}
