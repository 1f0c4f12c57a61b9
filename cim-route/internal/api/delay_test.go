package api

import (
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/proto/codes"
)

// TestDelay: POST /delay takes a bearer token only; bad input, an unknown
// recipient and a sender over the pending bound are refused with the codes
// the API uses elsewhere; a good request answers the id and due time.
func TestDelay(t *testing.T) {
	e := newEnv(t, func(_ *Config, rc *router.Config) { rc.DelayPending = 2 })
	e.register("alice", "bob")
	alice := e.online("alice")
	for _, tc := range []struct {
		body   string
		h      hdr
		status int
		code   codes.Code
	}{
		{`{"to":"bob","msg":"x","delaySeconds":5}`, nil, 401, codes.Unauthorized},
		{`{"to":"bob","msg":"x","delaySeconds":5}`, asPush, 403, codes.Forbidden},
		{`{"to":"bob","msg":"x","delaySeconds":0}`, alice.bearer(), 400, codes.BadArgument},
		{`{"to":"bob","msg":"x","delaySeconds":604801}`, alice.bearer(), 400, codes.BadArgument},
		{`{"to":"bob","msg":"","delaySeconds":5}`, alice.bearer(), 400, codes.BadArgument},
		{`{"to":"nobody","msg":"x","delaySeconds":5}`, alice.bearer(), 401, codes.BadAccount},
		{`{"to":"bob","msg":"x","delaySeconds":"soon"}`, alice.bearer(), 400, codes.BadArgument},
	} {
		e.expect("POST", "/delay", tc.body, tc.h, tc.status, tc.code, nil)
	}
	var d struct {
		DelayID string `json:"delayId"`
		DueAt   int64  `json:"dueAt"`
	}
	before := time.Now()
	e.expect("POST", "/delay", `{"to":"bob","msg":"later","delaySeconds":60}`, alice.bearer(), 200, codes.OK, &d)
	if due := time.UnixMilli(d.DueAt); d.DelayID == "" || due.Before(before.Add(59*time.Second)) || due.After(time.Now().Add(61*time.Second)) {
		t.Fatalf("answer %+v, want an id and a due time a minute from now", d)
	}
	e.expect("POST", "/delay", `{"to":"bob","msg":"later","delaySeconds":60}`, alice.bearer(), 200, codes.OK, nil)
	e.expect("POST", "/delay", `{"to":"bob","msg":"one too many","delaySeconds":60}`, alice.bearer(), 429, codes.QuotaExceeded, nil)
}
