package e2e

// Attacks on the gateway's client port (issue 11, points 1, 2, 4 and 8):
// length prefixes that announce frames never sent, floods of connections
// that never log in, SYNC storms, poison frames over the client's limit and
// message kinds the protocol does not know. Each test runs the real
// binaries and checks that the attacker is refused or slowed while a
// legitimate user carries on.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
	"github.com/gocim/gocim/proto/codes"
)

// dialFrom opens a TCP connection to addr from the local address ip.
func dialFrom(t *testing.T, ip, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// fromAddr makes an SDK client dial its gateway from the local address ip.
func fromAddr(ip string) func(*client.Config) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return func(cfg *client.Config) { cfg.Dial = d.DialContext }
}

// rssKB is a process's resident set size from /proc/<pid>/status.
func rssKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// unreadOnPort sums what the kernel holds unread for the server side of
// established loopback connections to port, and counts those connections
// (/proc/net/tcp: rx_queue of sockets whose local port is port).
func unreadOnPort(port int) (conns, unread int, err error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 || fs[3] != "01" { // ESTABLISHED
			continue
		}
		_, hexPort, _ := strings.Cut(fs[1], ":")
		if p, _ := strconv.ParseUint(hexPort, 16, 32); int(p) != port {
			continue
		}
		_, rx, _ := strings.Cut(fs[4], ":")
		n, _ := strconv.ParseUint(rx, 16, 64)
		conns++
		unread += int(n)
	}
	return conns, unread, sc.Err()
}

// exchange checks that a legitimate pair still logs in and chats: from
// connects from ip, sends to, which must show the message.
func exchange(t *testing.T, c *harness.Cluster, ip, from, to, text string) {
	t.Helper()
	recipient := c.Connect(t, to, fromAddr(ip))
	sender := c.Connect(t, from, fromAddr(ip))
	if _, err := sender.Send(ctxT(t), to, text); err != nil {
		t.Fatal(err)
	}
	recipient.WaitFor(t, 0, wait, "the legitimate message", harness.IsMessage(text))
}

// TestAnnouncedFramesCostLittle (point 4): 2,000 connections each announce
// a frame of the maximum size (64 KiB) and send nothing more. They cost the
// gateway no more memory than 2,000 connections announcing 5 bytes (it used
// to reserve each announced frame in full: 827 MB for 10,000 connections),
// and a legitimate pair still logs in and chats.
func TestAnnouncedFramesCostLittle(t *testing.T) {
	const n = 2000
	c := harness.Start(t, harness.Options{Gateways: 1, GatewayArgs: []string{
		"--max-unauth-per-addr", "0", "--max-unauth", "10000", "--login-timeout", "2m",
	}})
	g := c.Gateways[0]
	_, portStr, _ := net.SplitHostPort(g.TCPAddr)
	port, _ := strconv.Atoi(portStr)
	pid := g.Process.Cmd.Process.Pid
	exchange(t, c, "127.0.0.2", "warm1", "warm2", "warm-up")

	// open makes n connections that send prefix and stall, and returns once
	// the gateway has read every byte sent to it.
	var conns []net.Conn
	open := func(prefix []byte) {
		for range n {
			conn := dial(t, g.TCPAddr)
			if _, err := conn.Write(prefix); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, conn)
		}
		harness.Eventually(t, wait, func() error {
			got, unread, err := unreadOnPort(port)
			switch {
			case err != nil:
				return err
			case got < len(conns) || unread > 0:
				return fmt.Errorf("%d of %d connections established at the gateway, %d bytes unread", got, len(conns), unread)
			}
			return nil
		})
	}
	rss0 := rssKB(t, pid)
	open(binary.AppendUvarint(nil, 5)) // the yardstick: connections that announce 5 bytes
	rss1 := rssKB(t, pid)
	open(binary.AppendUvarint(nil, codec.DefaultMaxFrame))
	rss2 := rssKB(t, pid)
	small, large := (rss1-rss0)<<10/n, (rss2-rss1)<<10/n
	t.Logf("gateway RSS %d → %d → %d kB: %d bytes per connection announcing 5 bytes, %d announcing %d",
		rss0, rss1, rss2, small, large, codec.DefaultMaxFrame)
	if grew, announced := (rss2-rss1)<<10, n*codec.DefaultMaxFrame; grew >= announced {
		t.Fatalf("gateway RSS grew by %d MiB for %d prefix-only connections, want less than the %d MiB announced",
			grew>>20, n, announced>>20)
	}
	if large-small > 8<<10 {
		t.Fatalf("a connection announcing %d bytes costs the gateway %d bytes, one announcing 5 bytes %d: "+
			"the announced length must not reserve memory", codec.DefaultMaxFrame, large, small)
	}
	exchange(t, c, "127.0.0.2", "ann", "bert", "hello through the flood")

	// The connections were waiting for their frames: completing one (with
	// bytes that do not parse) gets its answer.
	garbage := bytes.Repeat([]byte{0xff}, codec.DefaultMaxFrame)
	for _, conn := range conns[len(conns)-3:] {
		if _, err := conn.Write(garbage); err != nil {
			t.Fatal(err)
		}
		expectRefused(t, conn, codec.NewReader(conn, 0), codes.BadFrame)
	}
}

