package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// lines records what the program prints, line by line, for waiting on.
type lines struct {
	mu      sync.Mutex
	partial []byte
	got     []string
	changed chan struct{}
}

func newLines() *lines { return &lines{changed: make(chan struct{})} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.got = append(l.got, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

func (l *lines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.got...)
}

// expect waits for a line from index from on that matches re and returns
// the index after it.
func (l *lines) expect(t *testing.T, from int, re string) int {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(clienttest.Wait)
	for {
		l.mu.Lock()
		for i := from; i < len(l.got); i++ {
			if rx.MatchString(l.got[i]) {
				l.mu.Unlock()
				return i + 1
			}
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no line matching %q; printed:\n%s", re, strings.Join(l.all(), "\n"))
		}
	}
}

// expectLine is expect that also returns the matching line.
func (l *lines) expectLine(t *testing.T, from int, re string) (int, string) {
	t.Helper()
	i := l.expect(t, from, re)
	return i, l.all()[i-1]
}

// syncBuffer is a bytes.Buffer safe to write from the program's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestFlags(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name   string
		args   []string
		env    map[string]string
		want   int
		stderr string
	}{
		{"help", []string{"--help"}, nil, 0, "CIM_ROUTE"},
		{"unknown flag", []string{"--nope"}, nil, 2, "flag provided but not defined"},
		{"no user", []string{"--password", "x"}, nil, 2, "--user is required"},
		{"no password", []string{"--user", "alice"}, nil, 2, "--password is required"},
		{"bad level", []string{"--user", "a", "--password", "p", "--log-level", "loud"}, nil, 2, "--log-level"},
		{"stray argument", []string{"--user", "a", "--password", "p", "extra"}, nil, 2, "unexpected arguments"},
		{"bad route", []string{"--user", "a", "--password", "p", "--route", "nowhere"}, nil, 2, "not an http(s) URL"},
		{"bad env", []string{"--user", "a", "--password", "p"}, map[string]string{"CIM_HEARTBEAT": "soon"}, 2, "CIM_HEARTBEAT"},
		{"help lists --tls", []string{"--help"}, nil, 0, "CIM_TLS"},
		{"help lists --ca", []string{"--help"}, nil, 0, "CIM_CA"},
		{"help lists --resend-timeout", []string{"--help"}, nil, 0, "CIM_RESEND_TIMEOUT"},
		{"ca file missing", []string{"--user", "a", "--password", "p", "--ca", missing}, nil, 2, "--ca: open " + missing},
		{"ca file not PEM", []string{"--user", "a", "--password", "p", "--tls", "--ca", notPEM}, nil, 2, "--ca " + notPEM + ": no PEM certificate"},
		{"ca from env", []string{"--user", "a", "--password", "p"}, map[string]string{"CIM_CA": notPEM}, 2, "no PEM certificate"},
		{"bad tls env", []string{"--user", "a", "--password", "p"}, map[string]string{"CIM_TLS": "maybe"}, 2, "CIM_TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr syncBuffer
			if code := run(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr); code != tc.want {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr does not mention %q:\n%s", tc.stderr, stderr.String())
			}
			if stdout.String() != "" {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

func TestBadPasswordExits1(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.AddUser("dave", "secret1")
	var stdout, stderr syncBuffer
	code := run(context.Background(), []string{"--route", route.URL, "--user", "dave", "--password", "wrong-pw"},
		strings.NewReader(""), &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "login failed") || !strings.Contains(stderr.String(), "9100") {
		t.Errorf("stderr does not explain the failure:\n%s", stderr.String())
	}
	if route.Logins() != 1 {
		t.Errorf("%d login attempts, want 1", route.Logins())
	}
}

// session runs the program for alice with stdin under the test's control.
type session struct {
	out   *lines
	err   syncBuffer
	in    *io.PipeWriter
	code  chan int
	route *clienttest.Route
	gw    *clienttest.Gateway
}

func newSession(t *testing.T) *session {
	t.Helper()
	s := &session{out: newLines(), code: make(chan int, 1)}
	s.gw = clienttest.NewGateway(t)
	s.route = clienttest.NewRoute(t, s.gw)
	return s
}

// start runs the program in the background; the fakes must be set up.
func (s *session) start(t *testing.T, args ...string) {
	t.Helper()
	r, w := io.Pipe()
	s.in = w
	args = append([]string{"--route", s.route.URL, "--user", "alice", "--password", "secret1"}, args...)
	go func() { s.code <- run(context.Background(), args, r, s.out, &s.err) }()
	t.Cleanup(func() {
		_ = w.Close()
		select {
		case code := <-s.code:
			s.code <- code
		case <-time.After(clienttest.Wait):
			t.Errorf("program still running at the end of the test")
		}
	})
}

func (s *session) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(s.in, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

func (s *session) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-s.code:
		s.code <- code
		return code
	case <-time.After(clienttest.Wait):
		t.Fatalf("program did not exit; printed:\n%s", strings.Join(s.out.all(), "\n"))
		return -1
	}
}

func TestChatSession(t *testing.T) {
	s := newSession(t)
	s.gw.SetOnMsg(func(m *cimpb.Msg) *cimpb.Frame {
		if m.GetTo() == "bob" {
			return &cimpb.Frame{Type: cimpb.Type_ERROR, Error: &cimpb.Error{
				Code: int32(codes.Offline), Text: "user offline", ClientMsgId: m.GetClientMsgId()}}
		}
		return clienttest.Receipts(m)
	})
	s.start(t, "--register", "--heartbeat", "20ms")
	n := s.out.expect(t, 0, `^\* registered as alice \(id 1\)$`)
	n = s.out.expect(t, n, `^\* logged in as alice \(id 1\) via `+regexp.QuoteMeta(s.gw.ID)+`$`)
	conn := s.gw.Accept(t)

	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	stamp := regexp.QuoteMeta(at.Local().Format("[15:04:05]"))
	for _, m := range []*cimpb.Msg{
		{MsgId: "m1", Seq: 1, From: "2", FromName: "bob", Body: []byte("hello"), TimestampMs: at.UnixMilli()},
		{MsgId: "m2", From: "2", FromName: "bob", Body: []byte("hi all"), Broadcast: true, TimestampMs: at.UnixMilli()},
	} {
		if err := conn.Send(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: m}); err != nil {
			t.Fatal(err)
		}
	}
	n = s.out.expect(t, n, `^`+stamp+` bob: hello$`)
	n = s.out.expect(t, n, `^`+stamp+` bob \(all\): hi all$`)
	// The stored message is marked read once shown; the broadcast is not.
	if r := conn.Next(t, cimpb.Type_READ).GetRead(); r.GetPeer() != "2" || len(r.GetMsgIds()) != 1 || r.GetMsgIds()[0] != "m1" {
		t.Fatalf("READ %v, want m1 for peer 2", r)
	}

	s.send(t, "bob;;hi there")
	m := conn.Next(t, cimpb.Type_MSG).GetMsg()
	if m.GetTo() != "bob" || string(m.GetBody()) != "hi there" || m.GetBroadcast() {
		t.Fatalf("private uplink %v", m)
	}
	n = s.out.expect(t, n, `^! bob is offline$`)

	s.send(t, ":p2p 2 by id")
	if m := conn.Next(t, cimpb.Type_MSG).GetMsg(); m.GetTo() != "2" || string(m.GetBody()) != "by id" {
		t.Fatalf(":p2p uplink %v", m)
	}
	n = s.out.expect(t, n, `^\* ✓ sent to 2: by id$`)
	s.send(t, "hello everyone")
	if m := conn.Next(t, cimpb.Type_MSG).GetMsg(); !m.GetBroadcast() || string(m.GetBody()) != "hello everyone" {
		t.Fatalf("broadcast uplink %v", m)
	}
	n = s.out.expect(t, n, `^\* ✓ sent to all: hello everyone$`)
	s.send(t, ":olu")
	n = s.out.expect(t, n, `^\* online: alice\(1\)$`)
	s.send(t, ":info")
	n = s.out.expect(t, n, `^\* alice \(id 1\) session s1, gateway `+regexp.QuoteMeta(s.gw.ID)+`$`)
	s.send(t, ":nope")
	n = s.out.expect(t, n, `^! unknown command :nope`)
	s.send(t, ":help")
	n = s.out.expect(t, n, `^\*   anything else `)
	s.send(t, ":q")
	if code := s.wait(t); code != 0 {
		t.Fatalf("exit %d after :q; stderr:\n%s", code, s.err.String())
	}
	conn.WaitDone(t)
	if off := s.route.Offlines(); len(off) != 1 || off[0].SessionID != "s1" {
		t.Errorf("offLine calls %+v, want one for s1", off)
	}
	for _, l := range s.out.all()[n:] {
		t.Errorf("unexpected output after :help and :q: %q", l)
	}
	for _, l := range s.out.all() {
		if heartbeatWord.MatchString(l) {
			t.Errorf("heartbeat noise in the chat: %q", l)
		}
	}
	if strings.Contains(s.err.String(), "level=") {
		t.Errorf("logs at the default level during a healthy session:\n%s", s.err.String())
	}
}

func TestPipedInputEndsCleanly(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1") // --register finds the name taken; the login decides
	// Quitting waits for the answers to what was sent, so the log-off can
	// never overtake the last lines.
	gw.SetOnMsg(func(m *cimpb.Msg) *cimpb.Frame {
		if n := len(route.Offlines()); n != 0 {
			t.Errorf("logged off before %q was answered", m.GetBody())
		}
		return clienttest.Receipts(m)
	})
	var stdout, stderr syncBuffer
	code := run(context.Background(),
		[]string{"--route", route.URL, "--user", "alice", "--password", "secret1", "--register"},
		strings.NewReader("bob;;one\nbob;;two\n"), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d at end of input; stderr:\n%s", code, stderr.String())
	}
	conn := gw.Accept(t)
	for _, want := range []string{"one", "two"} {
		if m := conn.Next(t, cimpb.Type_MSG).GetMsg(); string(m.GetBody()) != want {
			t.Fatalf("uplink %v, want body %q", m, want)
		}
	}
	if len(route.Offlines()) != 1 {
		t.Errorf("end of input did not log off: %+v", route.Offlines())
	}
	got := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(got) != 3 || !strings.HasPrefix(got[0], "* logged in as alice (id 1) via ") ||
		got[1] != "* ✓ sent to bob: one" || got[2] != "* ✓ sent to bob: two" {
		t.Errorf("stdout %q, want the login line and a ✓ for each message", got)
	}
}

func TestKickedExits1(t *testing.T) {
	s := newSession(t)
	s.route.AddUser("alice", "secret1")
	s.start(t)
	n := s.out.expect(t, 0, `^\* logged in as alice`)
	conn := s.gw.Accept(t)
	if err := conn.Send(&cimpb.Frame{Type: cimpb.Type_KICK, Kick: &cimpb.Kick{Reason: "logged in elsewhere"}}); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	s.out.expect(t, n, `^\* kicked: logged in elsewhere$`)
	if code := s.wait(t); code != 1 {
		t.Fatalf("exit %d after a kick, want 1", code)
	}
	if !strings.Contains(s.err.String(), "kicked: logged in elsewhere") {
		t.Errorf("stderr does not say why:\n%s", s.err.String())
	}
	if len(s.route.Offlines()) != 0 {
		t.Errorf("a kicked session called /offLine: %+v", s.route.Offlines())
	}
}

func TestReconnectLines(t *testing.T) {
	s := newSession(t)
	s.route.AddUser("alice", "secret1")
	gw2 := clienttest.NewGateway(t)
	s.route.SetGateways(s.gw, gw2)
	s.start(t)
	n := s.out.expect(t, 0, `^\* logged in as alice`)
	s.gw.Accept(t).Close()
	n = s.out.expect(t, n, `^\* connection lost: gateway closed the connection.*, reconnecting$`)
	s.out.expect(t, n, `^\* reconnected via `+regexp.QuoteMeta(gw2.ID)+`$`)
	s.send(t, ":q")
	if code := s.wait(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestReliableDeliveryCommands: :file (inline and uploaded), incoming files
// and :save, :his, :status, and READs for what was shown, batched per peer.
func TestReliableDeliveryCommands(t *testing.T) {
	s := newSession(t)
	uid := s.route.AddUser("alice", "secret1")
	bob := s.route.AddUser("bob", "secret1")
	in := clienttest.NewInbox()
	s.gw.SetInbox(func(string) *clienttest.Inbox { return in })
	s.gw.SetOnMsg(clienttest.Receipts)
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("note.txt", []byte("small note"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("B"), 70<<10) // above the 64 KiB frame: uploaded
	if err := os.WriteFile("big.bin", big, 0o600); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.Local)
	s.route.AddHistory(
		clienttest.HistoryMsg{MsgID: "h1", From: bob, FromName: "bob", To: uid, Body: "old hello", TimestampMs: at.UnixMilli()},
		clienttest.HistoryMsg{MsgID: "h2", From: uid, FromName: "alice", To: bob, Body: "old reply", TimestampMs: at.Add(time.Minute).UnixMilli()},
	)
	s.start(t)
	n := s.out.expect(t, 0, `^\* logged in as alice`)
	conn := s.gw.Accept(t)

	// Incoming: two messages and a file from bob in one burst → one READ.
	ref := s.route.PutFile(clienttest.StoredFile{Name: "pic.png", ContentType: "image/png", Data: []byte("PNGDATA")})
	frames := []*cimpb.Frame{
		in.Append(clienttest.TextMsg("m1", bob, "bob", "one")),
		in.Append(clienttest.TextMsg("m2", bob, "bob", "two")),
		in.Append(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "m3", From: bob, FromName: "bob", Kind: cimpb.Kind_KIND_FILE,
			File: &cimpb.FileInfo{Name: "../pic.png", Size: 7, ContentType: "image/png", Ref: ref}}}),
		in.Append(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "m4", From: bob, FromName: "bob", Kind: cimpb.Kind_KIND_FILE,
			Body: []byte("inline!"), File: &cimpb.FileInfo{Name: "in.txt", Size: 7}}}),
	}
	if err := conn.SendAll(frames...); err != nil {
		t.Fatal(err)
	}
	n = s.out.expect(t, n, `bob: one$`)
	n = s.out.expect(t, n, `bob: two$`)
	n = s.out.expect(t, n, `^\[\d\d:\d\d:\d\d\] bob: \[file \.\./pic.png, 7 bytes\] \(:save 1\)$`)
	n = s.out.expect(t, n, `bob: \[file in.txt, 7 bytes\] \(:save 2\)$`)
	var read []string
	for len(read) < 4 {
		r := conn.Next(t, cimpb.Type_READ).GetRead()
		if r.GetPeer() != bob {
			t.Fatalf("READ for peer %q, want %s", r.GetPeer(), bob)
		}
		read = append(read, r.GetMsgIds()...)
	}
	if strings.Join(read, ",") != "m1,m2,m3,m4" {
		t.Errorf("READ ids %v", read)
	}

	s.send(t, ":save 1")
	n = s.out.expect(t, n, `^\* saved pic.png \(7 bytes\) to .*pic.png$`)
	s.send(t, ":save 1") // the name is taken now: a new one, not an overwrite
	n = s.out.expect(t, n, `^\* saved pic.png \(7 bytes\) to .*pic \(1\).png$`)
	s.send(t, ":save 2 copy.txt")
	n = s.out.expect(t, n, `^\* saved in.txt \(7 bytes\) to .*copy.txt$`)
	s.send(t, ":save 9")
	n = s.out.expect(t, n, `^! no file 9$`)
	for name, want := range map[string]string{"pic.png": "PNGDATA", "pic (1).png": "PNGDATA", "copy.txt": "inline!"} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}

	// Files out: inline, then uploaded.
	s.send(t, ":file bob note.txt")
	m := conn.Next(t, cimpb.Type_MSG).GetMsg()
	if m.GetKind() != cimpb.Kind_KIND_FILE || string(m.GetBody()) != "small note" || m.GetFile().GetName() != "note.txt" {
		t.Fatalf("inline file uplink %v", m)
	}
	n = s.out.expect(t, n, `^\* ✓ sent to bob: \[file note.txt, 10 bytes\]$`)
	s.send(t, ":file bob big.bin")
	m = conn.Next(t, cimpb.Type_MSG).GetMsg()
	if stored, ok := s.route.File(m.GetFile().GetRef()); !ok || !bytes.Equal(stored.Data, big) || len(m.GetBody()) != 0 {
		t.Fatalf("uploaded file uplink %v", m.GetFile())
	}
	n = s.out.expect(t, n, `^\* ✓ sent to bob: \[file big.bin, 71680 bytes\]$`)
	s.send(t, ":file bob missing.txt")
	n = s.out.expect(t, n, `^! .*missing.txt`)
	s.send(t, "bob;;text too")
	n = s.out.expect(t, n, `^\* ✓ sent to bob: text too$`)

	// Receipts from bob raise the status shown by :status.
	if err := conn.Send(in.Append(clienttest.ReceiptFrame(cimpb.ReceiptStatus_RECEIPT_DELIVERED, "m-"+m.GetClientMsgId(), m.GetClientMsgId(), bob))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(clienttest.Wait)
	for {
		s.send(t, ":status")
		var last int
		last, _ = s.out.expectLine(t, n, `to bob: text too`)
		lines := s.out.all()
		if strings.Contains(lines[last-2], "[file big.bin, 71680 bytes] ✓✓") {
			if !regexp.MustCompile(`^\* \[\d\d:\d\d:\d\d\] to bob: \[file note.txt, 10 bytes\] ✓$`).MatchString(lines[last-3]) ||
				!strings.HasSuffix(lines[last-1], "to bob: text too ✓") {
				t.Fatalf(":status printed %q", lines[last-3:last])
			}
			n = last
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf(":status never showed the DELIVERED: %q", lines[last-3:last])
		}
		n = last
		time.Sleep(10 * time.Millisecond)
	}

	s.send(t, ":his bob")
	stampDay := regexp.QuoteMeta(at.Format("[2006-01-02 15:04:05]"))
	n = s.out.expect(t, n, `^`+stampDay+` bob: old hello$`)
	n = s.out.expect(t, n, `^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] alice: old reply$`)
	s.send(t, ":his * nothing-like-this")
	n = s.out.expect(t, n, `^\* no history$`)
	q := s.route.HistoryQueries()
	if len(q) != 2 || q[0].Get("peer") != "bob" || q[0].Get("limit") != "20" || q[1].Get("peer") != "" || q[1].Get("keyword") != "nothing-like-this" {
		t.Errorf("history queries %v", q)
	}
	s.send(t, ":help")
	for _, cmd := range []string{":file", ":save", ":his", ":status"} {
		s.out.expect(t, n, `^\*   `+regexp.QuoteMeta(cmd)+` `)
	}
	s.send(t, ":q")
	if code := s.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, s.err.String())
	}
	// The last ACK may still be on its way through the fake gateway.
	for deadline := time.Now().Add(clienttest.Wait); in.Acked() != 5; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("inbox acknowledged up to %d, want 5", in.Acked())
		}
	}
}

func TestSavePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("taken.txt", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir("sub", 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, arg, want string }{
		{"x.png", "", "x.png"},
		{"../../etc/passwd", "", "passwd"},
		{`C:\\evil\\x.exe`, "", "x.exe"},
		{"..", "", "file"},
		{"", "", "file"},
		{"a\nb.txt", "", "ab.txt"},
		{"taken.txt", "", "taken (1).txt"},
		{"x.png", "sub", filepath.Join("sub", "x.png")},
		{"x.png", "other.png", "other.png"},
		{"x.png", "taken.txt", "taken.txt"}, // named on purpose: replaced
	} {
		if got, err := savePath(tc.name, tc.arg); err != nil || got != tc.want {
			t.Errorf("savePath(%q, %q) = %q, %v; want %q", tc.name, tc.arg, got, err, tc.want)
		}
	}
}

// TestTLSFlags: --tls makes the gateway link TLS, --ca trusts a CA for it
// and for an https:// --route; without --ca a certificate from an unknown
// CA fails the login at once.
func TestTLSFlags(t *testing.T) {
	ca := testenv.NewTLS(t)
	caFile := ca.CAFile
	for _, tc := range []struct {
		name       string
		tlsGW      bool // the gateway speaks TLS
		httpsRoute bool
		args       []string
		wantTLS    bool   // the gateway link is TLS
		failure    string // stderr of a failed login; "" for success
	}{
		{"--tls --ca, https route", true, true, []string{"--tls", "--ca", caFile}, true, ""},
		{"--tls --ca, http route", true, false, []string{"--tls", "--ca", caFile}, true, ""},
		{"--ca alone: https route, plain gateway", false, true, []string{"--ca", caFile}, false, ""},
		{"https route without --ca", false, true, nil, false, "certificate"},
		{"--tls without --ca", true, false, []string{"--tls"}, false, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := clienttest.NewGateway(t)
			if tc.tlsGW {
				gw = clienttest.NewTLSGateway(t, ca.ServerConfig())
			}
			route := clienttest.NewRoute(t, gw)
			if tc.httpsRoute {
				route = clienttest.NewTLSRoute(t, ca.ServerConfig(), gw)
			}
			route.AddUser("alice", "secret1")
			args := append([]string{"--route", route.URL, "--user", "alice", "--password", "secret1"}, tc.args...)
			out := newLines()
			var stderr syncBuffer
			code := make(chan int, 1)
			in, stdin := io.Pipe()
			defer stdin.Close()
			go func() { code <- run(context.Background(), args, in, out, &stderr) }()
			if tc.failure != "" {
				select {
				case c := <-code:
					if c != 1 || !strings.Contains(stderr.String(), "login failed") || !strings.Contains(stderr.String(), tc.failure) {
						t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and a login failure naming %q", c, stderr.String(), tc.failure)
					}
				case <-time.After(clienttest.Wait):
					t.Fatal("the program kept retrying a certificate it cannot verify")
				}
				return
			}
			n := out.expect(t, 0, `^\* logged in as alice`)
			conn := gw.Accept(t)
			if _, isTLS := conn.TLS(); isTLS != tc.wantTLS {
				t.Errorf("gateway link TLS %v, want %v", isTLS, tc.wantTLS)
			}
			if _, err := io.WriteString(stdin, ":olu\n:q\n"); err != nil {
				t.Fatal(err)
			}
			out.expect(t, n, `^\* online: alice\(1\)$`)
			select {
			case c := <-code:
				if c != 0 {
					t.Errorf("exit %d; stderr:\n%s", c, stderr.String())
				}
			case <-time.After(clienttest.Wait):
				t.Fatal("the program did not exit")
			}
		})
	}
}

