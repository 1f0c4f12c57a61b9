package conn

import (
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
)

// queued is one frame waiting for the writer; shared, when set, holds its
// encoding for every connection that gets it.
type queued struct {
	f      *cimpb.Frame
	b      []byte // f encoded by Send (nil: the writer encodes it), or a frame given encoded (f nil)
	t      cimpb.Type
	shared *Shared
	// rest: b is the rest of frames a non-blocking write began (already
	// counted as sent); it must go first, and is never dropped alone.
	rest bool
}

// typ is the type of q's frame.
func (q queued) typ() cimpb.Type {
	if q.f != nil {
		return q.f.Type
	}
	return q.t
}

// Shared is a frame written to many connections (a large group's message,
// pushed as one delivery with many targets): it is encoded once, by the
// first writer that needs it, and its bytes are copied into the others'
// writes. Safe for concurrent use; the frame must not change once shared.
type Shared struct {
	frame *cimpb.Frame
	size  int // proto.Size(frame)

	once sync.Once
	b    []byte // length-prefixed, as codec writes it
	err  error
}

// NewShared wraps f for SendShared.
func NewShared(f *cimpb.Frame) *Shared {
	return &Shared{frame: f, size: proto.Size(f)}
}

// encoded returns the frame's bytes, or codec.ErrFrameTooLarge when it is
// over maxFrame.
func (s *Shared) encoded(maxFrame int) ([]byte, error) {
	s.once.Do(func() { s.b, s.err = codec.AppendFrameMax(nil, s.frame, 0) })
	if s.err != nil {
		return nil, s.err
	}
	if maxFrame > 0 && s.size > maxFrame {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", codec.ErrFrameTooLarge, s.size, maxFrame)
	}
	return s.b, nil
}
