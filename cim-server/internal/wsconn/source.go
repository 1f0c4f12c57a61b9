package wsconn

import (
	"bufio"
	"net"
	"net/http"
)

// source is the socket under the WebSocket library. It follows the frames
// (RFC 6455 §5.2) of the bytes it passes on, so Conn knows when the library
// holds nothing of a message it has not returned yet: an idle connection
// then waits for its client (wait) near the top of its goroutine's stack,
// not deep in the library's frame reader. Go shrinks an idle goroutine's
// stack to what the wait uses, and most connections are idle nearly all
// the time: that wait is most of what an idle WebSocket costs in memory.
//
// The library's reads and Conn's wait happen on the connection's reader
// goroutine only; writes pass through.
type source struct {
	net.Conn
	early    [earlyRead]byte // what wait read; passed on before the socket
	at, held uint8

	// The frame being passed on: its header so far, then its payload.
	hdr       [maxHeader]byte
	hn        int
	inPayload bool
	left      uint64 // payload bytes still to pass on

	passed uint64 // bytes passed on
	end    uint64 // where the last whole message passed on ends
	whole  int    // messages passed on whole and not yet returned (took)
}

const (
	// earlyRead is how much wait reads: a heartbeat's frame, and most
	// binary ones (a chat message's SEND), whole, in one read.
	earlyRead = 128
	// maxHeader is a frame header's longest: 2 bytes, a 64-bit length and
	// the mask.
	maxHeader = 14
)

// Read passes on what wait read first, then the socket.
func (s *source) Read(p []byte) (int, error) {
	if s.at < s.held {
		n := copy(p, s.early[s.at:s.held])
		s.at += uint8(n)
		s.scan(p[:n])
		return n, nil
	}
	n, err := s.Conn.Read(p)
	s.scan(p[:n])
	return n, err
}

// quiet reports whether the library has nothing buffered that Conn has
// not had: every byte passed on so far ended a message it returned, and
// wait holds nothing.
func (s *source) quiet() bool {
	return s.whole == 0 && s.passed == s.end && s.at == s.held
}

// took counts a message the library returned.
func (s *source) took() { s.whole-- }

// wait blocks until the client sends something (or the read deadline
// passes) and holds the first bytes for Read. Call it only when quiet.
func (s *source) wait() error {
	n, err := s.Conn.Read(s.early[:])
	s.at, s.held = 0, uint8(n)
	if n > 0 {
		return nil
	}
	return err
}

// scan follows the frames in b, the next bytes passed on.
func (s *source) scan(b []byte) {
	for len(b) > 0 {
		if s.inPayload {
			n := min(uint64(len(b)), s.left)
			s.left -= n
			s.passed += n
			b = b[n:]
			if s.left == 0 {
				s.frameEnd()
			}
			continue
		}
		s.hdr[s.hn] = b[0]
		s.hn++
		s.passed++
		b = b[1:]
		if s.hn < 2 || s.hn < headerLen(s.hdr[1]) {
			continue
		}
		s.left, s.inPayload = payloadLen(s.hdr[:s.hn]), true
		if s.left == 0 {
			s.frameEnd()
		}
	}
}

// frameEnd closes the frame passed on; a final data frame (text, binary
// or continuation: opcodes below 8) ends a message.
func (s *source) frameEnd() {
	if op := s.hdr[0]; op&0x80 != 0 && op&0x08 == 0 {
		s.whole++
		s.end = s.passed
	}
	s.hn, s.inPayload = 0, false
}

// headerLen is a frame header's length, from its second byte: the mask
// bit and the 7-bit length, which says whether a 16- or 64-bit one follows.
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// payloadLen is the payload length a whole header gives.
func payloadLen(h []byte) uint64 {
	switch n := uint64(h[1] & 0x7f); n {
	case 126:
		return uint64(h[2])<<8 | uint64(h[3])
	case 127:
		var v uint64
		for _, c := range h[2:10] {
			v = v<<8 | uint64(c)
		}
		return v
	default:
		return n
	}
}

// hijacker hands the library a source in place of the socket.
type hijacker struct {
	http.ResponseWriter
	src *source
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.src = &source{Conn: nc}
	return h.src, brw, nil
}
