// Package conn serves one client connection of the gateway: the TLS
// handshake (when the listener speaks TLS) and the LOGIN, both within the
// login timeout, the frame reader with its idle deadline, the checks on what
// a logged-in client sends (one LOGIN per connection, known message kinds,
// text size and UTF-8, per-connection rate limits, a SYNC pace), and a
// bounded write queue drained by a writer that coalesces everything queued
// into one write and never sends a frame over the client's limit.
//
// The writer goroutine only exists while there is something to write: it is
// started by the first Send after the queue went empty and exits when the
// queue is drained again, so an idle connection costs one goroutine (its
// reader) and a few hundred bytes. A client that does not read fast enough to
// keep its queue under Config.WriteQueue frames and Config.WriteQueueBytes
// bytes is disconnected with ERROR SlowConsumer; senders never block on it.
//
// Every way a connection ends goes through one function (end) that records
// the first Cause; Handler.Closed gets it in a CloseReason, and it is logged
// once, at Debug, when the connection is gone.
//
// Serve runs in the goroutine that owns the connection. Send, CloseWith,
// Close and Closing are safe to call from any goroutine. The identity
// accessors (UserID, UserName, SessionID) are set once during login, before
// Handler.Online, and may be read from the Handler callbacks and by anyone who
// found the connection through Register.
package conn

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-server/internal/metrics"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
	"github.com/gocim/gocim/proto/codes"
	"github.com/gocim/gocim/proto/token"
)

// DefaultWriteQueueBytes is Config.WriteQueueBytes's default (8 MiB). It
// holds what a client may make the gateway send it before it reads: a
// burst of MSGs (MsgBurst, 100) of the default MaxFrame (64 KiB) to itself
// comes back as 6.25 MiB of pushes and receipts (a client that writes
// everything before it reads, as e2e TestSyncAnswersBoundedInBytes does, is
// a slow consumer at 1 MiB), and SYNC answers are about 256 KiB each.
const DefaultWriteQueueBytes = 8 << 20

const (
	// readBufSize is small on purpose: most frames are a few hundred bytes,
	// and larger ones are read straight into the frame buffer.
	readBufSize = 512
	// maxDiscard bounds how much a closing connection reads (and throws
	// away) while waiting for the peer to hang up.
	maxDiscard = 1 << 20
)

// Handler is what a connection needs from the gateway.
type Handler interface {
	// Online reports a verified login to the route. The connection must be
	// reachable for pushes to its session from before the route confirms
	// it (frames sent to it are held until LOGIN_ACK is queued, so that it
	// is the first frame the client sees). An error wrapping
	// contract.ErrNotCurrent refuses the login as Unauthorized; any
	// other error refuses it as Unavailable.
	Online(ctx context.Context, c *Conn) error
	// Register makes the connection the user's one connection here, once
	// the route confirmed it; LOGIN_ACK is queued right after.
	Register(c *Conn)
	// Uplink forwards a MSG/ACK/READ/SYNC frame to the route. It may block
	// for back-pressure.
	Uplink(ctx context.Context, c *Conn, f *cimpb.Frame) error
	// Closed is called once when the connection is gone, with why it
	// ended and whether Online had succeeded.
	Closed(c *Conn, why CloseReason)
}

// Config is shared by all connections of a gateway.
type Config struct {
	GatewayID    string
	Keys         [][]byte      // token keys, current first
	MaxFrame     int           // largest accepted frame payload
	LoginTimeout time.Duration // time allowed for the TLS handshake and the LOGIN frame
	ReadTimeout  time.Duration // idle time after which a connection is closed
	// IdleBuffers is how long a connection sends nothing before its read
	// buffers go back to a pool until its next byte (input.go; 0: never).
	// The transport must read on after a read deadline passed (TCP, TLS,
	// package wsconn), or wait for frames itself (a FrameWaiter: package
	// mqttconn): then the buffers go back at every wait.
	IdleBuffers time.Duration
	WriteQueue  int // frames queued before the client is a slow consumer
	// WriteQueueBytes bounds the bytes (proto.Size) of the frames queued
	// for the client and not yet written (default 8 MiB); over it, the
	// client is a slow consumer. A frame larger than the bound still goes
	// when nothing else is queued or being written.
	WriteQueueBytes int
	// MaxText is the longest KIND_TEXT or KIND_BINARY body accepted, in
	// bytes (default 4096).
	MaxText int
	// MsgRate is how many MSG frames per second one connection has
	// forwarded; MsgBurst how many at once (default 100). A MSG over the
	// rate waits (the reader pauses), so the sender's order holds. ACK,
	// READ and TYPING share a second limiter of 10× both, and are dropped
	// over it; PINGs (but one a second) and frames answered with an ERROR
	// a third of the same rate and burst, and go unanswered over it. 0
	// turns rate limiting off.
	MsgRate  float64
	MsgBurst int
	// SyncRate is how many SYNC frames per second one connection has
	// forwarded to the route; SyncBurst how many at once (default 20). A
	// SYNC over the rate waits (the connection's reader pauses) rather than
	// being dropped, so a client loses nothing while one connection cannot
	// make the route read its inbox more often than this. The SYNC the
	// gateway sends after LOGIN is not counted. 0 turns it off.
	SyncRate  float64
	SyncBurst int
	// WriteTimeout bounds one write to the client (default 10s).
	WriteTimeout time.Duration
	// CloseTimeout bounds the last write of a closing connection and the
	// wait for the peer to hang up (default 2s).
	CloseTimeout time.Duration
	Logger       *slog.Logger
	// Metrics counts the connections' logins, frames and slow-consumer
	// closes under their transport (nil: nothing is counted). Gateways
	// give each transport a Config of its own.
	Metrics *metrics.Transport

	// newSyncWaiter makes a connection's SYNC pace (tests inject their own;
	// nil: a token bucket of SyncRate and SyncBurst); newMsgWaiter its MSG
	// pace (nil: a token bucket of MsgRate and MsgBurst).
	newSyncWaiter, newMsgWaiter func() waiter
	// idled is called when a connection has given its read buffers back,
	// timer: a busy one after its idle spell (tests; nil: nothing).
	idled func(timer bool)
	// oversized rate-bounds the warning about frames dropped for size.
	oversized *Throttle
}

