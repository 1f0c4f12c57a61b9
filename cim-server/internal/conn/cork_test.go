package conn

import (
	"bytes"
	"testing"

	"github.com/gocim/gocim/proto/codec"
)

// TestCorkWritesABatchAtOnce: frames sent through a Cork wait, queued, for
// Flush, then reach the client in one write (net.Pipe hands one write to
// one read), shared and own frames alike, in order.
func TestCorkWritesABatchAtOnce(t *testing.T) {
	cl, c := servePipe(t, testConfig(nil), newHandler())
	login(t, cl, goodToken(t))
	waitWriterIdle(t, c)

	var k Cork
	s := NewShared(textMsg("g1", []byte("to the group")))
	for _, send := range []func() bool{
		func() bool { return k.Send(c, textMsg("a", []byte("one"))) },
		func() bool { return k.SendShared(c, s) },
		func() bool { return k.Send(c, textMsg("b", []byte("two"))) },
	} {
		if !send() {
			t.Fatal("send refused")
		}
	}
	c.mu.Lock()
	queued := len(c.pending)
	c.mu.Unlock()
	if queued != 3 || len(k.conns) != 1 {
		t.Fatalf("%d frames queued before Flush, %d writers held, want 3 and 1 (no writer started)", queued, len(k.conns))
	}
	k.Flush()

	buf := make([]byte, 64<<10)
	n, err := cl.nc.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	r := codec.NewReader(bytes.NewReader(buf[:n]), codec.DefaultMaxFrame)
	var got []string
	for {
		f, err := r.ReadFrame()
		if err != nil {
			break
		}
		got = append(got, f.GetMsg().GetClientMsgId())
	}
	if len(got) != 3 || got[0] != "a" || got[1] != "g1" || got[2] != "b" {
		t.Fatalf("one read got frames %v, want a, g1, b", got)
	}
}
