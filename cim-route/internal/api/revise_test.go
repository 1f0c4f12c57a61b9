package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// TestHistoryOpsAndDelete: history says which messages were edited or
// recalled; POST /history/delete hides messages from the caller's history
// only, and refuses what is not a list of msgIds.
func TestHistoryOpsAndDelete(t *testing.T) {
	e := newEnv(t, func(_ *Config, r *router.Config) { r.EditWindow = time.Minute })
	e.register("alice", "bob")
	alice, bob := e.online("alice"), e.online("bob")
	var ids []string
	for _, text := range []string{"one", "two", "three"} {
		var sent struct {
			MsgID string `json:"msgId"`
		}
		e.expect("POST", "/p2pRoute", `{"receiveUserId":"bob","msg":"`+text+`"}`, alice.bearer(), 200, codes.OK, &sent)
		ids = append(ids, sent.MsgID)
	}
	change := func(cmid, ref string, op cimpb.MsgOp, text string) *cimpb.Uplink {
		return &cimpb.Uplink{UserId: alice.UserID, SessionId: alice.SessionID, Frame: &cimpb.Frame{Type: cimpb.Type_MSG,
			Msg: &cimpb.Msg{ClientMsgId: cmid, To: "bob", Op: op, RefMsgId: ref, Body: []byte(text)}}}
	}
	batch := &cimpb.UplinkBatch{GatewayId: alice.Server.ID, Uplinks: []*cimpb.Uplink{
		change("e", ids[0], cimpb.MsgOp_MSG_OP_EDIT, "uno"), change("r", ids[1], cimpb.MsgOp_MSG_OP_RECALL, ""),
	}}
	if st, out := e.uplink(batch, asGateway); st != 200 || len(out.Deliveries) != 2 || out.Deliveries[1].Frame.GetReceipt().GetStatus() != cimpb.ReceiptStatus_RECEIPT_SENT {
		t.Fatalf("uplink: HTTP %d %v", st, out)
	}

	history := func(s loginData) []map[string]json.RawMessage {
		t.Helper()
		var page struct {
			Messages []map[string]json.RawMessage `json:"messages"`
		}
		e.expect("GET", "/history", ``, s.bearer(), 200, codes.OK, &page)
		return page.Messages
	}
	got := history(bob)
	if len(got) != 3 {
		t.Fatalf("bob's history has %d messages", len(got))
	}
	for i, want := range []struct{ op, body string }{{"", `"three"`}, {`"recalled"`, `""`}, {`"edited"`, `"uno"`}} {
		if string(got[i]["op"]) != want.op || string(got[i]["body"]) != want.body {
			t.Errorf("message %d: op %s body %s, want op %q body %s", i, got[i]["op"], got[i]["body"], want.op, want.body)
		}
	}

	e.expect("POST", "/history/delete", `{"msgIds":["`+ids[2]+`","`+ids[0]+`"]}`, bob.bearer(), 200, codes.OK, nil)
	if got := history(bob); len(got) != 1 || string(got[0]["msgId"]) != `"`+ids[1]+`"` {
		t.Fatalf("bob's history after deleting: %v", got)
	}
	var page struct {
		Messages []json.RawMessage `json:"messages"`
	}
	e.expect("GET", "/history?peer=bob", ``, alice.bearer(), 200, codes.OK, &page)
	if len(page.Messages) != 3 {
		t.Fatalf("alice's history changed with bob's deletion: %d messages", len(page.Messages))
	}

	long := `{"msgIds":["` + strings.Repeat(ids[0]+`","`, router.MaxHistoryDelete) + ids[0] + `"]}`
	for _, b := range []struct {
		body   string
		h      hdr
		status int
		code   codes.Code
	}{
		{`{"msgIds":[]}`, bob.bearer(), 400, codes.BadArgument},
		{`{"msgIds":["nope"]}`, bob.bearer(), 400, codes.BadArgument},
		{`{"msgIds":"` + ids[0] + `"}`, bob.bearer(), 400, codes.BadArgument},
		{long, bob.bearer(), 413, codes.TooLarge}, // over the test's 1 KiB body limit
		{`{"msgIds":["` + ids[0] + `"]}`, nil, 401, codes.Unauthorized},
		{`{"msgIds":["` + ids[0] + `"]}`, asPush, 403, codes.Forbidden},
	} {
		e.expect("POST", "/history/delete", b.body, b.h, b.status, b.code, nil)
	}
}

