package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/proto/cimpb"
)

// wireDeliveryBytes encodes a Delivery field by field, the frame given
// encoded.
func wireDeliveryBytes(uid, sid string, frame []byte) []byte {
	var b []byte
	if uid != "" {
		b = protowire.AppendTag(b, deliveryUserID, protowire.BytesType)
		b = protowire.AppendString(b, uid)
	}
	if sid != "" {
		b = protowire.AppendTag(b, deliverySession, protowire.BytesType)
		b = protowire.AppendString(b, sid)
	}
	if frame != nil {
		b = protowire.AppendTag(b, deliveryFrame, protowire.BytesType)
		b = protowire.AppendBytes(b, frame)
	}
	return b
}

// wireBatch encodes a PushBatch of encoded deliveries.
func wireBatch(ds ...[]byte) []byte {
	var b []byte
	for _, d := range ds {
		b = protowire.AppendTag(b, batchDeliveries, protowire.BytesType)
		b = protowire.AppendBytes(b, d)
	}
	return b
}

// oddMsgFrame is a MSG frame encoded as Go's proto never would: an unknown
// field first, the Msg before the type. Decoding and encoding it again
// changes its bytes; passing it through does not.
func oddMsgFrame(t *testing.T, id string) []byte {
	t.Helper()
	m, err := proto.Marshal(&cimpb.Msg{MsgId: id, Body: []byte("body " + id), Seq: 5})
	if err != nil {
		t.Fatal(err)
	}
	var f []byte
	f = protowire.AppendTag(f, 99, protowire.BytesType)
	f = protowire.AppendString(f, "from a newer route")
	f = protowire.AppendTag(f, 5, protowire.BytesType) // Frame.msg
	f = protowire.AppendBytes(f, m)
	f = protowire.AppendTag(f, frameTypeField, protowire.VarintType)
	f = protowire.AppendVarint(f, uint64(cimpb.Type_MSG))
	return f
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsePushBatch(t *testing.T) {
	msg := marshal(t, &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "m"}})
	receipt := marshal(t, &cimpb.Frame{Type: cimpb.Type_RECEIPT, Receipt: &cimpb.Receipt{MsgId: "m"}})
	kick := marshal(t, &cimpb.Frame{Type: cimpb.Type_KICK, Kick: &cimpb.Kick{Reason: "r"}})
	withTargets := marshal(t, &cimpb.Delivery{Frame: &cimpb.Frame{Type: cimpb.Type_MSG}, Targets: []*cimpb.Target{{UserId: "1"}}})
	watchers := append(wireDeliveryBytes("1", "s", msg), protowire.AppendVarint(protowire.AppendTag(nil, 5, protowire.VarintType), 1)...)
	unknown := append(wireDeliveryBytes("1", "s", msg), protowire.AppendVarint(protowire.AppendTag(nil, 50, protowire.VarintType), 1)...)
	twice := append(wireDeliveryBytes("1", "s", msg), wireDeliveryBytes("", "", receipt)...)
	cut := msg[:len(msg)-1]

	for _, c := range []struct {
		name  string
		d     []byte
		plain bool
	}{
		{"msg", wireDeliveryBytes("1", "s", msg), true},
		{"receipt", wireDeliveryBytes("1", "s", receipt), true},
		{"odd msg", wireDeliveryBytes("1", "s", oddMsgFrame(t, "x")), true},
		{"kick", wireDeliveryBytes("1", "s", kick), false},
		{"no session", wireDeliveryBytes("1", "", msg), false},
		{"no user", wireDeliveryBytes("", "s", msg), false},
		{"no frame", wireDeliveryBytes("1", "s", nil), false},
		{"targets", withTargets, false},
		{"watchers", watchers, false},
		{"unknown field", unknown, false},
		{"frame twice (merged)", twice, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ds, err := parsePushBatch(wireBatch(c.d))
			if err != nil || len(ds) != 1 {
				t.Fatalf("parse: %v %v", ds, err)
			}
			w := ds[0]
			if plain := w.d == nil; plain != c.plain {
				t.Fatalf("plain %v, want %v", plain, c.plain)
			}
			// Whichever way, it is the delivery proto reads.
			want := &cimpb.Delivery{}
			if err := proto.Unmarshal(c.d, want); err != nil {
				t.Fatal(err)
			}
			got := w.d
			if got == nil {
				got = &cimpb.Delivery{UserId: string(w.uid), SessionId: string(w.sid), Frame: &cimpb.Frame{}}
				if err := proto.Unmarshal(w.frame, got.Frame); err != nil {
					t.Fatal(err)
				}
				if got.Frame.Type != w.typ {
					t.Fatalf("type %v, frame says %v", w.typ, got.Frame.Type)
				}
			}
			if !proto.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}

	// A field of the batch this gateway does not know is skipped, as
	// proto skips it, and so is a known one of another wire type.
	extra := protowire.AppendString(protowire.AppendTag(nil, 7, protowire.BytesType), "later")
	extra = protowire.AppendVarint(protowire.AppendTag(extra, batchDeliveries, protowire.VarintType), 1)
	ds, err := parsePushBatch(append(extra, wireBatch(wireDeliveryBytes("1", "s", msg), wireDeliveryBytes("2", "t", receipt))...))
	if err != nil || len(ds) != 2 || string(ds[1].uid) != "2" || ds[1].typ != cimpb.Type_RECEIPT {
		t.Fatalf("with an unknown field: %+v %v", ds, err)
	}

	for _, bad := range []struct {
		name string
		body []byte
	}{
		{"cut tag", []byte{0x80}},
		{"cut delivery", wireBatch(wireDeliveryBytes("1", "s", msg))[:5]},
		{"cut frame", wireBatch(wireDeliveryBytes("1", "s", cut))},
		{"user not UTF-8", wireBatch(wireDeliveryBytes("\xff", "s", msg))},
		{"cut field in a delivery", wireBatch(append(wireDeliveryBytes("1", "s", msg), 0x28))},
	} {
		if ds, err := parsePushBatch(bad.body); !errors.Is(err, errPushWire) {
			t.Errorf("%s: %v %v, want errPushWire", bad.name, ds, err)
		}
		if err := proto.Unmarshal(bad.body, &cimpb.PushBatch{}); err == nil {
			t.Errorf("%s: proto takes it", bad.name)
		}
	}
}

