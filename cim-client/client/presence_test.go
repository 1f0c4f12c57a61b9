package client

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// TestPresenceApply: a snapshot replaces what the client knew and answers
// its Subscribe; a change is kept only for a watched user and only when it
// is not older than the state kept (pushes may pass each other).
func TestPresenceApply(t *testing.T) {
	var p presence
	ch := make(chan subAnswer, 1)
	p.waiting = map[uint64]chan subAnswer{subscribeReqBase + 1: ch}
	snap := &cimpb.Frame{Type: cimpb.Type_PRESENCE, ReqId: subscribeReqBase + 1, Presence: &cimpb.Presence{Snapshot: true,
		States: []*cimpb.PresenceState{{UserId: "2", Online: true, AtMs: 100}, {UserId: "3"}}}}
	if ev, ok := p.apply(snap); !ok || !ev.Presence.Snapshot || len(ev.Presence.States) != 2 {
		t.Fatalf("snapshot event %v %v", ev, ok)
	}
	if a := <-ch; a.err != nil || len(a.states) != 2 {
		t.Fatalf("Subscribe's answer %+v", a)
	}
	change := func(states ...*cimpb.PresenceState) (Event, bool) {
		return p.apply(&cimpb.Frame{Type: cimpb.Type_PRESENCE, Presence: &cimpb.Presence{States: states}})
	}
	if _, ok := change(&cimpb.PresenceState{UserId: "2", Online: false, AtMs: 99}); ok {
		t.Fatal("an older change was reported")
	}
	if _, ok := change(&cimpb.PresenceState{UserId: "9", Online: true, AtMs: 500}); ok {
		t.Fatal("a change of an unwatched user was reported")
	}
	ev, ok := change(&cimpb.PresenceState{UserId: "9", Online: true, AtMs: 500}, &cimpb.PresenceState{UserId: "2", AtMs: 200})
	if !ok || len(ev.Presence.States) != 1 || ev.Presence.States[0].UserId != "2" || ev.Presence.States[0].Online {
		t.Fatalf("change event %v %v, want only 2 offline", ev, ok)
	}
	if p.states["2"].Online || p.states["2"].AtMs != 200 {
		t.Fatalf("kept %v", p.states["2"])
	}
	// An ERROR answering a Subscribe goes to it, nothing else does.
	ch2 := make(chan subAnswer, 1)
	p.waiting[subscribeReqBase+2] = ch2
	if p.refused(5, &GatewayError{Code: codes.BadAccount}) || p.refused(subscribeReqBase+3, &GatewayError{}) {
		t.Fatal("an ERROR for no Subscribe was taken")
	}
	if !p.refused(subscribeReqBase+2, &GatewayError{Code: codes.BadAccount}) {
		t.Fatal("the Subscribe's ERROR was not taken")
	}
	if a := <-ch2; a.err == nil {
		t.Fatal("no error handed over")
	}
}

// TestAPIPresenceLastSeen: GET /presence's lastSeen comes as LastSeen, 0
// where the route leaves it out (online, never seen, hidden).
func TestAPIPresenceLastSeen(t *testing.T) {
	var query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/presence" {
			http.NotFound(w, r)
			return
		}
		query = r.URL.Query().Get("users")
		_, _ = io.WriteString(w, `{"code":9000,"message":"ok","data":{"users":[`+
			`{"userId":"2","userName":"bob","online":false,"lastSeen":1700000123456},`+
			`{"userId":3,"userName":"carol","online":true,"since":1700000000001},`+
			`{"userId":"4","userName":"dave","online":false}]}}`)
	}))
	defer srv.Close()
	got, err := NewAPI(srv.URL, nil).Presence(context.Background(), "bob", "carol", "dave")
	if err != nil {
		t.Fatal(err)
	}
	want := []UserPresence{
		{UserID: "2", UserName: "bob", LastSeen: 1700000123456},
		{UserID: "3", UserName: "carol", Online: true, Since: 1700000000001},
		{UserID: "4", UserName: "dave"},
	}
	if query != "bob,carol,dave" {
		t.Errorf("asked for users=%q", query)
	}
	if len(got) != len(want) {
		t.Fatalf("Presence = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Presence[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}