// waiter paces work: Allow takes a turn if one is free now; Wait waits for
// the next turn, or returns ctx's error. *rate.Limiter is one.
type waiter interface {
	Allow() bool
	Wait(ctx context.Context) error
}

func (cfg *Config) withDefaults() {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = codec.DefaultMaxFrame
	}
	if cfg.LoginTimeout <= 0 {
		cfg.LoginTimeout = 10 * time.Second
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 180 * time.Second
	}
	if cfg.WriteQueue <= 0 {
		cfg.WriteQueue = 1024
	}
	if cfg.WriteQueueBytes <= 0 {
		cfg.WriteQueueBytes = DefaultWriteQueueBytes
	}
	if cfg.MaxText <= 0 {
		cfg.MaxText = 4096
	}
	if cfg.MsgRate < 0 {
		cfg.MsgRate = 0
	}
	if cfg.MsgBurst <= 0 {
		cfg.MsgBurst = 100
	}
	if cfg.SyncRate < 0 {
		cfg.SyncRate = 0
	}
	if cfg.SyncBurst <= 0 {
		cfg.SyncBurst = 20
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
}

// Conn is one client connection.
type Conn struct {
	nc  net.Conn
	cfg *Config
	h   Handler

	// Set by the reader during login, before the connection is registered
	// anywhere other goroutines could find it; read-only afterwards.
	userID, userName, sessionID, platform string
	hubKey                                string // contract.DeviceKey of the user and session

	// Owned by the reader goroutine; lim is created at the first limited
	// frame, and only when rate limiting is on.
	in       input
	lim      *limits
	syncPace waiter
	pingAt   int64 // when the last free PING came (Unix ns; see mayAnswer)

	mu      sync.Mutex
	pending []queued
	// pendingBytes is the size (proto.Size) of the frames in pending;
	// writingBytes that of the batch the writer is writing (0 when none).
	pendingBytes, writingBytes int
	acked                      bool // LOGIN_ACK is queued: frames sent before wait for it
	writing                    bool // a writer goroutine is running
	closing                    bool // no more frames are accepted
	final                      bool // closing with a last frame: hang up after it is written
	broken                     bool // the socket is closed; nothing more is written
	reported                   bool // Handler.Closed is being called: the cause is final
	cause                      Cause
	causeErr                   error // what went wrong, when the cause has details
	// cancelWait aborts what the reader waits for, when closing: the TLS
	// handshake, the route's answer to the login, a SYNC's turn.
	cancelWait context.CancelFunc
	writer     sync.WaitGroup
}

// NewConfig fills in defaults and returns a Config ready to share.
func NewConfig(cfg Config) *Config {
	cfg.withDefaults()
	cfg.Logger = cfg.Logger.With("component", "conn")
	cfg.oversized = NewThrottle(10 * time.Second)
	return &cfg
}

// New wraps an accepted connection. cfg must come from NewConfig.
func New(nc net.Conn, cfg *Config, h Handler) *Conn {
	return &Conn{nc: nc, cfg: cfg, h: h}
}

// UserID returns the logged-in user's id ("" before login).
func (c *Conn) UserID() string { return c.userID }

// HubKey is the key of the connection's user and device slot
// (contract.DeviceKey): one connection per key on a gateway.
func (c *Conn) HubKey() string { return c.hubKey }

// UserName returns the logged-in user's name.
func (c *Conn) UserName() string { return c.userName }

// SessionID returns the session the connection logged in with.
func (c *Conn) SessionID() string { return c.sessionID }

// Platform is what the login named (its token's platform; empty: none).
func (c *Conn) Platform() string { return c.platform }

// RemoteAddr returns the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

var pong = &cimpb.Frame{Type: cimpb.Type_PONG}

// ErrorFrame returns an ERROR frame for code; detail, when not empty, is
// appended to the code's text.
func ErrorFrame(reqID uint64, code codes.Code, detail, clientMsgID string) *cimpb.Frame {
	text := code.Text()
	if detail != "" {
		text += ": " + detail
	}
	return &cimpb.Frame{Type: cimpb.Type_ERROR, ReqId: reqID,
		Error: &cimpb.Error{Code: int32(code), Text: text, ClientMsgId: clientMsgID}}
}

// Serve runs the connection until it closes: login, then frames. It returns
// once the connection is closed, its writer has finished and the Handler
// has been told.
func (c *Conn) Serve(ctx context.Context) {
	c.readers()
	online := c.login(ctx, c.in.fr)
	if online {
		c.cfg.Metrics.LoggedIn()
		// Most clients say nothing for a while after their login: the
		// connection starts idle (input.go), its buffers given back until
		// its next bytes, without the idle timer's wake-up.
		c.in.idle = true
		c.readLoop(ctx)
	}
	c.finish(online)
}

// readers gives the connection its buffered reader (from the pool) and its
// frame reader.
//
//go:noinline
func (c *Conn) readers() {
	c.in.c = c
	c.in.br = readBufs.Get().(*bufio.Reader)
	c.in.br.Reset(&c.in)
	c.in.fr = codec.NewReader(c.in.br, c.cfg.MaxFrame)
	c.in.fw, _ = c.nc.(FrameWaiter)
}