// TestUnauthenticatedConnectionCaps (point 4): one address opens more
// connections that never log in than the per-address cap: the excess is
// refused at once with ERROR TooManyConnections, while a legitimate pair
// from another address logs in and chats. The held connections are closed
// at the login deadline, which frees their slots.
func TestUnauthenticatedConnectionCaps(t *testing.T) {
	const perAddr, extra = 20, 10
	c := harness.Start(t, harness.Options{Gateways: 1, GatewayArgs: []string{
		"--max-unauth-per-addr", strconv.Itoa(perAddr), "--login-timeout", "8s",
	}})
	g := c.Gateways[0]
	var held []net.Conn
	for range perAddr {
		held = append(held, dialFrom(t, "127.0.0.1", g.TCPAddr))
	}
	for i := range extra {
		conn := dialFrom(t, "127.0.0.1", g.TCPAddr)
		if e := expectClosed(t, conn, codec.NewReader(conn, 0)); e == nil || codes.Code(e.Code) != codes.TooManyConnections {
			t.Fatalf("connection %d over the per-address cap: closed with %v, want ERROR %d", perAddr+i+1, e, codes.TooManyConnections)
		}
	}
	// The flood is held open; another address is not affected.
	exchange(t, c, "127.0.0.2", "lena", "lars", "hello past the flood")

	// Every held connection was served until the login deadline: its
	// first and only frame is LoginTimeout, not a refusal.
	var wg sync.WaitGroup
	errs := make(chan error, len(held))
	for _, conn := range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn.SetReadDeadline(time.Now().Add(wait))
			f, err := codec.NewReader(conn, 0).ReadFrame()
			if err != nil || f.Type != cimpb.Type_ERROR || codes.Code(f.Error.Code) != codes.LoginTimeout {
				errs <- fmt.Errorf("held connection: got %v %v, want ERROR %d at the login deadline", f, err, codes.LoginTimeout)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Their slots are free again: the address gets in (a PING before LOGIN
	// is answered as a bad first frame, not refused).
	harness.Eventually(t, wait, func() error {
		conn := dialFrom(t, "127.0.0.1", g.TCPAddr)
		defer conn.Close()
		b, _ := codec.Encode(&cimpb.Frame{Type: cimpb.Type_PING})
		conn.Write(b)
		e := expectClosed(t, conn, codec.NewReader(conn, 0))
		if e == nil || codes.Code(e.Code) != codes.BadFrame {
			return fmt.Errorf("new connection closed with %v, want ERROR %d", e, codes.BadFrame)
		}
		return nil
	})
	log, _ := os.ReadFile(g.Process.Log)
	if !bytes.Contains(log, []byte("connections refused")) {
		t.Error("the gateway did not log the refusals")
	}
}

// TestSyncStormIsPaced (point 1): a connection sends 200 SYNCs at once. The
// gateway forwards them no faster than --sync-burst plus --sync-rate per
// second (counted by the route's answers: one per SYNC forwarded), and
// every one is answered in the end: paced, not dropped.
func TestSyncStormIsPaced(t *testing.T) {
	const (
		n     = 200
		rate  = 40.0
		burst = 20
	)
	c := harness.Start(t, harness.Options{Gateways: 1, GatewayArgs: []string{
		"--sync-rate", strconv.FormatFloat(rate, 'f', -1, 64), "--sync-burst", strconv.Itoa(burst),
	}})
	conn, r, _ := rawLogin(t, c, "storm")
	var frames []byte
	for i := range n {
		frames, _ = codec.AppendFrame(frames, &cimpb.Frame{Type: cimpb.Type_SYNC, ReqId: uint64(1000 + i), Sync: &cimpb.Sync{}})
	}
	start := time.Now()
	if _, err := conn.Write(frames); err != nil {
		t.Fatal(err)
	}
	answered := map[uint64]bool{}
	for len(answered) < n {
		f := readFrame(t, conn, r)
		if f.Type != cimpb.Type_SYNC || f.ReqId < 1000 {
			continue
		}
		if answered[f.ReqId] {
			t.Fatalf("SYNC %d answered twice", f.ReqId)
		}
		answered[f.ReqId] = true
		// Answers received by now cannot outnumber SYNCs forwarded by now.
		allowed := burst + int(rate*time.Since(start).Seconds()) + 1
		if len(answered) > allowed {
			t.Fatalf("%d SYNCs answered %v after the storm began; the pace allows %d", len(answered), time.Since(start), allowed)
		}
	}
	// The connection is still fine.
	writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_PING, ReqId: 7})
	for f := readFrame(t, conn, r); f.Type != cimpb.Type_PONG; f = readFrame(t, conn, r) {
	}
}

