// Package mqttconn carries gocim over MQTT 3.1.1 (and 3.1) and MQTT 5, for
// devices (IoT): a device is a gocim user (platform "device") that logs in
// with a long-lived credential instead of a password.
//
// Conn turns an MQTT connection into the byte stream of length-prefixed
// frames that package conn reads and writes on TCP — as package wsconn does
// for WebSocket — so that a device goes through exactly the same connection
// code: login, idle reaping, rate and size limits, sync, receipts, kick,
// drain, slow consumers. Its Read yields frames translated from the
// device's packets; its Write takes the frames package conn writes and sends
// packets. Packets are parsed and written with Eclipse Paho's codecs:
// github.com/eclipse/paho.golang/packets for MQTT 5 and
// github.com/eclipse/paho.mqtt.golang/packets for 3.1.1 (the former reads
// MQTT 5 properties in every packet); a packet's remaining length is checked
// against the bound (--max-frame plus packetOverhead) before any of it is
// read, and its buffer grows as its bytes arrive.
//
// # Login
//
// CONNECT must be the first packet, within the login timeout: username =
// the device's user id or name, password = its credential. The Conn asks
// the route (Config.Login, contract.PathDeviceLogin) for a gateway token —
// at most Gate's parallel logins at once, the rest in its FIFO queue, and a
// CONNECT beyond the queue is answered "server busy" at once — and hands
// package conn a LOGIN frame with it (last_seq 0: the login SYNC starts
// after what the device acknowledged). LOGIN_ACK becomes CONNACK (session
// present as the route says). Clean = 3.1.1 CleanSession, or MQTT 5 Clean
// Start with a session expiry of 0: the route skips the backlog. Refusals
// (3.1.1 return code / MQTT 5 reason): bad credentials 4 / 0x86; server
// busy (the gate's queue is full, the route is busy or out of reach, the
// login timeout passed in the queue) 3 / 0x89; a will to a topic that is
// not the device's own uplink 5 / 0x87; an empty client id with a
// persistent 3.1.1 session 2 / 0x85; an unknown protocol level 1 (an MQTT 5
// CONNACK 0x84 for levels above 5); anything else 3 / 0x80. An MQTT 5
// device with an empty client id is assigned its user id. A CONNECT with a
// wrong protocol name, a malformed one or any other first packet is closed
// without an answer.
//
// # Topics
//
// A device only touches its own topics, under gocim/<user id>/: the
// downlink gocim/<id>/down, the uplinks gocim/<id>/up/<user id or name>,
// gocim/<id>/up/g/<group id> and gocim/<id>/up (for the app back-end, its
// webhooks). SUBSCRIBE to gocim/<id>/down, gocim/<id>/# or
// gocim/<id>/down/# is granted min(QoS, 1); any other filter is refused
// (3.1.1 0x80, MQTT 5 0x87). The subscription is implicit: the downlink is
// delivered from CONNACK on whether or not the device subscribes (so a
// persistent session's subscription is remembered in effect), at QoS 1, or
// QoS 0 while the device's subscriptions to it ask for no more. UNSUBSCRIBE
// is answered and changes nothing else. Retained messages are not stored:
// the retain flag is ignored.
//
// # Uplink
//
// A PUBLISH (QoS 0 or 1) to an uplink topic becomes a MSG of KIND_BINARY
// with the payload as its body (bounded by --max-text, like a text) to the
// user or group the topic names, or with to_app. Its client_msg_id is the
// connection's random prefix and a counter. QoS 1 is answered with PUBACK
// when the route's RECEIPT_SENT for it arrives: a PUBACK means stored. A
// refusal is an MQTT 5 PUBACK with a failure reason (0x87 not authorized,
// 0x90 no such addressee, 0x97 over a rate or quota, 0x83 too large,
// 0x80 other); MQTT 3.1.1 has no negative acknowledgement, so the
// connection is closed instead and the device sends it again. QoS 1 uplink
// is at least once: a PUBLISH sent again after a reconnect (DUP) may be
// stored twice. QoS 2 is not supported (MQTT 5 DISCONNECT 0x9B; 3.1.1:
// close). A PUBLISH to any other topic: MQTT 5 PUBACK 0x87 (QoS 1) or
// DISCONNECT 0x87 (QoS 0); 3.1.1: close.
//
// # Downlink
//
// Every MSG for the device is a PUBLISH on gocim/<id>/down; MQTT 5 adds
// user properties (from, from_name, msg_id, to, group, kind, and op and
// ref_msg_id for a recall or edit) and, for text, a content type. Inbox
// entries (and a large group's timeline messages) go out exactly once per
// connection and in order: the Conn keeps the SDK's bookkeeping (a gap is
// held back and filled by SYNC, a SYNC answer that stops short is
// continued), and a QoS 1 message's packet id stands for its seq. The
// device's PUBACKs become cumulative ACKs (ACK{seq}, ACK{groups}): the
// highest position up to which everything sent on this connection was
// acknowledged (QoS 0: written) or was not for the device (receipts, its
// own messages' copies), at most every 100 ms. What the device did not
// acknowledge comes again after a reconnect through the route's SYNC — not
// as a DUP of the same packet. Messages without a seq (broadcasts) go at
// QoS 0. Receipts, presence, typing and SYNC answers are not sent to the
// device; MQTT 3.1.1 devices do not get recalls and edits. At most
// Config.InFlight QoS 1 messages are unacknowledged at once (fewer if an
// MQTT 5 device's receive maximum says so) and as many wait behind them; a
// device that lets more pile up is a slow consumer and is disconnected.
//
// # Keep-alive, will, end
//
// A connection silent for 1.5 × its keep-alive is closed (keep-alive 0:
// the gateway's read timeout); PINGREQ is answered PINGRESP. A will is sent
// like an uplink PUBLISH when the connection ends without DISCONNECT
// (network drop, keep-alive timeout, protocol error), and with MQTT 5
// DISCONNECT 0x04; not when the gateway ends it (kick, drain, slow
// consumer), and the will delay is not applied. MQTT 5 devices are told why
// the gateway ends a connection: DISCONNECT 0x8E (session taken over),
// 0x8B (shutting down), 0x8D (keep-alive), 0x95 (packet too large), 0x81
// (malformed), 0x82 (protocol error), 0x96/0x97 (flooding, slow
// consumer), 0x89 (route out of reach); 3.1.1 devices are just closed.
//
// # Concurrency
//
// Read is called by the connection's reader, Write and CloseWrite by its
// writer (package conn has one of each); Close may be called from any
// goroutine. The Conn adds no goroutine of its own: an idle connection
// costs package conn's reader, parked in WaitFrame with a shallow stack and
// conn's read buffers given back (conn.FrameWaiter), and the Conn's state,
// with no read buffer and no map of its own (BenchmarkIdleMQTTConnection:
// about 7.9 KB, a TCP connection 6.9). What
// the Conn sends to the route on its own (ACKs, follow-up SYNCs) goes
// through the Owner bound to it.
package mqttconn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
)

