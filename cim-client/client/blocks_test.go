package client

import (
	"context"
	"errors"
	"io"
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

// TestBlockCalls: Block, Unblock and Blocks reach their endpoints with the
// session's bearer and change (or list) the route's block set; refusals
// come back as *APIError with the route's code and status.
func TestBlockCalls(t *testing.T) {
	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	uid := route.AddUser("alice", "secret1")
	bob := route.AddUser("bob", "secret1")
	carol := route.AddUser("carol", "secret1")
	route.AddUser("dave", "secret1")
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

	if u, err := c.Block(ctx, "bob"); err != nil || u != (User{bob, "bob"}) {
		t.Fatalf("Block(bob) = %+v, %v", u, err)
	}
	sent("POST /blocks")
	if u, err := c.Block(ctx, carol); err != nil || u != (User{carol, "carol"}) {
		t.Fatalf("Block(carol's id) = %+v, %v", u, err)
	}
	if u, err := c.Block(ctx, "bob"); err != nil || u != (User{bob, "bob"}) {
		t.Errorf("blocking bob again = %+v, %v", u, err)
	}
	if got := route.Blocked(uid); !slices.Equal(got, []string{bob, carol}) {
		t.Errorf("the route's block set %v, want bob and carol", got)
	}
	users, err := c.Blocks(ctx)
	if want := []User{{bob, "bob"}, {carol, "carol"}}; err != nil || !slices.Equal(users, want) {
		t.Errorf("Blocks = %+v, %v; want %+v", users, err, want)
	}
	sent("GET /blocks")

	if u, err := c.Unblock(ctx, "bob"); err != nil || u != (User{bob, "bob"}) {
		t.Errorf("Unblock(bob) = %+v, %v", u, err)
	}
	sent("DELETE /blocks/{user}")
	if u, err := c.Unblock(ctx, "bob"); err != nil || u != (User{bob, "bob"}) {
		t.Errorf("unblocking bob again = %+v, %v", u, err)
	}
	if got := route.Blocked(uid); !slices.Equal(got, []string{carol}) {
		t.Errorf("the route's block set %v after Unblock, want carol", got)
	}
	if users, err := c.Blocks(ctx); err != nil || !slices.Equal(users, []User{{carol, "carol"}}) {
		t.Errorf("Blocks after Unblock = %+v, %v", users, err)
	}

	// Refusals keep the route's codes.
	route.SetBlockMax(1)
	for _, tc := range []struct {
		name   string
		err    error
		code   codes.Code
		status int
	}{
		{"unknown user", func() error { _, err := c.Block(ctx, "zed"); return err }(), codes.BadAccount, http.StatusUnauthorized},
		{"unblock of an unknown user", func() error { _, err := c.Unblock(ctx, "zed"); return err }(), codes.BadAccount, http.StatusUnauthorized},
		{"myself", func() error { _, err := c.Block(ctx, "alice"); return err }(), codes.BadArgument, http.StatusBadRequest},
		{"too many", func() error { _, err := c.Block(ctx, "dave"); return err }(), codes.QuotaExceeded, http.StatusTooManyRequests},
	} {
		var ae *APIError
		if !errors.As(tc.err, &ae) || ae.Code != tc.code || ae.HTTPStatus != tc.status {
			t.Errorf("%s: %v, want code %d, HTTP %d", tc.name, tc.err, tc.code, tc.status)
		}
	}
	if got := route.Blocked(uid); !slices.Equal(got, []string{carol}) {
		t.Errorf("the route's block set %v after refusals, want carol", got)
	}

	// No user fails before any call.
	calls := route.Calls("POST /blocks") + route.Calls("DELETE /blocks/{user}")
	if _, err := c.Block(ctx, ""); !errors.Is(err, ErrNoRecipient) {
		t.Errorf("Block of nobody: %v", err)
	}
	if _, err := c.Unblock(ctx, ""); !errors.Is(err, ErrNoRecipient) {
		t.Errorf("Unblock of nobody: %v", err)
	}
	if route.Calls("POST /blocks")+route.Calls("DELETE /blocks/{user}") != calls {
		t.Error("a call without a user reached the route")
	}

	// A replaced session's token is refused like everywhere else.
	if _, err := NewAPI(route.URL, nil).Login(ctx, "alice", "secret1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Blocks(ctx); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Blocks with a replaced session: %v, want ErrUnauthorized", err)
	}
}

