package mqttconn

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/eclipse/paho.golang/packets"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

func inboxMsg(seq uint64, body string) *cimpb.Frame {
	return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{Seq: seq, MsgId: fmt.Sprint("m", seq), From: "5", FromName: "bob",
		To: deviceID, Body: []byte(body), Kind: cimpb.Kind_KIND_TEXT}}
}

// recvPublish reads packets until a PUBLISH and returns it.
func (r *raw) recvPublish() *packets.Publish {
	r.t.Helper()
	for {
		cp := r.recv()
		if p, ok := cp.Content.(*packets.Publish); ok {
			return p
		}
		r.t.Fatalf("got %s, want PUBLISH", cp)
	}
}

func userProps(p *packets.Publish) map[string]string {
	m := map[string]string{}
	for _, u := range p.Properties.User {
		m[u.Key] = u.Value
	}
	return m
}

func isAck(f *cimpb.Frame) bool { return f.Type == cimpb.Type_ACK }

// TestDownlinkPublishAndAck: a MSG for the device is a QoS 1 PUBLISH on its
// downlink with what is known about it in user properties; the device's
// PUBACK becomes a cumulative ACK of the inbox seq, and a message the
// device does not acknowledge is not acknowledged to the route, not even
// when the connection ends.
func TestDownlinkPublishAndAck(t *testing.T) {
	g := startGW(t, nil)
	r, c, _ := login5(t, g, nil)
	c.Send(inboxMsg(1, "open valve"))
	c.Send(inboxMsg(2, "close valve"))
	p1, p2 := r.recvPublish(), r.recvPublish()
	if p1.Topic != "gocim/77/down" || p1.QoS != 1 || string(p1.Payload) != "open valve" || string(p2.Payload) != "close valve" ||
		p1.PacketID == p2.PacketID {
		t.Fatalf("PUBLISH %s / %s", p1, p2)
	}
	props := userProps(p1)
	if props["from"] != "5" || props["from_name"] != "bob" || props["msg_id"] != "m1" || props["kind"] != "text" ||
		props["to"] != deviceID || p1.Properties.ContentType != "text/plain; charset=utf-8" {
		t.Fatalf("user properties %v, content type %q", props, p1.Properties.ContentType)
	}
	r.send(puback5(p1.PacketID))
	if ack := g.nextUplink("the ACK", isAck).GetAck(); ack.Seq != 1 {
		t.Fatalf("ACK %v, want seq 1", ack)
	}
	// Seq 2 is never acknowledged: the connection drops, and no ACK
	// covers it (the route sends it again at the next login).
	r.nc.Close()
	g.waitClosed()
	for _, f := range g.sentUplinks() {
		if isAck(f) && f.GetAck().GetSeq() >= 2 {
			t.Fatalf("ACK %v covers a message the device did not acknowledge", f.GetAck())
		}
	}
}

