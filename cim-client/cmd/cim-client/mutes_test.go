package main

import (
	"maps"
	"regexp"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
)

// TestMuteCommands: the list is read once logged in; :mute, :unmute and
// :mutes against the fake route (its mutes follow them), for users and
// groups, with and without an end; the error lines; a muted
// conversation's incoming lines unchanged.
func TestMuteCommands(t *testing.T) {
	s := newSession(t)
	uid := s.route.AddUser("alice", "secret1")
	bob := s.route.AddUser("bob", "secret1")
	carol := s.route.AddUser("carol", "secret1")
	s.route.AddUser("dave", "secret1")
	team := s.route.AddGroup("team", uid, false, bob)
	other := s.route.AddGroup("other", bob, false)
	at := time.UnixMilli(time.Now().UnixMilli())
	s.route.SetMuteClock(func() time.Time { return at })
	// The ends as the terminal prints them: the time of day, after the
	// date when it is not today (term's tests tell which).
	end := func(d time.Duration) string {
		until := at.Add(d).Local()
		return `(?:` + regexp.QuoteMeta(until.Format("2006-01-02")) + ` )?` + regexp.QuoteMeta(until.Format("15:04"))
	}
	s.start(t)
	n := s.out.expect(t, 0, `^\* logged in as alice`)
	conn := s.gw.Accept(t)
	bearer := "Bearer " + clienttest.AccessToken(uid, "s1")

	s.send(t, ":mutes")
	n = s.out.expect(t, n, `^\* nothing muted$`)
	if got := s.route.Calls("GET /mutes"); got != 2 {
		t.Errorf("GET /mutes called %d times after the login and :mutes, want 2 (the login reads the list)", got)
	}
	s.send(t, ":mute bob 30m")
	n = s.out.expect(t, n, `^\* muted bob until `+end(30*time.Minute)+`$`)
	s.send(t, ":mute "+carol)
	n = s.out.expect(t, n, `^\* muted carol until unmuted$`)
	s.send(t, ":mute g:"+team+" 1d")
	n = s.out.expect(t, n, `^\* muted group team \(id `+team+`\) until `+end(24*time.Hour)+`$`)
	want := map[string]int64{"u" + bob: at.Add(30 * time.Minute).UnixMilli(), "u" + carol: 0, "g" + team: at.Add(24 * time.Hour).UnixMilli()}
	if got := s.route.Muted(uid); !maps.Equal(got, want) {
		t.Errorf("the route's mutes %v, want %v", got, want)
	}
	s.send(t, ":mutes")
	n = s.out.expect(t, n, `^\* muted: bob\(`+bob+`\) until `+end(30*time.Minute)+`, carol\(`+carol+`\) until unmuted, group team \(id `+team+`\) until `+end(24*time.Hour)+`$`)

	// A muted conversation's lines print as ever.
	stamp := regexp.QuoteMeta(at.Local().Format("[15:04:05]"))
	for _, m := range []*cimpb.Msg{
		{MsgId: "m1", Seq: 1, From: bob, FromName: "bob", To: uid, Body: []byte("psst"), TimestampMs: at.UnixMilli()},
		{MsgId: "m2", Seq: 2, From: bob, FromName: "bob", Group: team, Body: []byte("lunch?"), TimestampMs: at.UnixMilli()},
	} {
		if err := conn.Send(&cimpb.Frame{Type: cimpb.Type_MSG, Msg: m}); err != nil {
			t.Fatal(err)
		}
	}
	n = s.out.expect(t, n, `^`+stamp+` bob: psst$`)
	n = s.out.expect(t, n, `^`+stamp+` bob@team: lunch\?$`)

	// Refusals.
	s.send(t, ":mute zed")
	n = s.out.expect(t, n, `^! no such user: zed$`)
	s.send(t, ":mute alice 2h")
	n = s.out.expect(t, n, `^! you cannot mute yourself$`)
	s.send(t, ":mute g:"+other)
	n = s.out.expect(t, n, `^! not a member of group `+other+`$`)
	s.send(t, ":mute g:99")
	n = s.out.expect(t, n, `^! no such group: 99$`)
	s.route.SetMuteMax(3)
	s.send(t, ":mute dave")
	n = s.out.expect(t, n, `^! too many conversations muted \(at most 1000\): :unmute some first$`)
	s.send(t, ":unmute zed")
	n = s.out.expect(t, n, `^! no such user: zed$`)
	s.send(t, ":mute bob 30")
	n = s.out.expect(t, n, `^! usage: :mute <user>\|g:<gid> \[duration\] `)
	s.send(t, ":unmute")
	n = s.out.expect(t, n, `^! usage: :unmute <user>\|g:<gid>$`)
	if got := s.route.Muted(uid); !maps.Equal(got, want) {
		t.Errorf("the route's mutes %v after refusals, want %v", got, want)
	}

	s.send(t, ":unmute bob")
	n = s.out.expect(t, n, `^\* unmuted bob$`)
	s.send(t, ":unmute g:"+team)
	n = s.out.expect(t, n, `^\* unmuted group team \(id `+team+`\)$`)
	if got, want := s.route.Muted(uid), map[string]int64{"u" + carol: 0}; !maps.Equal(got, want) {
		t.Errorf("the route's mutes %v after unmuting, want %v", got, want)
	}
	s.send(t, ":mutes")
	n = s.out.expect(t, n, `^\* muted: carol\(`+carol+`\) until unmuted$`)
	for _, endpoint := range []string{"GET /mutes", "POST /mutes", "DELETE /mutes"} {
		if got := s.route.Bearer(endpoint); got != bearer {
			t.Errorf("%s: Authorization %q, want %q", endpoint, got, bearer)
		}
	}

	s.send(t, ":help")
	for _, cmd := range []string{":mute <user>|g:<gid> [duration]", ":unmute <user>|g:<gid>", ":mutes"} {
		s.out.expect(t, n, `^\*   `+regexp.QuoteMeta(cmd)+` `)
	}
	s.send(t, ":q")
	if code := s.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, s.err.String())
	}
}