// Errors an Authenticator's DeviceLogin wraps to say how a login failed.
var (
	// ErrBadCredentials: unknown device, wrong or revoked credential.
	ErrBadCredentials = errors.New("mqttconn: device credential refused")
	// ErrBusy: the route (or the gateway's login queue) is busy: come back
	// later.
	ErrBusy = errors.New("mqttconn: server busy")
)

// Authenticator trades a device's credential for a gateway token
// (routeclient.Client, through the gateway, is one).
type Authenticator interface {
	DeviceLogin(ctx context.Context, req contract.DeviceLogin) (contract.DeviceToken, error)
}

// Owner is the connection code that serves a Conn.
type Owner interface {
	// Uplink forwards f to the route as the connection's own, outside the
	// frame stream: the Conn's ACKs and follow-up SYNCs. It may block
	// briefly (back-pressure).
	Uplink(f *cimpb.Frame)
	// CloseWith closes the connection after f (nil: none) is written.
	CloseWith(why conn.Cause, f *cimpb.Frame) bool
}

// DefaultInFlight is Config.InFlight's default.
const DefaultInFlight = 1000

// Config is shared by all MQTT connections of a gateway.
type Config struct {
	// GatewayID is the gateway the device logins are for.
	GatewayID string
	// Login asks the route for devices' tokens.
	Login Authenticator
	// Gate bounds the logins at the route at once (nil: no bound).
	Gate *Gate
	// MaxFrame is the gateway's --max-frame: a packet's remaining length
	// may be packetOverhead more.
	MaxFrame int
	// MaxBody is the gateway's --max-text: the largest will payload (an
	// uplink's payload is checked by package conn, as a MSG body).
	MaxBody int
	// InFlight bounds the QoS 1 messages sent to a device and not yet
	// acknowledged (default 1000, at most 65535), and as many more waiting
	// behind them; it is also the receive maximum for the device's own QoS
	// 1 messages.
	InFlight int
	Logger   *slog.Logger
}

