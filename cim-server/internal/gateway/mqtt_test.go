package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-zookeeper/zk"

	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/envflag"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
	"github.com/gocim/gocim/proto/token"
)

const deviceSecret = "device-credential"

// deviceRoute is the fake route with device logins: device "77" ("meter")
// with deviceSecret. block, when set, holds each login until it is closed.
type deviceRoute struct {
	*fakeRoute
	srv     *httptest.Server
	mu      sync.Mutex
	logins  []contract.DeviceLogin
	block   chan struct{}
	entered atomic.Int32
}

func newDeviceRoute(t testing.TB) *deviceRoute {
	d := &deviceRoute{fakeRoute: newFakeRoute(t)}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != contract.PathDeviceLogin {
			d.fakeRoute.serve(w, req)
			return
		}
		var in contract.DeviceLogin
		if req.Header.Get(contract.Header) != internalSecret || json.NewDecoder(req.Body).Decode(&in) != nil {
			http.Error(w, "bad device login", http.StatusBadRequest)
			return
		}
		d.mu.Lock()
		d.logins = append(d.logins, in)
		block := d.block
		d.mu.Unlock()
		d.entered.Add(1)
		if block != nil {
			select {
			case <-block:
			case <-req.Context().Done():
				return
			}
		}
		uid := "77"
		if strings.HasPrefix(in.Device, "fleet-") { // each a user of its own
			uid = in.Device
		} else if (in.Device != "77" && in.Device != "meter") || in.Secret != deviceSecret {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"code":9100,"message":"bad account"}`))
			return
		}
		sid := "device.s" + uid
		tok, _ := token.Sign([]byte(secret), token.Claims{UserID: uid, UserName: "meter", SessionID: sid,
			GatewayID: in.GatewayID, Platform: contract.PlatformDevice, ExpiresAt: time.Now().Add(time.Minute).Unix()})
		b, _ := json.Marshal(map[string]any{"code": codes.OK, "message": "ok", "data": contract.DeviceToken{
			UserID: uid, UserName: "meter", SessionID: sid, Token: tok}})
		_, _ = w.Write(b)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func startMQTTGateway(t *testing.T, mod func(*Config)) (*Gateway, *deviceRoute) {
	t.Helper()
	route := newDeviceRoute(t)
	g := startGateway(t, route.srv.URL, func(c *Config) {
		c.MQTTListen = "127.0.0.1:0"
		if mod != nil {
			mod(c)
		}
	})
	return g, route
}

// answerLoginSync answers the device's login SYNC as the route would: its
// inbox is empty.
func answerLoginSync(t *testing.T, g *Gateway) {
	t.Helper()
	waitFor(t, "the login SYNC", func() bool {
		res := push(t, g, &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{{UserId: "77", SessionId: "device.s77",
			Frame: &cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{}}}}})
		return res.Delivered == 1
	})
}

func (r *fakeRoute) uplinksOf(typ cimpb.Type) []*cimpb.Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*cimpb.Frame
	for _, u := range r.uplinks {
		if u.Frame.GetType() == typ {
			out = append(out, u.Frame)
		}
	}
	return out
}

// TestMQTTDevice: a device connects to the gateway's MQTT listener with the
// Go MQTT client and its credential: the route trades it for a token for
// this gateway, the device is online as a device; what is pushed to it
// arrives on its downlink and its PUBACK is the ACK; what it publishes is a
// message to the user its topic names, acknowledged once the route stored
// it.
func TestMQTTDevice(t *testing.T) {
	g, route := startMQTTGateway(t, nil)
	got := make(chan mqtt.Message, 10)
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + g.MQTTAddr()).SetClientID("meter").SetUsername("meter").
		SetPassword(deviceSecret).SetAutoAckDisabled(true).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { got <- m })
	cl := mqtt.NewClient(opts)
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer cl.Disconnect(0)
	route.mu.Lock()
	login := route.logins[0]
	route.mu.Unlock()
	if login.GatewayID != g.ID() || !login.Clean || login.Secret != deviceSecret {
		t.Fatalf("device login %+v", login)
	}
	answerLoginSync(t, g)

	push(t, g, &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{{UserId: "77", SessionId: "device.s77", Frame: &cimpb.Frame{Type: cimpb.Type_MSG,
		Msg: &cimpb.Msg{Seq: 1, MsgId: "m1", From: "5", Body: []byte("open valve")}}}}})
	var m mqtt.Message
	select {
	case m = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no command on the downlink")
	}
	if m.Topic() != "gocim/77/down" || string(m.Payload()) != "open valve" {
		t.Fatalf("got %s %q", m.Topic(), m.Payload())
	}
	m.Ack()
	waitFor(t, "the ACK", func() bool {
		acks := route.uplinksOf(cimpb.Type_ACK)
		return len(acks) > 0 && acks[len(acks)-1].GetAck().GetSeq() == 1
	})

	if tok := cl.Publish("gocim/77/up/bob", 1, false, "temp=21"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	msgs := route.uplinksOf(cimpb.Type_MSG)
	if len(msgs) != 1 || msgs[0].GetMsg().GetTo() != "bob" || msgs[0].GetMsg().GetKind() != cimpb.Kind_KIND_BINARY {
		t.Fatalf("uplinks %v", msgs)
	}
	route.mu.Lock()
	online := route.online[0]
	route.mu.Unlock()
	if online.UserID != "77" || online.SessionID != "device.s77" || online.GatewayID != g.ID() {
		t.Fatalf("online %+v", online)
	}
	// The device counts under its own transport.
	_, fams := scrape(t, g)
	wantMetric(t, fams, 1, "gocim_gateway_logins_total", "transport", "mqtt")
	wantMetric(t, fams, 1, "gocim_gateway_connections", "transport", "mqtt")
	wantMetric(t, fams, 0, "gocim_gateway_logins_total", "transport", "tcp")
}

// dialMQTT opens a raw connection to g's MQTT listener.
func dialMQTT(t *testing.T, g *Gateway) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", g.MQTTAddr(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

func connect5(user, pass string) *packets.ControlPacket {
	cp := packets.NewControlPacket(packets.CONNECT)
	c := cp.Content.(*packets.Connect)
	c.ClientID, c.KeepAlive, c.CleanStart = "probe", 30, true
	c.Username, c.UsernameFlag, c.Password, c.PasswordFlag = user, true, []byte(pass), true
	return cp
}

func readMQTT(t *testing.T, nc net.Conn) *packets.ControlPacket {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	cp, err := packets.ReadPacket(nc)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return cp
}

// TestMQTTLoginStorm: a fleet reconnecting at once while the route is slow
// gets --mqtt-login-parallel logins at the route and --mqtt-login-queue
// waiting; the next device is told at once that the server is busy, and
// bad credentials are told apart.
func TestMQTTLoginStorm(t *testing.T) {
	const parallel, queue = 2, 3
	g, route := startMQTTGateway(t, func(c *Config) { c.MQTTLoginParallel, c.MQTTLoginQueue = parallel, queue })
	block := make(chan struct{})
	route.mu.Lock()
	route.block = block
	route.mu.Unlock()
	var fleet []net.Conn
	for i := range parallel + queue {
		nc := dialMQTT(t, g)
		if _, err := connect5(fmt.Sprint("fleet-", i), deviceSecret).WriteTo(nc); err != nil {
			t.Fatal(err)
		}
		fleet = append(fleet, nc)
	}
	waitFor(t, "the storm at the gate", func() bool {
		running, waiting := g.mqttCfg.Gate.Load()
		return running == parallel && waiting == queue && route.entered.Load() == parallel
	})
	late := dialMQTT(t, g)
	_, _ = connect5("meter", deviceSecret).WriteTo(late)
	if ack, ok := readMQTT(t, late).Content.(*packets.Connack); !ok || ack.ReasonCode != 0x89 {
		t.Fatalf("got %v, want CONNACK 0x89 (server busy)", ack)
	}
	route.mu.Lock()
	route.block = nil
	route.mu.Unlock()
	close(block)
	for _, nc := range fleet {
		if ack, ok := readMQTT(t, nc).Content.(*packets.Connack); !ok || ack.ReasonCode != 0 {
			t.Fatalf("got %v, want CONNACK success once the route answered", ack)
		}
	}
	bad := dialMQTT(t, g)
	_, _ = connect5("meter", "wrong").WriteTo(bad)
	if ack, ok := readMQTT(t, bad).Content.(*packets.Connack); !ok || ack.ReasonCode != 0x86 {
		t.Fatalf("got %v, want CONNACK 0x86 (bad user name or password)", ack)
	}
}

// TestMQTTPerAddressCap: devices behind one address are not held to
// --max-unauth-per-addr (a fleet behind a NAT) but to
// --mqtt-max-unauth-per-addr, and count in --max-unauth.
func TestMQTTPerAddressCap(t *testing.T) {
	g, _ := startMQTTGateway(t, func(c *Config) { c.MaxUnauthPerAddr, c.MaxUnauth = 1, 100 })
	for range 4 {
		dialMQTT(t, g) // silent sockets, not logged in
	}
	waitFor(t, "four silent device sockets counted", func() bool { return g.unauth.Count() == 4 })
	if g.Refused() != 0 {
		t.Fatalf("refused %d", g.Refused())
	}

	g2, _ := startMQTTGateway(t, func(c *Config) { c.MQTTMaxUnauthPerAddr = 2 })
	dialMQTT(t, g2)
	dialMQTT(t, g2)
	waitFor(t, "two silent device sockets counted", func() bool { return g2.mqttUnauth.Count() == 2 })
	third := dialMQTT(t, g2)
	_ = third.SetReadDeadline(time.Now().Add(15 * time.Second))
	if n, err := third.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the third socket read %d bytes, %v; want a close", n, err)
	}
	if g2.Refused() != 1 {
		t.Fatalf("refused %d, want 1", g2.Refused())
	}
}

// TestMQTTDrain: on shutdown MQTT 5 devices hear DISCONNECT 0x8B (server
// shutting down) and the listener stops accepting.
func TestMQTTDrain(t *testing.T) {
	g, route := startMQTTGateway(t, nil)
	nc := dialMQTT(t, g)
	_, _ = connect5("meter", deviceSecret).WriteTo(nc)
	if ack, ok := readMQTT(t, nc).Content.(*packets.Connack); !ok || ack.ReasonCode != 0 {
		t.Fatalf("got %v", ack)
	}
	waitFor(t, "the device online", func() bool { return g.Connections() == 1 })
	done := make(chan error, 1)
	go func() { done <- g.Shutdown(context.Background()) }()
	if d, ok := readMQTT(t, nc).Content.(*packets.Disconnect); !ok || d.ReasonCode != 0x8B {
		t.Fatalf("got %v, want DISCONNECT 0x8B", d)
	}
	nc.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", g.MQTTAddr(), time.Second); err == nil {
		t.Fatal("the MQTT listener still accepts after Shutdown")
	}
	if s := route.waitOffline(t); s.UserID != "77" {
		t.Fatalf("offline %+v", s)
	}
}

// TestMQTTTLS: with --tls-cert the MQTT listener speaks TLS.
func TestMQTTTLS(t *testing.T) {
	pki := testenv.NewTLS(t)
	route := newDeviceRoute(t)
	g := startGateway(t, route.srv.URL, func(c *Config) {
		c.MQTTListen = "127.0.0.1:0"
		c.TLSCert, c.TLSKey = pki.CertFile, pki.KeyFile
	})
	opts := mqtt.NewClientOptions().AddBroker("ssl://" + g.MQTTAddr()).SetClientID("meter").SetUsername("77").
		SetPassword(deviceSecret).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second).
		SetTLSConfig(&tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1"})
	cl := mqtt.NewClient(opts)
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect over TLS: %v", tok.Error())
	}
	cl.Disconnect(0)
	// Plain MQTT on the TLS port gets nothing but a close.
	nc := dialMQTT(t, g)
	_, _ = connect5("meter", deviceSecret).WriteTo(nc)
	_ = nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	if b, _ := io.ReadAll(nc); len(b) > 0 && b[0] == 0x20 {
		t.Fatalf("a plain CONNECT on the TLS port got a CONNACK: %x", b)
	}
}

// TestMQTTRegistered: the ZooKeeper node carries the MQTT address as
// devices dial it, and whether it speaks TLS.
func TestMQTTRegistered(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	pki := testenv.NewTLS(t)
	route := newDeviceRoute(t)
	g := startGateway(t, route.srv.URL, func(c *Config) {
		c.ZK, c.ZKRoot, c.ZKSessionTimeout = z.Addr, "/gwtest", 2*time.Second
		c.MQTTListen = "127.0.0.1:0"
		c.TLSCert, c.TLSKey = pki.CertFile, pki.KeyFile
	})
	select {
	case <-g.Registered():
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not register")
	}
	obs, _, err := zk.Connect([]string{z.Addr}, 10*time.Second, zk.WithLogger(nopLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	data, _, err := obs.Get("/gwtest/servers/" + g.ID())
	if err != nil {
		t.Fatal(err)
	}
	info, err := contract.ParseGatewayInfo(data)
	if err != nil || info.MQTTAddr != g.MQTTAddr() || !info.MQTTTLS || !strings.HasPrefix(info.MQTTAddr, "127.0.0.1:") {
		t.Fatalf("node data %q: %+v %v", data, info, err)
	}
}

// TestMQTTConfig: the MQTT flags, their defaults and environment variables,
// and what Validate refuses.
func TestMQTTConfig(t *testing.T) {
	t.Setenv("CIM_MQTT_LOGIN_QUEUE", "100")
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := envflag.Parse(fs, []string{"--listen", "127.0.0.1:1", "--token-secret", "0123456789abcdef",
		"--internal-secret", "internal-0123456789", "--mqtt-listen", "127.0.0.1:1883"}); err != nil {
		t.Fatal(err)
	}
	if c.MQTTListen != "127.0.0.1:1883" || c.MQTTLoginParallel != 32 || c.MQTTLoginQueue != 100 || c.MQTTMaxUnauthPerAddr != 0 {
		t.Fatalf("config %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if d := DefaultConfig(); d.MQTTListen != "" || d.MQTTLoginQueue != 4096 {
		t.Fatalf("defaults %+v", d)
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.MQTTListen = "1883" }, "--mqtt-listen"},
		{func(c *Config) { c.MQTTLoginParallel = 0 }, "--mqtt-login-parallel"},
		{func(c *Config) { c.MQTTLoginQueue = -1 }, "--mqtt-login-queue"},
		{func(c *Config) { c.MQTTMaxUnauthPerAddr = -1 }, "--mqtt-max-unauth-per-addr"},
	} {
		bad := validConfig()
		tc.mod(&bad)
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error about %s, got %v", tc.want, err)
		}
	}
}
