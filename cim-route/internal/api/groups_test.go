package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

type groupData struct {
	GroupID string `json:"groupId"`
	Name    string `json:"name"`
	Owner   string `json:"owner"`
	Open    bool   `json:"open"`
	Members int    `json:"members"`
}

// TestGroupEndpoints walks every /groups operation and permission rule over
// HTTP, with the contract's status and code for each.
func TestGroupEndpoints(t *testing.T) {
	e := newEnv(t, func(_ *Config, rc *router.Config) { rc.GroupMaxMembers = 4 })
	e.register("alice", "bob", "carol", "dave", "erin")
	alice, bob, carol, dave, erin := e.online("alice"), e.online("bob"), e.online("carol"), e.online("dave"), e.online("erin")
	A, B, C, D, E := alice.bearer(), bob.bearer(), carol.bearer(), dave.bearer(), erin.bearer()

	// Credentials: a bearer only.
	e.expect("GET", "/groups", "", nil, 401, codes.Unauthorized, nil)
	e.expect("GET", "/groups", "", asPush, 403, codes.Forbidden, nil)
	e.expect("POST", "/groups", `{"name":"x"}`, bearer("forged"), 401, codes.Unauthorized, nil)

	// Create.
	var g groupData
	e.expect("POST", "/groups", `{"name":"  team  "}`, A, 200, codes.OK, &g)
	if g.Name != "team" || g.Owner != alice.UserID || g.Open || g.Members != 1 || g.GroupID == "" {
		t.Fatalf("created %+v", g)
	}
	gid := g.GroupID
	path := func(op string) string { return "/groups/" + gid + op }
	var open groupData
	e.expect("POST", "/groups", `{"name":"lobby","open":true}`, B, 200, codes.OK, &open)
	for _, body := range []string{`{"name":""}`, `{"name":"   "}`, `{"open":true}`, `{"name":"` + strings.Repeat("a", 65) + `"}`, `{"name":"a\u0007b"}`, `{"name":5}`, ``} {
		e.expect("POST", "/groups", body, A, 400, codes.BadArgument, nil)
	}

	// Join: open → anyone; closed → an invitation.
	e.expect("POST", "/groups/"+open.GroupID+"/join", "", C, 200, codes.OK, &g)
	if g.Members != 2 || !g.Open {
		t.Fatalf("joined the open group: %+v", g)
	}
	e.expect("POST", path("/join"), "", B, 403, codes.Forbidden, nil)
	e.expect("POST", path("/invite"), `{"users":["carol"]}`, B, 403, codes.Forbidden, nil) // not a member
	var inv struct {
		Invited []string `json:"invited"`
	}
	e.expect("POST", path("/invite"), `{"users":["bob",`+carol.UserID+`,"alice"]}`, A, 200, codes.OK, &inv)
	if !slices.Equal(inv.Invited, []string{bob.UserID, carol.UserID}) {
		t.Fatalf("invited %v", inv.Invited)
	}
	e.expect("POST", path("/invite"), `{"users":["nobody"]}`, A, 401, codes.BadAccount, nil)
	e.expect("POST", path("/invite"), `{"users":[]}`, A, 400, codes.BadArgument, nil)
	// The invitation reached bob live, from alice (not the system user).
	want := fmt.Sprintf("alice invited you to team (group %s): :gjoin %s", gid, gid)
	if f := e.gw.Frames(bob.UserID); len(f) != 1 || f[0].Msg.From != alice.UserID || string(f[0].Msg.Body) != want {
		t.Fatalf("bob got %v", f)
	}
	// A re-invite invites nobody new and sends nothing again.
	e.expect("POST", path("/invite"), `{"users":["bob"]}`, A, 200, codes.OK, &inv)
	if len(inv.Invited) != 0 {
		t.Fatalf("re-invite: invited %v, want nobody", inv.Invited)
	}
	if f := e.gw.Frames(bob.UserID); len(f) != 1 {
		t.Fatalf("bob got %d frames after a re-invite, want the one invitation", len(f))
	}
	e.expect("POST", path("/join"), "", B, 200, codes.OK, &g)
	e.expect("POST", path("/join"), "", B, 200, codes.OK, &g) // again: fine
	if g.Members != 2 {
		t.Fatalf("after bob joined twice: %+v", g)
	}
	e.expect("POST", path("/invite"), `{"users":["dave"]}`, B, 403, codes.Forbidden, nil) // a member of a closed group
	e.expect("POST", path("/join"), "", C, 200, codes.OK, nil)

	// Reading: the group for members (or anyone when open), members for
	// members, my groups.
	e.expect("GET", path(""), "", B, 200, codes.OK, &g)
	if g.Members != 3 || g.Name != "team" {
		t.Fatalf("group = %+v", g)
	}
	e.expect("GET", path(""), "", D, 403, codes.Forbidden, nil)
	e.expect("GET", "/groups/"+open.GroupID, "", D, 200, codes.OK, nil)
	var members []struct {
		UserID   string `json:"userId"`
		UserName string `json:"userName"`
	}
	e.expect("GET", path("/members"), "", C, 200, codes.OK, &members)
	if len(members) != 3 || members[0].UserName != "alice" || members[1].UserName != "bob" || members[2].UserName != "carol" {
		t.Fatalf("members = %+v", members)
	}
	e.expect("GET", path("/members"), "", D, 403, codes.Forbidden, nil)
	var mine []groupData
	e.expect("GET", "/groups", "", C, 200, codes.OK, &mine)
	if len(mine) != 2 || mine[0].GroupID != gid || mine[1].GroupID != open.GroupID {
		t.Fatalf("carol's groups = %+v", mine)
	}
	e.expect("GET", "/groups", "", E, 200, codes.OK, &mine)
	if len(mine) != 0 {
		t.Fatalf("erin's groups = %+v", mine)
	}

	// The limit (4): a fifth member is refused.
	e.expect("POST", path("/invite"), `{"users":["dave","erin"]}`, A, 200, codes.OK, nil)
	e.expect("POST", path("/join"), "", D, 200, codes.OK, nil)
	e.expect("POST", path("/join"), "", E, 409, codes.GroupFull, nil)
	e.expect("POST", path("/invite"), `{"users":["erin"]}`, A, 409, codes.GroupFull, nil)

	// Leave, kick.
	e.expect("POST", path("/leave"), "", A, 403, codes.Forbidden, nil) // the owner hands over or dissolves instead
	e.expect("POST", path("/leave"), "", E, 403, codes.Forbidden, nil) // not a member
	e.expect("POST", path("/leave"), "", D, 200, codes.OK, nil)
	e.expect("POST", path("/kick"), `{"userId":"carol"}`, B, 403, codes.Forbidden, nil)
	e.expect("POST", path("/kick"), `{"userId":"`+alice.UserID+`"}`, A, 403, codes.Forbidden, nil)
	e.expect("POST", path("/kick"), `{"userId":"carol"}`, A, 200, codes.OK, nil)
	e.expect("POST", path("/kick"), `{}`, A, 400, codes.BadArgument, nil)
	e.expect("GET", path("/members"), "", C, 403, codes.Forbidden, nil)

	// Rename.
	e.expect("POST", path("/rename"), `{"name":"mine"}`, B, 403, codes.Forbidden, nil)
	e.expect("POST", path("/rename"), `{"name":""}`, A, 400, codes.BadArgument, nil)
	e.expect("POST", path("/rename"), `{"name":"renamed"}`, A, 200, codes.OK, &g)
	if g.Name != "renamed" || g.Members != 2 {
		t.Fatalf("renamed = %+v", g)
	}

	// Hand-over: by the owner, to a member (an id or a name); the former
	// owner is a plain member; and back.
	e.expect("POST", path("/owner"), `{"userId":"alice"}`, B, 403, codes.Forbidden, nil)
	e.expect("POST", path("/owner"), `{"userId":"carol"}`, A, 403, codes.Forbidden, nil) // kicked: no member
	e.expect("POST", path("/owner"), `{"userId":"nobody"}`, A, 401, codes.BadAccount, nil)
	e.expect("POST", path("/owner"), `{}`, A, 400, codes.BadArgument, nil)
	e.expect("POST", "/groups/999/owner", `{"userId":"bob"}`, A, 404, codes.NoGroup, nil)
	e.expect("POST", path("/owner"), `{"userId":"bob"}`, A, 200, codes.OK, &g)
	if g.Owner != bob.UserID || g.Name != "renamed" || g.Members != 2 {
		t.Fatalf("handed over = %+v", g)
	}
	e.expect("GET", path(""), "", A, 200, codes.OK, &g)
	if g.Owner != bob.UserID {
		t.Fatalf("the group after the hand-over = %+v", g)
	}
	e.expect("POST", path("/rename"), `{"name":"mine"}`, A, 403, codes.Forbidden, nil)
	e.expect("POST", path("/leave"), "", B, 403, codes.Forbidden, nil)
	e.expect("POST", path("/owner"), `{"userId":"`+alice.UserID+`"}`, B, 200, codes.OK, &g)
	if g.Owner != alice.UserID {
		t.Fatalf("handed back = %+v", g)
	}

	// Unknown groups: 404 / 9200.
	for _, p := range []string{"/groups/999", "/groups/999/members", "/groups/abc"} {
		e.expect("GET", p, "", A, 404, codes.NoGroup, nil)
	}
	for _, op := range []string{"/join", "/leave", "/dissolve"} {
		e.expect("POST", "/groups/999"+op, "", A, 404, codes.NoGroup, nil)
	}

	// Dissolve.
	e.expect("POST", path("/dissolve"), "", B, 403, codes.Forbidden, nil)
	e.expect("POST", path("/dissolve"), "", A, 200, codes.OK, nil)
	e.expect("GET", path(""), "", A, 404, codes.NoGroup, nil)
	e.expect("GET", "/groups", "", B, 200, codes.OK, &mine)
	if len(mine) != 1 || mine[0].GroupID != open.GroupID {
		t.Fatalf("bob's groups after dissolve = %+v", mine)
	}
}

