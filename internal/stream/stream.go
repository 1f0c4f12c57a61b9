// Package stream carries requests and their answers both ways over one
// long-lived connection between a route and a gateway: the route's pushes
// (a PushBatch in, a PushResult out) and the gateway's uplink batches (an
// UplinkBatch in, a PushBatch out), many in flight at once, matched by id.
// It replaces an HTTP request per batch: no request set-up, no goroutine
// hand-off per call beyond the handler's own, and every frame queued while
// the connection was busy goes out in the next single write (writev).
//
// A stream starts as an HTTP/1.1 request on the gateway's /push with
// "Upgrade: cim-stream/1" and the internal secret (see Dial and Hijack), so
// the gateway's push endpoint stays the one entry point the route uses.
//
// Wire format: each frame is a 14-byte header, then the payload:
//
//	uint32 payload length (big-endian), uint8 type, uint8 kind, uint64 id
//
// Types: a request (kind says what it is), its answer or failure (same id;
// a failure's payload is one class byte then UTF-8 text), and a ping. Both
// ends ping every Config.PingEvery and drop a connection that sent nothing
// for Config.IdleTimeout, so a frozen peer is noticed; a peer that stops
// reading blocks writers once Config.MaxQueue bytes are queued and is
// dropped when a write makes no progress for Config.WriteTimeout.
//
// A broken stream fails every call in flight with ErrClosed: the caller
// cannot tell whether the peer handled the request, so it retries on
// another path only what is safe to repeat (uplinks are deduplicated by the
// route, pushes by the clients' seqs). A Conn is safe for concurrent use.
package stream

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Kind says what a request carries; the two ends agree on its meaning.
type Kind uint8

// The kinds the route and the gateway exchange.
const (
	// KindPush: route → gateway, a protobuf PushBatch; answered with a
	// protobuf PushResult.
	KindPush Kind = 1
	// KindUplink: gateway → route, a protobuf UplinkBatch; answered with a
	// protobuf PushBatch.
	KindUplink Kind = 2
)

// Frame types.
const (
	typeRequest byte = 1
	typeAnswer  byte = 2
	typeFailure byte = 3
	typePing    byte = 4
)

// hdrLen is the size of a frame header.
const hdrLen = 14

// Failure classes: whether retrying elsewhere can help.
const (
	classUnavailable byte = 1
	classRejected    byte = 2
)

var (
	// ErrClosed means the stream ended before the answer came: the peer
	// may or may not have handled the request.
	ErrClosed = errors.New("stream: closed")
	// ErrTooLarge means a frame is over Config.MaxFrame; received, it ends
	// the stream.
	ErrTooLarge = errors.New("stream: frame too large")
	// ErrProtocol means the peer sent something this package never sends.
	ErrProtocol = errors.New("stream: protocol error")
)

// RemoteError is a failure the peer's handler answered.
type RemoteError struct {
	// Rejected: the request itself is wrong; retrying cannot help.
	// Otherwise the peer could not handle it now (its storage is down, it
	// is shutting down) and another path or a later try may.
	Rejected bool
	Text     string
}

func (e *RemoteError) Error() string {
	if e.Rejected {
		return "stream: peer rejected the request: " + e.Text
	}
	return "stream: peer could not handle the request: " + e.Text
}

type rejected struct{ error }

func (r rejected) Unwrap() error { return r.error }

// Reject marks a handler's error as the request's fault: the caller gets a
// RemoteError with Rejected set.
func Reject(err error) error { return rejected{err} }

// Handler answers one request. ctx ends when the stream closes. The payload
// is the handler's to keep.
type Handler func(ctx context.Context, kind Kind, payload []byte) ([]byte, error)

