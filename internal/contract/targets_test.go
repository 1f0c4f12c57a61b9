package contract

import (
	"strings"
	"testing"

	"github.com/gocim/gocim/proto/cimpb"
)

func TestPackedTargetsRoundTrip(t *testing.T) {
	want := [][2]string{{"u1", "s1"}, {"", ""}, {strings.Repeat("u", 200), "web.9f"}, {"ü", strings.Repeat("s", 128)}}
	var b []byte
	size := 0
	for _, w := range want {
		b = AppendTarget(b, w[0], w[1])
		size += TargetSize(w[0], w[1])
	}
	if len(b) != size {
		t.Fatalf("packed %d bytes, TargetSize summed to %d", len(b), size)
	}
	for i, w := range want {
		uid, sid, rest, ok := NextTarget(b)
		if !ok || string(uid) != w[0] || string(sid) != w[1] {
			t.Fatalf("target %d = %q %q %v, want %q %q", i, uid, sid, ok, w[0], w[1])
		}
		b = rest
	}
	if _, _, _, ok := NextTarget(b); ok || len(b) != 0 {
		t.Fatalf("left over after the last target: %q", b)
	}
	if n := Targets(&cimpb.Delivery{PackedTargets: AppendTarget(AppendTarget(nil, "a", "1"), "b", "2")}); n != 2 {
		t.Fatalf("Targets = %d, want 2", n)
	}
}

// A malformed tail ends the targets where it starts: the route and the
// gateway count the same ones.
func TestPackedTargetsMalformed(t *testing.T) {
	good := AppendTarget(nil, "a", "1")
	for name, tail := range map[string][]byte{
		"length past the end":   {5, 'x'},
		"session cut off":       {1, 'b', 3, 'y'},
		"uvarint never ends":    {0xff, 0xff, 0xff},
		"length over 64 bits":   {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"huge length, few data": {0xff, 0xff, 0xff, 0xff, 0x0f, 'z'},
	} {
		t.Run(name, func(t *testing.T) {
			b := append(append([]byte{}, good...), tail...)
			if n := Targets(&cimpb.Delivery{PackedTargets: b}); n != 1 {
				t.Fatalf("Targets = %d, want 1 (the good one)", n)
			}
			if _, _, _, ok := NextTarget(tail); ok {
				t.Fatal("NextTarget accepted a malformed target")
			}
			if n := Targets(&cimpb.Delivery{PackedTargets: tail}); n != 1 {
				t.Fatalf("Targets of nothing readable = %d, want 1 (a delivery counts at least once)", n)
			}
		})
	}
}
