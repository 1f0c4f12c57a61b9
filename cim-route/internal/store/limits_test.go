package store

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

// TestRangeBoundedInBytes: a range over large entries answers at most
// MaxBytes of them (at least one, however large), and continuing after the
// last one reaches every entry once.
func TestRangeBoundedInBytes(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := ctxT(t)
	const n, size = 40, 60 << 10
	var in []Append
	for i := range n {
		in = append(in, Append{UserID: "7", Frame: bytes.Repeat([]byte{byte('a' + i%26)}, size), MsgID: fmt.Sprint("m", i)})
	}
	if _, err := s.Append(ctx, in); err != nil {
		t.Fatal(err)
	}
	var seen []uint64
	after := uint64(0)
	for len(seen) < n {
		r, err := s.Ranges(ctx, []RangeQuery{{UserID: "7", After: after, Limit: 200}})
		if err != nil {
			t.Fatal(err)
		}
		es := r[0].Entries
		total := 0
		for _, e := range es {
			total += len(e.Frame)
			seen = append(seen, e.Seq)
		}
		if len(es) == 0 || total > DefaultRangeBytes {
			t.Fatalf("a range after %d answered %d entries of %d bytes, want 1.. within %d", after, len(es), total, DefaultRangeBytes)
		}
		after = es[len(es)-1].Seq
	}
	for i, seq := range seen {
		if seq != uint64(i+1) {
			t.Fatalf("seqs %v, want 1..%d once each", seen, n)
		}
	}
	// One entry above the bound still goes, alone: a range always moves on.
	r, err := s.Ranges(ctx, []RangeQuery{{UserID: "7", Limit: 200, MaxBytes: 1000}})
	if err != nil || len(r[0].Entries) != 1 || r[0].Entries[0].Seq != 1 {
		t.Fatalf("range with a bound below one entry = %+v, %v; want entry 1 alone", r, err)
	}
}

// TestDroppableNeverEvicts: a receipt (droppable) is stored only while the
// inbox is below its max length; at the cap it answers Seq 0 and every
// message stays.
func TestDroppableNeverEvicts(t *testing.T) {
	s, _, _ := newStore(t)
	WithInbox(InboxLimits{MaxLen: 5})(s)
	ctx := ctxT(t)
	var in []Append
	for i := range 3 {
		in = append(in, msgAppend("7", "1", fmt.Sprint("c", i), fmt.Sprint("m", i)))
	}
	for i := range 4 {
		in = append(in, Append{UserID: "7", Frame: []byte(fmt.Sprint("receipt ", i)), Droppable: true})
	}
	got, err := s.Append(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, a := range got {
		seqs = append(seqs, a.Seq)
	}
	if want := []uint64{1, 2, 3, 4, 5, 0, 0}; !slices.Equal(seqs, want) {
		t.Fatalf("seqs %v, want %v (two receipts fit, the rest are dropped)", seqs, want)
	}
	// More receipts into the full inbox: none stored, the messages stay.
	got, err = s.Append(ctx, []Append{{UserID: "7", Frame: []byte("late receipt"), Droppable: true}})
	if err != nil || got[0].Seq != 0 {
		t.Fatalf("receipt into a full inbox = %+v, %v; want not stored", got, err)
	}
	// A message still goes in (and trims the oldest, as always).
	if got, err = s.Append(ctx, []Append{msgAppend("7", "1", "c9", "m9")}); err != nil || got[0].Seq != 6 {
		t.Fatalf("message into a full inbox = %+v, %v; want seq 6", got, err)
	}
	r, _ := s.Ranges(ctx, []RangeQuery{{UserID: "7", Limit: 100}})
	var frames []string
	for _, e := range r[0].Entries {
		frames = append(frames, string(e.Frame))
	}
	if want := []string{"frame m1", "frame m2", "receipt 0", "receipt 1", "frame m9"}; !slices.Equal(frames, want) {
		t.Fatalf("inbox %q, want %q", frames, want)
	}
}

// TestClaimReads: an entry is claimed for a READ only when it is in the
// reader's inbox at that seq and names the msgId, and only once: Redis
// sends each entry back at most once, however often a READ names it.
func TestClaimReads(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := ctxT(t)
	if _, err := s.Append(ctx, []Append{msgAppend("7", "1", "c1", "id-one"), msgAppend("7", "1", "c2", "id-two")}); err != nil {
		t.Fatal(err)
	}
	claimed := func(q ReadQuery) []uint64 {
		t.Helper()
		res, err := s.ClaimReads(ctx, []ReadQuery{q})
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, e := range res[0] {
			out = append(out, e.Seq)
		}
		return out
	}
	// Wrong seq for the id, a seq past the head, seq 0; another inbox.
	if got := claimed(ReadQuery{UserID: "7", Seqs: []uint64{2, 9, 0}, MsgIDs: []string{"id-one", "id-one", "id-one"}}); !slices.Equal(got, []uint64{0, 0, 0}) {
		t.Fatalf("bad claims = %v, want none", got)
	}
	if got := claimed(ReadQuery{UserID: "8", Seqs: []uint64{1}, MsgIDs: []string{"id-one"}}); !slices.Equal(got, []uint64{0}) {
		t.Fatalf("claim in an empty inbox = %v, want none", got)
	}
	if got := claimed(ReadQuery{UserID: "7", Seqs: []uint64{1, 2, 1}, MsgIDs: []string{"id-one", "id-two", "id-one"}}); !slices.Equal(got, []uint64{1, 2, 0}) {
		t.Fatalf("claims = %v, want 1 and 2, the repeat not", got)
	}
	if got := claimed(ReadQuery{UserID: "7", Seqs: []uint64{2}, MsgIDs: []string{"id-two"}}); !slices.Equal(got, []uint64{0}) {
		t.Fatalf("second claim = %v, want none", got)
	}
	if ttl := rdb.PTTL(ctx, "cim:rd:{7}").Val(); ttl <= 0 {
		t.Fatalf("read marks have no expiry (%v)", ttl)
	}
}
