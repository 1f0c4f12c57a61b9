package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// TestGroupCalls: every group call reaches its endpoint with the session's
// bearer, and the answer is decoded; refusals come back with their codes.
func TestGroupCalls(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	uid := route.AddUser("alice", "secret1")
	bob := route.AddUser("bob", "secret1")
	carol := route.AddUser("carol", "secret1")
	c := startClient(t, fastConfig(route.URL))
	gw.Accept(t)
	next(t, c, EventConnected)
	ctx := context.Background()
	bearer := "Bearer " + clienttest.AccessToken(uid, "s1")
	// sent checks that the last call to endpoint carried alice's bearer.
	sent := func(endpoint string) {
		t.Helper()
		if got := route.Bearer(endpoint); got != bearer {
			t.Errorf("%s: Authorization %q, want %q", endpoint, got, bearer)
		}
	}

	g, err := c.CreateGroup(ctx, "team", false)
	if want := (Group{ID: "1", Name: "team", Owner: uid, Members: 1}); err != nil || g != want {
		t.Fatalf("CreateGroup = %+v, %v; want %+v", g, err, want)
	}
	sent("POST /groups")
	invited, err := c.InviteToGroup(ctx, g.ID, "bob", carol)
	if err != nil || !slices.Equal(invited, []string{bob, carol}) || !route.GroupInvited(g.ID, bob) || !route.GroupInvited(g.ID, carol) {
		t.Fatalf("InviteToGroup = %v, %v", invited, err)
	}
	sent("POST /groups/{gid}/invite")

	// bob accepts, with his own session.
	bobAPI := NewAPI(route.URL, nil)
	if _, err := bobAPI.Login(ctx, "bob", "secret1"); err != nil {
		t.Fatal(err)
	}
	if g, err := bobAPI.JoinGroup(ctx, g.ID); err != nil || g.Members != 2 {
		t.Fatalf("bob's JoinGroup = %+v, %v", g, err)
	}

	gs, err := c.Groups(ctx)
	if want := []Group{{ID: "1", Name: "team", Owner: uid, Members: 2}}; err != nil || !slices.Equal(gs, want) {
		t.Errorf("Groups = %+v, %v; want %+v", gs, err, want)
	}
	sent("GET /groups")
	if got, err := c.Group(ctx, g.ID); err != nil || got != (Group{ID: "1", Name: "team", Owner: uid, Members: 2}) {
		t.Errorf("Group = %+v, %v", got, err)
	}
	sent("GET /groups/{gid}")
	members, err := c.GroupMembers(ctx, g.ID)
	if want := []User{{uid, "alice"}, {bob, "bob"}}; err != nil || !slices.Equal(members, want) {
		t.Errorf("GroupMembers = %+v, %v; want %+v", members, err, want)
	}
	sent("GET /groups/{gid}/members")
	if got, err := c.RenameGroup(ctx, g.ID, "dream team"); err != nil || got.Name != "dream team" || got.ID != g.ID {
		t.Errorf("RenameGroup = %+v, %v", got, err)
	}
	sent("POST /groups/{gid}/rename")
	if err := c.KickFromGroup(ctx, g.ID, "bob"); err != nil || slices.Contains(route.GroupMembers(g.ID), bob) {
		t.Errorf("KickFromGroup: %v; members %v", err, route.GroupMembers(g.ID))
	}
	sent("POST /groups/{gid}/kick")

	open := route.AddGroup("lobby", carol, true)
	if got, err := c.JoinGroup(ctx, open); err != nil || got != (Group{ID: open, Name: "lobby", Owner: carol, Open: true, Members: 2}) {
		t.Errorf("JoinGroup of an open group = %+v, %v", got, err)
	}
	sent("POST /groups/{gid}/join")
	if err := c.LeaveGroup(ctx, open); err != nil || slices.Contains(route.GroupMembers(open), uid) {
		t.Errorf("LeaveGroup: %v; members %v", err, route.GroupMembers(open))
	}
	sent("POST /groups/{gid}/leave")
	if err := c.DissolveGroup(ctx, g.ID); err != nil {
		t.Errorf("DissolveGroup: %v", err)
	}
	if _, ok := route.GroupName(g.ID); ok {
		t.Error("the group is still there after DissolveGroup")
	}
	sent("POST /groups/{gid}/dissolve")

	route.SetGroupCount("m1", 3, 1)
	counts, err := c.GroupReceipts(ctx, "m1", "unknown")
	if want := map[string]GroupCount{"m1": {Delivered: 3, Read: 1}}; err != nil || !maps.Equal(counts, want) {
		t.Errorf("GroupReceipts = %v, %v; want %v", counts, err, want)
	}
	sent("GET /groups/receipts")
	if counts, err := c.GroupReceipts(ctx); err != nil || len(counts) != 0 {
		t.Errorf("GroupReceipts of nothing = %v, %v", counts, err)
	}

	// Refusals keep the route's codes.
	secret := route.AddGroup("secret", carol, false)
	mine := route.AddGroup("mine", uid, false)
	for _, tc := range []struct {
		name string
		err  error
		want codes.Code
	}{
		{"unknown group", func() error { _, err := c.Group(ctx, "99"); return err }(), codes.NoGroup},
		{"closed group, not a member", func() error { _, err := c.GroupMembers(ctx, secret); return err }(), codes.Forbidden},
		{"join without an invitation", func() error { _, err := c.JoinGroup(ctx, secret); return err }(), codes.Forbidden},
		{"the owner leaving", c.LeaveGroup(ctx, mine), codes.Forbidden},
		{"kick by a non-owner", c.KickFromGroup(ctx, secret, "carol"), codes.Forbidden},
		{"invite of an unknown user", func() error { _, err := c.InviteToGroup(ctx, mine, "zed"); return err }(), codes.BadAccount},
		{"empty name", func() error { _, err := c.CreateGroup(ctx, "", false); return err }(), codes.BadArgument},
	} {
		var ae *APIError
		if !errors.As(tc.err, &ae) || ae.Code != tc.want {
			t.Errorf("%s: %v, want code %d", tc.name, tc.err, tc.want)
		}
	}
	route.SetGroupMax(1)
	if _, err := bobAPI.JoinGroup(ctx, open); CodeOf(err) != codes.GroupFull {
		t.Errorf("joining a full group: %v, want GroupFull", err)
	}

	// Missing arguments fail before any call.
	calls := route.Calls("GET /groups/{gid}")
	for name, err := range map[string]error{
		"Group":         func() error { _, err := c.Group(ctx, ""); return err }(),
		"GroupMembers":  func() error { _, err := c.GroupMembers(ctx, ""); return err }(),
		"JoinGroup":     func() error { _, err := c.JoinGroup(ctx, ""); return err }(),
		"InviteToGroup": func() error { _, err := c.InviteToGroup(ctx, "", "bob"); return err }(),
		"LeaveGroup":    c.LeaveGroup(ctx, ""),
		"KickFromGroup": c.KickFromGroup(ctx, "", "bob"),
		"RenameGroup":   func() error { _, err := c.RenameGroup(ctx, "", "x"); return err }(),
		"TransferGroup": func() error { _, err := c.TransferGroup(ctx, "", "bob"); return err }(),
		"DissolveGroup": c.DissolveGroup(ctx, ""),
		"SendGroup":     func() error { _, err := c.SendGroup(ctx, "", "x"); return err }(),
	} {
		if !errors.Is(err, ErrNoGroup) {
			t.Errorf("%s without a group: %v, want ErrNoGroup", name, err)
		}
	}
	if _, err := c.InviteToGroup(ctx, mine); !errors.Is(err, ErrNoRecipient) {
		t.Errorf("InviteToGroup of nobody: %v", err)
	}
	if err := c.KickFromGroup(ctx, mine, ""); !errors.Is(err, ErrNoRecipient) {
		t.Errorf("KickFromGroup of nobody: %v", err)
	}
	if _, err := c.TransferGroup(ctx, mine, ""); !errors.Is(err, ErrNoRecipient) {
		t.Errorf("TransferGroup to nobody: %v", err)
	}
	if route.Calls("GET /groups/{gid}") != calls {
		t.Error("a call without a group id reached the route")
	}

	// A replaced session's token is refused like everywhere else.
	if _, err := NewAPI(route.URL, nil).Login(ctx, "alice", "secret1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Groups(ctx); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Groups with a replaced session: %v, want ErrUnauthorized", err)
	}
}

