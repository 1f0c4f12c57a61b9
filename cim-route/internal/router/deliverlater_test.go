package router

import (
	"testing"
	"time"

	"github.com/gocim/gocim/proto/cimpb"
)

// uplinkAsync runs one uplink on its own goroutine.
func (e *env) uplinkAsync(s Session, f *cimpb.Frame) <-chan []*cimpb.Delivery {
	done := make(chan []*cimpb.Delivery, 1)
	go func() {
		b := &cimpb.UplinkBatch{GatewayId: s.Gateway.ID, Uplinks: []*cimpb.Uplink{{UserId: s.UserID, SessionId: s.SessionID, Frame: f}}}
		out, err := e.r.Uplink(e.ctx, b)
		if err != nil {
			e.t.Errorf("uplink: %v", err)
			close(done)
			return
		}
		done <- out.Deliveries
	}()
	return done
}

// TestUplinkAnsweredBeforePush: the sender's RECEIPT_SENT does not wait for
// the push to the recipient's gateway, which still happens; with every
// background slot taken, the next batch pushes before answering
// (back-pressure).
func TestUplinkAnsweredBeforePush(t *testing.T) {
	e := newEnv(t, PolicyKick, 2, func(c *Config) { c.BackgroundDeliveries = 1 })
	alice, bob := e.connect("alice"), e.connect("bob")
	for bob.Gateway.ID == alice.Gateway.ID { // the balancer alternates
		bob = e.connect("bob")
	}
	e.uplink(alice, msgFrame(1, "warm", "bob")) // names cached, scripts loaded
	before := len(e.frames(bob))
	held, release := e.gateway(bob.Gateway.ID).Hold()
	defer release()

	first := e.uplinkAsync(alice, msgFrame(2, "c2", "bob"))
	<-held // the push to bob's gateway is waiting there
	select {
	case ans := <-first:
		if len(ans) != 1 || ans[0].Frame.GetReceipt().GetStatus() != cimpb.ReceiptStatus_RECEIPT_SENT {
			t.Fatalf("answer %v, want RECEIPT_SENT", ans)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the uplink waited for its push")
	}
	if n := len(e.frames(bob)); n != before {
		t.Fatalf("bob has %d frames while the push is held, had %d", n, before)
	}

	// The one background slot is taken: this batch pushes itself first.
	second := e.uplinkAsync(alice, msgFrame(3, "c3", "bob"))
	<-held
	select {
	case <-second:
		t.Fatal("answered while its push was held and no background slot was free")
	default:
	}
	release()
	if ans := <-second; len(ans) != 1 || ans[0].Frame.GetReceipt().GetStatus() != cimpb.ReceiptStatus_RECEIPT_SENT {
		t.Fatalf("second answer %v", ans)
	}
	e.waitPushes()
	var got []string
	for _, f := range e.frames(bob)[before:] {
		got = append(got, f.GetMsg().GetClientMsgId())
	}
	if len(got) != 2 {
		t.Fatalf("bob got %v after the release, want c2 and c3", got)
	}
}
