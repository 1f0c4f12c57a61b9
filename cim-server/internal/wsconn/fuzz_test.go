package wsconn

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
)

// fuzzFrames turns fuzz input into what a client sends after the handshake:
// frames of one header byte each (FIN, RSV and opcode as given) with a
// length byte (a set high bit multiplies the rest by 1,024, to reach the
// 16- and 64-bit lengths) and that much payload, masked; a header byte 0xff
// sends the rest as it is.
func fuzzFrames(data []byte) []byte {
	var out []byte
	for len(data) >= 2 {
		b0, n := data[0], int(data[1])
		data = data[2:]
		if b0 == 0xff {
			return append(out, data...)
		}
		if n&0x80 != 0 {
			n = (n & 0x7f) * 1024
		}
		payload := make([]byte, n)
		copy(payload, data)
		data = data[min(n, len(data)):]
		f := clientFrame(b0&0x80 != 0, b0&0x0f, payload)
		f[0] = b0 // RSV bits as given
		out = append(out, f...)
	}
	return out
}

// FuzzConn: whatever a client sends after the handshake — data frames,
// fragments and control frames in any order, bad lengths, reserved bits,
// bytes that are no frame at all — on either subprotocol, the connection's
// Read does not panic, hands out only frames that codec can take or refuse
// whole, and ends once the client hangs up.
func FuzzConn(f *testing.F) {
	done := make(chan error, 1)
	up := NewUpgrader(256, nil, 5*time.Second, time.Second)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var err error
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			}
			done <- err
		}()
		c, uerr := up.Upgrade(w, r)
		if uerr != nil {
			err = fmt.Errorf("upgrade: %w", uerr)
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		rd := codec.NewReader(c, 1<<16)
		for {
			if _, rerr := rd.ReadFrame(); rerr != nil {
				if errors.Is(rerr, os.ErrDeadlineExceeded) {
					err = errors.New("Read did not end after the client hung up")
				}
				return
			}
		}
	}))
	f.Cleanup(srv.Close)

	ping, _ := proto.Marshal(&cimpb.Frame{Type: cimpb.Type_PING, ReqId: 1})
	seed := func(frames ...[]byte) []byte {
		var b []byte
		for _, fr := range frames {
			b = append(b, fr...)
		}
		return b
	}
	frame := func(b0 byte, payload []byte) []byte { return append([]byte{b0, byte(len(payload))}, payload...) }
	f.Add(false, frame(0x82, ping))
	f.Add(false, seed(frame(0x02, ping[:2]), frame(0x89, []byte("p")), frame(0x80, ping[2:])))
	f.Add(true, frame(0x81, []byte(`{"type":"PING","reqId":"1"}`)))
	f.Add(true, frame(0x81, []byte(`{"type":`)))
	f.Add(false, seed(frame(0x82, ping), frame(0x88, []byte{0x03, 0xe8})))
	f.Add(false, []byte{0x82, 0xff, 0x00})
	f.Add(false, []byte{0xff, 0x00, 0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, json bool, data []byte) {
		sub := Binary
		if json {
			sub = JSON
		}
		nc, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		req := "GET " + Path + " HTTP/1.1\r\nHost: gocim\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
			"Sec-WebSocket-Protocol: " + sub + "\r\n\r\n"
		if _, err := nc.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(nc)
		status, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(status, "HTTP/1.1 101") {
			t.Fatalf("handshake: %q %v", status, err)
		}
		for line := ""; line != "\r\n"; {
			if line, err = br.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		// The server may answer (pongs, a close): read it away meanwhile.
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			_, _ = br.WriteTo(io.Discard)
		}()
		stream := fuzzFrames(data)
		for len(stream) > 0 {
			n, err := nc.Write(stream[:min(len(stream), 4096)])
			if err != nil {
				break // the server closed: a protocol error
			}
			stream = stream[n:]
		}
		_ = nc.(*net.TCPConn).CloseWrite()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the server's reader did not end")
		}
		nc.Close()
		<-drained
	})
}
