package testenv

import (
	"context"
	"testing"
	"time"
)

// TestRedisClusterFailsOver: three masters with a replica each serve every
// slot; a key written on its master is read back through the replica that
// takes over when that master is killed.
func TestRedisClusterFailsOver(t *testing.T) {
	c := StartRedisCluster(t, 3, 1)
	if len(c.Nodes) != 6 {
		t.Fatalf("%d nodes, want 6", len(c.Nodes))
	}
	m, err := c.MasterOf("{user:1}")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.Cmd(m.Addr, "set", "{user:1}", "kept"); err != nil || out != "OK" {
		t.Fatalf("set on %s: %v %s", m.Addr, err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil { // the replica has it
		t.Fatal(err)
	}
	m.Kill()
	next, err := c.WaitFailover(ctx, "{user:1}", m)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.Cmd(next.Addr, "get", "{user:1}"); err != nil || out != "kept" {
		t.Fatalf("get on the new master %s: %v %q", next.Addr, err, out)
	}
}
