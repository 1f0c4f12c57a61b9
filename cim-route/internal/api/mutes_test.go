package api

import (
	"testing"

	"github.com/gocim/gocim/proto/codes"
	"github.com/gocim/gocim/proto/routeapi"
)

// TestMuteEndpoints: POST /mutes, GET /mutes and DELETE /mutes with the
// bearer (none: 401), a user by name or id, a group, for a while or for
// good, their answers, and what is refused.
func TestMuteEndpoints(t *testing.T) {
	e := newEnv(t)
	e.register("alice")
	var reg routeapi.User
	e.expect("POST", "/registerAccount", `{"userName":"bob","password":"password1"}`, nil, 200, codes.OK, &reg)
	bob := string(reg.UserID)
	var l loginData
	e.expect("POST", "/login", `{"userName":"alice","password":"password1"}`, nil, 200, codes.OK, &l)
	me := bearer(l.AccessToken)
	var g struct {
		GroupID routeapi.ID `json:"groupId"`
	}
	e.expect("POST", "/groups", `{"name":"team"}`, me, 200, codes.OK, &g)

	e.expect("POST", "/mutes", `{"user":"bob"}`, nil, 401, codes.Unauthorized, nil)
	e.expect("GET", "/mutes", "", nil, 401, codes.Unauthorized, nil)
	var m muteJSON
	e.expect("POST", "/mutes", `{"user":"bob","forSeconds":60}`, me, 200, codes.OK, &m)
	if m.UserID != bob || m.UserName != "bob" || m.UntilMs == 0 {
		t.Fatalf("POST /mutes answered %+v, want bob (%s) for a minute", m, bob)
	}
	m = muteJSON{}
	e.expect("POST", "/mutes", `{"group":`+string(g.GroupID)+`}`, me, 200, codes.OK, &m)
	if m.Group != string(g.GroupID) || m.UntilMs != 0 || m.UserID != "" {
		t.Fatalf("POST /mutes for the group answered %+v", m)
	}
	var list struct {
		Mutes []muteJSON `json:"mutes"`
	}
	e.expect("GET", "/mutes", "", me, 200, codes.OK, &list)
	if len(list.Mutes) != 2 || list.Mutes[0].UserID != bob || list.Mutes[1].Group != string(g.GroupID) {
		t.Fatalf("GET /mutes = %+v", list)
	}
	e.expect("POST", "/mutes", `{"user":"nobody"}`, me, 401, codes.BadAccount, nil)
	e.expect("POST", "/mutes", `{"user":"alice"}`, me, 400, codes.BadArgument, nil)
	e.expect("POST", "/mutes", `{}`, me, 400, codes.BadArgument, nil)
	e.expect("POST", "/mutes", `{"user":"bob","forSeconds":-1}`, me, 400, codes.BadArgument, nil)
	e.expect("POST", "/mutes", `{"group":"999"}`, me, 404, codes.NoGroup, nil)
	e.expect("DELETE", "/mutes?user=bob", "", me, 200, codes.OK, &m)
	e.expect("DELETE", "/mutes?group="+string(g.GroupID), "", me, 200, codes.OK, nil)
	list.Mutes = nil
	e.expect("GET", "/mutes", "", me, 200, codes.OK, &list)
	if len(list.Mutes) != 0 {
		t.Fatalf("GET /mutes after unmuting = %+v", list)
	}
}