// TestBlockRequestsAndAnswerShapes: the exact requests (method, escaped
// path, body) and answers with ids as numbers.
func TestBlockRequestsAndAnswerShapes(t *testing.T) {
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
		data := `{"userId":5,"userName":"bob"}`
		if r.Method == http.MethodGet {
			data = `{"users":[{"userId":5,"userName":"bob"},{"userId":"6","userName":"a/b c"}]}`
		}
		_, _ = io.WriteString(w, `{"code":9000,"message":"ok","data":`+data+`}`)
	}))
	defer srv.Close()
	api := NewAPI(srv.URL, nil)
	api.SetAccessToken("tok")
	ctx := context.Background()

	if u, err := api.Block(ctx, "bob"); err != nil || u != (User{"5", "bob"}) {
		t.Errorf("Block = %+v, %v", u, err)
	}
	if u, err := api.Unblock(ctx, "a/b c"); err != nil || u != (User{"5", "bob"}) {
		t.Errorf("Unblock = %+v, %v", u, err)
	}
	if us, err := api.Blocks(ctx); err != nil || !slices.Equal(us, []User{{"5", "bob"}, {"6", "a/b c"}}) {
		t.Errorf("Blocks = %+v, %v", us, err)
	}
	want := []string{
		`POST /blocks {"user":"bob"}`,
		`DELETE /blocks/a%2Fb%20c`,
		`GET /blocks`,
	}
	mu.Lock()
	if !slices.Equal(got, want) {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	mu.Unlock()

	if _, err := NewAPI(srv.URL, nil).Blocks(ctx); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Blocks without a bearer: %v", err)
	}
}

// TestSendToBlockedUserFails: the route's ERROR Forbidden answering a
// private message to a user we blocked is final: one try, one EventError
// with the route's text, Status failed.
func TestSendToBlockedUserFails(t *testing.T) {
	const text = "you blocked this user: unblock them to write to them"
	gw := clienttest.NewGateway(t)
	gw.SetOnMsg(func(m *cimpb.Msg) *cimpb.Frame {
		if m.GetTo() != "bob" {
			return clienttest.Receipts(m)
		}
		return &cimpb.Frame{Type: cimpb.Type_ERROR, Error: &cimpb.Error{Code: int32(codes.Forbidden), Text: text, ClientMsgId: m.GetClientMsgId()}}
	})
	route := clienttest.NewRoute(t, gw)
	route.AddUser("alice", "secret1")
	cfg := fastConfig(route.URL)
	cfg.ResendTimeout = 20 * time.Millisecond
	cfg.ResendMax = 3
	c := startClient(t, cfg)
	conn := gw.Accept(t)
	next(t, c, EventConnected)

	id, err := c.Send(context.Background(), "bob", "hi")
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, c, EventError)
	if ev.Err.GetClientMsgId() != id || codes.Code(ev.Err.GetCode()) != codes.Forbidden || ev.Err.GetText() != text {
		t.Errorf("error %v, want Forbidden %q for %s", ev.Err, text, id)
	}
	conn.Next(t, cimpb.Type_MSG)
	quiet(t, conn, 100*time.Millisecond) // no second try
	noEvent(t, c)
	if st, _ := c.Status(id); st.Status != StatusFailed || st.Tries != 1 || st.Err.GetCode() != int32(codes.Forbidden) {
		t.Errorf("Status = %+v", st)
	}

	// Others are written to as before.
	id, err = c.Send(context.Background(), "carol", "hi")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, c, EventReceipt); ev.Receipt.GetClientMsgId() != id || ev.Receipt.GetStatus() != cimpb.ReceiptStatus_RECEIPT_SENT {
		t.Errorf("receipt %v, want SENT for %s", ev.Receipt, id)
	}
}