// Config tunes a Conn. Zero values take the defaults.
type Config struct {
	// MaxFrame bounds one payload, sent or received (default 64 MiB).
	MaxFrame int
	// MaxQueue bounds the bytes queued for writing; senders wait beyond
	// it (default 32 MiB). One frame larger than that is still sent,
	// alone.
	MaxQueue int
	// WriteTimeout bounds one write (default 10s): a peer that reads
	// nothing for that long is dropped.
	WriteTimeout time.Duration
	// PingEvery is how often a ping goes out (default 5s).
	PingEvery time.Duration
	// IdleTimeout drops a peer that sent nothing, not even a ping, for
	// that long (default 3×PingEvery).
	IdleTimeout time.Duration
	// MaxHandlers bounds the requests handled at once; the reader waits
	// beyond it, which slows the peer down (default 256).
	MaxHandlers int
	Logger      *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxFrame <= 0 {
		c.MaxFrame = 64 << 20
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = 32 << 20
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PingEvery <= 0 {
		c.PingEvery = 5 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 3 * c.PingEvery
	}
	if c.MaxHandlers <= 0 {
		c.MaxHandlers = 256
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Conn is one end of a stream.
type Conn struct {
	nc  net.Conn
	br  *bufio.Reader
	h   Handler
	cfg Config
	log *slog.Logger

	ctx    context.Context // handlers' context; cancelled on close
	cancel context.CancelFunc
	slots  chan struct{} // one token per running handler
	idle   chan request  // a handler goroutine done with its request takes the next
	wake   chan struct{} // tells the writer there is something queued
	done   chan struct{} // closed on close
	loops  sync.WaitGroup
	served sync.WaitGroup // running handlers

	mu       sync.Mutex
	err      error // why the stream ended; set once
	draining bool  // new requests are refused (Drain)
	nextID   uint64
	pending  map[uint64]chan answer
	queue    net.Buffers // frames for the writer
	queued   int         // bytes queued or being written
	flushed  chan struct{}
}

type answer struct {
	data []byte
	err  error
}

// request is a request read for a handler.
type request struct {
	kind    Kind
	id      uint64
	payload []byte
}

// handlerIdle is how long a handler goroutine waits for the next request
// before it ends. A goroutine kept for the next request has its stack
// grown already; a fresh one per request grew it again every time (the
// handlers decode protobuf and call Redis: ≈ 5 % of a busy route's CPU).
const handlerIdle = 5 * time.Second

// New runs a stream over nc, whose handshake is done (br holds what was
// read past it; nil: nothing). h answers the peer's requests; nil refuses
// them all.
func New(nc net.Conn, br *bufio.Reader, h Handler, cfg Config) *Conn {
	cfg = cfg.withDefaults()
	if br == nil {
		br = bufio.NewReaderSize(nc, 64<<10)
	}
	c := &Conn{
		nc: nc, br: br, h: h, cfg: cfg, log: cfg.Logger.With("component", "stream", "peer", nc.RemoteAddr().String()),
		slots: make(chan struct{}, cfg.MaxHandlers), idle: make(chan request), wake: make(chan struct{}, 1), done: make(chan struct{}),
		pending: make(map[uint64]chan answer), flushed: make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.loops.Add(2)
	go c.readLoop()
	go c.writeLoop()
	return c
}

// Done is closed when the stream has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the stream ended, nil while it runs.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Call sends a request and waits for its answer, ctx's end or the stream's.
// A RemoteError is the peer's handler failing; ErrClosed (wrapped) the
// stream ending first.
func (c *Conn) Call(ctx context.Context, kind Kind, payload []byte) ([]byte, error) {
	if len(payload) > c.cfg.MaxFrame {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(payload))
	}
	ch := make(chan answer, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	if err := c.send(ctx, typeRequest, kind, id, payload); err != nil {
		c.forget(id)
		return nil, err
	}
	select {
	case a := <-ch:
		return a.data, a.err
	case <-ctx.Done():
		c.forget(id) // a late answer is dropped
		return nil, ctx.Err()
	}
}

func (c *Conn) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// send queues one frame for the writer, waiting while the queue is full.
func (c *Conn) send(ctx context.Context, typ byte, kind Kind, id uint64, payload []byte) error {
	hdr := make([]byte, hdrLen)
	binary.BigEndian.PutUint32(hdr[0:4], uint32(len(payload)))
	hdr[4], hdr[5] = typ, byte(kind)
	binary.BigEndian.PutUint64(hdr[6:14], id)
	size := hdrLen + len(payload)
	for {
		c.mu.Lock()
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return err
		}
		if c.queued == 0 || c.queued+size <= c.cfg.MaxQueue {
			c.queue = append(c.queue, hdr)
			if len(payload) > 0 {
				c.queue = append(c.queue, payload)
			}
			c.queued += size
			c.mu.Unlock()
			select {
			case c.wake <- struct{}{}:
			default:
			}
			return nil
		}
		flushed := c.flushed
		c.mu.Unlock()
		select {
		case <-flushed:
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// writeLoop writes everything queued in one go (writev), pings on a timer,
// and ends the stream on a write error or timeout.
func (c *Conn) writeLoop() {
	defer c.loops.Done()
	ping := time.NewTicker(c.cfg.PingEvery)
	defer ping.Stop()
	pingFrame := make([]byte, hdrLen)
	pingFrame[4] = typePing
	for {
		select {
		case <-c.wake:
		case <-ping.C:
			c.mu.Lock()
			c.queue = append(c.queue, pingFrame)
			c.queued += hdrLen
			c.mu.Unlock()
		case <-c.done:
			return
		}
		c.mu.Lock()
		bufs, n := c.queue, c.queued
		c.queue = nil
		c.mu.Unlock()
		if len(bufs) == 0 {
			continue
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
		_, err := bufs.WriteTo(c.nc)
		c.mu.Lock()
		c.queued -= n // frames queued meanwhile stay counted
		close(c.flushed)
		c.flushed = make(chan struct{})
		c.mu.Unlock()
		if err != nil {
			c.closeWith(fmt.Errorf("%w: write: %v", ErrClosed, err))
			return
		}
	}
}

// readLoop reads frames until the stream ends: answers go to their
// callers, requests to handlers (at most MaxHandlers at once).
func (c *Conn) readLoop() {
	defer c.loops.Done()
	hdr := make([]byte, hdrLen)
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.cfg.IdleTimeout))
		if _, err := io.ReadFull(c.br, hdr); err != nil {
			c.closeWith(fmt.Errorf("%w: read: %v", ErrClosed, err))
			return
		}
		n := binary.BigEndian.Uint32(hdr[0:4])
		typ, kind, id := hdr[4], Kind(hdr[5]), binary.BigEndian.Uint64(hdr[6:14])
		if int64(n) > int64(c.cfg.MaxFrame) {
			c.closeWith(fmt.Errorf("%w: peer sent %d bytes", ErrTooLarge, n))
			return
		}
		var payload []byte
		if n > 0 {
			payload = make([]byte, n)
			if _, err := io.ReadFull(c.br, payload); err != nil {
				c.closeWith(fmt.Errorf("%w: read: %v", ErrClosed, err))
				return
			}
		}
		switch typ {
		case typePing:
		case typeAnswer, typeFailure:
			c.mu.Lock()
			ch := c.pending[id]
			delete(c.pending, id)
			c.mu.Unlock()
			if ch == nil {
				continue // its caller gave up
			}
			if typ == typeAnswer {
				ch <- answer{data: payload}
			} else {
				ch <- answer{err: remoteError(payload)}
			}
		case typeRequest:
			select {
			case c.slots <- struct{}{}:
			case <-c.done:
				return
			}
			c.served.Add(1)
			r := request{kind, id, payload}
			select {
			case c.idle <- r: // a handler goroutine waiting for work
			default:
				go c.work(r)
			}
		default:
			c.closeWith(fmt.Errorf("%w: frame type %d", ErrProtocol, typ))
			return
		}
	}
}

func remoteError(p []byte) error {
	if len(p) == 0 {
		return &RemoteError{Text: "no reason given"}
	}
	return &RemoteError{Rejected: p[0] == classRejected, Text: string(p[1:])}
}

// serve runs the handler for one request and queues its answer.
// work serves r, then the requests handed to it while it waits, until none
// comes for handlerIdle or the stream ends. There are never more than
// Config.MaxHandlers: one starts only when every other is serving.
func (c *Conn) work(r request) {
	var t *time.Timer
	for {
		c.serve(r.kind, r.id, r.payload)
		if t == nil {
			t = time.NewTimer(handlerIdle)
			defer t.Stop()
		} else {
			t.Reset(handlerIdle)
		}
		select {
		case r = <-c.idle:
		case <-t.C:
			return
		case <-c.done:
			return
		}
	}
}

func (c *Conn) serve(kind Kind, id uint64, payload []byte) {
	defer func() {
		<-c.slots
		c.served.Done()
	}()
	out, err := c.handle(kind, payload)
	if err == nil && len(out) > c.cfg.MaxFrame {
		err = fmt.Errorf("%w: answer of %d bytes", ErrTooLarge, len(out))
	}
	if err != nil {
		class := classUnavailable
		if errors.As(err, new(rejected)) {
			class = classRejected
		}
		out = append([]byte{class}, err.Error()...)
		_ = c.send(c.ctx, typeFailure, kind, id, out)
		return
	}
	_ = c.send(c.ctx, typeAnswer, kind, id, out)
}

func (c *Conn) handle(kind Kind, payload []byte) (out []byte, err error) {
	c.mu.Lock()
	draining := c.draining
	c.mu.Unlock()
	if draining {
		return nil, errors.New("shutting down")
	}
	if c.h == nil {
		return nil, Reject(fmt.Errorf("no handler for kind %d", kind))
	}
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("stream handler panicked", "kind", kind, "panic", p)
			err = fmt.Errorf("internal error")
		}
	}()
	return c.h(c.ctx, kind, payload)
}

// Drain refuses the peer's new requests (they fail as unavailable, so the
// peer takes another path) and waits until the ones being handled are
// answered or ctx ends. The stream keeps carrying this end's calls.
func (c *Conn) Drain(ctx context.Context) error {
	c.mu.Lock()
	c.draining = true
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { c.served.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeWith ends the stream once: calls in flight fail with err, handlers'
// context is cancelled, the connection closes.
func (c *Conn) closeWith(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	pending := c.pending
	c.pending = nil
	c.queue = nil
	close(c.flushed)
	c.flushed = make(chan struct{})
	c.mu.Unlock()
	close(c.done)
	c.cancel()
	_ = c.nc.Close()
	for _, ch := range pending {
		ch <- answer{err: err}
	}
	if !errors.Is(err, errLocalClose) {
		c.log.Info("stream ended", "err", err)
	}
}

var errLocalClose = fmt.Errorf("%w: closed by this end", ErrClosed)

// Close ends the stream and waits for its goroutines, handlers included
// (their context is cancelled). It must not be called from a handler.
func (c *Conn) Close() error {
	c.closeWith(errLocalClose)
	c.loops.Wait()
	c.served.Wait()
	return nil
}
