package api

import (
	"testing"

	"github.com/gocim/gocim/proto/codes"
	"github.com/gocim/gocim/proto/routeapi"
)

// TestBlockEndpoints: POST /blocks, GET /blocks and DELETE /blocks/{user}
// with the bearer (none: 401), by name or id, their answers, and what is
// refused (nobody, oneself, a body without a user).
func TestBlockEndpoints(t *testing.T) {
	e := newEnv(t)
	e.register("alice")
	var reg routeapi.User
	e.expect("POST", "/registerAccount", `{"userName":"bob","password":"password1"}`, nil, 200, codes.OK, &reg)
	bob := string(reg.UserID)
	var l loginData
	e.expect("POST", "/login", `{"userName":"alice","password":"password1"}`, nil, 200, codes.OK, &l)
	me := bearer(l.AccessToken)

	e.expect("POST", "/blocks", `{"user":"bob"}`, nil, 401, codes.Unauthorized, nil)
	e.expect("GET", "/blocks", "", nil, 401, codes.Unauthorized, nil)
	var u routeapi.User
	e.expect("POST", "/blocks", `{"user":"bob"}`, me, 200, codes.OK, &u)
	if string(u.UserID) != bob || u.UserName != "bob" {
		t.Fatalf("POST /blocks answered %+v, want bob (%s)", u, bob)
	}
	e.expect("POST", "/blocks", `{"user":`+bob+`}`, me, 200, codes.OK, nil) // an id as a number, again
	var list struct {
		Users []routeapi.User `json:"users"`
	}
	e.expect("GET", "/blocks", "", me, 200, codes.OK, &list)
	if len(list.Users) != 1 || string(list.Users[0].UserID) != bob || list.Users[0].UserName != "bob" {
		t.Fatalf("GET /blocks = %+v", list)
	}
	e.expect("POST", "/blocks", `{"user":"nobody"}`, me, 401, codes.BadAccount, nil) // as everywhere (CIM)
	e.expect("POST", "/blocks", `{"user":"alice"}`, me, 400, codes.BadArgument, nil)
	e.expect("POST", "/blocks", `{}`, me, 400, codes.BadArgument, nil)
	e.expect("DELETE", "/blocks/bob", "", me, 200, codes.OK, &u)
	if string(u.UserID) != bob {
		t.Fatalf("DELETE /blocks/bob answered %+v", u)
	}
	e.expect("DELETE", "/blocks/"+bob, "", me, 200, codes.OK, nil) // not blocked: fine
	list.Users = nil
	e.expect("GET", "/blocks", "", me, 200, codes.OK, &list)
	if len(list.Users) != 0 {
		t.Fatalf("GET /blocks after the unblock = %+v", list)
	}
}
