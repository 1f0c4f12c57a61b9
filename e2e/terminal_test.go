package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/e2e/harness"
)

const stamp = `\[\d\d:\d\d:\d\d\] `

// TestTerminalChat drives two cim-client processes through their stdin and
// stdout: CIM's `bob;;hello` syntax, :p2p by id and by name, broadcast lines,
// :olu, :info, :help, and :q marking the user offline at once.
func TestTerminalChat(t *testing.T) {
	c := harness.Start(t, harness.Options{})
	alice := c.Terminal(t, "alice", "--heartbeat", "100ms")
	alice.Expect(t, 0, `^\* logged in as alice \(id \d+\) via `)
	bob := c.Terminal(t, "bob", "--heartbeat", "100ms")
	bob.Expect(t, 0, `^\* logged in as bob \(id \d+\) via `)

	alice.Send(t, "bob;;hello")
	bob.Expect(t, 0, `^`+stamp+`alice: hello$`)

	bob.Send(t, ":p2p alice hi there")
	alice.Expect(t, 0, `^`+stamp+`bob: hi there$`)

	// Ids work wherever names do.
	_, info := alice.Expect(t, 0, `^\* logged in as alice \(id (\d+)\)`)
	aliceID := strings.TrimSuffix(strings.SplitN(strings.SplitN(info, "(id ", 2)[1], ")", 2)[0], "")
	bob.Send(t, aliceID+";;by id")
	alice.Expect(t, 0, `^`+stamp+`bob: by id$`)

	alice.Send(t, "hello everyone")
	bob.Expect(t, 0, `^`+stamp+`alice \(all\): hello everyone$`)

	n := len(alice.Lines())
	alice.Send(t, ":olu")
	_, olu := alice.Expect(t, n, `^\* online: `)
	if !strings.Contains(olu, "alice("+aliceID+")") || !strings.Contains(olu, "bob(") {
		t.Fatalf(":olu printed %q, want alice and bob", olu)
	}
	alice.Send(t, ":info")
	alice.Expect(t, n, `^\* alice \(id `+aliceID+`\) .*gateway 127\.0\.0\.1:\d+:\d+`)
	alice.Send(t, ":help")
	alice.Expect(t, n, `:olu`)
	alice.Send(t, ":all")
	alice.Expect(t, n, `:q`)

	alice.Send(t, "bob;;bye")
	bob.Expect(t, 0, `^`+stamp+`alice: bye$`)
	alice.Send(t, ":q")
	if code := alice.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf(":q exit code %d, stderr:\n%s", code, alice.Stderr())
	}
	// :q marks the user offline at once: no waiting for a timeout.
	var env struct {
		Data []struct {
			UserName string `json:"userName"`
		} `json:"data"`
	}
	if _, err := harness.Call("GET", c.Route.URL+"/onlineUser", harness.APIKey(harness.ListKey), nil, &env); err != nil {
		t.Fatal(err)
	}
	for _, u := range env.Data {
		if u.UserName == "alice" {
			t.Fatalf("alice still listed online right after :q: %+v", env.Data)
		}
	}
	// A message to an offline user is stored; alice gets it when she returns.
	bob.Send(t, "alice;;are you there")
	alice2 := c.Terminal(t, "alice")
	alice2.Expect(t, 0, `^`+stamp+`bob: are you there$`)

	// Heartbeats ran every 100ms through all of this; none may show in the chat.
	for _, line := range append(alice.Lines(), bob.Lines()...) {
		if heartbeatNoise.MatchString(line) {
			t.Fatalf("heartbeat noise in the chat: %q", line)
		}
	}
}

// TestTerminalPiped scripts the client through a pipe: lines are sent in
// order and the end of input quits cleanly.
func TestTerminalPiped(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1})
	bob := c.Terminal(t, "bob")
	bob.Expect(t, 0, `^\* logged in as bob`)
	script := c.Terminal(t, "carol")
	for i := 1; i <= 3; i++ {
		script.Send(t, "bob;;line "+string(rune('0'+i)))
	}
	script.CloseStdin()
	if code := script.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("piped client exit code %d:\n%s", code, script.Stderr())
	}
	i, _ := bob.Expect(t, 0, `carol: line 1$`)
	i, _ = bob.Expect(t, i, `carol: line 2$`)
	bob.Expect(t, i, `carol: line 3$`)
}

// TestTerminalBadLogin: a wrong password is a permanent failure with a clear
// message and exit code 1, not a retry loop.
func TestTerminalBadLogin(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1})
	c.Register(t, "dave")
	tm := c.Terminal(t, "dave", "--password", "wrong-password")
	if code := tm.Wait(t, 20*time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1; stderr:\n%s", code, tm.Stderr())
	}
	if !strings.Contains(strings.ToLower(tm.Stderr()), "password") && !strings.Contains(tm.Stderr(), "9100") {
		t.Fatalf("stderr does not explain the failure:\n%s", tm.Stderr())
	}

}

// heartbeatNoise finds PING, PONG or heartbeat as words ("typing" is fine).
var heartbeatNoise = regexp.MustCompile(`(?i)\b(p[io]ng|heartbeat)\b`)
