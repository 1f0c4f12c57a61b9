// Package wsconn carries gocim frames over WebSocket, for browsers and for
// any language with a WebSocket library.
//
// A client picks the encoding by subprotocol: "gocim.proto" sends each
// Frame (proto/cim.proto) as one binary message, serialized protobuf;
// "gocim.json" sends each Frame as one text message in its protojson form
// (field names in lowerCamelCase, enums by name, 64-bit numbers as
// strings), so that a person can talk to a gateway with a plain WebSocket
// tool. A client that names neither gets "gocim.json".
//
// Conn turns a WebSocket connection into the byte stream of length-prefixed
// frames that package conn reads and writes on TCP, so that a WebSocket
// client goes through exactly the same connection code — login, heartbeat
// and idle reaping, rate and size limits, sync, receipts, kick, drain.
// Bad input ends the connection the same way: a text message that is not a
// Frame, a binary message on a JSON connection (or the other way round),
// reads as a bad frame (ERROR BadFrame, then close); a message over the
// limit is refused by the WebSocket library itself (close 1009) and reads as
// a frame too large.
package wsconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
)

// The subprotocols.
const (
	Binary = "gocim.proto"
	JSON   = "gocim.json"
)

// Path is where the gateway's WebSocket listener upgrades.
const Path = "/ws"

// jsonFactor is how much larger than its protobuf form a frame's JSON may
// be: field names, quotes, base64 for bytes (4/3) and escapes in text.
const jsonFactor = 4

// fromJSON ignores fields it does not know, as protobuf does: a newer
// client may talk to an older gateway.
var fromJSON = protojson.UnmarshalOptions{DiscardUnknown: true}

// Upgrader accepts WebSocket connections.
type Upgrader struct {
	up          websocket.Upgrader
	maxFrame    int
	readTimeout time.Duration
}

// NewUpgrader returns an Upgrader for frames up to maxFrame bytes that
// accepts pages from the given origins (see OriginChecker). A message the
// library has begun to read has readTimeout (0: no limit of its own) to
// come whole, whatever read deadline the connection's wait for it had.
func NewUpgrader(maxFrame int, origins []string, handshakeTimeout, readTimeout time.Duration) *Upgrader {
	if maxFrame <= 0 {
		maxFrame = codec.DefaultMaxFrame
	}
	return &Upgrader{
		maxFrame:    maxFrame,
		readTimeout: readTimeout,
		up: websocket.Upgrader{
			HandshakeTimeout: handshakeTimeout,
			// Small buffers, the write one shared: an idle connection holds
			// only the library's read buffer (memory per idle connection is
			// what a gateway is made of); a larger message is read past it.
			ReadBufferSize:  512,
			WriteBufferSize: 4096,
			WriteBufferPool: &sync.Pool{},
			Subprotocols:    []string{Binary, JSON},
			CheckOrigin:     OriginChecker(origins),
			Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
				http.Error(w, "websocket: "+reason.Error(), status)
			},
		},
	}
}

// Upgrade answers the handshake and returns the connection as a net.Conn
// of length-prefixed frames. On failure the answer is written already.
func (u *Upgrader) Upgrade(w http.ResponseWriter, r *http.Request) (*Conn, error) {
	h := &hijacker{ResponseWriter: w}
	ws, err := u.up.Upgrade(h, r, nil)
	if err != nil {
		return nil, err
	}
	c := newConn(ws, h.src, u.maxFrame)
	c.readTimeout = u.readTimeout
	return c, nil
}

// OriginChecker says which pages may open a connection: a request without
// an Origin header (not a browser) always; with one, when origins lists it
// (scheme://host[:port], compared without case), or origins holds "*".
// With no origins, a page from the gateway's own host name (any scheme and
// port: the route's chat page on the same machine) and nothing else.
func OriginChecker(origins []string) func(r *http.Request) bool {
	allowed := make([]string, 0, len(origins))
	for _, o := range origins {
		allowed = append(allowed, strings.ToLower(strings.TrimSuffix(o, "/")))
	}
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" {
			return true
		}
		if slices.Contains(allowed, "*") || slices.Contains(allowed, strings.ToLower(origin)) {
			return true
		}
		if len(allowed) > 0 {
			return false
		}
		u, err := url.Parse(origin)
		if err != nil || u.Host == "" {
			return false
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		return strings.EqualFold(u.Hostname(), strings.Trim(host, "[]"))
	}
}

