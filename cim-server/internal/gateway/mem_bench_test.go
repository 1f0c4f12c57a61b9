package gateway

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	packets311 "github.com/eclipse/paho.mqtt.golang/packets"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-server/internal/wsconn"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
)

// BenchmarkIdleConnection reports the Go memory (heap + goroutine stacks)
// one logged-in idle connection costs, client socket included. It is a
// measurement for bench/, not an assertion.
func BenchmarkIdleConnection(b *testing.B) {
	// held: measured right after the logins, every reader holding its
	// buffers; released: once the connections were idle for
	// --idle-buffers and gave them back.
	b.Run("held", func(b *testing.B) { benchIdle(b, 0) })
	b.Run("released", func(b *testing.B) { benchIdle(b, 50*time.Millisecond) })
}

func benchIdle(b *testing.B, idleBuffers time.Duration) {
	route := newFakeRoute(b)
	g := startGateway(b, route.srv.URL, func(c *Config) { c.IdleBuffers = idleBuffers })
	benchConns(b, g, loginIdle, 4*idleBuffers)
}

// benchConns logs b.N (at least 1,000) connections in to g with login and
// reports the Go memory they hold once all are online and settle has passed.
func benchConns(b *testing.B, g *Gateway, login func(testing.TB, *Gateway, int) net.Conn, settle time.Duration) {
	n := max(b.N, 1000)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	hb, sb := memSplit()
	before := memInUse()
	b.ResetTimer()
	for i := range n {
		conns = append(conns, login(b, g, i))
	}
	b.StopTimer()
	for g.Connections() != n {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(settle)
	after := memInUse()
	ha, sa := memSplit()
	b.ReportMetric(float64(after-before)/float64(n), "bytes/conn")
	b.ReportMetric(float64(sa-sb)/float64(n), "stack-bytes/conn")
	b.ReportMetric(float64(ha-hb)/float64(n), "heap-bytes/conn")
}

// loginIdle dials g, logs in as user i (session "s<i>") and returns the
// connection once LOGIN_ACK has come.
func loginIdle(t testing.TB, g *Gateway, i int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", g.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tok := tokenFor(t, g.ID(), strconv.Itoa(i), "s"+strconv.Itoa(i))
	frame, _ := codec.Encode(&cimpb.Frame{Type: cimpb.Type_LOGIN, Login: &cimpb.Login{Token: tok}})
	if _, err := c.Write(frame); err != nil {
		c.Close()
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, _, err := readFrame(c)
	if err != nil || f.GetType() != cimpb.Type_LOGIN_ACK {
		c.Close()
		t.Fatalf("login %d: %v %v", i, f, err)
	}
	return c
}

// BenchmarkIdleWSConnection is BenchmarkIdleConnection over WebSocket
// (binary subprotocol), clients that keep no buffer included.
func BenchmarkIdleWSConnection(b *testing.B) {
	route := newFakeRoute(b)
	g := startGateway(b, route.srv.URL, func(c *Config) { c.WSListen = "127.0.0.1:0" })
	benchConns(b, g, wsLoginIdle, 0)
}

// BenchmarkIdleWSConnectionPinged: the same with clients that sent a
// WebSocket ping after their login and read its pong, as client libraries
// with a keep-alive do (Python's websockets every 20 s, OkHttp's
// pingInterval): the connection must wait as one that was never pinged.
func BenchmarkIdleWSConnectionPinged(b *testing.B) {
	route := newFakeRoute(b)
	g := startGateway(b, route.srv.URL, func(c *Config) { c.WSListen = "127.0.0.1:0" })
	benchConns(b, g, wsLoginPinged, 0)
}

// wsLoginPinged is wsLoginIdle, then a WebSocket ping and its pong.
func wsLoginPinged(t testing.TB, g *Gateway, i int) net.Conn {
	t.Helper()
	c := wsLoginIdle(t, g, i)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	pong := make([]byte, 2)
	if _, err := c.Write([]byte{0x89, 0x80, 0, 0, 0, 0}); err != nil { // a masked empty ping
		c.Close()
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, pong); err != nil || pong[0] != 0x8a {
		c.Close()
		t.Fatalf("pong %d: %x %v", i, pong, err)
	}
	_ = c.SetDeadline(time.Time{})
	return c
}

// wsLoginIdle is loginIdle over WebSocket, the handshake and frames
// written and read by hand (RFC 6455), without buffers.
func wsLoginIdle(t testing.TB, g *Gateway, i int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(g.WSURL(), "ws://"), wsconn.Path))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + wsconn.Path + " HTTP/1.1\r\nHost: gocim\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: " + wsconn.Binary + "\r\n\r\n"
	var head []byte
	one := make([]byte, 1)
	_, err = io.WriteString(c, req)
	for err == nil && !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		_, err = c.Read(one)
		head = append(head, one[0])
	}
	if err != nil || !bytes.HasPrefix(head, []byte("HTTP/1.1 101")) {
		c.Close()
		t.Fatalf("handshake %d: %q %v", i, head, err)
	}
	tok := tokenFor(t, g.ID(), strconv.Itoa(i), "s"+strconv.Itoa(i))
	body, _ := proto.Marshal(&cimpb.Frame{Type: cimpb.Type_LOGIN, Login: &cimpb.Login{Token: tok}})
	// A masked binary frame (the mask 0 leaves the payload as it is).
	frame := []byte{0x82, 0x80 | byte(len(body)), 0, 0, 0, 0}
	if len(body) >= 126 {
		frame = []byte{0x82, 0x80 | 126, byte(len(body) >> 8), byte(len(body)), 0, 0, 0, 0}
	}
	if _, err := c.Write(append(frame, body...)); err != nil {
		c.Close()
		t.Fatal(err)
	}
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(c, hdr); err != nil {
		c.Close()
		t.Fatal(err)
	}
	n := int(hdr[1] & 0x7f)
	if n == 126 {
		if _, err := io.ReadFull(c, hdr); err != nil {
			c.Close()
			t.Fatal(err)
		}
		n = int(hdr[0])<<8 | int(hdr[1])
	}
	msg := make([]byte, n)
	f := &cimpb.Frame{}
	if _, err := io.ReadFull(c, msg); err != nil || proto.Unmarshal(msg, f) != nil || f.GetType() != cimpb.Type_LOGIN_ACK {
		c.Close()
		t.Fatalf("login %d: %v %v", i, f, err)
	}
	_ = c.SetDeadline(time.Time{})
	return c
}

