package testenv

import (
	"context"
	"testing"
	"time"
)

func TestServicesStartAndRestart(t *testing.T) {
	r := StartRedis(t)
	z := StartZooKeeper(t)
	r.Kill()
	r.Restart()
	z.Kill()
	z.Restart()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := waitRedis(ctx, r.Process, r.Addr); err != nil {
		t.Fatal(err)
	}
	if err := waitZooKeeper(ctx, z.Process, z.Addr); err != nil {
		t.Fatal(err)
	}
}