// TestDownlinkOrder: entries go out once each and in seq order, whatever
// order they arrive in: a live push that overtakes the login SYNC's answer
// waits for it, a repeat is dropped, and a gap is filled by a SYNC the
// Conn asks for; receipts and the device's own messages' copies take their
// place in the inbox without going to the device.
func TestDownlinkOrder(t *testing.T) {
	g := startGW(t, nil)
	r := dialRaw(t, g)
	r.send(connect5(deviceID, secret, nil))
	r.recv() // CONNACK
	c := g.waitOnline()

	// The login SYNC's answer starts after seq 10 (acknowledged before);
	// seq 13 is pushed live before it, and 11 again after.
	c.Send(inboxMsg(13, "thirteen"))
	c.Send(inboxMsg(11, "eleven"))
	c.Send(&cimpb.Frame{Type: cimpb.Type_RECEIPT, Receipt: &cimpb.Receipt{Seq: 12, Status: cimpb.ReceiptStatus_RECEIPT_DELIVERED, MsgId: "x"}})
	c.Send(&cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: 10, HeadSeq: 13, FirstSeq: 1, LastSeq: 12}})
	c.Send(inboxMsg(11, "eleven again"))
	own := inboxMsg(14, "my own data")
	own.Msg.From = deviceID
	c.Send(own)
	c.Send(inboxMsg(16, "sixteen")) // 15 is missing: a SYNC fills it
	var got []string
	for range 2 {
		p := r.recvPublish()
		got = append(got, string(p.Payload))
		r.send(puback5(p.PacketID))
	}
	if want := []string{"eleven", "thirteen"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	sync := g.nextUplink("the SYNC for the gap", func(f *cimpb.Frame) bool {
		return f.Type == cimpb.Type_SYNC && f.GetSync().GetAfterSeq() > 0
	}).GetSync()
	if sync.AfterSeq != 14 || sync.FromAcked || sync.Group != "" {
		t.Fatalf("gap SYNC %v, want after 14", sync)
	}
	if ack := g.nextUplink("the ACK", isAck).GetAck(); ack.Seq != 14 {
		t.Fatalf("ACK %v, want 14 (13 acknowledged, 14 the device's own)", ack)
	}
	c.Send(inboxMsg(15, "fifteen"))
	c.Send(&cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: 14, HeadSeq: 16, FirstSeq: 1, LastSeq: 16}})
	for _, want := range []string{"fifteen", "sixteen"} {
		p := r.recvPublish()
		if string(p.Payload) != want {
			t.Fatalf("got %q, want %q", p.Payload, want)
		}
		r.send(puback5(p.PacketID))
	}
	if ack := g.nextUplink("the ACK", isAck).GetAck(); ack.Seq != 16 {
		t.Fatalf("ACK %v, want 16", ack)
	}
	r.ping() // nothing else came
}

// TestDownlinkSyncPages: a login SYNC's answer that stops short of the
// inbox's head is continued, and the timelines it lists are asked for.
func TestDownlinkSyncPages(t *testing.T) {
	g := startGW(t, nil)
	r := dialRaw(t, g)
	r.send(connect5(deviceID, secret, nil))
	r.recv()
	c := g.waitOnline()
	c.Send(inboxMsg(1, "one"))
	c.Send(&cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: 0, HeadSeq: 2, FirstSeq: 1, LastSeq: 1,
		Groups: []*cimpb.GroupSeq{{Group: "big", Seq: 7}}}})
	if p := r.recvPublish(); string(p.Payload) != "one" {
		t.Fatalf("got %q", p.Payload)
	}
	var next, group *cimpb.Sync
	for next == nil || group == nil {
		s := g.nextUplink("SYNCs", func(f *cimpb.Frame) bool {
			return f.Type == cimpb.Type_SYNC && f.GetSync().GetAfterSeq()+uint64(len(f.GetSync().GetGroup())) > 0
		}).GetSync()
		if s.Group == "big" {
			group = s
		} else {
			next = s
		}
	}
	if next.AfterSeq != 1 || !group.FromAcked || group.AfterSeq != 0 {
		t.Fatalf("SYNCs %v and %v", next, group)
	}
	// The timeline's answer: its messages go out by group_seq.
	tl := func(gs uint64, body string) *cimpb.Frame {
		return &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{GroupSeq: gs, Group: "big", From: "5", Body: []byte(body)}}
	}
	c.Send(tl(6, "six"))
	c.Send(tl(7, "seven"))
	c.Send(&cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{Group: "big", AfterSeq: 5, HeadSeq: 7, FirstSeq: 1, LastSeq: 7}})
	for _, want := range []string{"six", "seven"} {
		p := r.recvPublish()
		if string(p.Payload) != want || userProps(p)["group"] != "big" {
			t.Fatalf("got %s, want %q", p, want)
		}
		r.send(puback5(p.PacketID))
	}
	ack := g.nextUplink("the group ACK", func(f *cimpb.Frame) bool { return isAck(f) && len(f.GetAck().GetGroups()) > 0 }).GetAck()
	if ack.Groups[0].Group != "big" || ack.Groups[0].Seq != 7 {
		t.Fatalf("ACK %v", ack)
	}
}

