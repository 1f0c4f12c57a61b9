package main

import (
	"regexp"
	"slices"
	"testing"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// TestBlockCommands: :block, :unblock and :blocks against the fake route
// (its block set follows them), a message to a blocked user printing the
// route's refusal, and the error lines.
func TestBlockCommands(t *testing.T) {
	s := newSession(t)
	uid := s.route.AddUser("alice", "secret1")
	bob := s.route.AddUser("bob", "secret1")
	carol := s.route.AddUser("carol", "secret1")
	s.route.AddUser("dave", "secret1")
	// The gateway refuses messages to bob while alice blocks him, as the
	// route does.
	s.gw.SetOnMsg(func(m *cimpb.Msg) *cimpb.Frame {
		if m.GetTo() == "bob" && slices.Contains(s.route.Blocked(uid), bob) {
			return &cimpb.Frame{Type: cimpb.Type_ERROR, Error: &cimpb.Error{Code: int32(codes.Forbidden),
				Text: "you blocked this user: unblock them to write to them", ClientMsgId: m.GetClientMsgId()}}
		}
		return clienttest.Receipts(m)
	})
	s.start(t)
	n := s.out.expect(t, 0, `^\* logged in as alice`)
	bearer := "Bearer " + clienttest.AccessToken(uid, "s1")

	s.send(t, ":blocks")
	n = s.out.expect(t, n, `^\* nobody blocked$`)
	s.send(t, ":block bob")
	n = s.out.expect(t, n, `^\* blocked bob: you will not get their messages$`)
	if got := s.route.Blocked(uid); !slices.Equal(got, []string{bob}) {
		t.Fatalf("the route's block set %v after :block bob, want bob", got)
	}
	s.send(t, ":block "+carol)
	n = s.out.expect(t, n, `^\* blocked carol: you will not get their messages$`)
	s.send(t, ":blocks")
	n = s.out.expect(t, n, `^\* blocked: bob\(`+bob+`\), carol\(`+carol+`\)$`)

	s.send(t, "bob;;hi")
	n = s.out.expect(t, n, `^! you blocked this user: unblock them to write to them$`)

	// Refusals.
	s.send(t, ":block zed")
	n = s.out.expect(t, n, `^! no such user: zed$`)
	s.send(t, ":block alice")
	n = s.out.expect(t, n, `^! you cannot block yourself$`)
	s.route.SetBlockMax(2)
	s.send(t, ":block dave")
	n = s.out.expect(t, n, `^! too many users blocked \(at most 1000\): :unblock some first$`)
	s.send(t, ":unblock zed")
	n = s.out.expect(t, n, `^! no such user: zed$`)
	s.send(t, ":block")
	n = s.out.expect(t, n, `^! usage: :block <user>$`)
	if got := s.route.Blocked(uid); !slices.Equal(got, []string{bob, carol}) {
		t.Errorf("the route's block set %v after refusals, want bob and carol", got)
	}

	s.send(t, ":unblock bob")
	n = s.out.expect(t, n, `^\* unblocked bob$`)
	if got := s.route.Blocked(uid); !slices.Equal(got, []string{carol}) {
		t.Errorf("the route's block set %v after :unblock bob, want carol", got)
	}
	s.send(t, "bob;;hi again")
	n = s.out.expect(t, n, `^\* ✓ sent to bob: hi again$`)
	for _, endpoint := range []string{"GET /blocks", "POST /blocks", "DELETE /blocks/{user}"} {
		if got := s.route.Bearer(endpoint); got != bearer {
			t.Errorf("%s: Authorization %q, want %q", endpoint, got, bearer)
		}
	}

	s.send(t, ":help")
	for _, cmd := range []string{":block <user>", ":unblock <user>", ":blocks"} {
		s.out.expect(t, n, `^\*   `+regexp.QuoteMeta(cmd)+` `)
	}
	s.send(t, ":q")
	if code := s.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, s.err.String())
	}
}
