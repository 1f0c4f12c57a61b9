package router

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/gocim/gocim/cim-route/internal/errs"
)

// TestHashPool: registrations never hold more than half the bcrypt slots,
// so a login runs while they are busy; beyond the queue a call fails at
// once with errs.ErrBusy instead of waiting.
func TestHashPool(t *testing.T) {
	p := newHashPool(2, 1) // 2 slots, registrations 1; 1 waiter of each kind
	ctx := context.Background()
	hold := func(register bool, started chan<- struct{}, release <-chan struct{}) <-chan error {
		done := make(chan error, 1)
		go func() {
			done <- p.run(ctx, register, func() {
				if started != nil {
					close(started)
				}
				<-release
			})
		}()
		return done
	}
	waitFor := func(n *atomic.Int64, want int64) {
		for n.Load() != want {
			runtime.Gosched()
		}
	}
	release := make(chan struct{})
	regRunning := make(chan struct{})
	reg1 := hold(true, regRunning, release)
	<-regRunning
	reg2 := hold(true, nil, release) // waits for the registration slot
	waitFor(&p.regs, 2)
	if err := p.run(ctx, true, func() { t.Error("a third registration ran") }); !errors.Is(err, errs.ErrBusy) {
		t.Fatalf("third registration: %v, want ErrBusy", err)
	}
	// Logins still run: registrations hold one slot of two.
	ran := false
	if err := p.run(ctx, false, func() { ran = true }); err != nil || !ran {
		t.Fatalf("login during a registration flood: ran %v, %v", ran, err)
	}
	// Logins queue too, but only so many.
	loginRunning := make(chan struct{})
	login1 := hold(false, loginRunning, release)
	<-loginRunning
	login2 := hold(false, nil, release)
	login3 := hold(false, nil, release) // running and waiting: slots + queue
	waitFor(&p.logins, 3)
	if err := p.run(ctx, false, func() { t.Error("a login over the queue ran") }); !errors.Is(err, errs.ErrBusy) {
		t.Fatalf("login over the queue: %v, want ErrBusy", err)
	}
	// A waiter whose request ends stops waiting.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	p2 := newHashPool(1, 4)
	block := make(chan struct{})
	started := make(chan struct{})
	go p2.run(ctx, false, func() { close(started); <-block })
	<-started
	if err := p2.run(cctx, false, func() {}); !errors.Is(err, errs.ErrBusy) {
		t.Fatalf("cancelled waiter: %v, want ErrBusy", err)
	}
	close(block)
	close(release)
	for _, c := range []<-chan error{reg1, reg2, login1, login2, login3} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
}