// finish ends what Serve began, once the reader is done. It is a function
// of its own so that Serve's frame, which an idle connection's reader
// keeps on its stack, stays small: Go shrinks an idle goroutine's stack
// only to four times what it uses, and a reader that crosses the line
// keeps 8 KiB instead of 4 KiB.
func (c *Conn) finish(online bool) {
	// Whatever ended the reader closed the connection with its cause; this
	// is a no-op then, and only a safety net.
	c.end(PeerClosed, stop, nil, nil)

	c.mu.Lock()
	final := c.final && !c.broken
	c.mu.Unlock()
	if final {
		// The writer is sending a last frame; it then half-closes and sets
		// a short read deadline. Reading until the peer hangs up lets the
		// frame arrive instead of being cut off by a reset.
		_, _ = io.CopyN(io.Discard, c.in.reader(), maxDiscard)
	}
	c.writer.Wait()
	_ = c.nc.Close()
	if c.in.br != nil {
		c.in.release()
	}

	c.mu.Lock()
	c.reported = true
	why, err := CloseReason{Cause: c.cause, WasOnline: online}, c.causeErr
	c.mu.Unlock()
	c.logClosed(why, err)
	c.count(why, err)
	c.h.Closed(c, why)
}

// logClosed logs, at Debug, why the connection ended: once per connection.
func (c *Conn) logClosed(why CloseReason, err error) {
	log := c.cfg.Logger
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	args := []any{"reason", why.Cause.String(), "online", why.WasOnline, "remote", c.nc.RemoteAddr()}
	if c.userID != "" {
		args = append(args, "user", c.userID, "session", c.sessionID)
	}
	if err != nil {
		args = append(args, "err", err)
	}
	log.Debug("connection closed", args...)
}

// count updates the metrics for a connection that ended.
func (c *Conn) count(why CloseReason, err error) {
	m := c.cfg.Metrics
	if m == nil {
		return
	}
	if why.Cause == SlowConsumer {
		m.SlowConsumer()
	}
	if why.WasOnline {
		m.LoggedOut()
		return
	}
	m.LoginFailed(loginFailure(why.Cause, err))
}

// loginFailure maps why a connection ended before its login completed to
// a bounded metrics reason.
func loginFailure(cause Cause, err error) metrics.Reason {
	switch cause {
	case HandshakeFailed:
		return metrics.TLSHandshake
	case LoginTimeout:
		return metrics.Timeout
	case BadFrame:
		return metrics.BadFrame
	case LoginRefused:
		var te *tokenError
		var re *routeError
		switch {
		case errors.As(err, &te) && errors.Is(err, token.ErrWrongGateway):
			return metrics.WrongGateway
		case errors.As(err, &te):
			return metrics.BadToken
		case errors.As(err, &re) && errors.Is(err, contract.ErrNotCurrent):
			return metrics.NotCurrent
		case errors.As(err, &re):
			return metrics.RouteUnavailable
		}
		return metrics.Refused // a transport's own refusal (an MQTT CONNECT)
	}
	return metrics.Closed
}

// tokenError is a LOGIN token that did not verify.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// routeError is the route's refusal of a login, or its absence.
type routeError struct{ err error }

func (e *routeError) Error() string { return "route: " + e.err.Error() }
func (e *routeError) Unwrap() error { return e.err }

// login reads and checks the LOGIN frame, reports the session to the route
// and queues LOGIN_ACK. It returns whether the route accepted the session.
func (c *Conn) login(ctx context.Context, r *codec.Reader) bool {
	log := c.cfg.Logger
	// The TLS handshake and the LOGIN share the login timeout, so a client
	// that connects and then stalls at any point is gone after it.
	deadline := time.Now().Add(c.cfg.LoginTimeout)
	if hs, ok := c.nc.(handshaker); ok && !c.handshake(ctx, hs, deadline) {
		return false
	}
	if c.armReadDeadlineAt(deadline) {
		return false
	}
	f, err := r.ReadFrame()
	if err != nil {
		c.readFailed(err, true)
		return false
	}
	c.cfg.Metrics.FrameIn(f.Type)
	if f.Type != cimpb.Type_LOGIN || f.Login == nil {
		c.end(BadFrame, flush, ErrorFrame(f.ReqId, codes.BadFrame, "first frame must be LOGIN", ""), nil)
		return false
	}
	claims, err := token.Verify(c.cfg.Keys, f.Login.Token, c.cfg.GatewayID, time.Now())
	if err != nil {
		code := codes.Unauthorized
		if errors.Is(err, token.ErrWrongGateway) {
			code = codes.WrongGateway
		}
		c.end(LoginRefused, flush, ErrorFrame(f.ReqId, code, err.Error(), ""), &tokenError{err})
		return false
	}
	// The route call can take up to the retry window; let CloseWith (a
	// shutdown) abort it.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	// Under the lock because a writer started by CloseWith may log them.
	c.userID, c.userName, c.sessionID, c.platform = claims.UserID, claims.UserName, claims.SessionID, claims.Platform
	c.hubKey = contract.DeviceKey(claims.UserID, claims.SessionID)
	if c.closing {
		c.mu.Unlock()
		return false
	}
	c.cancelWait = cancel
	c.mu.Unlock()
	err = c.h.Online(lctx, c)
	c.mu.Lock()
	c.cancelWait = nil
	c.mu.Unlock()
	if err != nil {
		code := codes.Unavailable
		if errors.Is(err, contract.ErrNotCurrent) {
			code = codes.Unauthorized
		}
		c.end(LoginRefused, flush, ErrorFrame(f.ReqId, code, "", ""), &routeError{err})
		return false
	}
	c.h.Register(c)
	ack := &cimpb.Frame{Type: cimpb.Type_LOGIN_ACK, ReqId: f.ReqId, LoginAck: &cimpb.LoginAck{
		UserId: c.userID, UserName: c.userName, SessionId: c.sessionID,
		GatewayId: c.cfg.GatewayID, ServerTimeMs: time.Now().UnixMilli(),
	}}
	if c.acknowledge(ack) {
		log.Debug("login", "user", c.userID, "session", c.sessionID, "remote", c.nc.RemoteAddr())
		// LOGIN carries the last seq the client has shown: ask the route for
		// everything after it on the client's behalf. A client with no state
		// (0) starts after what it acknowledged last time.
		last := f.Login.LastSeq
		sync := &cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: last, FromAcked: last == 0, AfterTsMs: f.Login.LastTsMs, WithGroups: true}}
		if err := c.h.Uplink(ctx, c, sync); err != nil {
			log.Debug("login sync not forwarded", "user", c.userID, "err", err)
		}
	}
	return true
}

