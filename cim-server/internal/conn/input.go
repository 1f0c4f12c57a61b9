package conn

import (
	"bufio"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"github.com/gocim/gocim/proto/codec"
)

// An idle connection holds no read buffer. Most connections of a gateway
// are idle nearly all the time (a heartbeat a minute), and a buffered
// reader with its frame buffer is ≈ 0.8 KiB of each one's ≈ 8. An idle
// connection (just online, or after a wait of Config.IdleBuffers or more)
// gives them back to a pool and waits for its next bytes with a 16-byte
// read of its own; when they come it takes a buffered reader from the pool
// again. A busy connection keeps its buffer and pays one more read
// deadline per frame; an idle one pays the pool per frame (a heartbeat's
// PING), and no timer.

// A FrameWaiter is a transport that reads its peer's bytes in units of its
// own (package mqttconn: packets) and keeps what it read until package conn
// takes it, so that it can wait for the next frame itself, near the top of
// the reader's stack. A connection on one gives its read buffers back at
// every wait for the peer, without an idle spell or a read of its own.
type FrameWaiter interface {
	// WaitFrame returns once a Read will not wait for the peer: bytes of a
	// frame are at hand, or the read ended (the next Read says why). The
	// connection's read deadline bounds the wait as it bounds a Read.
	WaitFrame()
}

// readBufs holds the buffered readers of the connections that are idle.
var readBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}

// input is a connection's read side, owned by its reader goroutine.
type input struct {
	c  *Conn
	br *bufio.Reader // nil while idle
	fr *codec.Reader
	fw FrameWaiter // the transport, when it waits for frames itself
	// first holds what an idle connection read without a buffer (a PING
	// whole); the buffered reader has not had first[at:held] yet.
	first    [idleRead]byte
	at, held uint8
	idle     bool // the last wait lasted IdleBuffers or more
}

// Read is what the buffered reader reads from: the bytes read while idle
// first, then the socket.
func (in *input) Read(p []byte) (int, error) {
	if in.at < in.held {
		n := copy(p, in.first[in.at:in.held])
		in.at += uint8(n)
		return n, nil
	}
	return in.c.nc.Read(p)
}

// idleRead is how much an idle connection reads at once without a
// buffer: a heartbeat's PING (3 bytes) and most ACKs whole, in one read.
const idleRead = 16

// reader is what to read the rest of the stream from, buffered or not.
func (in *input) reader() io.Reader {
	if in.br == nil {
		return in
	}
	return in.br
}

// acquire gives the connection a buffered reader.
func (in *input) acquire() {
	br := readBufs.Get().(*bufio.Reader)
	br.Reset(in)
	in.br = br
	in.fr.Reset(br)
}

// release gives the buffered reader back; nothing is buffered in it.
func (in *input) release() {
	in.fr.Reset(nil)
	in.br.Reset(nil)
	readBufs.Put(in.br)
	in.br = nil
}

// awaitFrame waits until the next frame's first byte has come or deadline
// (the frame's read deadline) passes, with nothing buffered; on return the
// read deadline is deadline (unless the connection is closing: then the
// writer owns it, and closing is true) and the connection has a buffered
// reader.
//
// A connection that was busy waits with its buffers and the read deadline
// IdleBuffers away; when that passes with no byte, it gives them back and
// waits on with a small read of its own (readIdle). One that was idle (its last
// wait lasted IdleBuffers or more: a heartbeat's) gives them back at once,
// without the timer's wake-up. One on a FrameWaiter gives them back and
// lets the transport wait.
//
//go:noinline
func (in *input) awaitFrame(now, deadline time.Time) (closing bool, err error) {
	c := in.c
	if in.fw != nil {
		if c.armReadDeadlineAt(deadline) {
			return true, nil
		}
		in.release()
		if c.cfg.idled != nil {
			c.cfg.idled(false)
		}
		in.fw.WaitFrame()
		in.acquire()
		return false, nil
	}
	if in.idle {
		if c.armReadDeadlineAt(deadline) {
			return true, nil
		}
		return false, in.readIdle(now, false)
	}
	if c.armReadDeadlineAt(now.Add(c.cfg.IdleBuffers)) {
		return true, nil // the loop reads on under the writer's deadline
	}
	_, err = in.br.Peek(1)
	var ended *EndError
	if closing = c.armReadDeadlineAt(deadline); closing || err == nil || errors.As(err, &ended) ||
		!errors.Is(err, os.ErrDeadlineExceeded) || !time.Now().Before(deadline) {
		return closing, err
	}
	return false, in.readIdle(now, true)
}

// readIdle gives the buffers back, waits for bytes, and takes a
// buffered reader again. since is when the wait began: the connection
// stays idle if it lasted IdleBuffers or more. timer: the idle spell of a
// busy connection passed (for Config.idled).
func (in *input) readIdle(since time.Time, timer bool) error {
	c := in.c
	in.release()
	if c.cfg.idled != nil {
		c.cfg.idled(timer)
	}
	n, err := c.nc.Read(in.first[:])
	in.at, in.held = 0, uint8(n)
	in.acquire()
	in.idle = time.Since(since) >= c.cfg.IdleBuffers
	return err
}