// NewConfig fills in defaults and returns a Config ready to share.
func NewConfig(cfg Config) *Config {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = codec.DefaultMaxFrame
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 4096
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = DefaultInFlight
	}
	cfg.InFlight = min(cfg.InFlight, 65535)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = cfg.Logger.With("component", "mqtt")
	return &cfg
}

// maxPacket is the largest remaining length accepted.
func (cfg *Config) maxPacket() int { return cfg.MaxFrame + packetOverhead }

// phase is how far a connection got.
type phase uint8

const (
	phaseNew        phase = iota // no CONNECT yet
	phaseConnecting              // CONNECT read: the login is under way
	phaseOnline                  // CONNACK accepted the device
	phaseDone                    // CONNACK refused it, or DISCONNECT is written: nothing more goes out
)

// closeGrace bounds the write of the last packet (CONNACK, DISCONNECT)
// when the connection hangs up.
const closeGrace = 2 * time.Second

// maxReplies bounds the answers (SUBACK, UNSUBACK, PUBACK) waiting for the
// writer: a device that sends more without reading is flooding.
const maxReplies = 1024

// Conn is an MQTT connection seen as a stream of length-prefixed frames.
type Conn struct {
	nc    net.Conn
	cfg   *Config
	rd    reader
	owner Owner

	// Reader side: only Read (and what it calls) touches these.
	in       []byte       // frames Read has not handed out yet
	readErr  error        // returned once in is drained
	finished bool         // readErr was returned: Read only discards now
	will     *cimpb.Frame // the device's will, as an uplink MSG
	msgIDs   msgIDs

	// Writer side: only Write touches it.
	partial []byte // a frame cut short by the end of a Write

	mu             sync.Mutex
	phase          phase
	level          byte // level311 (also for 3.1) or level5 once a CONNECT was read
	uid            string
	down           string // the downlink topic
	sessionPresent bool   // as the route said
	assignedID     string
	keepAlive      time.Duration // 1.5 × the device's keep-alive (0: the gateway's read timeout)
	halfClosed     bool          // CloseWrite ran: the deadlines are conn's
	closed         bool
	noWill         bool // the gateway ends the connection: no will
	ending         bool // the Conn asked the owner to close: nothing more is published
	// refusal is the CONNACK reason for a login the Conn refused; endReason
	// the DISCONNECT reason (MQTT 5) sent when the connection hangs up.
	refusal, endReason byte
	readDeadline       time.Time // the last one package conn set
	loginCancel        context.CancelFunc
	problemInfo        bool   // MQTT 5: reason strings may be sent
	maxOut             uint32 // MQTT 5: the largest packet the device takes (0: no limit)

	nextReq   uint64            // req ids of the Conn's frames (PING answers, MSGs)
	draining  bool              // a PING to wake the writer for waiting messages is out
	replies   map[uint64][]byte // answers waiting for their PONG, by req id
	pendingUp map[uint64]uint16 // req id of a QoS 1 uplink MSG → its packet id
	subs      subscriptions     // own filters subscribed, with their granted QoS
	dl        downlink
}

// New wraps an accepted connection. cfg must come from NewConfig; Bind the
// owner before the first Read.
func New(nc net.Conn, cfg *Config) *Conn {
	return &Conn{nc: nc, cfg: cfg, rd: reader{src: nc}}
}

// Bind names the connection code that serves c.
func (c *Conn) Bind(o Owner) { c.owner = o }

// violation ends a connection for something the device did: reason is the
// MQTT 5 DISCONNECT (or, during login, CONNACK) reason, 0 for none.
type violation struct {
	reason byte
	cause  conn.Cause
	err    error
}

func (v *violation) Error() string { return v.err.Error() }

func violate(reason byte, cause conn.Cause, format string, args ...any) *violation {
	return &violation{reason: reason, cause: cause, err: fmt.Errorf(format, args...)}
}

// errDisconnected: the device sent DISCONNECT.
var errDisconnected = errors.New("mqttconn: DISCONNECT")

// Read returns bytes of the frame stream: each packet that means something
// to package conn as one frame.
func (c *Conn) Read(p []byte) (int, error) {
	c.WaitFrame()
	return c.read(p)
}

// WaitFrame waits for the device's next packet to begin, unless a frame
// or the end is at hand already (conn.FrameWaiter: package conn gives its
// read buffers back meanwhile, with the gateway's --idle-buffers). An idle
// connection's reader waits here with as shallow a stack as the Conn can
// have: Go keeps a goroutine's stack at no less than four times what it
// uses while it waits, so each frame here costs every idle device.
func (c *Conn) WaitFrame() {
	if len(c.in) == 0 && len(c.rd.buf) == 0 && c.readErr == nil && !c.finished {
		c.armKeepAlive()
		n, err := c.rd.src.Read(c.rd.head[:])
		if n > 0 {
			c.rd.buf = c.rd.head[:n]
		} else if err != nil {
			c.fail(err)
		}
	}
}