func (c *Conn) readLoop(ctx context.Context) {
	for {
		now := time.Now()
		deadline := now.Add(c.cfg.ReadTimeout)
		var closing bool
		var err error
		if c.cfg.IdleBuffers > 0 && c.in.br.Buffered() == 0 {
			closing, err = c.in.awaitFrame(now, deadline)
		} else {
			closing = c.armReadDeadlineAt(deadline)
		}
		if closing {
			// finish reads what the client still sends, up to maxDiscard
			// and without decoding it, until it hangs up: a client that
			// goes on sending after its flood was refused costs that much.
			return
		}
		var f *cimpb.Frame
		if err == nil {
			f, err = c.in.fr.ReadFrame()
		}
		if err != nil {
			c.readFailed(err, false)
			return
		}
		c.cfg.Metrics.FrameIn(f.Type)
		c.dispatch(ctx, f)
	}
}

func (c *Conn) dispatch(ctx context.Context, f *cimpb.Frame) {
	switch f.Type {
	case cimpb.Type_PING:
		if !c.mayAnswer(f) {
			return
		}
		p := pong
		if f.ReqId != 0 {
			p = &cimpb.Frame{Type: cimpb.Type_PONG, ReqId: f.ReqId}
		}
		c.Send(p)
	case cimpb.Type_MSG, cimpb.Type_ACK, cimpb.Type_READ, cimpb.Type_SYNC:
		if (f.Type == cimpb.Type_MSG && f.Msg == nil) || (f.Type == cimpb.Type_ACK && f.Ack == nil) ||
			(f.Type == cimpb.Type_READ && f.Read == nil) {
			c.refuse(f, ErrorFrame(f.ReqId, codes.BadFrame, f.Type.String()+" frame without its payload", ""))
			return
		}
		if f.Type == cimpb.Type_SYNC {
			if !c.paceSync(ctx) {
				return
			}
		} else if c.cfg.MsgRate > 0 && !c.admit(ctx, f) {
			return
		}
		if f.Type == cimpb.Type_MSG {
			if problem := msgProblem(f.Msg, c.cfg.MaxText); problem != "" {
				c.Send(ErrorFrame(f.ReqId, codes.BadArgument, problem, f.Msg.ClientMsgId))
				return
			}
		}
		if err := c.h.Uplink(ctx, c, f); err != nil && f.Type == cimpb.Type_MSG {
			c.Send(ErrorFrame(f.ReqId, codes.Unavailable, "", f.Msg.ClientMsgId))
		}
	case cimpb.Type_SUBSCRIBE:
		// A SUBSCRIBE costs the route a lookup of every user it names:
		// paced like a SYNC.
		if f.Subscribe == nil {
			f.Subscribe = &cimpb.Subscribe{} // empty: watch nobody
		}
		if n := len(f.Subscribe.Users) + len(f.Subscribe.Groups); n > MaxSubscribe {
			c.refuse(f, ErrorFrame(f.ReqId, codes.BadArgument, fmt.Sprintf("subscribe names %d users and groups, the limit is %d", n, MaxSubscribe), ""))
			return
		}
		if !c.paceSync(ctx) {
			return
		}
		_ = c.h.Uplink(ctx, c, f)
	case cimpb.Type_TYPING:
		// Typing is shown for a few seconds and never stored: one over the
		// rate is dropped (like an ACK), a flood closes the connection.
		if f.Typing == nil || (f.Typing.To == "") == (f.Typing.Group == "") {
			c.refuse(f, ErrorFrame(f.ReqId, codes.BadFrame, "TYPING names one peer or one group", ""))
			return
		}
		if c.cfg.MsgRate > 0 && !c.admit(ctx, f) {
			return
		}
		_ = c.h.Uplink(ctx, c, f)
	case cimpb.Type_LOGIN:
		// One identity per connection: a client that wants another one
		// connects again.
		c.end(BadFrame, flush, ErrorFrame(f.ReqId, codes.BadFrame, "already logged in: one LOGIN per connection", ""), nil)
	default:
		c.refuse(f, ErrorFrame(f.ReqId, codes.BadFrame, "unexpected "+f.Type.String()+" frame", ""))
	}
}

// refuse answers f with e, an ERROR the connection stays open after,
// within the connection's limit on answers (see mayAnswer).
func (c *Conn) refuse(f, e *cimpb.Frame) {
	if c.mayAnswer(f) {
		c.Send(e)
	}
}

// MaxSubscribe bounds the users and groups one SUBSCRIBE names (the route
// bounds the users watched in all, --max-watch).
const MaxSubscribe = 1000

// handshaker is a connection with a handshake to finish first (*tls.Conn).
type handshaker interface {
	HandshakeContext(ctx context.Context) error
}

// handshake runs the TLS handshake here, in the connection's own goroutine
// (never in the accept loop), until deadline. CloseWith aborts it. It
// reports whether the handshake succeeded.
func (c *Conn) handshake(ctx context.Context, hs handshaker, deadline time.Time) bool {
	var err error
	if !c.interruptible(ctx, deadline, func(ctx context.Context) { err = hs.HandshakeContext(ctx) }) {
		return false
	}
	if err != nil {
		// Nothing can be said to a client that does not speak TLS.
		c.end(HandshakeFailed, stop, nil, err)
		return false
	}
	return true
}

