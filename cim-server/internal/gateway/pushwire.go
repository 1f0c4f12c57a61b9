package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/proto/cimpb"
)

// A push arrives as a PushBatch's bytes, over a route's stream or as the
// body of POST /push. Most of its deliveries are one MSG or RECEIPT for one
// user's session, and the client gets that frame exactly as the route
// encoded it: PushWire writes those bytes as they are, instead of decoding
// them into structs (a Frame, a Msg, every string) and encoding them again
// for the connection. Everything else — a KICK, a presence change, shared
// and packed deliveries, a delivery without a session — is decoded and goes
// the way Push takes.

// Field numbers of the messages PushWire reads without decoding them.
const (
	batchDeliveries  protowire.Number = 1 // PushBatch.deliveries
	deliveryUserID   protowire.Number = 1 // Delivery.user_id
	deliverySession  protowire.Number = 2 // Delivery.session_id
	deliveryFrame    protowire.Number = 3 // Delivery.frame
	frameTypeField   protowire.Number = 1 // Frame.type
	maxPlainDelivery                  = 3 // the highest field a plain delivery has
)

// errPushWire wraps what makes a body no PushBatch.
var errPushWire = errors.New("not a PushBatch")

// wireDelivery is one delivery of a pushed batch: plain (d nil: one user's
// session, the frame's bytes and type) or decoded (d).
type wireDelivery struct {
	d        *cimpb.Delivery
	uid, sid []byte
	frame    []byte
	typ      cimpb.Type
}

// PushWire is Push for a PushBatch's bytes. A body that is no PushBatch is
// an error, and then nothing is delivered. A plain delivery's frame is
// checked only for its outer framing (tags and lengths), not decoded: it
// comes from a route, which holds the internal secret and encoded it.
func (g *Gateway) PushWire(body []byte) (*cimpb.PushResult, error) {
	ds, err := parsePushBatch(body)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	res := &cimpb.PushResult{}
	done := func(i int, ok bool) {
		if ok {
			res.Delivered++
		} else {
			res.Missing = append(res.Missing, uint32(i))
		}
	}
	// As in each: the writers start once the whole batch is queued.
	var k conn.Cork
	defer k.Flush()
	i := 0
	for _, w := range ds {
		if w.d != nil {
			i = g.deliverEach(&k, w.d, i, done)
			continue
		}
		done(i, g.deliverPlain(&k, w))
		i++
	}
	g.metrics.Push(int(res.Delivered)+len(res.Missing), time.Since(start))
	return res, nil
}

// deliverPlain writes w's frame bytes to the connection of w's user with
// w's session. The rare other cases — a device slot's session, a
// connection the route is confirming right now, one that is not here —
// take deliverOne with the frame decoded.
func (g *Gateway) deliverPlain(k *conn.Cork, w wireDelivery) bool {
	if bytes.IndexByte(w.sid, '.') < 0 {
		if c, ok := g.hub.GetBytes(w.uid); ok && string(w.sid) == c.SessionID() {
			return k.SendEncoded(c, w.typ, w.frame)
		}
	}
	f := &cimpb.Frame{}
	if err := proto.Unmarshal(w.frame, f); err != nil {
		g.log.Warn("pushed frame not decodable, dropped", "user", string(w.uid), "err", err)
		return false
	}
	return g.deliverOne(k, string(w.uid), string(w.sid), f, nil)
}

// parsePushBatch splits a PushBatch into its deliveries, decoding only
// those that are not plain.
func parsePushBatch(b []byte) ([]wireDelivery, error) {
	var out []wireDelivery
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("%w: %v", errPushWire, protowire.ParseError(n))
		}
		b = b[n:]
		if num != batchDeliveries || typ != protowire.BytesType {
			// A field this gateway does not know, or of another wire
			// type: skipped, as proto skips it.
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return nil, fmt.Errorf("%w: %v", errPushWire, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, fmt.Errorf("%w: %v", errPushWire, protowire.ParseError(n))
		}
		b = b[n:]
		w, err := parseDelivery(v)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// parseDelivery reads one Delivery. It is plain when it has a user, a
// session (of valid UTF-8, as proto requires of strings) and a frame,
// each once, nothing else, and the frame is a MSG or a RECEIPT: frames
// that never end a connection nor change what it watches.
func parseDelivery(v []byte) (wireDelivery, error) {
	var w wireDelivery
	var seen [maxPlainDelivery + 1]bool
	plain := true
	for b := v; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return w, fmt.Errorf("%w: %v", errPushWire, protowire.ParseError(n))
		}
		b = b[n:]
		if typ == protowire.BytesType && num >= deliveryUserID && num <= deliveryFrame && !seen[num] {
			x, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return w, fmt.Errorf("%w: %v", errPushWire, protowire.ParseError(n))
			}
			b = b[n:]
			seen[num] = true
			switch num {
			case deliveryUserID:
				w.uid = x
			case deliverySession:
				w.sid = x
			case deliveryFrame:
				w.frame = x
			}
			continue
		}
		plain = false
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return w, fmt.Errorf("%w: %v", errPushWire, protowire.ParseError(n))
		}
		b = b[n:]
	}
	if plain && len(w.uid) > 0 && len(w.sid) > 0 && w.frame != nil && utf8.Valid(w.uid) && utf8.Valid(w.sid) {
		if t, ok := frameType(w.frame); ok && (t == cimpb.Type_MSG || t == cimpb.Type_RECEIPT) {
			w.typ = t
			return w, nil
		}
	}
	d := &cimpb.Delivery{}
	if err := proto.Unmarshal(v, d); err != nil {
		return w, fmt.Errorf("%w: %v", errPushWire, err)
	}
	return wireDelivery{d: d}, nil
}

// frameType returns the type of an encoded Frame (the last one given, as
// proto reads it); false when its outer framing is broken.
func frameType(f []byte) (cimpb.Type, bool) {
	var t cimpb.Type
	for len(f) > 0 {
		num, typ, n := protowire.ConsumeTag(f)
		if n < 0 {
			return 0, false
		}
		f = f[n:]
		if num == frameTypeField && typ == protowire.VarintType {
			x, n := protowire.ConsumeVarint(f)
			if n < 0 {
				return 0, false
			}
			f = f[n:]
			t = cimpb.Type(int32(x))
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, f); n < 0 {
			return 0, false
		}
		f = f[n:]
	}
	return t, true
}