func (c *Conn) read(p []byte) (int, error) {
	if c.finished {
		// Package conn reads on until the device hangs up, so that the
		// last packet is not cut off by a reset: throw it away.
		return c.rd.Read(p)
	}
	for len(c.in) == 0 {
		if c.readErr != nil {
			c.finished = true
			return 0, c.readErr
		}
		if err := c.await(); err != nil {
			c.fail(err)
			continue
		}
		f, err := c.next()
		if err != nil {
			c.fail(err)
			continue
		}
		if f != nil {
			c.in = appendFrame(c.in, f)
		}
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	if len(c.in) == 0 {
		c.in = nil // an idle connection pins no buffer
	}
	return n, nil
}

func appendFrame(b []byte, f *cimpb.Frame) []byte {
	body, err := proto.Marshal(f)
	if err != nil { // a Frame the Conn built always encodes
		panic(err)
	}
	b = binary.AppendUvarint(b, uint64(len(body)))
	return append(b, body...)
}

// next reads one packet and returns the frame it makes (nil: none).
// await waits for the device's next packet to begin.
func (c *Conn) await() error {
	c.armKeepAlive()
	return c.rd.wait()
}

// armKeepAlive starts the device's keep-alive for its next packet (it
// counts from the last one).
func (c *Conn) armKeepAlive() {
	c.mu.Lock()
	ka, half := c.keepAlive, c.halfClosed
	c.mu.Unlock()
	if ka > 0 && !half {
		_ = c.nc.SetReadDeadline(time.Now().Add(ka))
	}
}

func (c *Conn) next() (*cimpb.Frame, error) {
	c.mu.Lock()
	ph := c.phase
	c.mu.Unlock()
	raw, err := c.readPacket(c.cfg.maxPacket(), ph == phaseNew)
	if err != nil {
		return nil, err
	}
	if ph == phaseNew {
		return c.connect(raw)
	}
	return c.handle(raw)
}

// fail turns a read error into the error package conn gets, sending the
// device's will first when the end is unclean.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	online := c.phase == phaseOnline
	level := c.level
	var v *violation
	final := err
	unclean := online
	switch {
	case errors.Is(err, errDisconnected):
		final = io.EOF
	case errors.As(err, &v):
		switch {
		case c.phase == phaseConnecting && c.refusal == 0:
			c.refusal = v.reason // the CONNACK, when the connection hangs up
		case online && level == level5 && c.endReason == 0:
			c.endReason = v.reason
		}
		final = &conn.EndError{Cause: v.cause, Err: v.err}
	case errors.Is(err, errTooLarge):
		if online && level == level5 {
			c.endReason = rcPacketTooLarge
		}
		final = &conn.EndError{Cause: conn.BadFrame, Err: err}
	case errors.Is(err, errMalformed), errors.Is(err, errNotConnect):
		if online && level == level5 {
			c.endReason = rcMalformed
		}
		final = &conn.EndError{Cause: conn.BadFrame, Err: err}
	case errors.Is(err, os.ErrDeadlineExceeded) && online:
		if level == level5 {
			c.endReason = rcKeepAliveTimeout
		}
		final = &conn.EndError{Cause: conn.Idle, Err: err}
	case errors.Is(err, io.ErrUnexpectedEOF):
		final = io.EOF // the socket ended inside a packet
	}
	sendWill := unclean && c.will != nil && !c.noWill && !c.closed
	c.mu.Unlock()
	c.readErr = final
	if sendWill {
		c.in = appendFrame(c.in, c.will)
	}
	c.will = nil
}

// Write takes bytes of the frame stream (whole frames, as package conn
// writes them) and sends the packets they make in one write.
func (c *Conn) Write(b []byte) (int, error) {
	buf := b
	if len(c.partial) > 0 {
		c.partial = append(c.partial, b...)
		buf = c.partial
	}
	var w writeBatch
	c.mu.Lock()
	for len(buf) > 0 {
		n, k := binary.Uvarint(buf)
		if k < 0 {
			c.mu.Unlock()
			return 0, errors.New("mqttconn: bad length prefix in the frame stream")
		}
		if k == 0 || uint64(len(buf)-k) < n {
			break // the rest comes with the next Write
		}
		f := &cimpb.Frame{}
		if err := proto.Unmarshal(buf[k:k+int(n)], f); err != nil {
			c.mu.Unlock()
			return 0, fmt.Errorf("mqttconn: frame from the gateway: %w", err)
		}
		c.translateLocked(&w, f)
		buf = buf[k+int(n):]
	}
	c.drainLocked(&w)
	c.mu.Unlock()
	c.partial = append(c.partial[:0], buf...)
	if len(c.partial) == 0 {
		c.partial = nil
	}
	if len(w.out) > 0 {
		if _, err := c.nc.Write(w.out); err != nil {
			return 0, err
		}
	}
	c.afterWrite(&w)
	return len(b), nil
}