// msgProblem says what is wrong with a message ("" when nothing is): a kind
// the protocol does not define (it would skip the checks meant for it), a
// KIND_TEXT body that is too long or not UTF-8, or a KIND_BINARY body (a
// device's payload: any bytes) over the same limit. The common case does
// not allocate.
func msgProblem(m *cimpb.Msg, maxText int) string {
	switch m.Kind {
	case cimpb.Kind_KIND_TEXT:
	case cimpb.Kind_KIND_BINARY:
		if len(m.Body) > maxText {
			return fmt.Sprintf("binary body is %d bytes, the limit is %d", len(m.Body), maxText)
		}
		return ""
	case cimpb.Kind_KIND_FILE:
		return ""
	default:
		return fmt.Sprintf("unknown message kind %d", int32(m.Kind))
	}
	if len(m.Body) > maxText {
		return fmt.Sprintf("text is %d bytes, the limit is %d", len(m.Body), maxText)
	}
	if !utf8.Valid(m.Body) {
		return "text is not valid UTF-8"
	}
	return ""
}

// paceSync waits until the connection may forward another SYNC and
// reports whether it may (false: the connection is closing). Only the
// reader goroutine calls it.
func (c *Conn) paceSync(ctx context.Context) bool {
	if c.syncPace == nil {
		if c.cfg.SyncRate <= 0 {
			return true
		}
		if c.cfg.newSyncWaiter != nil {
			c.syncPace = c.cfg.newSyncWaiter()
		} else {
			c.syncPace = rate.NewLimiter(rate.Limit(c.cfg.SyncRate), c.cfg.SyncBurst)
		}
	}
	if c.syncPace.Allow() {
		return true
	}
	// Over the pace (an attack, or a client far off course): wait, unless
	// the connection closes meanwhile.
	var err error
	if !c.interruptible(ctx, time.Time{}, func(ctx context.Context) { err = c.syncPace.Wait(ctx) }) {
		return false
	}
	return err == nil
}

// interruptible runs wait with a context that ends at deadline (zero: no
// deadline) or when the connection closes (CloseWith cancels it); false,
// without running wait, when the connection is already closing.
func (c *Conn) interruptible(ctx context.Context, deadline time.Time, wait func(context.Context)) bool {
	var cancel context.CancelFunc
	if deadline.IsZero() {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	}
	defer cancel()
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	c.cancelWait = cancel
	c.mu.Unlock()
	wait(ctx)
	c.mu.Lock()
	c.cancelWait = nil
	c.mu.Unlock()
	return true
}

// limits are one connection's token buckets.
type limits struct {
	msg   waiter        // MSG: a pace
	other *rate.Limiter // ACK, READ, TYPING: 10× the MSG rate and burst
	// answered is for the frames the gateway answers itself (a PING's PONG,
	// a bad frame's ERROR): the MSG rate and burst. Made at the first one.
	answered *rate.Limiter
	// refused counts frames refused in a row; above MsgBurst the client is
	// flooding and is disconnected.
	refused int
}

// otherFactor scales the MSG limits for ACK/READ, which a client sends
// more of (one ACK per batch of shown messages, READs as it scrolls).
const otherFactor = 10

// pingSpacing is how far apart PINGs are free: heartbeats (one a minute
// from the SDK) never touch the rate limits, so an idle connection holds
// none.
const pingSpacing = time.Second

// limits returns the connection's token buckets, made at the first frame
// they limit.
func (c *Conn) limits() *limits {
	if c.lim == nil {
		r, b := c.cfg.MsgRate, c.cfg.MsgBurst
		l := &limits{other: rate.NewLimiter(rate.Limit(r*otherFactor), b*otherFactor)}
		if c.cfg.newMsgWaiter != nil {
			l.msg = c.cfg.newMsgWaiter()
		} else {
			l.msg = rate.NewLimiter(rate.Limit(r), b)
		}
		c.lim = l
	}
	return c.lim
}

// admit charges f to the connection's rate limits and reports whether it
// may go on. A MSG over the rate waits for its turn (the reader pauses, so
// the client's writes back up in its own socket): refusing it would make
// the client send it again later, after newer messages, and a sender's
// messages must be stored in the order written, even when a backlog
// arrives at once (a gateway resumed after a pause, a client replaying
// what went unanswered on a new link). An ACK, READ or TYPING over its
// rate is dropped (an ACK's next one supersedes it); more than MsgBurst
// refused in a row close the connection with ERROR RateLimited
// "flooding". Only the reader goroutine calls it; admitting in time does
// not allocate.
func (c *Conn) admit(ctx context.Context, f *cimpb.Frame) bool {
	l := c.limits()
	if f.Type == cimpb.Type_MSG {
		l.refused = 0 // a frame in between: the refusals are not in a row
		if l.msg.Allow() {
			return true
		}
		var err error
		if !c.interruptible(ctx, time.Time{}, func(ctx context.Context) { err = l.msg.Wait(ctx) }) {
			return false
		}
		return err == nil
	}
	return c.take(l.other, f)
}

// mayAnswer reports whether f, a frame the gateway answers itself (a
// PING, or a bad frame with an ERROR the connection stays open after), gets
// its answer. One answer costs the gateway a frame to write as a MSG's
// receipt does, for the client a few bytes: without a bound, one client's
// stream of them would keep a gateway core busy. A PING a second or more
// after the last free one is free; the rest share a bucket of the MSG rate
// and burst, are left unanswered over it, and close the connection as
// flooding as ACKs do.
func (c *Conn) mayAnswer(f *cimpb.Frame) bool {
	if c.cfg.MsgRate <= 0 {
		return true
	}
	if f.Type == cimpb.Type_PING {
		if sp, ok := c.nc.(selfPinger); ok && sp.OwnPing(f.ReqId) {
			return true
		}
		if now := time.Now().UnixNano(); now-c.pingAt >= int64(pingSpacing) {
			c.pingAt = now
			return true
		}
	}
	l := c.limits()
	if l.answered == nil {
		l.answered = rate.NewLimiter(rate.Limit(c.cfg.MsgRate), c.cfg.MsgBurst)
	}
	return c.take(l.answered, f)
}

