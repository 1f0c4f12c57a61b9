package mqttconn

import (
	"testing"

	"github.com/eclipse/paho.golang/packets"
	packets311 "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

func withWill(topic, payload string) func(*packets.Connect) {
	return func(c *packets.Connect) {
		c.WillFlag, c.WillTopic, c.WillMessage, c.WillQOS = true, topic, []byte(payload), 1
		c.WillProperties = &packets.Properties{}
	}
}

// willSent reports whether the will went to the route as a MSG.
func willSent(g *gw, payload string) *cimpb.Msg {
	for _, f := range g.sentUplinks() {
		if m := f.GetMsg(); m != nil && string(m.Body) == payload {
			return m
		}
	}
	return nil
}

// TestWillOnKeepAliveTimeout: a device silent for 1.5 × its keep-alive is
// closed (MQTT 5: DISCONNECT 0x8D) and its will goes up like a PUBLISH on
// its topic.
func TestWillOnKeepAliveTimeout(t *testing.T) {
	g := startGW(t, nil)
	r, _, _ := login5(t, g, func(c *packets.Connect) {
		withWill("gocim/77/up", "meter-7 offline")(c)
		c.KeepAlive = 1
	})
	if rc := r.expectDisconnect(); rc != rcKeepAliveTimeout {
		t.Fatalf("DISCONNECT %#x, want 0x8D", rc)
	}
	if why := g.waitClosed(); why.Cause != conn.Idle {
		t.Fatalf("closed: %v", why)
	}
	m := willSent(g, "meter-7 offline")
	if m == nil || !m.ToApp || m.Kind != cimpb.Kind_KIND_BINARY || m.ClientMsgId == "" {
		t.Fatalf("will %v", m)
	}
}

// TestWillOnDrop: a connection that drops without DISCONNECT (or breaks
// the protocol) sends the will; to a user, when its topic names one.
func TestWillOnDrop(t *testing.T) {
	g := startGW(t, nil)
	r, _, _ := login5(t, g, withWill("gocim/77/up/bob", "dropped"))
	r.nc.Close()
	g.waitClosed()
	if m := willSent(g, "dropped"); m == nil || m.To != "bob" {
		t.Fatalf("will %v", m)
	}

	r, _, _ = login5(t, g, withWill("gocim/77/up/g/team", "broke the rules"))
	r.send(connect5(deviceID, secret, nil)) // a second CONNECT
	if rc := r.expectDisconnect(); rc != rcProtocolError {
		t.Fatalf("DISCONNECT %#x, want 0x82", rc)
	}
	g.waitClosed()
	if m := willSent(g, "broke the rules"); m == nil || m.Group != "team" {
		t.Fatalf("will %v", m)
	}
}

// TestNoWillOnDisconnect: DISCONNECT ends the connection without its will;
// MQTT 5 DISCONNECT 0x04 asks for it. A connection the gateway ends (kick)
// sends none.
func TestNoWillOnDisconnect(t *testing.T) {
	g := startGW(t, nil)
	r, _, _ := login5(t, g, withWill("gocim/77/up", "clean"))
	r.send(packets.NewControlPacket(packets.DISCONNECT))
	r.expectEnd()
	g.waitClosed()

	r, c, _ := login5(t, g, withWill("gocim/77/up", "kicked"))
	c.CloseWith(conn.Kicked, &cimpb.Frame{Type: cimpb.Type_KICK})
	r.expectDisconnect()
	g.waitClosed()

	r, _, _ = login5(t, g, withWill("gocim/77/up", "asked for"))
	d := packets.NewControlPacket(packets.DISCONNECT)
	d.Content.(*packets.Disconnect).ReasonCode = rcWithWill
	r.send(d)
	r.expectEnd()
	g.waitClosed()

	if m := willSent(g, "clean"); m != nil {
		t.Fatalf("a clean DISCONNECT sent the will: %v", m)
	}
	if m := willSent(g, "kicked"); m != nil {
		t.Fatalf("a kicked connection sent the will: %v", m)
	}
	if m := willSent(g, "asked for"); m == nil {
		t.Fatal("DISCONNECT 0x04 did not send the will")
	}
}

// TestWill311: a 3.1.1 will goes the same way; a refused will message is
// answered nowhere.
func TestWill311(t *testing.T) {
	g := startGW(t, nil)
	g.receipts.Store(false)
	r := dialRaw(t, g)
	r.write(connect311(deviceID, secret, func(c *packets311.ConnectPacket) {
		c.WillFlag, c.WillTopic, c.WillMessage = true, "gocim/77/up/nobody", []byte("bye")
	}))
	r.recvBytes()
	c := g.waitOnline()
	r.nc.Close()
	w := g.nextUplink("the will", isType(cimpb.Type_MSG))
	if string(w.GetMsg().GetBody()) != "bye" || w.GetMsg().GetTo() != "nobody" {
		t.Fatalf("will %v", w)
	}
	c.Send(conn.ErrorFrame(0, codes.BadAccount, "", w.GetMsg().GetClientMsgId()))
	g.waitClosed()
}
