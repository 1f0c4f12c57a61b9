package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
)

// TestRedisLosesItsTail restores an older copy of Redis's AOF, as a crash
// within the fsync window (or a restored backup) leaves it: the inbox
// counters step back and the seqs of messages the recipients were shown
// are handed out again, for new messages. No recipient may drop a new
// message as a repeat: bob, connected, gets new messages live under reused
// seqs; carol, whose link was down meanwhile, logs in again after the seq
// she had shown — as many new messages arrived as were lost, so the inbox's
// head is back at it, but the entry there is another one (its timestamp
// differs from the one her LOGIN names). Both are shown every new message
// once, in order, and none of the old ones again.
func TestRedisLosesItsTail(t *testing.T) {
	testRedisLosesItsTail(t, harness.Options{Gateways: 1})
}

// TestRedisLosesItsTailRouteReplicas: the same with the gateway's uplinks
// handled by the route replica inside it, whose Redis goes back in time
// under it just the same.
func TestRedisLosesItsTailRouteReplicas(t *testing.T) {
	testRedisLosesItsTail(t, harness.Options{Gateways: 1, RouteReplica: true})
}

func testRedisLosesItsTail(t *testing.T, opts harness.Options) {
	c := harness.Start(t, opts)
	alice := c.Connect(t, "alice", fastResend)
	bob := c.Connect(t, "bob")
	net := &dropper{}
	carol := c.Connect(t, "carol", func(cfg *client.Config) { cfg.Dial = net.dial })
	send := func(to, body string) {
		t.Helper()
		id, err := alice.Send(ctxT(t), to, body)
		if err != nil {
			t.Fatal(err)
		}
		alice.WaitFor(t, 0, wait, "SENT for "+body, func(e client.Event) bool {
			return e.Kind == client.EventReceipt && e.Receipt.ClientMsgId == id && e.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT
		})
	}
	both := func(body string) {
		t.Helper()
		for _, to := range []*harness.User{bob, carol} {
			send(to.Name, body)
			to.WaitFor(t, 0, wait, body, harness.IsMessage(body))
		}
	}
	for i := range 3 {
		both(fmt.Sprint("kept ", i))
	}

	// A clean stop flushes the AOF: keep that copy, then go on.
	if err := c.Redis.Stop(10 * time.Second); err != nil {
		t.Fatalf("redis stop: %v", err)
	}
	aof := filepath.Join(c.Redis.Dir, "appendonlydir")
	saved := filepath.Join(t.TempDir(), "appendonlydir")
	if out, err := exec.Command("cp", "-a", aof, saved).CombinedOutput(); err != nil {
		t.Fatalf("copy AOF: %v %s", err, out)
	}
	c.Redis.Restart()
	for i := range 3 {
		both(fmt.Sprint("lost ", i))
	}

	// Carol's network goes; Redis crashes and comes back with the older
	// AOF: the "lost" messages and their seqs are gone.
	net.cut(true)
	carol.WaitFor(t, 0, wait, "carol's link down", harness.IsKind(client.EventDisconnected))
	c.Redis.Kill()
	if err := os.RemoveAll(aof); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", saved, aof).CombinedOutput(); err != nil {
		t.Fatalf("restore AOF: %v %s", err, out)
	}
	c.Redis.Restart()

	for i := range 3 { // seqs 4..6 again, for each
		send("bob", fmt.Sprint("new ", i))
		send("carol", fmt.Sprint("new ", i))
	}
	net.unblock()

	for _, u := range []*harness.User{bob, carol} {
		want := []string{"kept 0", "kept 1", "kept 2", "lost 0", "lost 1", "lost 2", "new 0", "new 1", "new 2"}
		var got []string
		if !harness.Within(wait, func() error {
			got = got[:0]
			for _, m := range received(u) {
				got = append(got, string(m.Body))
			}
			if len(got) < len(want) {
				return fmt.Errorf("%s shown %d of %d", u.Name, len(got), len(want))
			}
			return nil
		}) || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s was shown %q, want %q", u.Name, got, want)
		}
	}
}
