package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/proto/cimpb"
)

func sample() []*cimpb.Frame {
	return []*cimpb.Frame{
		{Type: cimpb.Type_PING},
		{Type: cimpb.Type_LOGIN, ReqId: 7, Login: &cimpb.Login{Token: "t.k", LastSeq: 42}},
		{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "c1", To: "bob", Body: bytes.Repeat([]byte("x"), 300)}},
		{Type: cimpb.Type_ERROR, Error: &cimpb.Error{Code: 3000, Text: "bad"}},
	}
}

func TestRoundTripOneByteReads(t *testing.T) {
	var stream bytes.Buffer
	w := NewWriter(&stream)
	for _, f := range sample() {
		if err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := NewReader(iotest.OneByteReader(&stream), 0)
	for i, want := range sample() {
		got, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("frame %d: got %v want %v", i, got, want)
		}
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("after last frame: got %v, want io.EOF", err)
	}
}

func TestBadInput(t *testing.T) {
	big, _ := Encode(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{Body: make([]byte, 200)}})
	ok, _ := Encode(&cimpb.Frame{Type: cimpb.Type_PING})
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"too large", big, ErrFrameTooLarge},
		{"varint too long", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrBadLength},
		{"varint over 32 bits", []byte{0xff, 0xff, 0xff, 0xff, 0x7f}, ErrBadLength},
		{"not protobuf", []byte{3, 0xff, 0xff, 0xff}, ErrBadFrame},
		{"truncated payload", ok[:len(ok)-1], io.ErrUnexpectedEOF},
		{"truncated length", []byte{0x80}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tt.in), 100).ReadFrame()
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadFrame: got %v, want %v", err, tt.want)
			}
			_, _, err = Decode(tt.in, 100)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode: got %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzReader feeds arbitrary bytes, split at an arbitrary point, to the
// stream reader and checks it never panics and agrees with Decode.
func FuzzReader(f *testing.F) {
	for _, fr := range sample() {
		b, _ := Encode(fr)
		f.Add(b, uint8(1))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff}, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		cut := int(split)
		if cut > len(data) {
			cut = len(data)
		}
		r := NewReader(io.MultiReader(iotest.HalfReader(bytes.NewReader(data[:cut])), bytes.NewReader(data[cut:])), 1024)
		rest := data
		for {
			got, err := r.ReadFrame()
			want, n, derr := Decode(rest, 1024)
			if err != nil {
				if derr == nil {
					t.Fatalf("reader failed (%v) where Decode succeeded", err)
				}
				return
			}
			if derr != nil {
				t.Fatalf("Decode failed (%v) where reader succeeded", derr)
			}
			if !proto.Equal(got, want) {
				t.Fatalf("reader and Decode disagree: %v vs %v", got, want)
			}
			// Re-encoding a decoded frame must decode to the same frame.
			b, err := Encode(got)
			if err != nil {
				t.Fatal(err)
			}
			again, _, err := Decode(b, 1<<20)
			if err != nil || !proto.Equal(again, got) {
				t.Fatalf("re-encode mismatch: %v", err)
			}
			rest = rest[n:]
		}
	})
}

// TestAnnouncedLengthReservesNothing: a peer that sends a maximal length
// prefix and a few bytes costs the reader what arrived, not what was
// announced (the gateway held 64 KiB per such connection before).
func TestAnnouncedLengthReservesNothing(t *testing.T) {
	const limit = 64 << 10
	in := binary.AppendUvarint(nil, limit)
	in = append(in, 0x08, 0x01) // the start of a frame, then the peer stalls
	const runs = 50
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		_, err := NewReader(bytes.NewReader(in), limit).ReadFrame()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("ReadFrame: %v, want io.ErrUnexpectedEOF", err)
		}
	}
	runtime.ReadMemStats(&after)
	// The bufio.Reader (4 KiB) and the first chunk are all it may take.
	perRun := (after.TotalAlloc - before.TotalAlloc) / runs
	if perRun > 8<<10 {
		t.Fatalf("%d bytes allocated per prefix-only frame, want at most 8 KiB (announced %d)", perRun, limit)
	}
}