// writeBatch is what one Write produces: packets for the device, and
// what to do once they are written.
type writeBatch struct {
	out     []byte
	uplinks []*cimpb.Frame // SYNCs for the route
	endWhy  conn.Cause     // the Conn ends the connection (Open: no)
	endWith *cimpb.Frame
}

func (c *Conn) afterWrite(w *writeBatch) {
	if c.owner == nil {
		return
	}
	for _, f := range w.uplinks {
		c.owner.Uplink(f)
	}
	if w.endWhy != conn.Open {
		c.owner.CloseWith(w.endWhy, w.endWith)
	}
}

// translateLocked turns one frame for the device into packets.
func (c *Conn) translateLocked(w *writeBatch, f *cimpb.Frame) {
	switch c.phase {
	case phaseConnecting:
		switch f.Type {
		case cimpb.Type_LOGIN_ACK:
			w.out = c.connackLocked(w.out, rcSuccess)
			c.phase = phaseOnline
		case cimpb.Type_ERROR:
			// The login did not go through after all (the route took the
			// session away meanwhile, the gateway is shutting down).
			rc := c.refusal
			if rc == 0 {
				rc = connackReason(codeOf(f))
			}
			w.out = c.connackLocked(w.out, rc)
			c.phase = phaseDone
		}
	case phaseOnline:
		c.downLocked(w, f)
	}
}

// CloseWrite sends what the device is owed before the connection hangs
// up — the CONNACK refusing its login, or the MQTT 5 DISCONNECT saying why
// the gateway ends it — and half-closes the socket: the device reads
// everything and sees the end.
func (c *Conn) CloseWrite() error {
	c.mu.Lock()
	c.halfClosed = true
	c.stopLoginLocked()
	var out []byte
	switch {
	case c.phase == phaseConnecting:
		rc := c.refusal
		if rc == 0 {
			rc = rcUnspecified
		}
		out = c.connackLocked(nil, rc)
	case c.phase == phaseOnline && c.level == level5 && c.endReason != 0:
		out = c.disconnectLocked(nil, c.endReason)
	}
	if c.phase != phaseNew {
		c.phase = phaseDone
	}
	c.mu.Unlock()
	if len(out) > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(closeGrace))
		if _, err := c.nc.Write(out); err != nil {
			return err
		}
	}
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("mqttconn: the socket cannot half-close")
}

// Close closes the socket at once and sends the route the acknowledgement
// still due.
func (c *Conn) Close() error {
	c.mu.Lock()
	first := !c.closed
	c.closed = true
	c.stopLoginLocked()
	var ack *cimpb.Frame
	if first {
		ack = c.closeAcksLocked()
	}
	c.mu.Unlock()
	err := c.nc.Close()
	if ack != nil && c.owner != nil {
		c.owner.Uplink(ack)
	}
	return err
}

func (c *Conn) stopLoginLocked() {
	if c.loginCancel != nil {
		c.loginCancel()
		c.loginCancel = nil
	}
}

// handshaker is a connection with a handshake to finish first (*tls.Conn).
type handshaker interface {
	HandshakeContext(ctx context.Context) error
}

// HandshakeContext runs the TLS handshake when the socket speaks TLS, so
// that package conn bounds it by the login timeout as on its TCP port.
func (c *Conn) HandshakeContext(ctx context.Context) error {
	if hs, ok := c.nc.(handshaker); ok {
		return hs.HandshakeContext(ctx)
	}
	return nil
}

// LocalAddr returns the gateway's end of the socket.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr returns the device's end of the socket.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.nc.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline. Once the device logged in with
// a keep-alive, its 1.5 × keep-alive replaces the gateway's read timeout
// (Read renews it with every packet); the deadline of a connection that is
// hanging up is package conn's.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline = t
	if ka := c.keepAlive; ka > 0 && !c.halfClosed && !t.IsZero() {
		t = time.Now().Add(ka)
	}
	c.mu.Unlock()
	return c.nc.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline of the socket.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }
