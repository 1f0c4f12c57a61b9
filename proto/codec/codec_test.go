package codec

import (
	"bytes"
	"errors"
	"io"
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