// Conn is a WebSocket connection seen as a stream of length-prefixed
// frames (package codec). Read and Write may run concurrently with each
// other (one reader, one writer), Close and the deadlines with either.
//
// The library's read errors are final, a deadline's too, so a connection
// may wait for a message under a short read deadline (conn's idle spell)
// only while the library has none of it: Read waits itself then (see
// source), and a timeout there leaves the connection as it was. The
// library reads a message under a deadline readTimeout away, or the one
// set if later: a message that came slowly is not cut by a short one.
type Conn struct {
	ws          *websocket.Conn
	src         *source // the socket under ws
	json        bool
	maxFrame    int
	readTimeout time.Duration
	in          []byte // what Read has not handed out yet
	out         []byte // a partial frame from the last Write
	ended       bool   // Read returned the stream's end (see Read)

	// The client's pings, for the reader goroutine only (see ping).
	pingAt int64         // when the last free one came (Unix ns)
	pings  *rate.Limiter // the closer ones; made at the first

	dmu      sync.Mutex
	deadline time.Time // the read deadline set
	due      time.Time // the message being read's
	applied  time.Time // the socket's
}

func newConn(ws *websocket.Conn, src *source, maxFrame int) *Conn {
	c := &Conn{ws: ws, src: src, json: ws.Subprotocol() != Binary, maxFrame: maxFrame}
	limit := maxFrame
	if c.json {
		limit = jsonFactor * maxFrame
	}
	ws.SetReadLimit(int64(limit))
	ws.SetPingHandler(func(data string) error { return c.ping([]byte(data)) })
	src.onPing = c.ping
	return c
}

// A client's WebSocket pings are answered (by ping, from source's wait or
// the library's frame reader) each with a pong, a write of its own:
// unbounded, one client sending pings as fast as its link allows kept a
// gateway core busy writing pongs. Pings pingSpacing or more
// apart are free (a library's keep-alive, every few seconds at most);
// closer ones are counted in a bucket of pingBurst refilled at pingRate a
// second, and one over it ends the connection: close 1008, flooding.
const (
	pingSpacing = time.Second
	pingRate    = 2
	pingBurst   = 10
	// pongWait bounds the write of one pong (the library's own default).
	pongWait = time.Second
)

// errPingFlood ends the connection of a client over its pings' bound.
var errPingFlood = errors.New("wsconn: websocket pings over the limit")

// ping answers a client's ping with its pong, within the bound above. The
// library calls it for a ping it reads, source for one that came while
// the connection waited (see source).
func (c *Conn) ping(data []byte) error {
	if now := time.Now().UnixNano(); now-c.pingAt >= int64(pingSpacing) {
		c.pingAt = now
	} else {
		if c.pings == nil {
			c.pings = rate.NewLimiter(pingRate, pingBurst)
		}
		if !c.pings.Allow() {
			_ = c.ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "ping flood"), time.Now().Add(closeGrace))
			return errPingFlood
		}
	}
	err := c.ws.WriteControl(websocket.PongMessage, data, time.Now().Add(pongWait))
	var ne net.Error
	if errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) {
		return nil // as the library's own handler: the reader finds out
	}
	return err
}

// Subprotocol returns the encoding in use, Binary or JSON.
func (c *Conn) Subprotocol() string {
	if c.json {
		return JSON
	}
	return Binary
}

// Read returns bytes of the frame stream: each message as one frame. When
// the library holds nothing, it waits for the client first itself (see
// source): an idle connection waits there.
//
// Once the stream has ended (any error but a deadline passing in that
// wait), Read passes on the socket's bytes as they come: a closing
// connection reads what its client still sends, and throws it away, while
// its last frame goes out (conn's finish), so that the client reads that
// frame instead of a reset. The library would only repeat its error.
func (c *Conn) Read(p []byte) (int, error) {
	if c.ended {
		return c.src.Conn.Read(p)
	}
	for len(c.in) == 0 {
		if c.src.quiet() {
			if err := c.src.wait(); err != nil {
				err = readError(err)
				c.ended = !errors.Is(err, os.ErrDeadlineExceeded)
				return 0, err
			}
		}
		if err := c.next(); err != nil {
			c.ended = true
			return 0, err
		}
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	if len(c.in) == 0 {
		c.in = nil // an idle connection pins no buffer
	}
	return n, nil
}

// next reads one message and turns it into one length-prefixed frame.
func (c *Conn) next() error {
	if c.readTimeout > 0 {
		c.setDue(time.Now().Add(c.readTimeout))
		defer c.setDue(time.Time{})
	}
	typ, data, err := c.ws.ReadMessage()
	if err != nil {
		return readError(err)
	}
	c.src.took()
	var body []byte
	switch {
	case typ == websocket.BinaryMessage && !c.json:
		body = data
	case typ == websocket.TextMessage && c.json:
		f := &cimpb.Frame{}
		if err := fromJSON.Unmarshal(data, f); err != nil {
			return fmt.Errorf("%w: not a Frame in JSON: %v", codec.ErrBadFrame, err)
		}
		if body, err = proto.Marshal(f); err != nil {
			return fmt.Errorf("%w: %v", codec.ErrBadFrame, err)
		}
	default:
		return fmt.Errorf("%w: a %s message on a %s connection", codec.ErrBadFrame, kind(typ), c.Subprotocol())
	}
	if len(body) > c.maxFrame {
		return fmt.Errorf("%w: %d bytes, limit %d", codec.ErrFrameTooLarge, len(body), c.maxFrame)
	}
	c.in = binary.AppendUvarint(make([]byte, 0, len(body)+binary.MaxVarintLen32), uint64(len(body)))
	c.in = append(c.in, body...)
	return nil
}

func kind(typ int) string {
	if typ == websocket.BinaryMessage {
		return "binary"
	}
	return "text"
}

// readError maps the library's errors to what package conn understands: a
// close by the peer is the end of the stream, a message over the limit a
// frame too large; timeouts and broken sockets stay as they are.
func readError(err error) error {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.Is(err, errPingFlood):
		return &conn.EndError{Cause: conn.Flooding, Err: err}
	case errors.As(err, &ne) && ne.Timeout():
		// The library hides the deadline's own error behind one of its own.
		return fmt.Errorf("%w: %v", os.ErrDeadlineExceeded, err)
	case errors.As(err, &ce):
		return io.EOF
	case errors.Is(err, websocket.ErrReadLimit):
		return fmt.Errorf("%w: websocket message over the limit", codec.ErrFrameTooLarge)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return io.EOF // the socket ended without a close message
	}
	return err
}

