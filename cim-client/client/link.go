package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
)

// clientVersion is sent in LOGIN for the gateway's logs.
const clientVersion = "gocim-go-client/1"

// outQueue is how many encoded frames may wait for the writer. Senders block
// beyond it, which is the backpressure a slow link deserves.
const outQueue = 64

// maxEarly bounds frames a gateway may push before LOGIN_ACK.
const maxEarly = 64

// pingFrame is PING, encoded once.
var pingFrame = mustEncode(&cimpb.Frame{Type: cimpb.Type_PING})

func mustEncode(f *cimpb.Frame) []byte {
	b, err := codec.Encode(f)
	if err != nil {
		panic(err)
	}
	return b
}

// outFrame is one encoded frame for the writer and where to report the write.
type outFrame struct {
	b   []byte
	res chan error // buffered 1
}

// link is one logged-in TCP connection to a gateway. The writer goroutine
// runs the heartbeat and writes what senders queue; a sender that finds
// nobody writing writes its frame itself (wmu keeps writes whole and one
// at a time). The reader goroutine (Client.readLoop) owns all reads after
// the handshake. The first failure ends the link:
// fail records why, closes done and the connection.
type link struct {
	conn    net.Conn
	r       *codec.Reader
	gateway string
	login   LoginResult
	ack     *cimpb.LoginAck
	early   []*cimpb.Frame // pushed before LOGIN_ACK; delivered first
	born    time.Time

	heartbeat   time.Duration
	pongTimeout time.Duration
	log         *slog.Logger

	out  chan outFrame
	pong chan struct{} // the reader saw a PONG; capacity 1
	done chan struct{}
	once sync.Once
	// cause is written once, before done is closed.
	cause error

	// progress counts frames read and events handed to the application; the
	// heartbeat reads a change as a sign of life.
	progress atomic.Uint64
	// stalled is set while the reader waits for the application to take an
	// event: the gateway may well have answered the PING, we just have not
	// read it, so that is no reason to call the link dead.
	stalled atomic.Bool

	// wmu is held for every write on conn: the writer's, and a sender's
	// own when it finds nobody writing (see send).
	wmu sync.Mutex
	// lastWrite is when conn was last written to (unix ns), for the
	// heartbeat.
	lastWrite atomic.Int64
	// direct counts the frames senders wrote themselves.
	direct atomic.Uint64

	wg sync.WaitGroup
}

func newLink(conn net.Conn, cfg *Config, gateway string, log *slog.Logger) *link {
	// A frame over MaxFrame is read past, not fatal: reconnecting would
	// only get the same frame again (see Client.readLoop).
	return &link{
		conn:        conn,
		r:           codec.NewReader(conn, cfg.MaxFrame).SkipOversized(),
		gateway:     gateway,
		born:        time.Now(),
		heartbeat:   cfg.Heartbeat,
		pongTimeout: cfg.PongTimeout,
		log:         log.With("gateway", gateway),
		out:         make(chan outFrame, outQueue),
		pong:        make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
}

// userID is the id of the user logged in on l ("" before LOGIN_ACK).
func (l *link) userID() string {
	return firstOf(l.ack.GetUserId(), l.login.UserID)
}

// handshake sends LOGIN and waits for LOGIN_ACK, bounded by timeout and ctx.
func (l *link) handshake(ctx context.Context, tok string, lastSeq uint64, lastTS int64, timeout time.Duration) error {
	_ = l.conn.SetDeadline(time.Now().Add(timeout))
	// A deadline in the past wakes the blocked read or write when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = l.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	b, err := codec.Encode(&cimpb.Frame{
		Type:  cimpb.Type_LOGIN,
		ReqId: 1,
		Login: &cimpb.Login{Token: tok, LastSeq: lastSeq, LastTsMs: lastTS, ClientVersion: clientVersion},
	})
	if err != nil {
		return err
	}
	if _, err := l.conn.Write(b); err != nil {
		return handshakeErr(ctx, err, timeout)
	}
	for {
		f, err := l.r.ReadFrame()
		if errors.Is(err, codec.ErrFrameSkipped) {
			// Not LOGIN_ACK (that is small); whatever inbox entry it was,
			// the SYNC that follows every login covers it.
			l.log.Warn("frame over the limit skipped", "err", err)
			continue
		}
		if err != nil {
			return handshakeErr(ctx, err, timeout)
		}
		switch f.GetType() {
		case cimpb.Type_LOGIN_ACK:
			if !stop() {
				return ctx.Err()
			}
			if err := l.conn.SetDeadline(time.Time{}); err != nil {
				return err
			}
			l.ack = f.GetLoginAck()
			if l.ack == nil {
				l.ack = &cimpb.LoginAck{}
			}
			return nil
		case cimpb.Type_ERROR:
			return newGatewayError(f.GetError())
		case cimpb.Type_KICK:
			return &stopError{reason: kickReason(f.GetKick())}
		case cimpb.Type_PING, cimpb.Type_PONG:
		default:
			if len(l.early) >= maxEarly {
				return errors.New("gateway pushed too many frames before LOGIN_ACK")
			}
			l.early = append(l.early, f)
		}
	}
}

func handshakeErr(ctx context.Context, err error, timeout time.Duration) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("no LOGIN_ACK within %v", timeout)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("gateway closed the connection during login")
	}
	return err
}

func kickReason(k *cimpb.Kick) string {
	if r := k.GetReason(); r != "" {
		return r
	}
	return "kicked by the server"
}

// start runs the reader (given, it lives on the Client) and the writer.
func (l *link) start(read func(*link)) {
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		read(l)
	}()
	go func() {
		defer l.wg.Done()
		l.writeLoop()
	}()
}