// A selfPinger is a transport adapter (package mqttconn) some of whose
// PINGs are its own, made to have its writer run, not its client's: those
// are never limited.
type selfPinger interface {
	OwnPing(reqID uint64) bool
}

// take charges f to b: over it, f is refused, and more than MsgBurst
// refused in a row close the connection with ERROR RateLimited "flooding".
func (c *Conn) take(b *rate.Limiter, f *cimpb.Frame) bool {
	l := c.lim
	if b.Allow() {
		l.refused = 0
		return true
	}
	l.refused++
	if l.refused > c.cfg.MsgBurst {
		c.cfg.Logger.Warn("flooding client disconnected", "user", c.userID, "remote", c.nc.RemoteAddr(),
			"type", f.Type, "refused_in_a_row", l.refused)
		c.end(Flooding, flush, ErrorFrame(f.ReqId, codes.RateLimited, "flooding", ""), nil)
	}
	return false
}

// armReadDeadlineAt sets the read deadline unless the connection is closing
// (then the writer owns the deadline) and reports whether it is closing.
func (c *Conn) armReadDeadlineAt(t time.Time) (closing bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing {
		_ = c.nc.SetReadDeadline(t)
	}
	return c.closing
}

// readFailed closes the connection after a read error: bad input gets an
// ERROR frame before the close, a silent peer during login gets
// LoginTimeout, a transport adapter's EndError closes with its cause and
// no frame, the rest just ends. On a connection already closing
// (reading until the peer hangs up) nothing changes.
func (c *Conn) readFailed(err error, inLogin bool) {
	var ended *EndError
	switch {
	case errors.As(err, &ended):
		// The transport told the client already, in its own terms, or
		// does when the connection hangs up (CloseWrite).
		c.end(ended.Cause, flush, nil, ended.Err)
	case errors.Is(err, codec.ErrFrameTooLarge):
		c.end(BadFrame, flush, ErrorFrame(0, codes.FrameTooLarge, err.Error(), ""), err)
	case errors.Is(err, codec.ErrBadFrame), errors.Is(err, codec.ErrBadLength):
		c.end(BadFrame, flush, ErrorFrame(0, codes.BadFrame, err.Error(), ""), err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		if inLogin {
			c.end(LoginTimeout, flush, ErrorFrame(0, codes.LoginTimeout, "", ""), nil)
		} else {
			c.end(Idle, stop, nil, nil)
		}
	case errors.Is(err, io.EOF):
		c.end(PeerClosed, stop, nil, nil)
	default:
		// A reset, or the socket closed under us: nothing to tell.
		c.end(PeerClosed, stop, nil, err)
	}
}

// acknowledge queues LOGIN_ACK ahead of everything sent to the connection
// while the route confirmed it, and lets the writer go. It reports false
// when the connection is closing.
func (c *Conn) acknowledge(ack *cimpb.Frame) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	c.acked = true
	c.pending = slices.Insert(c.pending, 0, queued{f: ack})
	c.pendingBytes += proto.Size(ack)
	start := c.startWriterLocked()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	return true
}

// Send queues f for the client and reports whether it was accepted. A queue
// over Config.WriteQueue frames or Config.WriteQueueBytes bytes disconnects
// the client as a slow consumer; Send never blocks. Before LOGIN_ACK frames
// are only queued.
func (c *Conn) Send(f *cimpb.Frame) bool { return c.sendFrame(f, nil) }

func (c *Conn) sendFrame(f *cimpb.Frame, k *Cork) bool {
	// Encoded here, on the caller's goroutine, which encodes frame after
	// frame: the writer starts afresh for each burst and would grow its
	// stack for the encoder every time (≈ 5 % of a busy gateway's CPU).
	b, err := codec.AppendFrameMax(nil, f, c.cfg.MaxFrame)
	if err != nil {
		c.mu.Lock()
		user := c.userID
		c.mu.Unlock()
		c.dropped(f, user, err)
		return true // as if written: the client could not have taken it
	}
	return c.send(queued{f: f, b: b}, len(b), k)
}

// SendShared is Send for a frame many connections get (a large group's
// message): it is encoded once, by the first writer that needs it.
func (c *Conn) SendShared(s *Shared) bool {
	return c.send(queued{f: s.frame, shared: s}, s.size, nil)
}

// Cork holds back the writers that sends through it would start until
// Flush: the frames one push batch has for a connection then go out in one
// write, not one write (and one writer wake-up) per frame. A group's burst
// pushed as one batch reaches each member in one syscall. Not safe for
// concurrent use; whoever sends through a Cork must Flush it.
type Cork struct {
	conns []*Conn
	// inline counts the writers Flush finished on its own goroutine.
	inline int
}

// Send is Conn.Send through k.
func (k *Cork) Send(c *Conn, f *cimpb.Frame) bool { return c.sendFrame(f, k) }

// SendShared is Conn.SendShared through k.
func (k *Cork) SendShared(c *Conn, s *Shared) bool {
	return c.send(queued{f: s.frame, shared: s}, s.size, k)
}

// SendEncoded is Send through k for a frame of type t given as its
// protobuf encoding (as a route pushed it): the bytes are written as they
// are, after the length prefix. One over the client's frame limit is
// dropped (and logged) as Send drops it.
func (k *Cork) SendEncoded(c *Conn, t cimpb.Type, frame []byte) bool {
	if max := c.cfg.MaxFrame; max > 0 && len(frame) > max {
		f := &cimpb.Frame{}
		_ = proto.Unmarshal(frame, f) // only for the log's type and seq
		c.mu.Lock()
		user := c.userID
		c.mu.Unlock()
		c.dropped(f, user, fmt.Errorf("%w: %d bytes, limit %d", codec.ErrFrameTooLarge, len(frame), max))
		return true // as if written: the client could not have taken it
	}
	b := make([]byte, 0, binary.MaxVarintLen32+len(frame))
	b = binary.AppendUvarint(b, uint64(len(frame)))
	b = append(b, frame...)
	return c.send(queued{b: b, t: t}, len(b), k)
}