// TestGroupMessagesOverHTTP: a group MSG uplink through the internal
// handler, the receipts from ACK / READ uplinks, /groups/receipts, and
// /api/push to a group.
func TestGroupMessagesOverHTTP(t *testing.T) {
	e := newEnv(t)
	e.register("alice", "bob", "carol")
	alice, bob := e.online("alice"), e.online("bob")
	var g groupData
	e.expect("POST", "/groups", `{"name":"lobby","open":true}`, alice.bearer(), 200, codes.OK, &g)
	e.expect("POST", "/groups/"+g.GroupID+"/join", "", bob.bearer(), 200, codes.OK, nil)
	carol := e.online("carol")
	e.expect("POST", "/groups/"+g.GroupID+"/join", "", carol.bearer(), 200, codes.OK, nil)

	up := func(l loginData, f *cimpb.Frame) *cimpb.PushBatch {
		t.Helper()
		st, out := e.uplink(&cimpb.UplinkBatch{GatewayId: e.gw.ID, Uplinks: []*cimpb.Uplink{{UserId: l.UserID, SessionId: l.SessionID, Frame: f}}}, asGateway)
		if st != 200 {
			t.Fatalf("uplink: HTTP %d", st)
		}
		return out
	}
	out := up(alice, &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: 1, Msg: &cimpb.Msg{ClientMsgId: "c1", Group: g.GroupID, Body: []byte("hi all")}})
	r := out.Deliveries[0].Frame.GetReceipt()
	if r.GetStatus() != cimpb.ReceiptStatus_RECEIPT_SENT || r.Group != g.GroupID || r.Count != 2 {
		t.Fatalf("answer %v", out.Deliveries[0].Frame)
	}
	id := r.MsgId
	up(bob, &cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: 1}})
	up(carol, &cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: 1}})
	up(carol, &cimpb.Frame{Type: cimpb.Type_READ, Read: &cimpb.Read{Peer: alice.UserID, Group: g.GroupID, MsgIds: []string{id}, Seqs: []uint64{1}}})
	// alice's copy of her message (her group history), then the receipts.
	got := e.gw.Frames(alice.UserID)
	if len(got) != 4 || got[0].Msg.GetMsgId() != id || got[2].Receipt.Count != 2 || got[3].Receipt.Status != cimpb.ReceiptStatus_RECEIPT_READ || got[3].Receipt.Count != 1 {
		t.Fatalf("alice got %v", got)
	}

	var counts map[string]struct {
		Delivered int `json:"delivered"`
		Read      int `json:"read"`
	}
	e.expect("GET", "/groups/receipts?msgIds="+id+",unknown", "", alice.bearer(), 200, codes.OK, &counts)
	if c := counts[id]; c.Delivered != 2 || c.Read != 1 || len(counts) != 2 || counts["unknown"].Delivered != 0 {
		t.Fatalf("counts = %+v", counts)
	}
	e.expect("GET", "/groups/receipts?msgIds="+id, "", bob.bearer(), 200, codes.OK, &counts)
	if c := counts[id]; c.Delivered != 0 {
		t.Fatalf("bob sees alice's counts: %+v", counts)
	}
	e.expect("GET", "/groups/receipts", "", alice.bearer(), 400, codes.BadArgument, nil)

	// /api/push to the group: every member's inbox, the sender excluded.
	var res struct {
		MsgID     string            `json:"msgId"`
		MsgIDs    map[string]string `json:"msgIds"`
		Delivered int               `json:"delivered"`
	}
	e.expect("POST", "/api/push", `{"group":"`+g.GroupID+`","from":"bob","msg":"news"}`, asPush, 200, codes.OK, &res)
	if res.MsgID == "" || res.Delivered != 2 || len(res.MsgIDs) != 0 {
		t.Fatalf("push to the group: %+v", res)
	}
	for _, l := range []loginData{alice, carol} {
		f := e.gw.Frames(l.UserID)
		if m := f[len(f)-1].Msg; m == nil || m.MsgId != res.MsgID || m.Group != g.GroupID || m.FromName != "bob" {
			t.Fatalf("%s got %v", l.UserName, f[len(f)-1])
		}
	}
	e.expect("POST", "/api/push", `{"group":`+g.GroupID+`,"msg":"numeric id"}`, asPush, 200, codes.OK, nil)
	e.expect("POST", "/api/push", `{"group":"999","msg":"x"}`, asPush, 404, codes.NoGroup, nil)
	e.expect("POST", "/api/push", `{"group":"`+g.GroupID+`","to":["bob"],"msg":"x"}`, asPush, 400, codes.BadArgument, nil)
	e.expect("POST", "/api/push", `{"group":"`+g.GroupID+`","msg":"x"}`, bob.bearer(), 403, codes.Forbidden, nil)

	// Group history entries carry their group.
	var h struct {
		Messages []json.RawMessage `json:"messages"`
	}
	e.expect("GET", "/history", "", carol.bearer(), 200, codes.OK, &h)
	var first struct {
		Group string `json:"group"`
	}
	if len(h.Messages) == 0 || json.Unmarshal(h.Messages[0], &first) != nil || first.Group != g.GroupID {
		t.Fatalf("carol's history = %s", h.Messages)
	}
	// ?group= is that group's history alone, for its members.
	h.Messages = nil
	e.expect("GET", "/history?group="+g.GroupID, "", carol.bearer(), 200, codes.OK, &h)
	if len(h.Messages) == 0 {
		t.Fatal("carol's group history is empty")
	}
	for _, m := range h.Messages {
		if json.Unmarshal(m, &first) != nil || first.Group != g.GroupID {
			t.Fatalf("carol's group history holds %s", m)
		}
	}
	e.expect("GET", "/history?group=999", "", carol.bearer(), 404, codes.NoGroup, nil)
	e.expect("GET", "/history?group="+g.GroupID+"&peer=bob", "", carol.bearer(), 400, codes.BadArgument, nil)
}
