package client

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// TestMuteCalls: MuteUser, MuteGroup, UnmuteUser, UnmuteGroup and Mutes
// reach /mutes with the session's bearer, change (or list) the route's
// mutes and read its answers; refusals come back as *APIError with the
// route's code and status.
func TestMuteCalls(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	uid := route.AddUser("alice", "secret1")
	bob := route.AddUser("bob", "secret1")
	carol := route.AddUser("carol", "secret1")
	route.AddUser("dave", "secret1")
	team := route.AddGroup("team", uid, false, bob)
	other := route.AddGroup("other", bob, false)
	at := time.UnixMilli(time.Now().UnixMilli())
	route.SetMuteClock(func() time.Time { return at })
	c := startClient(t, fastConfig(route.URL))
	gw.Accept(t)
	next(t, c, EventConnected)
	ctx := context.Background()
	bearer := "Bearer " + clienttest.AccessToken(uid, "s1")
	sent := func(endpoint string) {
		t.Helper()
		if got := route.Bearer(endpoint); got != bearer {
			t.Errorf("%s: Authorization %q, want %q", endpoint, got, bearer)
		}
	}

	if ms, err := c.Mutes(ctx); err != nil || len(ms) != 0 {
		t.Errorf("Mutes before any = %+v, %v", ms, err)
	}
	sent("GET /mutes")
	if m, err := c.MuteUser(ctx, "bob", 30*time.Minute); err != nil || m != (Mute{UserID: bob, UserName: "bob", Until: at.Add(30 * time.Minute)}) {
		t.Fatalf("MuteUser(bob, 30m) = %+v, %v", m, err)
	}
	sent("POST /mutes")
	if m, err := c.MuteUser(ctx, carol, 0); err != nil || m != (Mute{UserID: carol, UserName: "carol"}) {
		t.Fatalf("MuteUser(carol's id, until unmuted) = %+v, %v", m, err)
	}
	if m, err := c.MuteGroup(ctx, team, 2*time.Hour); err != nil || m != (Mute{Group: team, Until: at.Add(2 * time.Hour)}) {
		t.Fatalf("MuteGroup(team, 2h) = %+v, %v", m, err)
	}
	// Muting again replaces the end; longer than MaxMuteFor has none.
	if m, err := c.MuteGroup(ctx, team, MaxMuteFor+time.Hour); err != nil || m != (Mute{Group: team}) {
		t.Errorf("MuteGroup(team, beyond MaxMuteFor) = %+v, %v", m, err)
	}
	want := map[string]int64{"u" + bob: at.Add(30 * time.Minute).UnixMilli(), "u" + carol: 0, "g" + team: 0}
	if got := route.Muted(uid); !maps.Equal(got, want) {
		t.Errorf("the route's mutes %v, want %v", got, want)
	}
	ms, err := c.Mutes(ctx)
	if wantList := []Mute{
		{UserID: bob, UserName: "bob", Until: at.Add(30 * time.Minute)},
		{UserID: carol, UserName: "carol"},
		{Group: team},
	}; err != nil || !slices.Equal(ms, wantList) {
		t.Errorf("Mutes = %+v, %v; want %+v", ms, err, wantList)
	}

	if m, err := c.UnmuteUser(ctx, "bob"); err != nil || m != (Mute{UserID: bob, UserName: "bob"}) {
		t.Errorf("UnmuteUser(bob) = %+v, %v", m, err)
	}
	sent("DELETE /mutes")
	if m, err := c.UnmuteUser(ctx, "bob"); err != nil || m != (Mute{UserID: bob, UserName: "bob"}) {
		t.Errorf("unmuting bob again = %+v, %v", m, err)
	}
	if m, err := c.UnmuteGroup(ctx, team); err != nil || m != (Mute{Group: team}) {
		t.Errorf("UnmuteGroup(team) = %+v, %v", m, err)
	}
	if got, want := route.Muted(uid), map[string]int64{"u" + carol: 0}; !maps.Equal(got, want) {
		t.Errorf("the route's mutes %v after unmuting, want %v", got, want)
	}
	if ms, err := c.Mutes(ctx); err != nil || !slices.Equal(ms, []Mute{{UserID: carol, UserName: "carol"}}) {
		t.Errorf("Mutes after unmuting = %+v, %v", ms, err)
	}

	// Refusals keep the route's codes.
	route.SetMuteMax(1)
	for _, tc := range []struct {
		name   string
		err    error
		code   codes.Code
		status int
	}{
		{"unknown user", func() error { _, err := c.MuteUser(ctx, "zed", 0); return err }(), codes.BadAccount, http.StatusUnauthorized},
		{"unmute of an unknown user", func() error { _, err := c.UnmuteUser(ctx, "zed"); return err }(), codes.BadAccount, http.StatusUnauthorized},
		{"myself", func() error { _, err := c.MuteUser(ctx, "alice", 0); return err }(), codes.BadArgument, http.StatusBadRequest},
		{"negative", func() error { _, err := c.MuteUser(ctx, "carol", -time.Millisecond); return err }(), codes.BadArgument, http.StatusBadRequest},
		{"not a member", func() error { _, err := c.MuteGroup(ctx, other, 0); return err }(), codes.Forbidden, http.StatusForbidden},
		{"unmute, not a member", func() error { _, err := c.UnmuteGroup(ctx, other); return err }(), codes.Forbidden, http.StatusForbidden},
		{"no such group", func() error { _, err := c.MuteGroup(ctx, "99", 0); return err }(), codes.NoGroup, http.StatusNotFound},
		{"too many", func() error { _, err := c.MuteUser(ctx, "dave", 0); return err }(), codes.QuotaExceeded, http.StatusTooManyRequests},
	} {
		var ae *APIError
		if !errors.As(tc.err, &ae) || ae.Code != tc.code || ae.HTTPStatus != tc.status {
			t.Errorf("%s: %v, want code %d, HTTP %d", tc.name, tc.err, tc.code, tc.status)
		}
	}
	if got, want := route.Muted(uid), map[string]int64{"u" + carol: 0}; !maps.Equal(got, want) {
		t.Errorf("the route's mutes %v after refusals, want %v", got, want)
	}

	// No conversation fails before any call.
	calls := route.Calls("POST /mutes") + route.Calls("DELETE /mutes")
	for name, err := range map[string]error{
		"MuteUser":    func() error { _, err := c.MuteUser(ctx, "", 0); return err }(),
		"UnmuteUser":  func() error { _, err := c.UnmuteUser(ctx, ""); return err }(),
		"MuteGroup":   func() error { _, err := c.MuteGroup(ctx, "", 0); return err }(),
		"UnmuteGroup": func() error { _, err := c.UnmuteGroup(ctx, ""); return err }(),
	} {
		want := ErrNoRecipient
		if strings.HasSuffix(name, "Group") {
			want = ErrNoGroup
		}
		if !errors.Is(err, want) {
			t.Errorf("%s of nothing: %v, want %v", name, err, want)
		}
	}
	if route.Calls("POST /mutes")+route.Calls("DELETE /mutes") != calls {
		t.Error("a call without a conversation reached the route")
	}

	// A replaced session's token is refused like everywhere else.
	if _, err := NewAPI(route.URL, nil).Login(ctx, "alice", "secret1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Mutes(ctx); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Mutes with a replaced session: %v, want ErrUnauthorized", err)
	}
}

