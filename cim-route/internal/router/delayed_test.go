package router

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// TestDelayedMessageSentWhenDue: a delayed message is checked when
// scheduled (recipient, text, delay bounds), waits until due, then goes into
// the recipient's inbox and live to the recipient, from its sender, once:
// sent again after a lost confirmation, it is recognized as a resend.
func TestDelayedMessageSentWhenDue(t *testing.T) {
	var now atomic.Int64
	now.Store(time.UnixMilli(1_800_000_000_000).UnixNano())
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.Now = func() time.Time { return time.Unix(0, now.Load()) } })
	alice, bob := e.connect("alice"), e.connect("bob")

	for _, bad := range []struct {
		to, text string
		d        time.Duration
		want     error
	}{
		{"nobody", "x", time.Minute, errs.ErrBadAccount},
		{"bob", "", time.Minute, errs.ErrBadArgument},
		{"bob", "x", 0, errs.ErrBadArgument},
		{"bob", "x", MaxDelay + time.Second, errs.ErrBadArgument},
	} {
		if _, err := e.r.Delay(e.ctx, alice.UserID, bad.to, bad.text, bad.d); !errors.Is(err, bad.want) {
			t.Errorf("Delay(%q, %q, %v) = %v, want %v", bad.to, bad.text, bad.d, err, bad.want)
		}
	}
	m, err := e.r.Delay(e.ctx, alice.UserID, "bob", "see you later", time.Minute)
	if err != nil || m.To != bob.UserID || m.ID == "" {
		t.Fatalf("Delay = %+v, %v", m, err)
	}
	if n := e.r.sendDue(e.ctx); n != 0 || len(e.inbox(bob.UserID)) != 0 {
		t.Fatalf("before it is due: %d claimed, inbox %v", n, e.inbox(bob.UserID))
	}
	now.Add(int64(time.Minute))
	if n := e.r.sendDue(e.ctx); n != 1 {
		t.Fatalf("%d claimed when due, want 1", n)
	}
	in := e.inbox(bob.UserID)
	if len(in) != 1 || string(in[0].GetMsg().GetBody()) != "see you later" || in[0].GetMsg().GetFrom() != alice.UserID {
		t.Fatalf("bob's inbox %v", in)
	}
	if f := e.frames(bob); len(f) != 1 || string(f[0].GetMsg().GetBody()) != "see you later" {
		t.Fatalf("pushed to bob: %v", f)
	}
	if n := e.r.sendDue(e.ctx); n != 0 {
		t.Fatalf("sent again: %d claimed", n)
	}
	// A second send of the same message (its confirmation was lost and its
	// lease ran out) is a resend: bob's inbox still holds it once.
	if err := e.r.sendDelayed(e.ctx, model.DelayedMsg{ID: m.ID, From: alice.UserID, To: bob.UserID, Text: "see you later"}); err != nil {
		t.Fatal(err)
	}
	if in := e.inbox(bob.UserID); len(in) != 1 {
		t.Fatalf("bob's inbox after a second send: %d entries, want 1", len(in))
	}
}
