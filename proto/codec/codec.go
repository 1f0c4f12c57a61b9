// Package codec reads and writes gocim frames: a base-128 varint32 length
// followed by one protobuf-encoded cimpb.Frame (the framing CIM uses through
// Netty's varint32 prepender).
//
// A Reader or Writer serves one connection and is not safe for concurrent use;
// Encode and Decode are.
package codec

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/proto/cimpb"
)

// DefaultMaxFrame is the default limit for one frame's payload, in bytes.
const DefaultMaxFrame = 64 << 10

// maxVarint32Len is the longest varint that can encode a uint32.
const maxVarint32Len = 5

var (
	// ErrFrameTooLarge means a length prefix announced more than the limit.
	ErrFrameTooLarge = errors.New("codec: frame too large")
	// ErrBadLength means the length prefix is not a valid varint32.
	ErrBadLength = errors.New("codec: malformed length prefix")
	// ErrBadFrame means the payload is not a valid protobuf Frame.
	ErrBadFrame = errors.New("codec: malformed frame")
	// ErrFrameSkipped means a frame over the limit was read past and
	// thrown away (Reader.SkipOversized); the next frame can be read.
	ErrFrameSkipped = errors.New("codec: frame over the limit skipped")
)

// Reader decodes frames from a stream.
type Reader struct {
	r    *bufio.Reader
	max  int
	skip bool
	buf  []byte
}

// NewReader returns a Reader that refuses frames larger than maxFrame bytes
// (DefaultMaxFrame when maxFrame <= 0).
func NewReader(r io.Reader, maxFrame int) *Reader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 4096)
	}
	return &Reader{r: br, max: maxFrame}
}

// Reset makes r read from br, at a frame boundary, and drops its payload
// buffer: a connection that goes idle gives both back (nil) and takes a
// buffered reader again when bytes come.
func (r *Reader) Reset(br *bufio.Reader) {
	r.r, r.buf = br, nil
}

// SkipOversized makes ReadFrame read past a frame over the limit (its length
// prefix says how far, and the bytes are discarded as they arrive, without
// buffering them) and return ErrFrameSkipped, after which the stream is at
// the next frame. A client uses it so that one frame it cannot take does not
// cost it the connection; a server, which should not read on for a peer that
// breaks the limit, does not. It returns r.
func (r *Reader) SkipOversized() *Reader {
	r.skip = true
	return r
}

// firstChunk is how much of a frame's payload ReadFrame reserves before more
// of it has arrived; the buffer then at most doubles per read. A peer that
// announces a large frame and sends little of it costs little memory.
const firstChunk = 512

// ReadFrame reads the next frame. It returns io.EOF on a clean end of stream
// between frames, io.ErrUnexpectedEOF when the stream ends inside one, and
// ErrFrameTooLarge (ErrFrameSkipped with SkipOversized), ErrBadLength or
// ErrBadFrame (wrapped) for bad input.
//
// The payload buffer grows as bytes arrive, never ahead of them by more
// than what already came (or firstChunk): the announced length alone
// reserves nothing.
func (r *Reader) ReadFrame() (*cimpb.Frame, error) {
	n, err := r.readLength()
	if err != nil {
		return nil, err
	}
	if n > uint64(r.max) {
		if r.skip {
			return nil, r.discard(n)
		}
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, r.max)
	}
	buf, err := r.readPayload(int(n))
	if err != nil {
		return nil, err
	}
	f := &cimpb.Frame{}
	if err := proto.Unmarshal(buf, f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	// Do not pin a large buffer for the life of an idle connection: most
	// frames (PING, ACK, short chat) fit in 512 bytes.
	if cap(r.buf) > firstChunk {
		r.buf = nil
	}
	return f, nil
}

