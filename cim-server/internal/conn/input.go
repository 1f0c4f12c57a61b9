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
// reader with its frame buffer is ≈ 0.8 KiB of each one's ≈ 8. A
// connection that sent nothing for Config.IdleBuffers gives them back to a
// pool and waits for its next byte with a one-byte read of its own; when
// the byte comes it takes a buffered reader from the pool again. A busy
// connection keeps its buffer and pays one more read deadline per frame.

// readBufs holds the buffered readers of the connections that are idle.
var readBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}

// input is a connection's read side, owned by its reader goroutine.
type input struct {
	c  *Conn
	br *bufio.Reader // nil while idle
	fr *codec.Reader
	// one is the byte an idle connection read without a buffer; held:
	// the buffered reader has not had it yet.
	one  [1]byte
	held bool
}

// Read is what the buffered reader reads from: the byte read while idle
// first, then the socket.
func (in *input) Read(p []byte) (int, error) {
	if in.held && len(p) > 0 {
		in.held = false
		p[0] = in.one[0]
		return 1, nil
	}
	return in.c.nc.Read(p)
}

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
// (the frame's read deadline) passes, with nothing buffered. It arms the
// read deadline IdleBuffers away first; if that passes with no byte, the
// connection releases its buffers and waits on for one byte until
// deadline. On return the read deadline is deadline (unless the connection
// is closing: then the writer owns it, and closing is true) and the
// connection has a buffered reader.
//
//go:noinline
func (in *input) awaitFrame(deadline time.Time) (closing bool, err error) {
	c := in.c
	if c.armReadDeadlineAt(time.Now().Add(c.cfg.IdleBuffers)) {
		return true, nil // the loop reads on under the writer's deadline
	}
	_, err = in.br.Peek(1)
	var ended *EndError
	if closing = c.armReadDeadlineAt(deadline); closing || err == nil || errors.As(err, &ended) ||
		!errors.Is(err, os.ErrDeadlineExceeded) || !time.Now().Before(deadline) {
		return closing, err
	}
	in.release()
	if c.cfg.idled != nil {
		c.cfg.idled()
	}
	n, err := c.nc.Read(in.one[:])
	in.held = n == 1
	in.acquire()
	return false, err
}