// TestHistoryReplyTo: a reply's message in GET /history names the message
// it answers (replyTo); others have no replyTo.
func TestHistoryReplyTo(t *testing.T) {
	e := newEnv(t)
	e.register("alice", "bob")
	alice, bob := e.online("alice"), e.online("bob")
	var sent struct {
		MsgID string `json:"msgId"`
	}
	e.expect("POST", "/p2pRoute", `{"receiveUserId":"bob","msg":"are you there?"}`, alice.bearer(), 200, codes.OK, &sent)
	batch := &cimpb.UplinkBatch{GatewayId: bob.Server.ID, Uplinks: []*cimpb.Uplink{{UserId: bob.UserID, SessionId: bob.SessionID,
		Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "a", To: "alice", Body: []byte("yes"), ReplyTo: sent.MsgID}}}}}
	if st, out := e.uplink(batch, asGateway); st != 200 || out.Deliveries[0].Frame.GetReceipt().GetStatus() != cimpb.ReceiptStatus_RECEIPT_SENT {
		t.Fatalf("uplink: HTTP %d %v", st, out)
	}
	var page struct {
		Messages []map[string]json.RawMessage `json:"messages"`
	}
	e.expect("GET", "/history?peer=bob", ``, alice.bearer(), 200, codes.OK, &page)
	if len(page.Messages) != 2 || string(page.Messages[0]["body"]) != `"yes"` || string(page.Messages[0]["replyTo"]) != `"`+sent.MsgID+`"` {
		t.Fatalf("alice's history %v, want bob's yes replying to %s first", page.Messages, sent.MsgID)
	}
	if _, ok := page.Messages[1]["replyTo"]; ok {
		t.Fatalf("the question has a replyTo: %v", page.Messages[1])
	}
}

// TestHistoryReactions: GET /history answers each message's reactions as
// "reactions": [{"emoji","count","mine"}], mine only for the viewer's own,
// and none at all on a message without any.
func TestHistoryReactions(t *testing.T) {
	e := newEnv(t)
	e.register("alice", "bob")
	alice, bob := e.online("alice"), e.online("bob")
	var sent struct {
		MsgID string `json:"msgId"`
	}
	e.expect("POST", "/p2pRoute", `{"receiveUserId":"bob","msg":"lunch?"}`, alice.bearer(), 200, codes.OK, &sent)
	e.expect("POST", "/p2pRoute", `{"receiveUserId":"bob","msg":"at noon"}`, alice.bearer(), 200, codes.OK, nil)
	batch := &cimpb.UplinkBatch{GatewayId: bob.Server.ID, Uplinks: []*cimpb.Uplink{{UserId: bob.UserID, SessionId: bob.SessionID,
		Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "r", To: "alice", Op: cimpb.MsgOp_MSG_OP_REACT, RefMsgId: sent.MsgID, Body: []byte("👍")}}}}}
	if st, out := e.uplink(batch, asGateway); st != 200 || out.Deliveries[0].Frame.GetReceipt().GetStatus() != cimpb.ReceiptStatus_RECEIPT_SENT {
		t.Fatalf("uplink: HTTP %d %v", st, out)
	}
	for who, want := range map[string]string{"alice": `[{"emoji":"👍","count":1}]`, "bob": `[{"emoji":"👍","count":1,"mine":true}]`} {
		s, peer := alice, "bob"
		if who == "bob" {
			s, peer = bob, "alice"
		}
		var page struct {
			Messages []map[string]json.RawMessage `json:"messages"`
		}
		e.expect("GET", "/history?peer="+peer, ``, s.bearer(), 200, codes.OK, &page)
		if len(page.Messages) != 2 || string(page.Messages[1]["reactions"]) != want {
			t.Fatalf("%s's history %v, want the first message with reactions %s", who, page.Messages, want)
		}
		if _, ok := page.Messages[0]["reactions"]; ok {
			t.Fatalf("%s's history: a message without reactions has %s", who, page.Messages[0]["reactions"])
		}
	}
}
