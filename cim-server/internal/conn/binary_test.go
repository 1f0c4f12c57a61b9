package conn

import (
	"strings"
	"testing"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// TestBinaryChecks: a KIND_BINARY body (a device's payload, over TCP too)
// may hold any bytes, bounded by MaxText like a text; one over the bound is
// ERROR BadArgument with its client_msg_id and is not forwarded.
func TestBinaryChecks(t *testing.T) {
	h := newHandler()
	cl, _ := serveTCP(t, testConfig(func(c *Config) { c.MaxText = 10 }), h)
	login(t, cl, goodToken(t))
	bin := func(id string, body []byte) *cimpb.Frame {
		f := textMsg(id, body)
		f.Msg.Kind = cimpb.Kind_KIND_BINARY
		return f
	}
	cl.send(bin("raw", []byte("\xff\x00\xfe\xed\xa0\x80 bin"))) // 10 bytes, not UTF-8
	cl.send(bin("long", []byte("\x00123456789a")))
	e := cl.expectError(codes.BadArgument)
	if e.Error.ClientMsgId != "long" || !strings.Contains(e.Error.Text, "binary body is 11 bytes, the limit is 10") {
		t.Fatalf("got %v", e)
	}
	cl.sync()
	if got := strings.Join(h.forwardedMsgs(), " "); got != "raw" {
		t.Fatalf("forwarded %q, want raw", got)
	}
}
