package wsconn

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
)

// serve upgrades one connection and hands it to f (in the handler).
func serve(t *testing.T, maxFrame int, f func(*Conn)) string {
	t.Helper()
	return serveWith(t, NewUpgrader(maxFrame, nil, 5*time.Second, 10*time.Second), f)
}

func serveWith(t *testing.T, up *Upgrader, f func(*Conn)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		defer c.Close()
		f(c)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dial(t *testing.T, url, subprotocol string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{subprotocol}}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	return ws
}

// Frames written as one stream — several in one Write, one split over two
// Writes — arrive as one message each, in the connection's encoding.
func TestWriteSplitsFrames(t *testing.T) {
	frames := []*cimpb.Frame{
		{Type: cimpb.Type_PONG, ReqId: 1},
		{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "m", Seq: 1 << 40, Body: []byte{0, 255}}},
		{Type: cimpb.Type_RECEIPT, Receipt: &cimpb.Receipt{MsgId: "m", Status: cimpb.ReceiptStatus_RECEIPT_READ}},
	}
	var stream []byte
	for _, f := range frames {
		stream, _ = codec.AppendFrame(stream, f)
	}
	for _, sp := range []string{Binary, JSON} {
		t.Run(sp, func(t *testing.T) {
			done := make(chan error, 1)
			url := serve(t, 1024, func(c *Conn) {
				cut := len(stream) - 3 // inside the last frame
				if _, err := c.Write(stream[:cut]); err != nil {
					done <- err
					return
				}
				_, err := c.Write(stream[cut:])
				done <- err
				_, _ = c.Read(make([]byte, 1)) // until the client hangs up
			})
			ws := dial(t, url, sp)
			for i, want := range frames {
				typ, b, err := ws.ReadMessage()
				if err != nil {
					t.Fatal(err)
				}
				got := &cimpb.Frame{}
				if sp == JSON {
					if typ != websocket.TextMessage {
						t.Fatalf("#%d: message type %d, want text", i, typ)
					}
					err = protojson.Unmarshal(b, got)
				} else {
					if typ != websocket.BinaryMessage {
						t.Fatalf("#%d: message type %d, want binary", i, typ)
					}
					err = proto.Unmarshal(b, got)
				}
				if err != nil || !proto.Equal(got, want) {
					t.Fatalf("#%d: %v (%v), want %v", i, got, err, want)
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Each message reads as one length-prefixed frame; unknown JSON fields are
// ignored (a newer client), a message over the limit is a frame too large,
// and a close by the peer is the end of the stream.
func TestReadFrames(t *testing.T) {
	got := make(chan *cimpb.Frame, 4)
	errc := make(chan error, 1)
	url := serve(t, 64, func(c *Conn) {
		r := codec.NewReader(c, 64)
		for {
			f, err := r.ReadFrame()
			if err != nil {
				errc <- err
				return
			}
			got <- f
		}
	})
	ws := dial(t, url, JSON)
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"PING","reqId":"7","fromTheFuture":true}`)); err != nil {
		t.Fatal(err)
	}
	if f := <-got; f.Type != cimpb.Type_PING || f.ReqId != 7 {
		t.Fatalf("got %v", f)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if f := <-got; !proto.Equal(f, &cimpb.Frame{}) {
		t.Fatalf("empty frame read as %v", f)
	}
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"LOGIN","login":{"token":"`+strings.Repeat("x", 300)+`"}}`))
	if err := <-errc; !errors.Is(err, codec.ErrFrameTooLarge) {
		t.Fatalf("oversized message: %v, want ErrFrameTooLarge", err)
	}

	ws2 := dial(t, url, Binary)
	if err := ws2.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil || err.Error() != "EOF" {
		t.Fatalf("after the peer's close: %v, want EOF", err)
	}
}

// TestPingFlood: the client's WebSocket pings are answered while they keep
// their bound (one a second free, a bucket of pingBurst for closer ones);
// the first over it ends the connection: close 1008, and Read reports
// flooding. Without the bound every ping had its pong.
func TestPingFlood(t *testing.T) {
	errc, closeWrite := make(chan error, 2), make(chan error, 1)
	url := serve(t, 64, func(c *Conn) {
		_, err := c.Read(make([]byte, 1))
		errc <- err
		// A frame queued meanwhile, then conn's hang-up: the close message
		// is out already, so the frame is dropped and the connection reads
		// on until the client hangs up, instead of resetting it.
		f, _ := codec.Encode(&cimpb.Frame{Type: cimpb.Type_PONG})
		_, err = c.Write(f)
		errc <- err
		closeWrite <- c.CloseWrite()
		_, _ = io.Copy(io.Discard, c)
	})
	ws := dial(t, url, Binary)
	var pongs []string
	ws.SetPongHandler(func(data string) error { pongs = append(pongs, data); return nil })
	const sent = 1 + pingBurst + 5
	for i := range sent {
		if err := ws.WriteControl(websocket.PingMessage, []byte(fmt.Sprint(i)), time.Now().Add(5*time.Second)); err != nil {
			break // the gateway may have hung up already
		}
	}
	_, _, err := ws.ReadMessage() // pongs are handled inside, up to the close
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("read: %v, want close 1008", err)
	}
	// 1 + pingBurst at least, in order; more only if the bucket refilled
	// while the client was sending (pingRate a second).
	var want []string
	for i := range len(pongs) {
		want = append(want, fmt.Sprint(i))
	}
	if len(pongs) < 1+pingBurst || len(pongs) >= sent || !slices.Equal(pongs, want) {
		t.Fatalf("pongs %q of %d pings, want the first %d or a few more", pongs, sent, 1+pingBurst)
	}
	var end *conn.EndError
	if err := <-errc; !errors.As(err, &end) || end.Cause != conn.Flooding {
		t.Fatalf("the gateway's Read: %v, want the end of a flooding client", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("a Write after the 1008: %v, want nil (dropped)", err)
	}
	if err := <-closeWrite; err != nil {
		t.Fatalf("CloseWrite after the 1008: %v, want nil", err)
	}
}
