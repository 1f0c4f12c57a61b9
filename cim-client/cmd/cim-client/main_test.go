package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
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
	s.send(t, "hello everyone")
	if m := conn.Next(t, cimpb.Type_MSG).GetMsg(); !m.GetBroadcast() || string(m.GetBody()) != "hello everyone" {
		t.Fatalf("broadcast uplink %v", m)
	}
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
		if ll := strings.ToLower(l); strings.Contains(ll, "ping") || strings.Contains(ll, "pong") {
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
	if got := stdout.String(); !strings.HasPrefix(got, "* logged in as alice (id 1) via ") || strings.Count(got, "\n") != 1 {
		t.Errorf("stdout %q, want just the login line", got)
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
