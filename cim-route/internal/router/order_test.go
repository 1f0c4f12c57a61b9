package router

import (
	"context"
	"testing"
	"time"

	"github.com/gocim/gocim/proto/cimpb"
)

// TestGroupOrder: a turn waits for the earlier turns of each of its groups,
// and for nothing else.
func TestGroupOrder(t *testing.T) {
	o := &groupOrder{limit: time.Hour}
	t1 := o.take([]string{"g1"})
	t2 := o.take([]string{"g2", "g1", "g2"})
	t3 := o.take([]string{"g2"})
	t4 := o.take([]string{"g3"})
	if o.take(nil) != nil {
		t.Fatal("a job without timeline groups got a turn")
	}
	ctx := context.Background()
	t4.wait(ctx) // nothing before it: returns at once
	t1.wait(ctx)

	waited := func(tn *turn) <-chan struct{} {
		c := make(chan struct{})
		go func() { tn.wait(ctx); close(c) }()
		return c
	}
	w2, w3 := waited(t2), waited(t3)
	select {
	case <-w2:
		t.Fatal("the second turn of g1 went before the first finished")
	case <-w3:
		t.Fatal("the second turn of g2 went before the first (of g1 and g2) finished")
	default:
	}
	t1.finish()
	<-w2
	select {
	case <-w3:
		t.Fatal("g2's second turn went before its first finished")
	default:
	}
	t2.finish()
	t2.finish() // twice is harmless
	<-w3
	t3.finish()
	t4.finish()
	var nilTurn *turn
	nilTurn.wait(ctx)
	nilTurn.finish()
	if len(o.tails) != 0 {
		t.Fatalf("turns left behind: %v", o.tails)
	}
}

// TestGroupOrderWaitIsBounded: a turn whose predecessor never finishes goes
// after the limit, or when its context ends.
func TestGroupOrderWaitIsBounded(t *testing.T) {
	o := &groupOrder{limit: time.Millisecond}
	stuck := o.take([]string{"g"})
	defer stuck.finish()
	o.take([]string{"g"}).wait(context.Background()) // returns after the limit

	o.limit = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o.take([]string{"g"}).wait(ctx) // returns: its context ended
}

// TestTimelineDeliveryWaitsItsTurn: a timeline message's push is not queued
// for the gateways while a job that stored a message of the same group
// before it still holds its turn, and goes once that turn is done.
func TestTimelineDeliveryWaitsItsTurn(t *testing.T) {
	e := newEnv(t, PolicyKick, 1, func(c *Config) { c.GroupTimelineMin = 3 })
	alice, bob := e.connect("alice"), e.connect("bob")
	gid := e.newGroup(alice, "big", bob, e.account("carol"))
	e.uplink(alice, groupFrame(1, "warm", gid))
	before := len(e.frames(bob))

	e.r.order.limit = time.Hour
	earlier := e.r.order.take([]string{gid}) // a job of this group still delivering
	defer earlier.finish()
	b := &cimpb.UplinkBatch{GatewayId: alice.Gateway.ID, Uplinks: []*cimpb.Uplink{
		{UserId: alice.UserID, SessionId: alice.SessionID, Frame: groupFrame(2, "g2", gid)}}}
	if _, err := e.r.Uplink(e.ctx, b); err != nil { // answered once stored
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
	defer cancel()
	if err := e.r.WaitDeliveries(ctx); err == nil {
		t.Fatalf("the delivery finished while an earlier turn of its group was held; bob has %d frames (had %d)", len(e.frames(bob)), before)
	}
	if n := len(e.frames(bob)); n != before {
		t.Fatalf("bob got a push while an earlier turn of its group was held")
	}
	earlier.finish()
	e.waitPushes()
	if got := e.frames(bob)[before:]; len(got) != 1 || got[0].GetMsg().GetClientMsgId() != "g2" {
		t.Fatalf("bob got %v after the earlier turn finished, want g2", got)
	}
}