// TestPoisonFrameIsNotSent (point 2): a MSG whose uplink frame is exactly
// the 64 KiB limit grows past it once the route adds its fields. The
// gateway does not send it (the victim's client would have to drop the
// link, and used to reconnect for ever): a raw victim reading with the
// 64 KiB limit never sees a frame over it, and an SDK victim keeps its link
// and gets what follows.
func TestPoisonFrameIsNotSent(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1})
	vera := c.Connect(t, "vera")
	rawConn, rawR, raw := rawLogin(t, c, "vince")
	conn, r, _ := rawLogin(t, c, "mallory")
	poison := func(id, to string) *cimpb.Frame {
		f := &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 1, Msg: &cimpb.Msg{ClientMsgId: id, To: to, Kind: cimpb.Kind_KIND_FILE}}
		for size := 0; size != codec.DefaultMaxFrame; {
			f.Msg.Body = make([]byte, len(f.Msg.Body)+codec.DefaultMaxFrame-size)
			size = proto.Size(f)
		}
		return f
	}
	for _, to := range []string{vera.ID, raw.UserID} {
		writeFrame(t, conn, poison("p-"+to, to))
		// The route refuses it: delivered, it would be over the limit.
		f := readFrame(t, conn, r)
		for f.GetReceipt().GetClientMsgId() != "p-"+to && f.GetError().GetClientMsgId() != "p-"+to {
			f = readFrame(t, conn, r)
		}
		if f.Type != cimpb.Type_ERROR || f.Error.Code != int32(codes.TooLarge) {
			t.Fatalf("answer to the poison %v, want ERROR %d", f, codes.TooLarge)
		}
		writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 2, Msg: &cimpb.Msg{ClientMsgId: "n-" + to, To: to, Body: []byte("after the poison")}})
	}
	// The raw victim reads with the client limit: a frame over it fails.
	for {
		rawConn.SetReadDeadline(time.Now().Add(wait))
		f, err := rawR.ReadFrame()
		if err != nil {
			t.Fatalf("raw victim: %v (the gateway sent a frame over the client limit?)", err)
		}
		if f.Type == cimpb.Type_MSG && string(f.Msg.Body) == "after the poison" {
			break
		}
	}
	vera.WaitFor(t, 0, wait, "the message after the poison", harness.IsMessage("after the poison"))
	// And the SDK victim stays reachable on the same link.
	other := c.Connect(t, "olga")
	if _, err := other.Send(ctxT(t), "vera", "still reachable"); err != nil {
		t.Fatal(err)
	}
	vera.WaitFor(t, 0, wait, "a later message", harness.IsMessage("still reachable"))
	for _, e := range vera.Seen() {
		if e.Kind == client.EventDisconnected {
			t.Fatalf("the victim lost its link: %s", e.Reason)
		}
	}
}

