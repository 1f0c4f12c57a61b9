package testenv

import (
	"context"
	"net"
	"strconv"
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

// TestFreePortOutsideEphemeralRange: ports come from below the kernel's
// ephemeral range (where no outgoing connection can take them before the
// server binds), are bindable, and are never handed out twice.
func TestFreePortOutsideEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for range 50 {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if low-portFloor >= 1000 && (p < portFloor || p >= low) {
			t.Fatalf("port %d outside [%d, %d)", p, portFloor, low)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d not bindable: %v", p, err)
		}
		l.Close()
	}
}