// ponged tells the writer a PONG arrived.
func (l *link) ponged() {
	select {
	case l.pong <- struct{}{}:
	default:
	}
}

// fail ends the link with cause; only the first cause counts.
func (l *link) fail(cause error) {
	l.once.Do(func() {
		l.cause = cause
		close(l.done)
		_ = l.conn.Close()
	})
}

// err is why the link ended; valid after done is closed.
func (l *link) err() error {
	<-l.done
	return l.cause
}

// close ends a link whose goroutines never started.
func (l *link) close() { l.fail(ErrClosed) }

// send writes an encoded frame, or queues it for the writer, and returns
// once it is written. errLinkDown means it was not (or may not have been)
// written and belongs on the next link.
//
// When nobody is writing, the frame goes out from the caller's goroutine,
// without a hand-off to the writer and back (two wake-ups a frame). That
// write is bounded by PongTimeout, as the writer's are; a sender whose ctx
// ends sooner than that queues, so that it can give up waiting.
func (l *link) send(ctx context.Context, b []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); (!ok || time.Until(dl) >= l.pongTimeout) && l.wmu.TryLock() {
		err := l.writeNow(b)
		l.wmu.Unlock()
		return err
	}
	of := outFrame{b: b, res: make(chan error, 1)}
	select {
	case l.out <- of:
	case <-l.done:
		return errLinkDown
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-of.res:
		return err
	case <-l.done:
		// The writer may have answered just before it stopped.
		select {
		case err := <-of.res:
			return err
		default:
			return errLinkDown
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writeNow writes b on conn; the caller holds wmu.
func (l *link) writeNow(b []byte) error {
	select {
	case <-l.done:
		return errLinkDown
	default:
	}
	now := time.Now()
	_ = l.conn.SetWriteDeadline(now.Add(l.pongTimeout))
	if _, err := l.conn.Write(b); err != nil {
		l.fail(fmt.Errorf("write to gateway: %w", err))
		return errLinkDown
	}
	l.lastWrite.Store(now.UnixNano())
	l.direct.Add(1)
	return nil
}

// wrote records a write now.
func (l *link) wrote() { l.lastWrite.Store(time.Now().UnixNano()) }

// lastWritten is when conn was last written to.
func (l *link) lastWritten() time.Time { return time.Unix(0, l.lastWrite.Load()) }

// writeLoop writes queued frames, flushing once per burst, and runs the
// heartbeat: PING after Heartbeat without writing, or without reading
// anything (a client that keeps sending to a frozen gateway would
// otherwise never notice); a PONG settles it at once, and if none came
// within PongTimeout the link still counts as alive when any other frame
// was read meanwhile (or the reader was just waiting for the application).
// Otherwise it is dead.
func (l *link) writeLoop() {
	w := bufio.NewWriterSize(l.conn, 4096)
	l.wrote()
	var tick <-chan time.Time
	var hb *time.Timer
	if l.heartbeat > 0 {
		hb = time.NewTimer(l.heartbeat)
		defer hb.Stop()
		tick = hb.C
	}
	pinged := false
	var progressAtPing uint64
	// What the reader had read when the heartbeat last looked, and since
	// when (as seen at a tick: never earlier than the truth).
	heard, heardAt := l.progress.Load(), time.Now()
	batch := make([]outFrame, 0, outQueue)
	for {
		select {
		case <-l.done:
			l.drain()
			return
		case of := <-l.out:
			batch = append(batch[:0], of)
		gather:
			for len(batch) < cap(batch) {
				select {
				case of := <-l.out:
					batch = append(batch, of)
				default:
					break gather
				}
			}
			err := l.write(w, batch...)
			for _, of := range batch {
				if err != nil {
					of.res <- errLinkDown
				} else {
					of.res <- nil
				}
			}
			if err != nil {
				l.fail(fmt.Errorf("write to gateway: %w", err))
				l.drain()
				return
			}
			l.wrote()
		case <-l.pong:
			if pinged {
				pinged = false
				hb.Reset(time.Until(l.lastWritten().Add(l.heartbeat)))
			}
		case <-tick:
			if pinged {
				if !l.stalled.Load() && l.progress.Load() == progressAtPing {
					l.fail(fmt.Errorf("no PONG within %v", l.pongTimeout))
					l.drain()
					return
				}
				pinged = false
				hb.Reset(time.Until(l.lastWritten().Add(l.heartbeat)))
				continue
			}
			now := time.Now()
			if p := l.progress.Load(); p != heard {
				heard, heardAt = p, now
			}
			if idle := max(now.Sub(l.lastWritten()), now.Sub(heardAt)); idle < l.heartbeat {
				hb.Reset(l.heartbeat - idle)
				continue
			}
			progressAtPing = l.progress.Load()
			if err := l.write(w, outFrame{b: pingFrame}); err != nil {
				l.fail(fmt.Errorf("write to gateway: %w", err))
				l.drain()
				return
			}
			l.wrote()
			pinged = true
			hb.Reset(l.pongTimeout)
		}
	}
}

// write sends frames in one flush, holding wmu. A peer that stops reading
// blocks the write; PongTimeout bounds that like a missing PONG.
func (l *link) write(w *bufio.Writer, frames ...outFrame) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	_ = l.conn.SetWriteDeadline(time.Now().Add(l.pongTimeout))
	for _, of := range frames {
		if _, err := w.Write(of.b); err != nil {
			return err
		}
	}
	return w.Flush()
}

// drain answers senders still queued once the link is over.
func (l *link) drain() {
	for {
		select {
		case of := <-l.out:
			of.res <- errLinkDown
		default:
			return
		}
	}
}
