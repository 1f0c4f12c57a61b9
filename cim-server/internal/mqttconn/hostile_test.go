package mqttconn

import (
	"bytes"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/packets"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/internal/contract"
)

// TestHostileBeforeConnect: whatever comes instead of a well-formed
// CONNECT is closed without an answer (the gateway does not know which
// MQTT to answer in) and without a crash; nothing reaches the route.
func TestHostileBeforeConnect(t *testing.T) {
	g := startGW(t, nil)
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"remaining length over four bytes", []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"announced length far over the limit", []byte{0x10, 0xff, 0xff, 0xff, 0x7f}},
		{"wrong protocol name", packet311(0x10, []byte{0x00, 0x04, 'H', 'T', 'T', 'P', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00})},
		{"publish before connect", packet311(0x30, []byte{0x00, 0x01, 'a', 'h', 'i'})},
		{"http request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"connect with reserved flags", packet311(0x11, []byte{0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00})},
		{"truncated connect", packet311(0x10, []byte{0x00, 0x04, 'M', 'Q'})},
		{"connect cut short by the peer", []byte{0x10, 0x20, 0x00, 0x04}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, g)
			r.write(tc.send)
			if tc.name == "connect cut short by the peer" {
				r.nc.(interface{ CloseWrite() error }).CloseWrite()
			}
			if got := r.expectEnd(); len(got) != 0 {
				t.Fatalf("got %x, want a close without an answer", got)
			}
			if why := g.waitClosed(); why.WasOnline {
				t.Fatalf("closed: %v", why)
			}
		})
	}
	if got := g.logins.last(); got != (contract.DeviceLogin{}) {
		t.Fatalf("the route was asked: %+v", got)
	}
}

// TestHostileAfterConnect: an MQTT 5 device that breaks the rules is told
// why (DISCONNECT with the reason) and closed; a 3.1.1 one is closed.
func TestHostileAfterConnect(t *testing.T) {
	g := startGW(t, nil)
	for _, tc := range []struct {
		name  string
		send  []byte
		rc    byte
		cause conn.Cause
	}{
		{"oversized publish", packet311(0x30, append([]byte{0x00, 0x0b}, "gocim/77/up"+strings.Repeat("x", 1024+packetOverhead)...)), rcPacketTooLarge, conn.BadFrame},
		{"announced length far over the limit", []byte{0x30, 0xff, 0xff, 0xff, 0x7f}, rcPacketTooLarge, conn.BadFrame},
		{"remaining length over four bytes", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}, rcMalformed, conn.BadFrame},
		{"publish with QoS 3", packet311(0x36, []byte{0x00, 0x01, 'a', 0x00, 0x01}), rcMalformed, conn.BadFrame},
		{"subscribe with wrong flags", packet311(0x80, []byte{0x00, 0x01, 0x00, 0x00, 0x01, '#', 0x00}), rcMalformed, conn.BadFrame},
		{"truncated publish", packet311(0x30, []byte{0x00, 0x40, 'a'}), rcMalformed, conn.BadFrame},
		{"second connect", encodeTest(connect5(deviceID, secret, nil)), rcProtocolError, conn.BadFrame},
		{"pubrel", packet311(0x62, []byte{0x00, 0x01}), rcProtocolError, conn.BadFrame},
		{"server packet", packet311(0x90, []byte{0x00, 0x01, 0x00, 0x00}), rcProtocolError, conn.BadFrame},
		{"subscribe without filters", packet311(0x82, []byte{0x00, 0x01, 0x00}), rcProtocolError, conn.BadFrame},
		{"publish with a topic alias", encodeTest(func() *packets.ControlPacket {
			cp := publish5("", 0, 0, "x")
			alias := uint16(1)
			cp.Content.(*packets.Publish).Properties.TopicAlias = &alias
			return cp
		}()), rcTopicAliasInvalid, conn.BadFrame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _, _ := login5(t, g, nil)
			r.write(tc.send)
			if rc := r.expectDisconnect(); rc != tc.rc {
				t.Fatalf("DISCONNECT %#x, want %#x", rc, tc.rc)
			}
			if why := g.waitClosed(); why.Cause != tc.cause || !why.WasOnline {
				t.Fatalf("closed: %v", why)
			}
		})
	}
	t.Run("3.1.1", func(t *testing.T) {
		for _, send := range [][]byte{
			packet311(0x30, append([]byte{0x00, 0x0b}, "gocim/77/up"+strings.Repeat("x", 1024+packetOverhead)...)),
			connect311(deviceID, secret, nil),
			packet311(0x32, append([]byte{0x00, 0x0e}, "gocim/1/up/bob\x00\x07spoof"...)),
		} {
			r := dialRaw(t, g)
			r.write(connect311(deviceID, secret, nil))
			r.recvBytes()
			answerLoginSync(g.waitOnline(), 0)
			r.write(send)
			if got := r.expectEnd(); len(got) != 0 {
				t.Fatalf("got %x, want a plain close", got)
			}
			g.waitClosed()
		}
	})
}

func encodeTest(cp *packets.ControlPacket) []byte {
	var b bytes.Buffer
	_, _ = cp.WriteTo(&b)
	return b.Bytes()
}

// FuzzPackets: no byte stream makes the packet reader or the decoders of
// either protocol level panic or read past the bound.
func FuzzPackets(f *testing.F) {
	f.Add(encodeTest(connect5(deviceID, secret, withWill("gocim/77/up", "x"))))
	f.Add(connect311(deviceID, secret, nil))
	f.Add(encodeTest(publish5("gocim/77/up/bob", 1, 7, "hi")))
	f.Add(packet311(0x82, []byte{0x00, 0x01, 0x00, 0x01, '#', 0x00}))
	f.Add(packet311(0xa2, []byte{0x00, 0x01, 0x00, 0x01, '#'}))
	f.Add([]byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{0xe0, 0x00, 0xc0, 0x00, 0x40, 0x02, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, level := range []byte{level311, level5} {
			c := &Conn{cfg: NewConfig(Config{MaxFrame: 64, Logger: quiet}), level: level, uid: deviceID}
			c.rd.src = bytes.NewReader(data)
			for {
				raw, err := c.readPacket(c.cfg.maxPacket(), false)
				if err != nil {
					break
				}
				if len(raw) > c.cfg.maxPacket()+5 {
					t.Fatalf("read a packet of %d bytes", len(raw))
				}
				_, _ = parseConnect(raw)
				if p, err := c.decode(raw); err == nil && p.typ == packets.PUBLISH {
					uplinkTarget(c.uid, p.topic)
				}
			}
		}
	})
}
