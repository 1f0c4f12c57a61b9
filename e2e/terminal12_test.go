package e2e

import (
	"testing"
	"time"

	"github.com/gocim/gocim/e2e/harness"
)

// TestTerminalCIMCommands: the CIM commands issue 12 added, against a real
// cluster: ":q <words>" searches the history (":q" alone quits), ":pu"
// lists online users by name prefix, ":emoji" lists emoji and ":code:" in a
// message becomes the emoji, and ":delay" schedules a message the route
// keeps: it arrives after the sender's client has quit.
func TestTerminalCIMCommands(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1})
	bob := c.Connect(t, "bob")
	alice := c.Terminal(t, "alice")
	alice.Expect(t, 0, `^\* logged in as alice \(id \d+\) via `)

	alice.Send(t, "bob;;hello :thumbsup:")
	bob.WaitFor(t, 0, wait, "emoji message", harness.IsMessage("hello 👍"))
	if _, err := bob.Send(ctxT(t), "alice", "a needle in the haystack"); err != nil {
		t.Fatal(err)
	}
	n, _ := alice.Expect(t, 0, `bob: a needle in the haystack$`)
	alice.Send(t, ":q needle")
	alice.Expect(t, n+1, `bob: a needle in the haystack$`) // the history line: :q with words searches, it does not quit

	alice.Send(t, ":pu AL")
	alice.Expect(t, 0, `^\* online, name starting with "AL": alice\(\d+\)$`)
	alice.Send(t, ":pu zz")
	alice.Expect(t, 0, `^\* online, name starting with "zz": nobody$`)
	alice.Send(t, ":emoji")
	alice.Expect(t, 0, `^\*   😄  :smile:$`)

	alice.Send(t, ":delay 2 bob;;later :tada:")
	alice.Expect(t, 0, `^\* message to bob scheduled for \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(kept on the server\)$`)
	alice.Send(t, ":q")
	if code := alice.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("alice's terminal exited %d", code)
	}
	bob.WaitFor(t, 0, 30*time.Second, "the delayed message, after alice quit", harness.IsMessage("later 🎉"))
	for _, m := range received(bob) {
		if string(m.Body) == "later 🎉" && m.From != bob.ID && m.FromName != "alice" {
			t.Fatalf("delayed message from %s (%s), want alice", m.FromName, m.From)
		}
	}
}