// Flush starts the writers held back. The first maxInline of them take
// their first turn here, on the caller's goroutine, in one non-blocking
// write each (writeInline); a goroutine is started only for a writer that
// has more to do.
func (k *Cork) Flush() {
	for i, c := range k.conns {
		if i < maxInline && c.writeInline() {
			k.inline++
			continue
		}
		go c.writeLoop()
	}
	clear(k.conns)
	k.conns = k.conns[:0]
}

// send queues q (n bytes) and starts the writer if none runs, or leaves
// that to k's Flush.
func (c *Conn) send(q queued, n int, k *Cork) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	queued := c.pendingBytes + c.writingBytes
	// A frame over the byte bound on its own still goes when nothing else
	// is queued or being written.
	if len(c.pending) >= c.cfg.WriteQueue || (queued > 0 && queued+n > c.cfg.WriteQueueBytes) {
		frames, user := len(c.pending), c.userID
		c.mu.Unlock()
		// What is queued will not be read in time; replace it with the
		// reason, and cut short a write that is stuck on this client.
		if c.end(SlowConsumer, replace, ErrorFrame(0, codes.SlowConsumer, "", ""), nil) {
			c.cfg.Logger.Warn("slow consumer disconnected", "user", user, "remote", c.nc.RemoteAddr(),
				"queued_frames", frames, "queued_bytes", queued, "next_frame_bytes", n)
		}
		return false
	}
	c.pending = append(c.pending, q)
	c.pendingBytes += n
	start := c.acked && c.startWriterLocked()
	c.mu.Unlock()
	switch {
	case !start:
	case k != nil:
		k.conns = append(k.conns, c)
	default:
		go c.writeLoop()
	}
	return true
}

// CloseWith queues f (if not nil) as the last frame, then closes the
// connection once it is written, recording why. It reports false if the
// connection was already closing (see Replaced for the one cause that is
// recorded even then).
func (c *Conn) CloseWith(why Cause, f *cimpb.Frame) bool {
	return c.end(why, flush, f, nil)
}

// Close closes the connection at once, dropping anything queued. why is
// recorded unless the connection was already closing.
func (c *Conn) Close(why Cause) {
	c.end(why, abort, nil, nil)
}

// Cause returns what ended the connection (Open while it is not closing).
func (c *Conn) Cause() Cause {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// ending is how end closes a connection.
type ending uint8

const (
	// stop: the reader is done; what is queued is written (once LOGIN_ACK
	// is), then Serve closes the socket.
	stop ending = iota
	// flush: what is queued (once LOGIN_ACK is; else nothing) and then the
	// last frame are written, then the writer hangs up.
	flush
	// replace: what is queued is dropped; the last frame alone is written,
	// within CloseTimeout, then the writer hangs up.
	replace
	// abort: what is queued is dropped and the socket closed now, even on
	// a connection already closing.
	abort
)

// end is the one way a connection begins to close. The first call records
// why (and err, a detail for the log), stops Send, and aborts whatever the
// reader waits for; how says what becomes of the queue and the socket, with
// last as the last frame for flush and replace. A later call changes
// nothing, except that abort still closes the socket and Replaced still
// replaces the cause until Handler.Closed is called. It reports whether
// this call was the first.
func (c *Conn) end(why Cause, how ending, last *cimpb.Frame, err error) bool {
	c.mu.Lock()
	first := !c.closing
	switch {
	case first:
		c.closing = true
		c.cause, c.causeErr = why, err
		c.cancelWaitsLocked()
	case why == Replaced && !c.reported && c.cause != Replaced:
		// Whatever ended it first, its session lives on in the newer
		// connection: that is what Closed must tell.
		c.cause, c.causeErr = why, fmt.Errorf("after %s", c.cause)
	}
	if !first && how != abort {
		c.mu.Unlock()
		return false
	}
	start := false
	switch how {
	case stop:
		if !c.acked {
			c.dropQueueLocked()
		}
	case flush, replace:
		c.final = true
		if how == replace || !c.acked {
			// Nothing held for a login that did not complete goes out.
			c.dropQueueLocked()
		}
		if last != nil {
			c.pending = append(c.pending, queued{f: last})
			c.pendingBytes += proto.Size(last)
		}
		start = c.startWriterLocked()
	case abort:
		c.broken = true
		c.dropQueueLocked()
	}
	c.mu.Unlock()
	switch how {
	case replace:
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.cfg.CloseTimeout))
	case abort:
		_ = c.nc.Close() // wakes the reader, and a writer stuck in Write
	}
	if start {
		go c.writeLoop()
	}
	return first
}

// dropQueueLocked forgets every frame not yet taken by the writer.
func (c *Conn) dropQueueLocked() {
	if len(c.pending) > 0 && c.pending[0].rest {
		// The rest of a frame partly written (writeInline) stays: what
		// follows it would not parse without it.
		r := c.pending[0]
		clear(c.pending)
		c.pending = append(c.pending[:0], r)
		c.pendingBytes = len(r.b)
		return
	}
	clear(c.pending)
	c.pending = nil
	c.pendingBytes = 0
}

// cancelWaitsLocked aborts whatever the reader waits for.
func (c *Conn) cancelWaitsLocked() {
	if c.cancelWait != nil {
		c.cancelWait()
	}
}