// Write takes bytes of the frame stream (whole frames, as package conn
// writes them) and sends each frame as one message.
func (c *Conn) Write(b []byte) (int, error) {
	buf := b
	if len(c.out) > 0 {
		c.out = append(c.out, b...)
		buf = c.out
	}
	for len(buf) > 0 {
		n, k := binary.Uvarint(buf)
		if k < 0 {
			return 0, fmt.Errorf("wsconn: bad length prefix in the frame stream")
		}
		if k == 0 || uint64(len(buf)-k) < n {
			break // the rest comes with the next Write
		}
		if err := c.send(buf[k : k+int(n)]); err != nil {
			return 0, err
		}
		buf = buf[k+int(n):]
	}
	c.out = append(c.out[:0], buf...)
	if len(c.out) == 0 {
		c.out = nil
	}
	return len(b), nil
}

// send writes one frame as a message. After a close message (a ping
// flood's 1008) nothing more may be sent: the frame is dropped, as the
// connection is ending, rather than failing the write, which would make
// conn close the socket at once and reset the client before it read the
// close message.
func (c *Conn) send(body []byte) error {
	if !c.json {
		return closeSent(c.ws.WriteMessage(websocket.BinaryMessage, body))
	}
	f := &cimpb.Frame{}
	if err := proto.Unmarshal(body, f); err != nil {
		return fmt.Errorf("wsconn: frame from the gateway: %w", err)
	}
	js, err := protojson.Marshal(f)
	if err != nil {
		return fmt.Errorf("wsconn: frame to JSON: %w", err)
	}
	return closeSent(c.ws.WriteMessage(websocket.TextMessage, js))
}

// closeSent is err, but nil for the library's "close message sent".
func closeSent(err error) error {
	if errors.Is(err, websocket.ErrCloseSent) {
		return nil
	}
	return err
}

// closeGrace bounds the wait for the close message's turn to be written.
const closeGrace = time.Second

// CloseWrite sends the close message (1000, normal closure): the client
// reads everything written before it, then hangs up. One sent already (a
// ping flood's 1008) does as well: closing the socket at once instead,
// with the client's bytes unread, would reset it, and the reset can
// overtake the close message.
func (c *Conn) CloseWrite() error {
	return closeSent(c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(closeGrace)))
}

// Close closes the socket at once (CloseWrite is the polite way).
func (c *Conn) Close() error { return c.ws.Close() }

// LocalAddr returns the gateway's end of the socket.
func (c *Conn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// RemoteAddr returns the client's end of the socket.
func (c *Conn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.ws.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline; a message under way keeps its
// own if that is later.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.deadline = t
	c.applied = c.effective()
	return c.ws.SetReadDeadline(c.applied)
}

// setDue sets (zero: clears) the deadline of the message under way.
func (c *Conn) setDue(t time.Time) {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.due = t
	if t := c.effective(); !t.Equal(c.applied) {
		c.applied = t
		_ = c.ws.SetReadDeadline(t)
	}
}

// effective is the socket's read deadline: the later of the two (none if
// none is set).
func (c *Conn) effective() time.Time {
	if !c.deadline.IsZero() && c.due.After(c.deadline) {
		return c.due
	}
	return c.deadline
}

// SetWriteDeadline sets the write deadline of the socket.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