// TestUnknownMessageKindRefused (point 8): a MSG of a kind the protocol does
// not define is answered with ERROR BadArgument and never reaches anyone.
func TestUnknownMessageKindRefused(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1})
	vic := c.Connect(t, "kim")
	conn, r, _ := rawLogin(t, c, "kurt")
	writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 1, Msg: &cimpb.Msg{ClientMsgId: "k9", To: vic.ID, Kind: 9, Body: []byte("\xff unchecked")}})
	writeFrame(t, conn, &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 2, Msg: &cimpb.Msg{ClientMsgId: "ok", To: vic.ID, Body: []byte("a real one")}})
	got := map[string]codes.Code{}
	for len(got) < 2 {
		switch f := readFrame(t, conn, r); {
		case f.Type == cimpb.Type_ERROR:
			got[f.Error.ClientMsgId] = codes.Code(f.Error.Code)
		case f.Type == cimpb.Type_RECEIPT && f.Receipt.Status == cimpb.ReceiptStatus_RECEIPT_SENT:
			got[f.Receipt.ClientMsgId] = codes.OK
		}
	}
	if got["k9"] != codes.BadArgument || got["ok"] != codes.OK {
		t.Fatalf("answers %v, want k9 refused with %d and ok sent", got, codes.BadArgument)
	}
	vic.WaitFor(t, 0, wait, "the real message", harness.IsMessage("a real one"))
	for _, e := range vic.Seen() {
		if harness.IsMessage("\xff unchecked")(e) {
			t.Fatal("a message of an unknown kind was delivered")
		}
	}
}