// TestDownlinkQoS0Subscription: a device that subscribes to its downlink
// at QoS 0 gets it at QoS 0, and what was written is acknowledged;
// SUBSCRIBE to anything else is refused, UNSUBSCRIBE answered.
func TestDownlinkQoS0Subscription(t *testing.T) {
	g := startGW(t, nil)
	r, c, _ := login5(t, g, nil)
	r.send(subscribe5(3, packets.SubOptions{Topic: "gocim/77/down", QoS: 0}, packets.SubOptions{Topic: "gocim/78/down", QoS: 1},
		packets.SubOptions{Topic: "#", QoS: 1}, packets.SubOptions{Topic: "gocim/77/#", QoS: 0}, packets.SubOptions{Topic: "$share/x/gocim/77/down", QoS: 0}))
	ack, ok := r.recv().Content.(*packets.Suback)
	if want := []byte{0, rcNotAuthorized, rcNotAuthorized, 0, rcNotAuthorized}; !ok || ack.PacketID != 3 || !bytes.Equal(ack.Reasons, want) {
		t.Fatalf("SUBACK %v, want %x", ack, want)
	}
	c.Send(inboxMsg(1, "fire and forget"))
	if p := r.recvPublish(); p.QoS != 0 || string(p.Payload) != "fire and forget" {
		t.Fatalf("PUBLISH %s, want QoS 0", p)
	}
	if ack := g.nextUplink("the ACK", isAck).GetAck(); ack.Seq != 1 {
		t.Fatalf("ACK %v", ack)
	}

	un := packets.NewControlPacket(packets.UNSUBSCRIBE)
	u := un.Content.(*packets.Unsubscribe)
	u.PacketID, u.Topics = 4, []string{"gocim/77/down", "gocim/78/down", "gocim/77/down/#"}
	r.send(un)
	uack, ok := r.recv().Content.(*packets.Unsuback)
	if want := []byte{0, rcNotAuthorized, rcNoSubscription}; !ok || uack.PacketID != 4 || !bytes.Equal(uack.Reasons, want) {
		t.Fatalf("UNSUBACK %v, want %x", uack, want)
	}
	// Still subscribed at QoS 0 through gocim/77/#.
	c.Send(inboxMsg(2, "two"))
	if p := r.recvPublish(); p.QoS != 0 {
		t.Fatalf("PUBLISH %s, want QoS 0", p)
	}
}

// TestDownlinkWindow: no more QoS 1 messages are unacknowledged than the
// device's receive maximum; the next go out as it acknowledges; a device
// that lets the window and the queue behind it fill is a slow consumer.
func TestDownlinkWindow(t *testing.T) {
	g := startGW(t, func(c *Config, _ *conn.Config) { c.InFlight = 4 })
	r, c, _ := login5(t, g, func(k *packets.Connect) {
		recvMax := uint16(2)
		k.Properties.ReceiveMaximum = &recvMax
	})
	for i := range 4 {
		c.Send(inboxMsg(uint64(i+1), fmt.Sprint("m", i+1)))
	}
	p1, p2 := r.recvPublish(), r.recvPublish()
	r.ping() // the window is full: m3 waits
	r.send(puback5(p1.PacketID))
	if p3 := r.recvPublish(); string(p3.Payload) != "m3" || string(p2.Payload) != "m2" {
		t.Fatalf("got %s after m2 %s", p3, p2)
	}
	// m4 waits; 5 more make the queue behind the window overflow.
	for i := range 5 {
		c.Send(inboxMsg(uint64(i+5), "more"))
	}
	if rc := r.expectDisconnect(); rc != rcQuotaExceeded {
		t.Fatalf("DISCONNECT %#x, want 0x97", rc)
	}
	if why := g.waitClosed(); why.Cause != conn.SlowConsumer {
		t.Fatalf("closed: %v", why)
	}
}

