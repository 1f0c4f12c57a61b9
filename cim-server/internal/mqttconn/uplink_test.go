package mqttconn

import (
	"bytes"
	"testing"

	"github.com/eclipse/paho.golang/packets"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// TestUplink: a PUBLISH on an uplink topic is a MSG of binary kind (any
// bytes) to the user, the group or the app back-end the topic names, with
// a client_msg_id of its own; QoS 1 is acknowledged only once the route
// answered RECEIPT_SENT for it.
func TestUplink(t *testing.T) {
	g := startGW(t, nil)
	g.receipts.Store(false)
	r, c, _ := login5(t, g, nil)

	r.send(publish5("gocim/77/up/bob", 1, 5, "\x00\xfftemp=21"))
	m := g.nextUplink("the MSG to bob", isType(cimpb.Type_MSG))
	if got := m.GetMsg(); got.To != "bob" || got.Kind != cimpb.Kind_KIND_BINARY || !bytes.Equal(got.Body, []byte("\x00\xfftemp=21")) ||
		got.ClientMsgId == "" || got.ToApp || got.Group != "" || m.ReqId == 0 {
		t.Fatalf("uplink %v", m)
	}
	r.ping() // no PUBACK before the route's answer
	c.Send(&cimpb.Frame{Type: cimpb.Type_RECEIPT, ReqId: m.ReqId, Receipt: &cimpb.Receipt{
		Status: cimpb.ReceiptStatus_RECEIPT_SENT, MsgId: "m1", ClientMsgId: m.GetMsg().ClientMsgId}})
	if ack, ok := r.recv().Content.(*packets.Puback); !ok || ack.PacketID != 5 || ack.ReasonCode != rcSuccess {
		t.Fatalf("got %v, want PUBACK 5", ack)
	}

	r.send(publish5("gocim/77/up/g/team", 0, 0, "hello team"))
	r.send(publish5("gocim/77/up", 0, 0, "battery=80"))
	g1 := g.nextUplink("the group MSG", isType(cimpb.Type_MSG)).GetMsg()
	app := g.nextUplink("the MSG for the app", isType(cimpb.Type_MSG)).GetMsg()
	if g1.Group != "team" || g1.To != "" || string(g1.Body) != "hello team" || app.ToApp != true || app.To != "" ||
		string(app.Body) != "battery=80" || g1.ClientMsgId == m.GetMsg().ClientMsgId || g1.ClientMsgId == app.ClientMsgId {
		t.Fatalf("uplinks %v and %v", g1, app)
	}
	// The answers to QoS 0 messages go nowhere.
	c.Send(&cimpb.Frame{Type: cimpb.Type_RECEIPT, Receipt: &cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_SENT, ClientMsgId: app.ClientMsgId}})
	c.Send(conn.ErrorFrame(0, codes.BadAccount, "", g1.ClientMsgId))
	r.ping()
}

// TestUplinkRefused5: a refused QoS 1 message gets a PUBACK with the
// reason and the connection stays; a PUBLISH outside the device's uplinks
// is not forwarded.
func TestUplinkRefused5(t *testing.T) {
	g := startGW(t, nil)
	g.receipts.Store(false)
	r, c, _ := login5(t, g, nil)
	for i, tc := range []struct {
		code codes.Code
		rc   byte
	}{{codes.BadAccount, rcTopicNameInvalid}, {codes.Forbidden, rcNotAuthorized}, {codes.RateLimited, rcQuotaExceeded},
		{codes.TooLarge, rcImplementation}, {codes.Unavailable, rcUnspecified}} {
		pid := uint16(10 + i)
		r.send(publish5("gocim/77/up/nobody", 1, pid, "x"))
		m := g.nextUplink("the MSG", isType(cimpb.Type_MSG))
		c.Send(conn.ErrorFrame(m.ReqId, tc.code, "", m.GetMsg().ClientMsgId))
		ack, ok := r.recv().Content.(*packets.Puback)
		if !ok || ack.PacketID != pid || ack.ReasonCode != tc.rc || ack.Properties.ReasonString == "" {
			t.Fatalf("%v: got %v, want PUBACK %d with reason %#x", tc.code, ack, pid, tc.rc)
		}
	}
	// A body over --max-text: package conn refuses it.
	r.send(publish5("gocim/77/up/bob", 1, 20, string(make([]byte, 257))))
	if ack, ok := r.recv().Content.(*packets.Puback); !ok || ack.PacketID != 20 || ack.ReasonCode != rcImplementation {
		t.Fatalf("got %v, want PUBACK 20 refused", ack)
	}
	// Another device's uplink.
	r.send(publish5("gocim/78/up/bob", 1, 21, "spoof"))
	if ack, ok := r.recv().Content.(*packets.Puback); !ok || ack.PacketID != 21 || ack.ReasonCode != rcNotAuthorized {
		t.Fatalf("got %v, want PUBACK 21 not authorized", ack)
	}
	r.ping()
	for _, f := range g.sentUplinks() {
		if f.GetMsg().GetBody() != nil && string(f.GetMsg().GetBody()) == "spoof" {
			t.Fatal("a PUBLISH to another device's topic was forwarded")
		}
	}
	// QoS 0 outside its topics: DISCONNECT.
	r.send(publish5("gocim/77/down", 0, 0, "loop"))
	if rc := r.expectDisconnect(); rc != rcNotAuthorized {
		t.Fatalf("DISCONNECT %#x, want 0x87", rc)
	}
}

// TestUplinkRefused311: 3.1.1 has no negative PUBACK: a refused QoS 1
// message closes the connection, so that the device sends it again.
func TestUplinkRefused311(t *testing.T) {
	g := startGW(t, nil)
	g.receipts.Store(false)
	r := dialRaw(t, g)
	r.write(connect311(deviceID, secret, nil))
	r.recvBytes() // CONNACK
	c := g.waitOnline()
	answerLoginSync(c, 0)
	r.write(packet311(0x32, append([]byte{0, 15}, "gocim/77/up/bob\x00\x07data"...)))
	m := g.nextUplink("the MSG", isType(cimpb.Type_MSG))
	c.Send(conn.ErrorFrame(m.ReqId, codes.BadAccount, "", m.GetMsg().ClientMsgId))
	if got := r.expectEnd(); len(got) != 0 {
		t.Fatalf("got %x before the close, want nothing", got)
	}
	if why := g.waitClosed(); why.Cause != conn.UplinkFailed {
		t.Fatalf("closed: %v", why)
	}
}

// TestUplinkQoS2: QoS 2 is not supported: MQTT 5 DISCONNECT 0x9B.
func TestUplinkQoS2(t *testing.T) {
	g := startGW(t, nil)
	r, _, _ := login5(t, g, nil)
	r.send(publish5("gocim/77/up", 2, 1, "x"))
	if rc := r.expectDisconnect(); rc != rcQoSNotSupported {
		t.Fatalf("DISCONNECT %#x, want 0x9B", rc)
	}
}
