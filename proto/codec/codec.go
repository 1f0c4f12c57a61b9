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
)

// Reader decodes frames from a stream.
type Reader struct {
	r   *bufio.Reader
	max int
	buf []byte
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

// ReadFrame reads the next frame. It returns io.EOF on a clean end of stream
// between frames, io.ErrUnexpectedEOF when the stream ends inside one, and
// ErrFrameTooLarge, ErrBadLength or ErrBadFrame (wrapped) for bad input.
func (r *Reader) ReadFrame() (*cimpb.Frame, error) {
	n, err := r.readLength()
	if err != nil {
		return nil, err
	}
	if n > uint64(r.max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, r.max)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	buf := r.buf[:n]
	if _, err := io.ReadFull(r.r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	f := &cimpb.Frame{}
	if err := proto.Unmarshal(buf, f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	// Do not pin a large buffer for the life of an idle connection: most
	// frames (PING, ACK, short chat) fit in 512 bytes.
	if cap(r.buf) > 512 {
		r.buf = nil
	}
	return f, nil
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
	size := proto.Size(f)
	dst = binary.AppendUvarint(dst, uint64(size))
	return proto.MarshalOptions{}.MarshalAppend(dst, f)
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