// Closing reports whether the connection no longer accepts frames.
func (c *Conn) Closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// startWriterLocked marks a writer as running and reports whether the caller
// must start it. The WaitGroup is incremented under the lock, so Serve's
// Wait (which runs after closing is set) sees every writer.
func (c *Conn) startWriterLocked() bool {
	if c.writing || c.broken {
		return false
	}
	c.writing = true
	c.writer.Add(1)
	return true
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBuf keeps one burst of huge frames from pinning memory in the pool.
const maxPooledBuf = 256 << 10

func (c *Conn) writeLoop() {
	defer c.writer.Done()
	bufp := bufPool.Get().(*[]byte)
	defer func() {
		if cap(*bufp) <= maxPooledBuf {
			*bufp = (*bufp)[:0]
			bufPool.Put(bufp)
		}
	}()
	var batch []queued
	for {
		c.mu.Lock()
		c.writingBytes = 0 // the last batch is written (or never will be)
		if len(c.pending) == 0 || c.broken {
			c.writing = false
			c.pending = nil // an idle connection keeps no queue
			c.pendingBytes = 0
			hangUp := c.final && !c.broken
			c.mu.Unlock()
			if hangUp {
				c.hangUp()
			}
			return
		}
		batch, c.pending = c.pending, batch[:0]
		c.writingBytes, c.pendingBytes = c.pendingBytes, 0
		closing, user := c.closing, c.userID
		c.mu.Unlock()

		buf := c.appendBatch((*bufp)[:0], batch, user)
		clear(batch)
		*bufp = buf
		timeout := c.cfg.WriteTimeout
		if closing {
			timeout = c.cfg.CloseTimeout
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := c.nc.Write(buf); err != nil {
			// The socket is closed and nothing more is written; the loop
			// ends at its next turn.
			c.end(WriteFailed, abort, nil, err)
		}
	}
}

// appendBatch appends the frames of batch to buf as they go on the wire,
// leaving out (and reporting) those over the client's frame limit: the
// client would have to drop the connection, or skip the frame.
func (c *Conn) appendBatch(buf []byte, batch []queued, user string) []byte {
	for _, q := range batch {
		n := len(buf)
		var err error
		if q.b != nil {
			buf = append(buf, q.b...)
		} else if q.shared != nil {
			var b []byte
			if b, err = q.shared.encoded(c.cfg.MaxFrame); err == nil {
				buf = append(buf, b...)
			}
		} else {
			buf, err = codec.AppendFrameMax(buf, q.f, c.cfg.MaxFrame)
		}
		if err != nil {
			buf = buf[:n]
			c.dropped(q.f, user, err)
			continue
		}
		if !q.rest {
			c.cfg.Metrics.FrameOut(q.typ())
		}
	}
	return buf
}

// maxInline bounds the writers one Flush runs on its own goroutine; the
// connections past it get writer goroutines (a large group's message
// reaches thousands of them).
const maxInline = 64

// writeInline is a writer's first turn on the caller's goroutine, for a
// plain TCP connection: what is queued goes out in one non-blocking write.
// When the socket takes all of it and nothing more is queued, the writer
// is done without a goroutine, and writeInline reports true. Otherwise it
// reports false, and the caller starts writeLoop, which finds what the
// socket did not take at the head of the queue. The caller holds the
// writer's turn (startWriterLocked).
func (c *Conn) writeInline() bool {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	c.mu.Lock()
	if len(c.pending) == 0 || c.broken || c.closing {
		// Closing has deadlines and a hang-up to mind: the loop's.
		c.mu.Unlock()
		return false
	}
	batch := c.pending
	c.pending = nil
	c.writingBytes, c.pendingBytes = c.pendingBytes, 0
	user := c.userID
	c.mu.Unlock()

	bufp := bufPool.Get().(*[]byte)
	buf := c.appendBatch((*bufp)[:0], batch, user)
	clear(batch)
	n, werr := writeNonblocking(rc, buf)
	if n == 0 && errors.Is(werr, os.ErrDeadlineExceeded) {
		// A deadline the writer goroutine left, long past; a write that
		// never waits needs none.
		_ = c.nc.SetWriteDeadline(time.Time{})
		n, werr = writeNonblocking(rc, buf)
	}
	var rest []byte
	if werr == nil && n < len(buf) {
		rest = append([]byte(nil), buf[n:]...)
	}
	if cap(buf) <= maxPooledBuf {
		*bufp = buf[:0]
		bufPool.Put(bufp)
	}
	if werr != nil {
		// As the loop's failed write does; the loop then finds the
		// socket broken and ends the turn.
		c.end(WriteFailed, abort, nil, werr)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writingBytes = 0
	switch {
	case werr != nil:
		return false
	case rest != nil:
		c.pending = slices.Insert(c.pending, 0, queued{b: rest, rest: true})
		c.pendingBytes += len(rest)
		return false
	case len(c.pending) > 0 || c.final || c.broken:
		return false
	}
	c.writing = false
	c.pending = nil
	c.writer.Done()
	return true
}

// dropped reports a frame the writer could not send: over the client's
// limit (a warning, at most one per Throttle interval, with the count of
// those held back) or not encodable.
func (c *Conn) dropped(f *cimpb.Frame, user string, err error) {
	if !errors.Is(err, codec.ErrFrameTooLarge) {
		c.cfg.Logger.Error("frame not encodable, dropped", "user", user, "type", f.GetType().String(), "err", err)
		return
	}
	if ok, more := c.cfg.oversized.Allow(time.Now()); ok {
		seq := f.GetMsg().GetSeq() // an inbox entry is a MSG or a RECEIPT
		if f.GetType() == cimpb.Type_RECEIPT {
			seq = f.GetReceipt().GetSeq()
		}
		c.cfg.Logger.Warn("frame over the client's limit dropped", "user", user, "type", f.GetType().String(),
			"seq", seq, "err", err, "dropped_since_last_warning", more)
	}
}

// hangUp ends a closing connection after its last frame: half-close so the
// client reads everything and sees EOF, and give it CloseTimeout to hang up
// before the reader gives up. Without half-close support, close outright.
func (c *Conn) hangUp() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.cfg.CloseTimeout))
		return
	}
	_ = c.nc.Close()
}
