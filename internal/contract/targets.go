package contract

import (
	"encoding/binary"

	"github.com/gocim/gocim/proto/cimpb"
)

// A shared delivery's packed targets (cimpb.Delivery.packed_targets) are its
// users' sessions in one byte string: for each, the user id and then the
// session id, each a uvarint length and that many bytes. A 5,000-member
// group message then costs the route and the gateway no message and no
// strings per member; decoding repeated Target messages was a quarter of a
// gateway's CPU in a large fan-out.

// TargetSize is how many bytes AppendTarget adds for uid and sid.
func TargetSize(uid, sid string) int {
	return uvarintLen(len(uid)) + len(uid) + uvarintLen(len(sid)) + len(sid)
}

// AppendTarget appends one target to packed targets b.
func AppendTarget(b []byte, uid, sid string) []byte {
	b = binary.AppendUvarint(b, uint64(len(uid)))
	b = append(b, uid...)
	b = binary.AppendUvarint(b, uint64(len(sid)))
	return append(b, sid...)
}

// NextTarget reads the first target of packed targets b; ok is false when b
// is empty or its first target is malformed (then nothing after it counts).
func NextTarget(b []byte) (uid, sid, rest []byte, ok bool) {
	uid, b, ok = field(b)
	if !ok {
		return nil, nil, nil, false
	}
	sid, b, ok = field(b)
	if !ok {
		return nil, nil, nil, false
	}
	return uid, sid, b, true
}

func field(b []byte) (v, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	end := k + int(n)
	return b[k:end:end], b[end:], true
}

// Targets is how many users' sessions d goes to, as a PushResult's indexes
// count them: its packed targets up to the first malformed one, else its
// targets, and at least one (a delivery without targets is one user's).
func Targets(d *cimpb.Delivery) int {
	if p := d.GetPackedTargets(); len(p) > 0 {
		n := 0
		for {
			_, _, rest, ok := NextTarget(p)
			if !ok {
				return max(1, n)
			}
			n++
			p = rest
		}
	}
	return max(1, len(d.GetTargets()))
}

func uvarintLen(n int) int {
	k := 1
	for n >= 0x80 {
		n >>= 7
		k++
	}
	return k
}