// TestDownlinkWindowNotLimited: the PINGs this adapter makes to wake the
// writer for messages waiting for room in the window are its own, not the
// device's: package conn's limit on the answers a client asks for (PINGs
// closer than a second) must not stall a busy downlink, nor close it as
// flooding.
func TestDownlinkWindowNotLimited(t *testing.T) {
	const n = 12
	g := startGW(t, func(_ *Config, cc *conn.Config) { cc.MsgRate, cc.MsgBurst = 0.0001, 2 })
	r, c, _ := login5(t, g, func(k *packets.Connect) {
		recvMax := uint16(1)
		k.Properties.ReceiveMaximum = &recvMax
	})
	for i := range n {
		c.Send(inboxMsg(uint64(i+1), fmt.Sprint("m", i+1)))
	}
	for i := range n {
		p := r.recvPublish()
		if string(p.Payload) != fmt.Sprint("m", i+1) {
			t.Fatalf("got %s, want m%d", p, i+1)
		}
		r.send(puback5(p.PacketID))
	}
}

// TestKick: a KICK is DISCONNECT 0x8E (session taken over) for MQTT 5;
// ERROR GoingAway 0x8B; a 3.1.1 device is just closed.
func TestKick(t *testing.T) {
	g := startGW(t, nil)
	r, c, _ := login5(t, g, nil)
	c.CloseWith(conn.Kicked, &cimpb.Frame{Type: cimpb.Type_KICK, Kick: &cimpb.Kick{Reason: "logged in again"}})
	if rc := r.expectDisconnect(); rc != rcSessionTakenOver {
		t.Fatalf("DISCONNECT %#x, want 0x8E", rc)
	}
	g.waitClosed()

	r, c, _ = login5(t, g, nil)
	c.CloseWith(conn.GoingAway, conn.ErrorFrame(0, codes.GoingAway, "", ""))
	if rc := r.expectDisconnect(); rc != rcShuttingDown {
		t.Fatalf("DISCONNECT %#x, want 0x8B", rc)
	}
	g.waitClosed()

	r3 := dialRaw(t, g)
	r3.write(connect311(deviceID, secret, nil))
	r3.recvBytes()
	c = g.waitOnline()
	c.CloseWith(conn.Kicked, &cimpb.Frame{Type: cimpb.Type_KICK, Kick: &cimpb.Kick{Reason: "logged in again"}})
	if got := r3.expectEnd(); len(got) != 0 {
		t.Fatalf("a 3.1.1 device got %x, want a plain close", got)
	}
}

// TestSubscribeFloodCloses: a SUBACK is an answer the device asks for, as
// a PINGRESP is: a stream of SUBSCRIBEs gets at most the free one and
// --msg-burst of them answered, then a DISCONNECT 0x96 as flooding.
func TestSubscribeFloodCloses(t *testing.T) {
	const burst = 3
	g := startGW(t, func(_ *Config, cc *conn.Config) { cc.MsgRate, cc.MsgBurst = 0.0001, burst })
	r, _, _ := login5(t, g, nil)
	var flood bytes.Buffer
	for i := range 50 {
		if _, err := subscribe5(uint16(i+1), packets.SubOptions{Topic: "gocim/77/down", QoS: 1}).WriteTo(&flood); err != nil {
			t.Fatal(err)
		}
	}
	r.write(flood.Bytes())
	subacks := 0
	for {
		cp := r.recv()
		if d, ok := cp.Content.(*packets.Disconnect); ok {
			if d.ReasonCode != rcRateTooHigh {
				t.Fatalf("DISCONNECT %#x, want 0x96", d.ReasonCode)
			}
			break
		}
		if _, ok := cp.Content.(*packets.Suback); ok {
			subacks++
		}
	}
	r.expectEnd()
	if subacks > 1+burst {
		t.Fatalf("%d SUBACKs, want at most %d", subacks, 1+burst)
	}
	if why := g.waitClosed(); why.Cause != conn.Flooding {
		t.Fatalf("closed: %v, want flooding", why)
	}
}