// TestAnswerFloodsClosed: a client that sends, as fast as it can, what the
// gateway answers itself — PINGs, frames answered with an ERROR,
// WebSocket pings, MQTT PINGREQs — gets a bounded number of answers and is
// disconnected as flooding, on every transport. Each answer is a write
// for the gateway and a few bytes for the client: unbounded, one such
// client kept 1.1–1.2 of this machine's two cores busy. A legitimate pair
// is served afterwards.
func TestAnswerFloodsClosed(t *testing.T) {
	const burst = 100 // the answers' bucket: --msg-burst
	// The gateway's defaults (the harness turns rate limits off).
	c := harness.Start(t, harness.Options{Gateways: 1, MQTT: true,
		GatewayArgs: []string{"--msg-rate", "20", "--msg-burst", strconv.Itoa(burst)}})
	const n = 3000
	tcpFlood := func(t *testing.T, name string, f *cimpb.Frame, answer cimpb.Type) {
		conn, r, _ := rawLogin(t, c, name)
		b, err := codec.Encode(f)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _, _ = conn.Write(bytes.Repeat(b, n)) }() // the gateway hangs up before it read them all
		answers, last := 0, (*cimpb.Error)(nil)
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		for {
			g, err := r.ReadFrame()
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("still open after %v, %d answers", wait, answers)
				}
				break
			}
			switch {
			case g.Type == cimpb.Type_ERROR && codes.Code(g.Error.Code) == codes.RateLimited:
				last = g.Error
			case g.Type == answer:
				answers++
			}
		}
		if last == nil || !strings.Contains(last.Text, "flooding") {
			t.Fatalf("closed with %v, want ERROR %d flooding", last, codes.RateLimited)
		}
		if answers > 1+burst {
			t.Fatalf("%d of %d answered, want at most %d", answers, n, 1+burst)
		}
		t.Logf("%d of %d answered, then flooding", answers, n)
	}
	t.Run("PING", func(t *testing.T) {
		tcpFlood(t, "pinger", &cimpb.Frame{Type: cimpb.Type_PING}, cimpb.Type_PONG)
	})
	t.Run("unexpected frames", func(t *testing.T) {
		tcpFlood(t, "ponger", &cimpb.Frame{Type: cimpb.Type_PONG}, cimpb.Type_ERROR)
	})
	t.Run("WebSocket pings", func(t *testing.T) {
		ws, l := dialWS(t, c, "wspinger")
		login, _ := protojson.Marshal(&cimpb.Frame{Type: cimpb.Type_LOGIN, ReqId: 1, Login: &cimpb.Login{Token: l.Token}})
		if err := ws.WriteMessage(websocket.TextMessage, login); err != nil {
			t.Fatal(err)
		}
		pongs := 0
		ws.SetPongHandler(func(string) error { pongs++; return nil })
		go func() {
			for range n {
				if ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(wait)) != nil {
					return
				}
			}
		}()
		_ = ws.SetReadDeadline(time.Now().Add(wait))
		var err error
		for err == nil {
			_, _, err = ws.ReadMessage() // LOGIN_ACK, the SYNC; pongs inside
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
			t.Fatalf("ended with %v after %d pongs, want close 1008", err, pongs)
		}
		if pongs >= n/10 {
			t.Fatalf("%d of %d pings answered", pongs, n)
		}
		t.Logf("%d of %d pings answered, then close 1008", pongs, n)
	})
	t.Run("MQTT PINGREQ", func(t *testing.T) {
		d := newDevice(t, c, "pinging-device")
		nc := dial(t, c.Gateways[0].MQTTAddr)
		defer nc.Close()
		if _, err := nc.Write(mqttConnect(d.DeviceID, d.Secret)); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(nc)
		_ = nc.SetReadDeadline(time.Now().Add(wait))
		if typ, _, err := readMQTT(br); err != nil || typ != 0x20 {
			t.Fatalf("want CONNACK, got %#x %v", typ, err)
		}
		go func() { _, _ = nc.Write(bytes.Repeat([]byte{0xc0, 0x00}, n)) }()
		pingresps := 0
		for {
			typ, _, err := readMQTT(br)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("still open after %v, %d PINGRESPs", wait, pingresps)
				}
				break
			}
			if typ == 0xd0 {
				pingresps++
			}
		}
		if pingresps > 1+burst {
			t.Fatalf("%d of %d PINGREQs answered, want at most %d", pingresps, n, 1+burst)
		}
		t.Logf("%d of %d PINGREQs answered, then closed", pingresps, n)
	})
	exchange(t, c, "127.0.0.1", "steady", "ready", "served after the floods")
}

// readMQTT reads one MQTT packet: its first byte's type bits and its body.
func readMQTT(br *bufio.Reader) (byte, []byte, error) {
	h, err := br.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, err := binary.ReadUvarint(br) // MQTT's remaining length is a little-endian base-128 varint too
	if err != nil {
		return 0, nil, err
	}
	body := make([]byte, n)
	_, err = io.ReadFull(br, body)
	return h & 0xf0, body, err
}