// TestGroupRequestsAndAnswerShapes: the exact requests (method, path,
// body) and answers with numbers, strings and flags in other shapes.
func TestGroupRequestsAndAnswerShapes(t *testing.T) {
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
		data := `null`
		switch {
		case r.URL.Path == "/groups" && r.Method == http.MethodPost, r.URL.Path == "/groups/7":
			data = `{"groupId":7,"name":"team","owner":3,"open":"1","members":"4"}`
		case r.URL.Path == "/groups":
			data = `[{"groupId":"7","name":"team","owner":"3","open":0,"members":4},{"groupId":"8","name":"x","owner":"3","open":true,"members":1}]`
		case r.URL.Path == "/groups/7/members":
			data = `[{"userId":3,"userName":"alice"}]`
		case r.URL.Path == "/groups/7/owner":
			data = `{"groupId":"7","name":"team","owner":5,"open":1,"members":"4"}`
		case r.URL.Path == "/groups/7/invite":
			data = `{"invited":[5,"6"]}`
		case r.URL.Path == "/groups/receipts":
			var parts []string
			for id := range strings.SplitSeq(r.URL.Query().Get("msgIds"), ",") {
				parts = append(parts, fmt.Sprintf(`%q:{"delivered":"2","read":1}`, id))
			}
			data = "{" + strings.Join(parts, ",") + "}"
		}
		_, _ = io.WriteString(w, `{"code":9000,"message":"ok","data":`+data+`}`)
	}))
	defer srv.Close()
	api := NewAPI(srv.URL, nil)
	api.SetAccessToken("tok")
	ctx := context.Background()
	team := Group{ID: "7", Name: "team", Owner: "3", Open: true, Members: 4}

	if g, err := api.CreateGroup(ctx, "team", true); err != nil || g != team {
		t.Errorf("CreateGroup = %+v, %v", g, err)
	}
	if gs, err := api.Groups(ctx); err != nil || len(gs) != 2 || gs[0] != (Group{ID: "7", Name: "team", Owner: "3", Members: 4}) || !gs[1].Open {
		t.Errorf("Groups = %+v, %v", gs, err)
	}
	if g, err := api.Group(ctx, "7"); err != nil || g != team {
		t.Errorf("Group = %+v, %v", g, err)
	}
	if us, err := api.GroupMembers(ctx, "7"); err != nil || len(us) != 1 || us[0] != (User{"3", "alice"}) {
		t.Errorf("GroupMembers = %+v, %v", us, err)
	}
	if ids, err := api.InviteToGroup(ctx, "7", "bob", "6"); err != nil || !slices.Equal(ids, []string{"5", "6"}) {
		t.Errorf("InviteToGroup = %v, %v", ids, err)
	}
	if _, err := api.JoinGroup(ctx, "7"); err != nil {
		t.Error(err)
	}
	for _, err := range []error{api.LeaveGroup(ctx, "7"), api.KickFromGroup(ctx, "7", "bob"), api.DissolveGroup(ctx, "7")} {
		if err != nil {
			t.Error(err)
		}
	}
	if _, err := api.RenameGroup(ctx, "7", "new name"); err != nil {
		t.Error(err)
	}
	if g, err := api.TransferGroup(ctx, "7", "bob"); err != nil || g != (Group{ID: "7", Name: "team", Owner: "5", Open: true, Members: 4}) {
		t.Errorf("TransferGroup = %+v, %v", g, err)
	}
	var ids []string
	for i := range 150 {
		ids = append(ids, fmt.Sprintf("m%d", i))
	}
	counts, err := api.GroupReceipts(ctx, ids...)
	if err != nil || len(counts) != 150 || counts["m149"] != (GroupCount{Delivered: 2, Read: 1}) {
		t.Errorf("GroupReceipts of 150 ids: %d answers, %v", len(counts), err)
	}
	want := []string{
		`POST /groups {"name":"team","open":true}`,
		`GET /groups`,
		`GET /groups/7`,
		`GET /groups/7/members`,
		`POST /groups/7/invite {"users":["bob","6"]}`,
		`POST /groups/7/join`,
		`POST /groups/7/leave`,
		`POST /groups/7/kick {"userId":"bob"}`,
		`POST /groups/7/dissolve`,
		`POST /groups/7/rename {"name":"new name"}`,
		`POST /groups/7/owner {"userId":"bob"}`,
		`GET /groups/receipts?msgIds=` + strings.Join(ids[:100], "%2C"),
		`GET /groups/receipts?msgIds=` + strings.Join(ids[100:], "%2C"),
	}
	mu.Lock()
	if !slices.Equal(got, want) {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	mu.Unlock()

	var ae *APIError
	if _, err := NewAPI(srv.URL, nil).Groups(ctx); !errors.As(err, &ae) || !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Groups without a bearer: %v", err)
	}
	var b flexBool
	if err := json.Unmarshal([]byte(`"maybe"`), &b); err == nil {
		t.Error(`flexBool accepted "maybe"`)
	}
}