// BenchmarkIdleMQTTConnection is BenchmarkIdleConnection for devices: one
// logged-in idle MQTT 3.1.1 connection (keep-alive off), client socket
// included.
func BenchmarkIdleMQTTConnection(b *testing.B) {
	route := newDeviceRoute(b)
	g := startGateway(b, route.srv.URL, func(c *Config) { c.MQTTListen = "127.0.0.1:0" })
	benchConns(b, g, mqttLoginIdle, 0)
}

// mqttLoginIdle connects device i over MQTT 3.1.1 (clean session, no
// keep-alive) and reads its CONNACK, keeping no buffer.
func mqttLoginIdle(t testing.TB, g *Gateway, i int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", g.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	connect := packets311.NewControlPacket(packets311.Connect).(*packets311.ConnectPacket)
	connect.ProtocolName, connect.ProtocolVersion, connect.CleanSession = "MQTT", 4, true
	connect.ClientIdentifier = "fleet-" + strconv.Itoa(i)
	connect.Username, connect.UsernameFlag = connect.ClientIdentifier, true
	connect.Password, connect.PasswordFlag = []byte(deviceSecret), true
	if err := connect.Write(c); err != nil {
		c.Close()
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	ack := make([]byte, 4) // CONNACK
	if _, err := io.ReadFull(c, ack); err != nil || ack[3] != 0 {
		c.Close()
		t.Fatalf("CONNACK %x: %v", ack, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c
}

func memInUse() uint64 {
	for range 3 {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// readFrame reads one frame without a buffered reader, so the client side
// keeps no buffer per connection.
func readFrame(c net.Conn) (*cimpb.Frame, int, error) {
	var buf []byte
	one := make([]byte, 1)
	for {
		if _, err := c.Read(one); err != nil {
			return nil, 0, err
		}
		buf = append(buf, one[0])
		if f, n, err := codec.Decode(buf, 0); err == nil {
			return f, n, nil
		}
	}
}

func memSplit() (heap, stack uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse
}
