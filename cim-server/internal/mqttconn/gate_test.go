package mqttconn

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"

	"github.com/gocim/gocim/cim-server/internal/conn"
)

// TestGateFIFO: turns go to the waiting logins in the order they came; a
// full queue is busy at once; a wait that runs out of time leaves its place
// and takes no turn with it.
func TestGateFIFO(t *testing.T) {
	g := NewGate(1, 3)
	leave, err := g.Enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 3)
	leaves := make(chan func(), 3)
	for i := range 2 {
		go func() {
			l, err := g.Enter(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			leaves <- l
		}()
		waitLoad(t, g, 1, i+1) // the next one queues behind it
	}
	ctx, cancel := context.WithCancel(context.Background())
	timedOut := make(chan error, 1)
	go func() {
		_, err := g.Enter(ctx)
		timedOut <- err
	}()
	waitLoad(t, g, 1, 3)
	if _, err := g.Enter(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("a fourth wait: %v, want ErrBusy", err)
	}
	cancel()
	if err := <-timedOut; !errors.Is(err, ErrBusy) {
		t.Fatalf("a wait out of time: %v, want ErrBusy", err)
	}
	waitLoad(t, g, 1, 2)
	leave()
	for want := range 2 {
		if got := <-order; got != want {
			t.Fatalf("turn went to %d, want %d", got, want)
		}
		(<-leaves)()
	}
	if running, waiting := g.Load(); running != 0 || waiting != 0 {
		t.Fatalf("load %d/%d after all left", running, waiting)
	}
}

func waitLoad(t *testing.T, g *Gate, running, waiting int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		r, w := g.Load()
		if r == running && w == waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("load %d running %d waiting, want %d and %d", r, w, running, waiting)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLoginStorm: with the route slow, at most --mqtt-login-parallel
// device logins are at the route and --mqtt-login-queue wait; the next
// CONNECT is answered "server busy" at once, in either protocol level; the
// waiting ones go through once the route answers.
func TestLoginStorm(t *testing.T) {
	const parallel, queue = 2, 3
	g := startGW(t, func(c *Config, cc *conn.Config) {
		c.Gate = NewGate(parallel, queue)
		cc.LoginTimeout = time.Minute
	})
	block := make(chan struct{})
	g.logins.set(func(f *fakeLogins) { f.block, f.entered = block, make(chan struct{}, 100) })

	var fleet []*raw
	for range parallel + queue {
		r := dialRaw(t, g)
		r.send(connect5(deviceID, secret, nil))
		fleet = append(fleet, r)
	}
	for range parallel {
		<-g.logins.entered
	}
	waitLoad(t, g.cfg.Gate, parallel, queue)

	r := dialRaw(t, g)
	r.send(connect5(deviceID, secret, nil))
	if ack := r.recv().Content.(*packets.Connack); ack.ReasonCode != rcServerBusy {
		t.Fatalf("CONNACK %#x, want 0x89 (server busy)", ack.ReasonCode)
	}
	r.expectEnd()
	r = dialRaw(t, g)
	r.write(connect311(deviceID, secret, nil))
	if got := r.recvBytes(); !bytes.Equal(got, []byte{0x20, 0x02, 0x00, v311Unavailable}) {
		t.Fatalf("CONNACK %x, want return code 3", got)
	}
	r.expectEnd()

	close(block)
	for _, r := range fleet {
		if ack := r.recv().Content.(*packets.Connack); ack.ReasonCode != rcSuccess {
			t.Fatalf("CONNACK %#x after the storm", ack.ReasonCode)
		}
	}
}

// TestLoginQueueBoundByLoginTimeout: a CONNECT that waits for its turn
// longer than the login timeout is told the server is busy.
func TestLoginQueueBoundByLoginTimeout(t *testing.T) {
	g := startGW(t, func(c *Config, cc *conn.Config) {
		c.Gate = NewGate(1, 1)
		cc.LoginTimeout = 500 * time.Millisecond
	})
	block := make(chan struct{})
	defer close(block)
	g.logins.set(func(f *fakeLogins) { f.block = block })
	first := dialRaw(t, g)
	first.send(connect5(deviceID, secret, nil))
	waitLoad(t, g.cfg.Gate, 1, 0)
	r := dialRaw(t, g)
	r.send(connect5(deviceID, secret, nil))
	if ack := r.recv().Content.(*packets.Connack); ack.ReasonCode != rcServerBusy {
		t.Fatalf("CONNACK %#x, want 0x89", ack.ReasonCode)
	}
	if ack := first.recv().Content.(*packets.Connack); ack.ReasonCode != rcServerBusy {
		t.Fatalf("the login stuck at the route: CONNACK %#x, want 0x89", ack.ReasonCode)
	}
}