// TestLargeFrameGrowsAsItArrives: a frame at the limit, arriving one byte
// at a time, still decodes, and the buffer never runs far ahead of the
// bytes read.
func TestLargeFrameGrowsAsItArrives(t *testing.T) {
	want := &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{Kind: cimpb.Kind_KIND_FILE, Body: bytes.Repeat([]byte{7}, 60<<10)}}
	b, err := Encode(want)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(iotest.OneByteReader(bytes.NewReader(b)), 64<<10)
	got, err := r.ReadFrame()
	if err != nil || !proto.Equal(got, want) {
		t.Fatalf("ReadFrame: %v", err)
	}
	if r.buf != nil {
		t.Fatalf("a %d-byte buffer is kept after a large frame", cap(r.buf))
	}
}

// TestSkipOversized: with SkipOversized a frame over the limit is read past
// and reported as ErrFrameSkipped; the frames around it arrive intact.
func TestSkipOversized(t *testing.T) {
	small := &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{Seq: 1, Body: []byte("hi")}}
	big := &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{Seq: 2, Body: bytes.Repeat([]byte("x"), 5000)}}
	after := &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{Seq: 3, Body: []byte("after")}}
	var stream []byte
	for _, f := range []*cimpb.Frame{small, big, after} {
		stream, _ = AppendFrame(stream, f)
	}
	r := NewReader(iotest.HalfReader(bytes.NewReader(stream)), 1000).SkipOversized()
	if f, err := r.ReadFrame(); err != nil || !proto.Equal(f, small) {
		t.Fatalf("first frame: %v %v", f, err)
	}
	if _, err := r.ReadFrame(); !errors.Is(err, ErrFrameSkipped) || errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized frame: %v, want ErrFrameSkipped", err)
	}
	if f, err := r.ReadFrame(); err != nil || !proto.Equal(f, after) {
		t.Fatalf("frame after the skipped one: %v %v", f, err)
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("end: %v, want io.EOF", err)
	}
	// Cut inside the oversized payload: the stream ended inside a frame.
	big2, _ := Encode(big)
	if _, err := NewReader(bytes.NewReader(big2[:100]), 1000).SkipOversized().ReadFrame(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated oversized frame: %v, want io.ErrUnexpectedEOF", err)
	}
	// Without SkipOversized the same frame is an error for the connection.
	if _, err := NewReader(bytes.NewReader(big2), 1000).ReadFrame(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("without skipping: %v, want ErrFrameTooLarge", err)
	}
}

// TestAppendFrameMax: a frame over the peer's limit is not appended.
func TestAppendFrameMax(t *testing.T) {
	f := &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{Body: bytes.Repeat([]byte("x"), 200)}}
	size := proto.Size(f)
	dst := []byte("keep")
	out, err := AppendFrameMax(dst, f, size-1)
	if !errors.Is(err, ErrFrameTooLarge) || string(out) != "keep" {
		t.Fatalf("over the limit: %q %v", out, err)
	}
	out, err = AppendFrameMax(dst, f, size)
	if err != nil {
		t.Fatal(err)
	}
	if got, n, err := Decode(out[4:], size); err != nil || n != len(out)-4 || !proto.Equal(got, f) {
		t.Fatalf("at the limit: %v", err)
	}
}

// An encoded frame costs one allocation, the slice it is written to, and
// decodes to what was encoded also when the frame was sized before and
// changed since (the size Marshal reuses is the one Encode just took).
func TestEncodeAllocations(t *testing.T) {
	f := &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "c1", To: "bob", Body: bytes.Repeat([]byte("x"), 300)}}
	if raceEnabled {
		t.Log("allocation count not checked under -race (make allocs checks it)")
	} else if n := testing.AllocsPerRun(100, func() {
		if _, err := Encode(f); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Fatalf("Encode allocated %v times, want 1", n)
	}
	_ = proto.Size(f)
	f.Msg.Body = bytes.Repeat([]byte("y"), 1000) // stale cached sizes
	b, err := Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := Decode(b, 0); err != nil || !proto.Equal(got, f) {
		t.Fatalf("after a change: %v", err)
	}
}
