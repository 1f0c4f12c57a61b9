package mqttconn

import (
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// TestSilentDeviceKeepsItsConnection: with package conn's idle buffers on
// (1 ms here), a device without a keep-alive — whose reads the gateway's
// own read deadlines bound — that was busy and then falls silent for many
// idle spells is still online and served: the idle spell's deadline never
// reaches its reads (the Conn waits for packets itself).
func TestSilentDeviceKeepsItsConnection(t *testing.T) {
	g := startGW(t, nil)
	r, _, _ := login5(t, g, func(k *packets.Connect) { k.KeepAlive = 0 })
	for range 3 {
		r.ping() // back to back: a busy connection
	}
	time.Sleep(50 * time.Millisecond) // silent for 50 idle spells
	r.ping()
	r.send(publish5("gocim/77/up/bob", 1, 9, "after a pause"))
	if ack, ok := r.recv().Content.(*packets.Puback); !ok || ack.PacketID != 9 || ack.ReasonCode != rcSuccess {
		t.Fatalf("got %v, want PUBACK 9", ack)
	}
}

// TestIdleDeviceKeepsNoMaps: once its SUBSCRIBE and its QoS 1 uplink are
// answered, a device's Conn holds no map for them (an idle device's bytes
// count on every gateway with a fleet), and the subscription still counts.
func TestIdleDeviceKeepsNoMaps(t *testing.T) {
	g := startGW(t, nil)
	r, c, _ := login5(t, g, nil)
	r.send(subscribe5(3, packets.SubOptions{Topic: "gocim/77/down", QoS: 0}))
	if ack, ok := r.recv().Content.(*packets.Suback); !ok || ack.PacketID != 3 {
		t.Fatalf("got %v, want SUBACK 3", ack)
	}
	r.send(publish5("gocim/77/up/bob", 1, 5, "temp=21"))
	if ack, ok := r.recv().Content.(*packets.Puback); !ok || ack.PacketID != 5 {
		t.Fatalf("got %v, want PUBACK 5", ack)
	}
	r.ping()
	mc := g.lastMQTT()
	mc.mu.Lock()
	replies, pending := mc.replies, mc.pendingUp
	mc.mu.Unlock()
	if replies != nil || pending != nil {
		t.Fatalf("an idle device keeps %d answers' map and %d uplinks' map, want neither", len(replies), len(pending))
	}
	c.Send(inboxMsg(1, "at QoS 0"))
	if p := r.recvPublish(); p.QoS != 0 {
		t.Fatalf("PUBLISH %s, want QoS 0 as subscribed", p)
	}
}
