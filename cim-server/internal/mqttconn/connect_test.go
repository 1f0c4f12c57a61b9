package mqttconn

import (
	"bytes"
	"testing"

	"github.com/eclipse/paho.golang/packets"
	packets311 "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
)

// TestConnect5: an MQTT 5 device logs in with its id (or name) and
// credential: the route is asked with this gateway's id and the clean flag,
// the connection logs in as the device (platform device), and CONNACK says
// what the gateway takes: QoS 1 at most, its packet size, an assigned
// client id for an empty one, the session present as the route says.
func TestConnect5(t *testing.T) {
	g := startGW(t, nil)
	g.logins.set(func(f *fakeLogins) { f.present = true })
	r := dialRaw(t, g)
	r.send(connect5("meter", secret, func(c *packets.Connect) {
		c.ClientID = ""
		expiry := uint32(3600)
		c.Properties.SessionExpiryInterval = &expiry // clean start, but the session outlives the connection
	}))
	cp := r.recv()
	ack, ok := cp.Content.(*packets.Connack)
	if !ok || ack.ReasonCode != rcSuccess || !ack.SessionPresent {
		t.Fatalf("got %s, want CONNACK success with session present", cp)
	}
	p := ack.Properties
	if p.MaximumQOS == nil || *p.MaximumQOS != 1 || p.MaximumPacketSize == nil || *p.MaximumPacketSize < 1024 ||
		p.AssignedClientID != deviceID || p.ReceiveMaximum == nil || *p.ReceiveMaximum != DefaultInFlight {
		t.Fatalf("CONNACK properties %s", p)
	}
	if got := g.logins.last(); got != (contract.DeviceLogin{Device: "meter", Secret: secret, GatewayID: gatewayID, Clean: false}) {
		t.Fatalf("device login %+v", got)
	}
	c := g.waitOnline()
	if c.UserID() != deviceID || c.Platform() != contract.PlatformDevice {
		t.Fatalf("logged in as %q on %q", c.UserID(), c.Platform())
	}
	// The login SYNC starts after what the device acknowledged.
	sync := g.nextUplink("login SYNC", isType(cimpb.Type_SYNC)).GetSync()
	if !sync.FromAcked || sync.AfterSeq != 0 || !sync.WithGroups {
		t.Fatalf("login SYNC %v", sync)
	}
}

// TestConnect311Clean: a 3.1.1 CleanSession login asks the route for a
// clean start, and CONNACK says no session is present.
func TestConnect311Clean(t *testing.T) {
	g := startGW(t, nil)
	r := dialRaw(t, g)
	r.write(connect311(deviceID, secret, nil))
	if got := r.recvBytes(); !bytes.Equal(got, []byte{0x20, 0x02, 0x00, 0x00}) {
		t.Fatalf("CONNACK %x, want accepted without session", got)
	}
	if got := g.logins.last(); !got.Clean || got.Device != deviceID {
		t.Fatalf("device login %+v", got)
	}
	g.waitOnline()
}

