package mqttconn

import (
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gocim/gocim/proto/cimpb"
)

// pahoClient connects the Go MQTT client (3.1.1) as the device, without
// automatic acknowledgements.
func pahoClient(t *testing.T, g *gw, got chan<- mqtt.Message) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + g.addr()).SetClientID("paho-meter").
		SetUsername("meter").SetPassword(secret).SetCleanSession(false).SetAutoAckDisabled(true).
		SetAutoReconnect(false).SetConnectTimeout(wait).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { got <- m })
	cl := mqtt.NewClient(opts)
	if tok := cl.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(0) })
	return cl
}

// TestPahoDevice: the Go MQTT client subscribes to its downlink (and is
// refused another device's), gets a command and acknowledges it, and
// publishes data up at QoS 1, acknowledged once stored.
func TestPahoDevice(t *testing.T) {
	g := startGW(t, nil)
	got := make(chan mqtt.Message, 10)
	cl := pahoClient(t, g, got)
	c := g.waitOnline()
	answerLoginSync(c, 0)

	tok := cl.SubscribeMultiple(map[string]byte{"gocim/77/down": 1, "gocim/78/down": 1}, nil)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if res := tok.(*mqtt.SubscribeToken).Result(); res["gocim/77/down"] != 1 || res["gocim/78/down"] != 0x80 {
		t.Fatalf("granted %v", res)
	}

	c.Send(inboxMsg(1, "open valve"))
	var m mqtt.Message
	select {
	case m = <-got:
	case <-time.After(wait):
		t.Fatal("no command")
	}
	if m.Topic() != "gocim/77/down" || string(m.Payload()) != "open valve" || m.Qos() != 1 {
		t.Fatalf("got %s %q QoS %d", m.Topic(), m.Payload(), m.Qos())
	}
	m.Ack()
	if ack := g.nextUplink("the ACK", isAck).GetAck(); ack.Seq != 1 {
		t.Fatalf("ACK %v", ack)
	}

	pub := cl.Publish("gocim/77/up/bob", 1, false, []byte("temp=21"))
	if !pub.WaitTimeout(wait) || pub.Error() != nil {
		t.Fatalf("publish: %v", pub.Error())
	}
	if u := g.nextUplink("the data", isType(cimpb.Type_MSG)).GetMsg(); u.To != "bob" || string(u.Body) != "temp=21" ||
		!strings.HasPrefix(u.ClientMsgId, "mq") {
		t.Fatalf("uplink %v", u)
	}
}
