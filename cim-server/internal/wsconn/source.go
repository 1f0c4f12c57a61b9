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
// A client's ping that comes while the connection waits is answered there
// too (control, below), never passed on: the library would answer it and
// then wait for the next message deep in its frame reader, where Go cannot
// shrink the stack (a client library pinging every few seconds kept 13.5
// KiB per idle connection instead of 9.5).
//
// The library's reads and Conn's wait happen on the connection's reader
// goroutine only; writes pass through.
type source struct {
	net.Conn
	early    [earlyRead]byte // what wait read; passed on before the socket
	at, held uint8
	// onPing answers a ping wait took, with its payload (Conn.ping); an
	// error ends the wait, and the connection.
	onPing func(payload []byte) error

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
// Pings and pongs that come whole at the head of what it read are
// answered (pings) or dropped (pongs) here, and it waits on when nothing
// else came.
func (s *source) wait() error {
	for {
		n, err := s.Conn.Read(s.early[:])
		s.at, s.held = 0, uint8(n)
		if n == 0 {
			return err
		}
		for s.at < s.held {
			k, op, payload := control(s.early[s.at:s.held])
			if k == 0 {
				return nil // something for the library
			}
			s.at += uint8(k)
			if op == opPingFrame && s.onPing != nil {
				if err := s.onPing(payload); err != nil {
					return err
				}
			}
		}
	}
}

// Control frame opcodes (RFC 6455 §5.5).
const (
	opPingFrame = 0x9
	opPongFrame = 0xa
)

// control reports the length of the whole ping or pong at the head of b
// and, for a ping, its opcode and unmasked payload (unmasked in place): 0
// for anything else, a frame not whole in b included. Only a frame the
// library would take is taken: final, no reserved bits, masked (a client
// must mask), at most 125 bytes; the library refuses the others as it
// should.
func control(b []byte) (n int, op byte, payload []byte) {
	if len(b) < 6 {
		return 0, 0, nil
	}
	op = b[0] & 0x0f
	if b[0]&0xf0 != 0x80 || (op != opPingFrame && op != opPongFrame) || b[1]&0x80 == 0 {
		return 0, 0, nil
	}
	size := int(b[1] & 0x7f)
	if size > 125 || len(b) < 6+size {
		return 0, 0, nil
	}
	mask, payload := b[2:6], b[6:6+size]
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	return 6 + size, op, payload
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