// TestMuteRequestsAndAnswerShapes: the exact requests (method, query,
// body; durations in whole seconds, rounded away from zero) and answers
// with ids and ends as numbers or strings.
func TestMuteRequestsAndAnswerShapes(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+string(body)))
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"code":4010,"message":"unauthorized","data":null}`)
			return
		}
		data := `{"userId":5,"userName":"bob","untilMs":1700000000000}`
		switch {
		case r.Method == http.MethodGet:
			data = `{"mutes":[{"userId":5,"userName":"bob","untilMs":"1700000000000"},{"userId":"6","userName":"a/b c","untilMs":0},{"group":7,"untilMs":1700000000123}]}`
		case strings.Contains(string(body), "group") || r.URL.Query().Has("group"):
			data = `{"group":"7","untilMs":0}`
		}
		_, _ = io.WriteString(w, `{"code":9000,"message":"ok","data":`+data+`}`)
	}))
	defer srv.Close()
	api := NewAPI(srv.URL, nil)
	api.SetAccessToken("tok")
	ctx := context.Background()
	bob := Mute{UserID: "5", UserName: "bob", Until: time.UnixMilli(1700000000000)}

	if m, err := api.MuteUser(ctx, "bob", 30*time.Minute); err != nil || m != bob {
		t.Errorf("MuteUser = %+v, %v", m, err)
	}
	if _, err := api.MuteUser(ctx, "bob", 1500*time.Millisecond); err != nil {
		t.Error(err)
	}
	if _, err := api.MuteUser(ctx, "bob", 0); err != nil {
		t.Error(err)
	}
	if _, err := api.MuteUser(ctx, "bob", -time.Millisecond); err != nil {
		t.Error(err) // the canned route takes it; the real one refuses it
	}
	if m, err := api.MuteGroup(ctx, "7", 24*time.Hour); err != nil || m != (Mute{Group: "7"}) {
		t.Errorf("MuteGroup = %+v, %v", m, err)
	}
	// An unmute's answer has no end, whatever it says.
	if m, err := api.UnmuteUser(ctx, "a/b c"); err != nil || m != (Mute{UserID: "5", UserName: "bob"}) {
		t.Errorf("UnmuteUser = %+v, %v", m, err)
	}
	if m, err := api.UnmuteGroup(ctx, "7"); err != nil || m != (Mute{Group: "7"}) {
		t.Errorf("UnmuteGroup = %+v, %v", m, err)
	}
	ms, err := api.Mutes(ctx)
	if want := []Mute{bob, {UserID: "6", UserName: "a/b c"}, {Group: "7", Until: time.UnixMilli(1700000000123)}}; err != nil || !slices.Equal(ms, want) {
		t.Errorf("Mutes = %+v, %v; want %+v", ms, err, want)
	}
	want := []string{
		`POST /mutes {"user":"bob","forSeconds":1800}`,
		`POST /mutes {"user":"bob","forSeconds":2}`,
		`POST /mutes {"user":"bob"}`,
		`POST /mutes {"user":"bob","forSeconds":-1}`,
		`POST /mutes {"group":"7","forSeconds":86400}`,
		`DELETE /mutes?user=a%2Fb+c`,
		`DELETE /mutes?group=7`,
		`GET /mutes`,
	}
	mu.Lock()
	if !slices.Equal(got, want) {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	mu.Unlock()

	if _, err := NewAPI(srv.URL, nil).Mutes(ctx); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Mutes without a bearer: %v", err)
	}
}

// TestMuted: which messages Muted calls quiet, from the list the client
// read last (Mutes), changed at once by its own mute and unmute calls and
// by other devices' only at the next Mutes; ends respected, mentions
// always notify.
func TestMuted(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	uid := route.AddUser("alice", "secret1")
	bob := route.AddUser("bob", "secret1")
	carol := route.AddUser("carol", "secret1")
	dave := route.AddUser("dave", "secret1")
	eve := route.AddUser("eve", "secret1")
	frank := route.AddUser("frank", "secret1")
	team := route.AddGroup("team", uid, false, bob)
	lobby := route.AddGroup("lobby", uid, false, bob)
	// The route's clock is two hours behind: bob's hour has ended by the
	// client's clock, carol's four hours have not.
	past := time.Now().Add(-2 * time.Hour)
	route.SetMuteClock(func() time.Time { return past })
	c := startClient(t, fastConfig(route.URL))
	gw.Accept(t)
	next(t, c, EventConnected)
	ctx := context.Background()

	fromBob := &cimpb.Msg{MsgId: "m1", From: bob, FromName: "bob", To: uid, Body: []byte("hi")}
	if c.Muted(fromBob) {
		t.Error("muted before any mute")
	}
	api := NewAPI(route.URL, nil) // another device of alice's, same session
	api.SetAccessToken(c.API().AccessToken())
	for _, m := range []struct {
		user string
		d    time.Duration
	}{{"bob", time.Hour}, {"carol", 4 * time.Hour}, {"dave", 0}} {
		if _, err := api.MuteUser(ctx, m.user, m.d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := api.MuteGroup(ctx, team, 0); err != nil {
		t.Fatal(err)
	}
	if c.Muted(&cimpb.Msg{From: dave, To: uid}) {
		t.Error("another device's mute known before Mutes")
	}
	if ms, err := c.Mutes(ctx); err != nil || len(ms) != 4 {
		t.Fatalf("Mutes = %+v, %v; want bob, carol, dave and team", ms, err)
	}

	for _, tc := range []struct {
		name string
		m    *cimpb.Msg
		want bool
	}{
		{"from bob, whose mute ended", fromBob, false},
		{"from carol, muted for hours yet", &cimpb.Msg{From: carol, FromName: "carol", To: uid}, true},
		{"from dave, muted until unmuted", &cimpb.Msg{From: dave, To: uid}, true},
		{"from eve", &cimpb.Msg{From: eve, To: uid}, false},
		{"my copy to carol", &cimpb.Msg{From: uid, To: carol}, true},
		{"my copy to carol, by name", &cimpb.Msg{From: uid, To: "carol"}, true},
		{"my copy to bob", &cimpb.Msg{From: uid, To: bob}, false},
		{"my copy to eve", &cimpb.Msg{From: uid, To: eve}, false},
		{"in team", &cimpb.Msg{From: bob, Group: team}, true},
		{"in team, from carol whom I muted", &cimpb.Msg{From: carol, Group: team}, true},
		{"my copy in team", &cimpb.Msg{From: uid, Group: team}, true},
		{"in team, mentioning me", &cimpb.Msg{From: bob, Group: team, Mentions: []string{bob, uid}}, false},
		{"in team, mentioning bob", &cimpb.Msg{From: bob, Group: team, Mentions: []string{bob}}, true},
		{"in lobby", &cimpb.Msg{From: dave, Group: lobby}, false},
		{"broadcast from dave", &cimpb.Msg{From: dave, Broadcast: true}, false},
		{"dave's reaction", &cimpb.Msg{From: dave, To: uid, Op: cimpb.MsgOp_MSG_OP_REACT}, true},
		{"nil", nil, false},
	} {
		if got := c.Muted(tc.m); got != tc.want {
			t.Errorf("%s: Muted = %v, want %v", tc.name, got, tc.want)
		}
	}

	// The client's own calls change the list at once.
	if _, err := c.UnmuteUser(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UnmuteGroup(ctx, team); err != nil {
		t.Fatal(err)
	}
	if _, err := c.MuteUser(ctx, eve, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.MuteGroup(ctx, lobby, time.Hour); err != nil { // ended already by the client's clock
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		m    *cimpb.Msg
		want bool
	}{
		{"from carol, unmuted", &cimpb.Msg{From: carol, To: uid}, false},
		{"in team, unmuted", &cimpb.Msg{From: bob, Group: team}, false},
		{"from eve, muted", &cimpb.Msg{From: eve, To: uid}, true},
		{"in lobby, muted for an hour that has passed", &cimpb.Msg{From: bob, Group: lobby}, false},
		{"from dave, still muted", &cimpb.Msg{From: dave, To: uid}, true},
	} {
		if got := c.Muted(tc.m); got != tc.want {
			t.Errorf("%s: Muted = %v, want %v", tc.name, got, tc.want)
		}
	}

	// Another device's changes come with the next Mutes.
	if _, err := api.MuteUser(ctx, frank, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := api.UnmuteUser(ctx, dave); err != nil {
		t.Fatal(err)
	}
	fromFrank, fromDave := &cimpb.Msg{From: frank, To: uid}, &cimpb.Msg{From: dave, To: uid}
	if c.Muted(fromFrank) || !c.Muted(fromDave) {
		t.Error("another device's changes known before Mutes")
	}
	if _, err := c.Mutes(ctx); err != nil {
		t.Fatal(err)
	}
	if !c.Muted(fromFrank) || c.Muted(fromDave) {
		t.Errorf("after Mutes: frank muted %v (want true), dave %v (want false)", c.Muted(fromFrank), c.Muted(fromDave))
	}
}

// TestMuteList: the list's rules at given times: an end is exclusive, a
// zero end never comes, a peer matches by id or name, replacing the list
// forgets what is not in it.
func TestMuteList(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	var l muteList
	if l.user("2", now) || l.group("3", now) {
		t.Error("an empty list mutes")
	}
	l.set([]Mute{
		{UserID: "2", UserName: "bob", Until: now.Add(time.Millisecond)},
		{UserID: "4", UserName: "dave"},
		{Group: "3", Until: now},
		{Group: "5"},
	})
	for _, tc := range []struct {
		name string
		got  bool
		want bool
	}{
		{"bob, 1 ms before the end", l.user("2", now), true},
		{"bob by name", l.user("bob", now), true},
		{"bob at the end", l.user("2", now.Add(time.Millisecond)), false},
		{"dave, no end", l.user("dave", now.AddDate(10, 0, 0)), true},
		{"group 3 at its end", l.group("3", now), false},
		{"group 3 before its end", l.group("3", now.Add(-time.Nanosecond)), true},
		{"group 5, no end", l.group("5", now), true},
		{"nobody", l.user("", now), false},
		{"a user id that is a muted group's", l.user("5", now), false},
		{"a group id that is a muted user's", l.group("4", now), false},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	l.drop(Mute{UserID: "2", UserName: "bob"})
	if l.user("2", now) || l.user("bob", now) {
		t.Error("bob muted after drop")
	}
	l.put(Mute{UserID: "2", UserName: "bob", Until: now.Add(time.Hour)})
	if !l.user("bob", now) {
		t.Error("bob not muted after put")
	}
	l.set([]Mute{{Group: "3"}})
	if l.user("dave", now) || l.group("5", now) || !l.group("3", now) {
		t.Error("set kept what its list has not, or lost what it has")
	}
}