// readPayload reads n bytes into r.buf, growing it only as data arrives.
func (r *Reader) readPayload(n int) ([]byte, error) {
	buf := r.buf[:0]
	for len(buf) < n {
		// Wait for bytes before reserving room for them.
		if _, err := r.r.Peek(1); err != nil {
			return nil, unexpected(err)
		}
		step := min(n-len(buf), max(firstChunk, len(buf), r.r.Buffered()))
		if cap(buf)-len(buf) < step {
			grown := make([]byte, len(buf), len(buf)+step)
			copy(grown, buf)
			buf = grown
		}
		k, err := io.ReadFull(r.r, buf[len(buf):len(buf)+step])
		buf = buf[:len(buf)+k]
		if err != nil {
			r.buf = nil
			return nil, unexpected(err)
		}
	}
	r.buf = buf
	return buf, nil
}

// discard reads past an oversized payload of n bytes.
func (r *Reader) discard(n uint64) error {
	for left := n; left > 0; {
		step := int(min(left, 1<<30))
		k, err := r.r.Discard(step)
		left -= uint64(k)
		if err != nil {
			return unexpected(err)
		}
	}
	return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameSkipped, n, r.max)
}

// unexpected turns io.EOF inside a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (r *Reader) readLength() (uint64, error) {
	var x uint64
	for i := 0; i < maxVarint32Len; i++ {
		b, err := r.r.ReadByte()
		if err != nil {
			if i > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			if x > 0xffffffff {
				return 0, ErrBadLength
			}
			return x, nil
		}
	}
	return 0, ErrBadLength
}

// Encode returns f as one length-prefixed frame.
func Encode(f *cimpb.Frame) ([]byte, error) {
	return AppendFrame(nil, f)
}

// AppendFrame appends f as one length-prefixed frame to dst.
func AppendFrame(dst []byte, f *cimpb.Frame) ([]byte, error) {
	return AppendFrameMax(dst, f, 0)
}

// AppendFrameMax is AppendFrame for a peer that takes frames of at most
// maxFrame bytes (no limit when maxFrame <= 0): a larger f is not appended
// and the error wraps ErrFrameTooLarge.
func AppendFrameMax(dst []byte, f *cimpb.Frame, maxFrame int) ([]byte, error) {
	size := proto.Size(f)
	if maxFrame > 0 && size > maxFrame {
		return dst, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, size, maxFrame)
	}
	// One allocation at most, and one sizing pass: Marshal reuses the sizes
	// Size just cached (f is not modified in between).
	dst = slices.Grow(dst, maxVarint32Len+size)
	dst = binary.AppendUvarint(dst, uint64(size))
	return proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(dst, f)
}

// Decode parses one complete length-prefixed frame from b and returns it with
// the number of bytes consumed. It is meant for tests and tools; connections
// use a Reader.
func Decode(b []byte, maxFrame int) (*cimpb.Frame, int, error) {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	n, k := binary.Uvarint(b)
	switch {
	case k == 0:
		return nil, 0, io.ErrUnexpectedEOF
	case k < 0 || k > maxVarint32Len || n > 0xffffffff:
		return nil, 0, ErrBadLength
	case n > uint64(maxFrame):
		return nil, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, maxFrame)
	case uint64(len(b)-k) < n:
		return nil, 0, io.ErrUnexpectedEOF
	}
	f := &cimpb.Frame{}
	if err := proto.Unmarshal(b[k:k+int(n)], f); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	return f, k + int(n), nil
}

// Writer encodes frames onto a buffered stream. Call Flush to send them.
type Writer struct {
	w   *bufio.Writer
	buf []byte
}

// NewWriter returns a Writer over w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 4096)}
}

// WriteFrame buffers one frame.
func (w *Writer) WriteFrame(f *cimpb.Frame) error {
	var err error
	w.buf, err = AppendFrame(w.buf[:0], f)
	if err != nil {
		return err
	}
	_, err = w.w.Write(w.buf)
	return err
}

// Flush writes buffered frames to the underlying stream.
func (w *Writer) Flush() error { return w.w.Flush() }

// Buffered reports how many bytes wait for Flush.
func (w *Writer) Buffered() int { return w.w.Buffered() }