// TestTransferGroup: Client.TransferGroup posts the user to the group's
// owner endpoint with the session's bearer and returns the group as the
// route answers it, its new owner included; the route's refusals come back
// with their codes and messages (an unknown user is not a refused token).
// The fake route has no such endpoint: a proxy in front of it answers it
// the way the real route does (docs/ARCHITECTURE.md, "Groups").
func TestTransferGroup(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	uid := route.AddUser("alice", "secret1")
	bob := route.AddUser("bob", "secret1")
	target, err := url.Parse(route.URL)
	if err != nil {
		t.Fatal(err)
	}
	bearer := "Bearer " + clienttest.AccessToken(uid, "s1")
	var mu sync.Mutex
	var got []string
	mux := http.NewServeMux()
	mux.Handle("/", httputil.NewSingleHostReverseProxy(target))
	mux.HandleFunc("POST /groups/{gid}/owner", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.URL.Path+" "+string(body)+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		var req struct {
			UserID string `json:"userId"`
		}
		answer := func(status int, code codes.Code, msg, data string) {
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"code":%d,"message":%q,"data":%s}`, code, msg, data)
		}
		gid := r.PathValue("gid")
		switch {
		case r.Header.Get("Authorization") != bearer:
			answer(http.StatusUnauthorized, codes.Unauthorized, "unauthorized", "null")
		case json.Unmarshal(body, &req) != nil || req.UserID == "":
			answer(http.StatusBadRequest, codes.BadArgument, "userId is required", "null")
		case gid == "99":
			answer(http.StatusNotFound, codes.NoGroup, "no group 99", "null")
		case gid != "7":
			answer(http.StatusForbidden, codes.Forbidden, "only the owner of group "+gid+" may do that", "null")
		case req.UserID == "zed":
			answer(http.StatusUnauthorized, codes.BadAccount, `bad account: unknown user "zed"`, "null")
		case req.UserID != "bob" && req.UserID != bob:
			answer(http.StatusForbidden, codes.Forbidden, req.UserID+" is not a member of group 7", "null")
		default:
			answer(http.StatusOK, codes.OK, "ok", `{"groupId":"7","name":"team","owner":"`+bob+`","open":false,"members":3}`)
		}
	})
	proxy := httptest.NewServer(mux)
	t.Cleanup(proxy.Close) // after the client's own cleanup logs it off
	c := startClient(t, fastConfig(proxy.URL))
	gw.Accept(t)
	next(t, c, EventConnected)
	ctx := context.Background()

	for _, user := range []string{"bob", bob} {
		g, err := c.TransferGroup(ctx, "7", user)
		if want := (Group{ID: "7", Name: "team", Owner: bob, Members: 3}); err != nil || g != want {
			t.Errorf("TransferGroup(7, %q) = %+v, %v; want %+v", user, g, err, want)
		}
	}
	for _, tc := range []struct {
		gid, user string
		code      codes.Code
		msg       string
	}{
		{"8", "bob", codes.Forbidden, "only the owner of group 8 may do that"},
		{"7", "dave", codes.Forbidden, "dave is not a member of group 7"},
		{"7", "zed", codes.BadAccount, `bad account: unknown user "zed"`},
		{"99", "bob", codes.NoGroup, "no group 99"},
	} {
		g, err := c.TransferGroup(ctx, tc.gid, tc.user)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != tc.code || ae.Message != tc.msg || g != (Group{}) {
			t.Errorf("TransferGroup(%s, %s) = %+v, %v; want code %d %q", tc.gid, tc.user, g, err, tc.code, tc.msg)
		}
		if errors.Is(err, ErrUnauthorized) {
			t.Errorf("TransferGroup(%s, %s): %v matches ErrUnauthorized", tc.gid, tc.user, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		`/groups/7/owner {"userId":"bob"} ` + bearer,
		`/groups/7/owner {"userId":"` + bob + `"} ` + bearer,
		`/groups/8/owner {"userId":"bob"} ` + bearer,
		`/groups/7/owner {"userId":"dave"} ` + bearer,
		`/groups/7/owner {"userId":"zed"} ` + bearer,
		`/groups/99/owner {"userId":"bob"} ` + bearer,
	}
	if !slices.Equal(got, want) {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestSendGroupResendsUntilSent: a group MSG whose answer is lost is sent
// again with the same client_msg_id until RECEIPT_SENT, then no more.
func TestSendGroupResendsUntilSent(t *testing.T) {
	gw := clienttest.NewGateway(t)
	var n atomic.Int32
	gw.SetOnMsg(func(m *cimpb.Msg) *cimpb.Frame {
		if n.Add(1) < 3 {
			return nil // the first two answers are lost
		}
		f := clienttest.Receipts(m)
		f.Receipt.Group, f.Receipt.Count = m.GetGroup(), 4
		return f
	})
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	cfg.ResendTimeout = 30 * time.Millisecond
	c := startClient(t, cfg)
	conn := gw.Accept(t)
	next(t, c, EventConnected)

	id, err := c.SendGroup(context.Background(), "7", "hello team")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m := conn.Next(t, cimpb.Type_MSG).GetMsg()
		if m.GetClientMsgId() != id || m.GetGroup() != "7" || m.GetTo() != "" || m.GetBroadcast() || string(m.GetBody()) != "hello team" {
			t.Fatalf("try %d: %v, want the group message with client_msg_id %s", i+1, m, id)
		}
	}
	ev := next(t, c, EventReceipt)
	if ev.Receipt.GetClientMsgId() != id || ev.Receipt.GetStatus() != cimpb.ReceiptStatus_RECEIPT_SENT || ev.Receipt.GetGroup() != "7" {
		t.Fatalf("receipt %v", ev.Receipt)
	}
	st, _ := c.Status(id)
	if st.Status != StatusSent || st.Tries != 3 || st.Group != "7" || st.To != "" || st.Recipients != 4 || st.MsgID != "m-"+id {
		t.Errorf("Status = %+v", st)
	}
	quiet(t, conn, 150*time.Millisecond) // answered: no fourth try
	noEvent(t, c)
}

// TestSendGroupFinalErrors: not a member (4030) and no such group (9200)
// are final: one try, one EventError.
func TestSendGroupFinalErrors(t *testing.T) {
	for _, code := range []codes.Code{codes.Forbidden, codes.NoGroup} {
		t.Run(code.Text(), func(t *testing.T) {
			gw := clienttest.NewGateway(t)
			gw.SetOnMsg(func(m *cimpb.Msg) *cimpb.Frame {
				return &cimpb.Frame{Type: cimpb.Type_ERROR, Error: &cimpb.Error{Code: int32(code), Text: code.Text(), ClientMsgId: m.GetClientMsgId()}}
			})
			route := clienttest.NewRoute(t, gw)
			route.AddUser("alice", "secret1")
			cfg := fastConfig(route.URL)
			cfg.ResendTimeout = 20 * time.Millisecond
			cfg.ResendMax = 3
			c := startClient(t, cfg)
			conn := gw.Accept(t)
			next(t, c, EventConnected)

			id, err := c.SendGroup(context.Background(), "3", "x")
			if err != nil {
				t.Fatal(err)
			}
			ev := next(t, c, EventError)
			if ev.Err.GetClientMsgId() != id || codes.Code(ev.Err.GetCode()) != code {
				t.Errorf("error %v, want %d for %s", ev.Err, code, id)
			}
			conn.Next(t, cimpb.Type_MSG)
			quiet(t, conn, 100*time.Millisecond) // no second try
			noEvent(t, c)
			if st, _ := c.Status(id); st.Status != StatusFailed || st.Tries != 1 || st.Err.GetCode() != int32(code) {
				t.Errorf("Status = %+v", st)
			}
		})
	}
}

// inboxes hands each user its own fake inbox.
type inboxes struct {
	mu sync.Mutex
	m  map[string]*clienttest.Inbox
}

func (b *inboxes) of(uid string) *clienttest.Inbox {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]*clienttest.Inbox{}
	}
	if b.m[uid] == nil {
		b.m[uid] = clienttest.NewInbox()
	}
	return b.m[uid]
}

// TestGroupMessageFlow: alice's group message reaches bob with Msg.Group
// set; her RECEIPT_SENT counts the recipients; live group receipts are
// events each time their count rises and show in Status; GroupReceipts
// raises the counts; a non-member's send is refused for good.
func TestGroupMessageFlow(t *testing.T) {
	gw := clienttest.NewGateway(t)
	var boxes inboxes
	gw.SetInbox(boxes.of)
	route := clienttest.NewRoute(t, gw)
	gw.SetGroups(route)
	uid := route.AddUser("alice", "secret1")
	bob := route.AddUser("bob", "secret1")
	carol := route.AddUser("carol", "secret1")
	gid := route.AddGroup("team", uid, false, bob)

	alice := startClient(t, fastConfig(route.URL))
	aliceConn := gw.Accept(t)
	next(t, alice, EventConnected)
	cfg := fastConfig(route.URL)
	cfg.UserName = "bob"
	bobC := startClient(t, cfg)
	gw.Accept(t)
	next(t, bobC, EventConnected)
	ctx := context.Background()

	id, err := alice.SendGroup(ctx, gid, "hi team")
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, alice, EventReceipt)
	if r := ev.Receipt; r.GetStatus() != cimpb.ReceiptStatus_RECEIPT_SENT || r.GetClientMsgId() != id || r.GetGroup() != gid || r.GetCount() != 1 {
		t.Fatalf("receipt %v, want SENT for group %s to 1 member", r, gid)
	}
	m := next(t, bobC, EventMessage).Msg
	if m.GetGroup() != gid || m.GetFrom() != uid || m.GetFromName() != "alice" || string(m.GetBody()) != "hi team" || m.GetSeq() != 1 {
		t.Fatalf("bob got %v", m)
	}
	mid := m.GetMsgId()

	const delivered, read = cimpb.ReceiptStatus_RECEIPT_DELIVERED, cimpb.ReceiptStatus_RECEIPT_READ
	if err := aliceConn.SendAll(
		clienttest.GroupReceipt(delivered, mid, gid, 1, bob),
		clienttest.GroupReceipt(delivered, mid, gid, 1, bob), // no news
		clienttest.GroupReceipt(delivered, mid, gid, 2, carol),
		clienttest.GroupReceipt(read, mid, gid, 1, bob),
		clienttest.GroupReceipt(delivered, mid, gid, 1, bob), // late and lower: no news
	); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		st    cimpb.ReceiptStatus
		count uint32
	}{{delivered, 1}, {delivered, 2}, {read, 1}} {
		r := next(t, alice, EventReceipt).Receipt
		if r.GetStatus() != want.st || r.GetCount() != want.count || r.GetGroup() != gid || r.GetMsgId() != mid {
			t.Fatalf("receipt %v, want %v count %d", r, want.st, want.count)
		}
	}
	if st, _ := alice.Status(id); st.Status != StatusRead || st.Recipients != 1 || st.Delivered != 2 || st.Read != 1 {
		t.Errorf("Status = %+v", st)
	}
	route.SetGroupCount(mid, 5, 4)
	if _, err := alice.GroupReceipts(ctx, mid); err != nil {
		t.Fatal(err)
	}
	if st, _ := alice.Status(id); st.Delivered != 5 || st.Read != 4 {
		t.Errorf("Status after GroupReceipts = %+v", st)
	}

	// carol is no member: refused, and not resent.
	cfg = fastConfig(route.URL)
	cfg.UserName = "carol"
	carolC := startClient(t, cfg)
	gw.Accept(t)
	next(t, carolC, EventConnected)
	cid, err := carolC.SendGroup(ctx, gid, "let me in")
	if err != nil {
		t.Fatal(err)
	}
	if e := next(t, carolC, EventError).Err; e.GetClientMsgId() != cid || codes.Code(e.GetCode()) != codes.Forbidden {
		t.Errorf("carol's error %v, want Forbidden", e)
	}
	if _, err := carolC.SendGroup(ctx, "99", "anyone?"); err != nil {
		t.Fatal(err)
	}
	if e := next(t, carolC, EventError).Err; codes.Code(e.GetCode()) != codes.NoGroup {
		t.Errorf("error %v for an unknown group, want NoGroup", e)
	}
	noEvent(t, bobC)
}

// TestRepeatedMsgIDShownOnceButAcked: a group message fanned out again
// under a new seq (an interrupted send) is shown once, its seq still
// acknowledged; a msgId older than the last 4096 shown is news again.
func TestRepeatedMsgIDShownOnceButAcked(t *testing.T) {
	c, gw, _, in := inboxSetup(t, func(cfg *Config) { cfg.AckDelay = 10 * time.Millisecond })
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	if err := conn.SendAll(
		in.Append(clienttest.GroupMsg("g1", "2", "bob", "7", "once")),
		in.Append(clienttest.GroupMsg("g1", "2", "bob", "7", "once")), // the same message, seq 2
		in.Append(clienttest.GroupMsg("g2", "2", "bob", "7", "next")),
	); err != nil {
		t.Fatal(err)
	}
	if m := next(t, c, EventMessage).Msg; m.GetMsgId() != "g1" || m.GetSeq() != 1 || m.GetGroup() != "7" {
		t.Fatalf("first message %v", m)
	}
	if m := next(t, c, EventMessage).Msg; m.GetMsgId() != "g2" || m.GetSeq() != 3 {
		t.Fatalf("second message %v, want g2 (seq 3) with the repeat dropped", m)
	}
	for deadline := time.Now().Add(clienttest.Wait); in.Acked() != 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("acknowledged up to %d, want 3 (the dropped repeat counts)", in.Acked())
		}
	}
	noEvent(t, c)

	// The window is the last 4096 messages shown.
	var fs []*cimpb.Frame
	for i := range shownKept {
		fs = append(fs, in.Append(clienttest.TextMsg(fmt.Sprintf("p%d", i), "2", "bob", "x")))
	}
	fs = append(fs, in.Append(clienttest.GroupMsg("g1", "2", "bob", "7", "again")))
	if err := conn.SendAll(fs...); err != nil {
		t.Fatal(err)
	}
	for range shownKept {
		next(t, c, EventMessage)
	}
	if m := next(t, c, EventMessage).Msg; m.GetMsgId() != "g1" || string(m.GetBody()) != "again" {
		t.Fatalf("message %v, want g1 shown again once forgotten", m)
	}
}

// TestMarkReadGroup: READs for group messages carry the group and the
// sender as peer, whether MarkRead recognises them or MarkGroupRead names
// the group.
func TestMarkReadGroup(t *testing.T) {
	c, gw, _, in := inboxSetup(t, func(cfg *Config) { cfg.AckDelay = time.Hour })
	conn := gw.Accept(t)
	next(t, c, EventConnected)
	ctx := context.Background()
	if err := conn.SendAll(
		in.Append(clienttest.GroupMsg("g1", "2", "bob", "7", "in team")),
		in.Append(clienttest.TextMsg("p1", "2", "bob", "private")),
		in.Append(clienttest.GroupMsg("g2", "2", "bob", "8", "in dev")),
	); err != nil {
		t.Fatal(err)
	}
	bodies(t, c, 3)

	if err := c.MarkRead(ctx, "2", "g1", "p1", "g2", "old"); err != nil {
		t.Fatal(err)
	}
	if f := nextFrame(t, conn); f.GetType() != cimpb.Type_ACK || f.GetAck().GetSeq() != 3 {
		t.Fatalf("frame %v, want ACK 3 before the READs", f)
	}
	var got []string
	for range 3 {
		r := conn.Next(t, cimpb.Type_READ).GetRead()
		got = append(got, fmt.Sprintf("%s/%s:%s", r.GetPeer(), r.GetGroup(), strings.Join(r.GetMsgIds(), ",")))
	}
	// "old" was never shown: no seq is known for it, so it is not sent.
	if want := []string{"2/7:g1", "2/:p1", "2/8:g2"}; !slices.Equal(got, want) {
		t.Errorf("READs %v, want %v", got, want)
	}

	c.shown.Add("g9", shownMsg{group: "7", seq: 9})
	c.shown.Add("g10", shownMsg{group: "7", seq: 10})
	if err := c.MarkGroupRead(ctx, "7", "bob", "g9", "g10"); err != nil {
		t.Fatal(err)
	}
	if r := conn.Next(t, cimpb.Type_READ).GetRead(); r.GetGroup() != "7" || r.GetPeer() != "bob" || !slices.Equal(r.GetMsgIds(), []string{"g9", "g10"}) {
		t.Errorf("READ %v, want g9 g10 of bob in group 7", r)
	}
	if err := c.MarkGroupRead(ctx, "", "bob", "g1"); !errors.Is(err, ErrNoGroup) {
		t.Errorf("MarkGroupRead without a group: %v", err)
	}
	if err := c.MarkGroupRead(ctx, "7", "", "g1"); !errors.Is(err, ErrNoRecipient) {
		t.Errorf("MarkGroupRead without a peer: %v", err)
	}
	if err := c.MarkGroupRead(ctx, "7", "bob"); err != nil {
		t.Errorf("MarkGroupRead of nothing: %v", err)
	}
	quiet(t, conn, 20*time.Millisecond)
}

// TestOutboxGroupCounts: a group message's receipts raise its member
// counts, each rise is news, and its give-up text names the group.
func TestOutboxGroupCounts(t *testing.T) {
	o := newOutbox(time.Second, 1)
	now := time.Now()
	m := &cimpb.Msg{ClientMsgId: "c1", Group: "7", Body: []byte("hi"), Kind: cimpb.Kind_KIND_TEXT}
	o.add(m, string(m.GetBody()), []byte("frame"), now)
	o.written("c1", now)
	const sent, delivered, read = cimpb.ReceiptStatus_RECEIPT_SENT, cimpb.ReceiptStatus_RECEIPT_DELIVERED, cimpb.ReceiptStatus_RECEIPT_READ
	// Only SENT names the client_msg_id; the live counts name the msgId.
	rc := func(st cimpb.ReceiptStatus, count uint32) *cimpb.Receipt {
		r := &cimpb.Receipt{Status: st, MsgId: "m1", Group: "7", Count: count}
		if st == sent {
			r.ClientMsgId = "c1"
		}
		return r
	}
	for i, step := range []struct {
		rc   *cimpb.Receipt
		emit bool
	}{
		{rc(sent, 3), true},
		{rc(sent, 3), false},
		{rc(delivered, 1), true},
		{rc(delivered, 1), false},
		{rc(delivered, 3), true},
		{rc(delivered, 2), false},
		{rc(read, 1), true},
		{rc(read, 2), true},
	} {
		if emit, _ := o.receipt(step.rc); emit != step.emit {
			t.Errorf("step %d (%v count %d): emit %v, want %v", i, step.rc.GetStatus(), step.rc.GetCount(), emit, step.emit)
		}
	}
	st, _ := o.get("c1")
	if st.Group != "7" || st.Status != StatusRead || st.Recipients != 3 || st.Delivered != 3 || st.Read != 2 {
		t.Errorf("record %+v", st)
	}
	o.groupCounts(map[string]GroupCount{"m1": {Delivered: 2, Read: 3}, "unknown": {Delivered: 9}})
	if st, _ := o.get("c1"); st.Delivered != 3 || st.Read != 3 {
		t.Errorf("after groupCounts %+v, want delivered 3 (never lower), read 3", st)
	}

	// A group message never answered gives up naming its group.
	m2 := &cimpb.Msg{ClientMsgId: "c2", Group: "8", Body: []byte("x"), Kind: cimpb.Kind_KIND_TEXT}
	o.add(m2, string(m2.GetBody()), []byte("frame"), now)
	o.written("c2", now)
	_, failed, _ := o.expire(now.Add(time.Minute))
	if len(failed) != 1 || failed[0].GetText() != "message to group 8 not sent: no answer after 1 try" {
		t.Errorf("failed %v", failed)
	}
}