// TestRateLimitedMessage: a message the gateway rate-limits prints one
// "slow down" line however often it is limited, is resent and then ✓ sent;
// the recipient gets it once. Quitting waits for the retried one.
func TestRateLimitedMessage(t *testing.T) {
	s := newSession(t)
	s.route.AddUser("alice", "secret1")
	var mu sync.Mutex
	tries := map[string]int{}     // body → MSG frames received
	delivered := map[string]int{} // body → copies forwarded
	s.gw.SetOnMsg(func(m *cimpb.Msg) *cimpb.Frame {
		mu.Lock()
		defer mu.Unlock()
		body := string(m.GetBody())
		if tries[body]++; tries[body] <= 2 {
			return &cimpb.Frame{Type: cimpb.Type_ERROR, Error: &cimpb.Error{
				Code: int32(codes.RateLimited), Text: "rate limited", ClientMsgId: m.GetClientMsgId()}}
		}
		delivered[body]++
		return clienttest.Receipts(m)
	})
	s.start(t, "--resend-timeout", "30ms")
	n := s.out.expect(t, 0, `^\* logged in as alice`)
	s.send(t, "bob;;one")
	n = s.out.expect(t, n, `^! slow down: message to bob will be retried$`)
	n = s.out.expect(t, n, `^\* ✓ sent to bob: one$`)
	s.send(t, "bob;;two")
	_ = s.in.Close() // end of input right away: quitting waits for the retries
	if code := s.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, s.err.String())
	}
	s.out.expect(t, n, `^\* ✓ sent to bob: two$`)
	slow := 0
	for _, l := range s.out.all() {
		if strings.HasPrefix(l, "! slow down") {
			slow++
		}
	}
	if slow != 2 {
		t.Errorf("%d slow-down lines, want one per message:\n%s", slow, strings.Join(s.out.all(), "\n"))
	}
	mu.Lock()
	defer mu.Unlock()
	if tries["one"] != 3 || tries["two"] != 3 || delivered["one"] != 1 || delivered["two"] != 1 {
		t.Errorf("tries %v delivered %v, want 3 tries and one delivery each", tries, delivered)
	}
}