// recvEncoded reads the next frame's bytes as the gateway wrote them,
// straight from the socket, byte by byte up to the frame's end. Call it
// only when the client's codec reader holds nothing buffered.
func (c *client) recvEncoded() []byte {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	n, err := binary.ReadUvarint(byteReader{c.nc})
	if err != nil || n > 1<<20 {
		c.t.Fatalf("read length: %d %v", n, err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.nc, b); err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return b
}

// byteReader reads one byte at a time, buffering nothing.
type byteReader struct{ r io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var x [1]byte
	_, err := io.ReadFull(b.r, x[:])
	return x[0], err
}

// TestPushPassesFramesThrough: a pushed MSG for a user's session reaches the
// client byte for byte as the route encoded it (not decoded and encoded
// again), in order with the deliveries around it that take the decoding
// path, and counted alike.
func TestPushPassesFramesThrough(t *testing.T) {
	route := newFakeRoute(t)
	g := startGateway(t, route.srv.URL, nil)
	a := login(t, g, "1", "sa")
	odd := oddMsgFrame(t, "p1")
	body := wireBatch(
		wireDeliveryBytes("1", "sa", odd),    // 0: delivered as is
		wireDeliveryBytes("3", "s3", odd),    // 1: not here
		wireDeliveryBytes("1", "other", odd), // 2: wrong session
		marshal(t, &cimpb.Delivery{UserId: "1", Frame: &cimpb.Frame{ // 3: no session: decoded, delivered
			Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "p2"}}}),
	)
	status, out := postPushBody(t, g, body, internalSecret)
	if status != http.StatusOK {
		t.Fatalf("/push: %d %s", status, out)
	}
	res := &cimpb.PushResult{}
	if err := proto.Unmarshal(out, res); err != nil {
		t.Fatal(err)
	}
	if res.Delivered != 2 || fmt.Sprint(res.Missing) != "[1 2]" {
		t.Fatalf("result %v, want delivered 2 missing [1 2]", res)
	}
	if got := a.recvEncoded(); !bytes.Equal(got, odd) {
		t.Fatalf("client got\n%x\nroute sent\n%x", got, odd)
	}
	if f := a.recv(); f.GetMsg().GetMsgId() != "p2" {
		t.Fatalf("then got %v, want p2", f)
	}

	// A body that is no PushBatch delivers nothing.
	status, _ = postPushBody(t, g, append(wireBatch(wireDeliveryBytes("1", "sa", odd)), 0x80), internalSecret)
	if status != http.StatusBadRequest {
		t.Fatalf("malformed body: %d, want 400", status)
	}
	res = push(t, g, &cimpb.PushBatch{Deliveries: []*cimpb.Delivery{{UserId: "1", SessionId: "sa",
		Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{MsgId: "p3"}}}}})
	if res.Delivered != 1 {
		t.Fatalf("after the bad body: %v", res)
	}
	if f := a.recv(); f.GetMsg().GetMsgId() != "p3" {
		t.Fatalf("after the bad body got %v, want p3 (nothing of the bad one)", f)
	}
}
