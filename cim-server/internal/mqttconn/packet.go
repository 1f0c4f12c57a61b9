package mqttconn

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/eclipse/paho.golang/packets"
	packets311 "github.com/eclipse/paho.mqtt.golang/packets"
)

// Protocol levels (the CONNECT's version byte).
const (
	level31  = 3 // MQTT 3.1, protocol name "MQIsdp"
	level311 = 4 // MQTT 3.1.1
	level5   = 5 // MQTT 5
)

// packetOverhead is what an MQTT packet may carry besides a payload of
// --max-frame bytes: topic, packet id, properties.
const packetOverhead = 8 << 10

var (
	// errMalformed: a packet that does not parse (MQTT 5: 0x81).
	errMalformed = errors.New("mqttconn: malformed packet")
	// errTooLarge: a packet whose remaining length is over the bound.
	errTooLarge = errors.New("mqttconn: packet too large")
	// errNotConnect: the first packet is not a CONNECT.
	errNotConnect = errors.New("mqttconn: protocol error")
)

// headSize is what a connection reads into while it waits for a packet:
// most of what a device sends (PUBACK, PINGREQ) fits, and an idle
// connection holds no read buffer besides it.
const headSize = 32

// reader reads a device's bytes: the start of each packet into head, the
// rest of a larger one straight into the packet's own buffer.
type reader struct {
	src  io.Reader
	head [headSize]byte
	buf  []byte // bytes read and not used yet, in head (nil: none)
}

// wait blocks until a byte is there to use.
func (r *reader) wait() error {
	for len(r.buf) == 0 {
		n, err := r.src.Read(r.head[:])
		if n > 0 {
			r.buf = r.head[:n]
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) take(n int) {
	r.buf = r.buf[n:]
	if len(r.buf) == 0 {
		r.buf = nil
	}
}

func (r *reader) readByte() (byte, error) {
	if err := r.wait(); err != nil {
		return 0, err
	}
	b := r.buf[0]
	r.take(1)
	return b, nil
}

// readFull fills p.
func (r *reader) readFull(p []byte) error {
	n := copy(p, r.buf)
	r.take(n)
	if n < len(p) {
		if _, err := io.ReadFull(r.src, p[n:]); err != nil {
			return unexpected(err)
		}
	}
	return nil
}

// Read reads what is there (the discarding after the end).
func (r *reader) Read(p []byte) (int, error) {
	if len(r.buf) > 0 {
		n := copy(p, r.buf)
		r.take(n)
		return n, nil
	}
	return r.src.Read(p)
}

// firstChunk is what a packet's buffer reserves before its bytes arrive:
// the announced length alone reserves nothing more (as proto/codec does).
const firstChunk = 512

// readPacket reads one packet's bytes (fixed header included) from the
// socket: first says it must be a CONNECT. A packet of another type, with
// flags MQTT reserves, or whose remaining length is over limit is refused
// before any of its body is read. It returns io.EOF when the stream ends
// between packets.
func (c *Conn) readPacket(limit int, first bool) ([]byte, error) {
	b0, err := c.rd.readByte()
	if err != nil {
		return nil, err
	}
	typ, flags := b0>>4, b0&0x0f
	if first && typ != packets.CONNECT {
		return nil, fmt.Errorf("%w: the first packet is of type %d, not CONNECT", errNotConnect, typ)
	}
	if err := checkFlags(typ, flags); err != nil {
		return nil, err
	}
	var hdr [5]byte
	hdr[0] = b0
	n, k := 0, 1
	for shift := 0; ; shift += 7 {
		if k == len(hdr) {
			return nil, fmt.Errorf("%w: remaining length over four bytes", errMalformed)
		}
		b, err := c.rd.readByte()
		if err != nil {
			return nil, unexpected(err)
		}
		hdr[k] = b
		k++
		n |= int(b&0x7f) << shift
		if b < 0x80 {
			break
		}
	}
	if n > limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", errTooLarge, n, limit)
	}
	buf := make([]byte, k, k+min(n, firstChunk))
	copy(buf, hdr[:k])
	for len(buf) < k+n {
		// Wait for bytes before reserving room for them.
		if err := c.rd.wait(); err != nil {
			return nil, unexpected(err)
		}
		step := min(k+n-len(buf), max(firstChunk, len(buf), len(c.rd.buf)))
		if cap(buf)-len(buf) < step {
			grown := make([]byte, len(buf), len(buf)+step)
			copy(grown, buf)
			buf = grown
		}
		if err := c.rd.readFull(buf[len(buf) : len(buf)+step]); err != nil {
			return nil, err
		}
		buf = buf[:len(buf)+step]
	}
	return buf, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// packetType returns a packet's type and fixed-header flags.
func packetType(raw []byte) (typ, flags byte) { return raw[0] >> 4, raw[0] & 0x0f }

// checkFlags enforces the fixed-header flags MQTT reserves: 0b0010 for
// PUBREL, SUBSCRIBE and UNSUBSCRIBE, 0 for every type but PUBLISH (whose
// QoS must not be 3).
func checkFlags(typ, flags byte) error {
	switch typ {
	case packets.PUBLISH:
		if flags&0x06 == 0x06 {
			return fmt.Errorf("%w: PUBLISH with QoS 3", errMalformed)
		}
	case packets.PUBREL, packets.SUBSCRIBE, packets.UNSUBSCRIBE:
		if flags != 0x02 {
			return fmt.Errorf("%w: reserved flags %#x", errMalformed, flags)
		}
	default:
		if flags != 0 {
			return fmt.Errorf("%w: reserved flags %#x", errMalformed, flags)
		}
	}
	return nil
}

// decode5 parses one MQTT 5 packet with paho.golang's codec.
func decode5(raw []byte) (cp *packets.ControlPacket, err error) {
	defer func() {
		if r := recover(); r != nil {
			cp, err = nil, fmt.Errorf("%w: %v", errMalformed, r)
		}
	}()
	if typ, _ := packetType(raw); typ == packets.DISCONNECT && len(raw) == 2 {
		// No reason code: normal disconnection (the codec wants a byte).
		cp = packets.NewControlPacket(packets.DISCONNECT)
		return cp, nil
	}
	cp, err = packets.ReadPacket(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	return cp, nil
}

// decode311 parses one MQTT 3.1/3.1.1 packet with paho.mqtt.golang's codec
// (paho.golang's is MQTT 5 only: every packet there has properties). It
// returns the packet even when its body did not parse, with the error.
func decode311(raw []byte) (cp packets311.ControlPacket, err error) {
	defer func() {
		if r := recover(); r != nil {
			cp, err = nil, fmt.Errorf("%w: %v", errMalformed, r)
		}
	}()
	cp, err = packets311.ReadPacket(bytes.NewReader(raw))
	if err != nil {
		err = fmt.Errorf("%w: %v", errMalformed, err)
	}
	return cp, err
}

// encode appends a v5 packet's bytes to out.
func encode5(out []byte, cp *packets.ControlPacket) []byte {
	b := bytes.NewBuffer(out)
	_, _ = cp.WriteTo(b) // a bytes.Buffer does not fail
	return b.Bytes()
}

// encode311 appends a v3 packet's bytes to out.
func encode311(out []byte, cp packets311.ControlPacket) []byte {
	b := bytes.NewBuffer(out)
	_ = cp.Write(b)
	return b.Bytes()
}