// deadRoute is a route URL nothing listens on.
func deadRoute(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	return url
}

// TestUnreachableRouteGivesUp: while the first login retries a route that
// does not answer, :q (or :q!, :quit) and end of input end the program (at
// once, once the login has tried for quitGrace: piped lines, a last :q too,
// are for after a login that works at once), and --connect-timeout ends it
// after that long; each with exit 1 and a message saying why.
func TestUnreachableRouteGivesUp(t *testing.T) {
	orig := quitGrace
	quitGrace = 100 * time.Millisecond // the login has been trying that long: give up at once
	defer func() { quitGrace = orig }()
	for _, tc := range []struct {
		name, input, flag, stderr string
	}{
		{":q", ":q\n", "1h", "quit before connecting"},
		{":quit after a line", "hello\n:quit\n", "1h", "quit before connecting"},
		{"end of input", "", "1h", "end of input"},
		{"connect timeout", "", "200ms", "not connected within --connect-timeout 200ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w := io.Pipe()
			defer w.Close()
			var stdout, stderr syncBuffer
			code := make(chan int, 1)
			go func() {
				code <- run(context.Background(), []string{"--route", deadRoute(t), "--user", "alice", "--password", "secret1",
					"--connect-timeout", tc.flag}, r, &stdout, &stderr)
			}()
			if tc.flag == "1h" {
				io.WriteString(w, tc.input)
				if tc.input == "" {
					w.Close()
				}
			}
			select {
			case c := <-code:
				if c != 1 || !strings.Contains(stderr.String(), tc.stderr) {
					t.Fatalf("exit %d, stderr:\n%s\nwant exit 1 and %q", c, stderr.String(), tc.stderr)
				}
			case <-time.After(clienttest.Wait):
				t.Fatalf("still retrying the route; stderr:\n%s", stderr.String())
			}
		})
	}
}

// TestPasswordAsked: without --password, on a terminal, the password is
// asked for (without echo: askPassword) and used to log in.
func TestPasswordAsked(t *testing.T) {
	asked := 0
	orig := askPassword
	askPassword = func(io.Reader, io.Writer) (string, bool, error) { asked++; return "secret1", true, nil }
	defer func() { askPassword = orig }()
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	var stdout, stderr syncBuffer
	code := run(context.Background(), []string{"--route", route.URL, "--user", "alice"}, strings.NewReader(":q\n"), &stdout, &stderr)
	if code != 0 || asked != 1 || route.Logins() != 1 {
		t.Fatalf("exit %d, asked %d times, %d logins; stderr:\n%s", code, asked, route.Logins(), stderr.String())
	}
}

// heartbeatWord finds PING or PONG as a word (not "typing").
var heartbeatWord = regexp.MustCompile(`(?i)\bp[io]ng\b`)