// TestConnectRefused: each refusal gets its CONNACK, in the device's
// protocol level, and the connection closes.
func TestConnectRefused(t *testing.T) {
	busy := func(g *gw) { g.logins.set(func(f *fakeLogins) { f.err = ErrBusy }) }
	for _, tc := range []struct {
		name   string
		setup  func(*gw)
		v5     func(*packets.Connect)
		v311   func(*packets311.ConnectPacket)
		pass   string
		rc5    byte
		rc311  byte
		noCall bool // the route is not asked
	}{
		{name: "bad credentials", pass: "wrong", rc5: rcBadCredentials, rc311: v311BadCredentials},
		{name: "no password", pass: "-", rc5: rcBadCredentials, rc311: v311BadCredentials, noCall: true},
		{name: "route busy", setup: busy, rc5: rcServerBusy, rc311: v311Unavailable},
		{name: "will to another device's topic", rc5: rcNotAuthorized, rc311: v311NotAuthorized,
			v5: func(c *packets.Connect) {
				c.WillFlag, c.WillTopic, c.WillMessage, c.WillProperties = true, "gocim/78/up", []byte("gone"), &packets.Properties{}
			},
			v311: func(c *packets311.ConnectPacket) {
				c.WillFlag, c.WillTopic, c.WillMessage = true, "gocim/78/up", []byte("gone")
			}},
		{name: "will to its own downlink", rc5: rcNotAuthorized, rc311: v311NotAuthorized,
			v5: func(c *packets.Connect) {
				c.WillFlag, c.WillTopic, c.WillMessage, c.WillProperties = true, "gocim/77/down", []byte("gone"), &packets.Properties{}
			},
			v311: func(c *packets311.ConnectPacket) {
				c.WillFlag, c.WillTopic, c.WillMessage = true, "gocim/77/down", []byte("gone")
			}},
		{name: "persistent session without client id", rc5: rcSuccess, rc311: v311IDRejected, noCall: true,
			v5:   func(c *packets.Connect) { c.ClientID, c.CleanStart = "", false },
			v311: func(c *packets311.ConnectPacket) { c.ClientIdentifier, c.CleanSession = "", false }},
	} {
		for _, v5 := range []bool{true, false} {
			name := tc.name + " 3.1.1"
			if v5 {
				name = tc.name + " 5"
			}
			t.Run(name, func(t *testing.T) {
				g := startGW(t, nil)
				if tc.setup != nil {
					tc.setup(g)
				}
				pass := secret
				if tc.pass == "-" {
					pass = ""
				} else if tc.pass != "" {
					pass = tc.pass
				}
				r := dialRaw(t, g)
				if v5 {
					r.send(connect5(deviceID, pass, tc.v5))
					ack := r.recv().Content.(*packets.Connack)
					if ack.ReasonCode != tc.rc5 {
						t.Fatalf("CONNACK reason %#x, want %#x", ack.ReasonCode, tc.rc5)
					}
					if tc.rc5 == rcSuccess {
						return
					}
				} else {
					r.write(connect311(deviceID, pass, tc.v311))
					if got := r.recvBytes(); !bytes.Equal(got, []byte{0x20, 0x02, 0x00, tc.rc311}) {
						t.Fatalf("CONNACK %x, want return code %d", got, tc.rc311)
					}
				}
				r.expectEnd()
				if why := g.waitClosed(); why.Cause != conn.LoginRefused || why.WasOnline {
					t.Fatalf("closed: %v", why)
				}
				if called := g.logins.last() != (contract.DeviceLogin{}); called == tc.noCall {
					t.Fatalf("route asked: %v", called)
				}
			})
		}
	}
}

// TestConnectProtocolLevels: an unknown protocol level is refused in the
// format the device can read (1 for a 3.x level, 0x84 above 5); 3.1
// ("MQIsdp") is served like 3.1.1; a wrong protocol name is closed without
// an answer.
func TestConnectProtocolLevels(t *testing.T) {
	g := startGW(t, nil)

	r := dialRaw(t, g)
	r.write(connect311(deviceID, secret, func(c *packets311.ConnectPacket) { c.ProtocolVersion = 3 })) // MQTT, level 3
	if got := r.recvBytes(); !bytes.Equal(got, []byte{0x20, 0x02, 0x00, v311BadVersion}) {
		t.Fatalf("CONNACK %x, want bad protocol version", got)
	}
	r.expectEnd()

	r = dialRaw(t, g)
	r.send(connect5(deviceID, secret, func(c *packets.Connect) { c.ProtocolVersion = 6 }))
	if ack := r.recv().Content.(*packets.Connack); ack.ReasonCode != rcUnsupportedVersion {
		t.Fatalf("CONNACK reason %#x, want 0x84", ack.ReasonCode)
	}
	r.expectEnd()

	r = dialRaw(t, g)
	r.write(connect311(deviceID, secret, func(c *packets311.ConnectPacket) { c.ProtocolName, c.ProtocolVersion = "MQIsdp", 3 }))
	if got := r.recvBytes(); !bytes.Equal(got, []byte{0x20, 0x02, 0x00, 0x00}) {
		t.Fatalf("CONNACK %x, want accepted", got)
	}
	g.waitOnline()

	r = dialRaw(t, g)
	r.write(connect311(deviceID, secret, func(c *packets311.ConnectPacket) { c.ProtocolName = "HTTP" }))
	if got := r.expectEnd(); len(got) != 0 {
		t.Fatalf("a wrong protocol got %x, want nothing", got)
	}
}
