package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// httpFrom is an HTTP client whose connections come from src.
func httpFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

// healthz sends GET /healthz on an open connection and reads the answer's
// status line; an error when the route closed the connection instead.
func healthz(conn net.Conn, br *bufio.Reader) (string, error) {
	conn.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: route\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.Status, err
}

// awaitClosed waits (up to wait) for the route to close conn, discarding
// whatever it answers first; it fails the test if the connection stays open.
func awaitClosed(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: still open after %v", what, wait)
	}
}

// TestRouteSlowBodiesAndConnectionCaps: a request body trickling in is cut
// off at the read timeout; one client address cannot hold more than its
// share of the route's connections, while /healthz and logins from another
// address keep working and a freed slot is usable again.
func TestRouteSlowBodiesAndConnectionCaps(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{
		"--read-timeout", "2s", "--max-conns-per-addr", "8",
	}})
	c.Register(t, "lena")

	t.Run("slow bodies are closed", func(t *testing.T) {
		// Headers at once, then one body byte now and then: without a read
		// timeout these connections stay open for as long as the client
		// likes (one byte every 10 s held 20,000 of them).
		var conns []net.Conn
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			conn := dialFrom(t, "127.0.0.4", c.Route.Addr)
			conns = append(conns, conn)
			hdr := "POST /registerAccount HTTP/1.1\r\nHost: route\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
			if _, err := io.WriteString(conn, hdr); err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				tick := time.NewTicker(200 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := conn.Write([]byte(" ")); err != nil {
							return // closed by the route
						}
					}
				}
			})
		}
		for i, conn := range conns {
			awaitClosed(t, conn, fmt.Sprintf("slow body %d", i))
		}
		close(stop)
		wg.Wait()
	})

	t.Run("per-address cap", func(t *testing.T) {
		// 8 connections from 127.0.0.3, each answered and kept alive.
		type held struct {
			conn net.Conn
			br   *bufio.Reader
		}
		var hold []held
		for i := range 8 {
			conn := dialFrom(t, "127.0.0.3", c.Route.Addr)
			br := bufio.NewReader(conn)
			if st, err := healthz(conn, br); err != nil || !strings.HasPrefix(st, "200") {
				t.Fatalf("connection %d of 8 from 127.0.0.3: %q %v", i+1, st, err)
			}
			hold = append(hold, held{conn, br})
		}
		// The 9th is closed without an answer.
		extra := dialFrom(t, "127.0.0.3", c.Route.Addr)
		if st, err := healthz(extra, bufio.NewReader(extra)); err == nil {
			t.Fatalf("a 9th connection from 127.0.0.3 was answered %q", st)
		}
		// Another address is served: /healthz and a login.
		other := httpFrom("127.0.0.2")
		defer other.CloseIdleConnections()
		if status, err := call(other, "GET", c.Route.URL+"/healthz", nil); err != nil || status != 200 {
			t.Fatalf("/healthz from 127.0.0.2: HTTP %d %v", status, err)
		}
		lr, err := client.NewAPI(c.Route.URL, other).Login(ctxT(t), "lena", harness.Password)
		if err != nil || lr.Token == "" {
			t.Fatalf("login from 127.0.0.2: %v", err)
		}
		// The held connections still work; closing one frees its slot.
		if st, err := healthz(hold[0].conn, hold[0].br); err != nil || !strings.HasPrefix(st, "200") {
			t.Fatalf("a held connection: %q %v", st, err)
		}
		hold[7].conn.Close()
		harness.Eventually(t, wait, func() error {
			conn := dialFrom(t, "127.0.0.3", c.Route.Addr)
			defer conn.Close()
			if _, err := healthz(conn, bufio.NewReader(conn)); err != nil {
				return fmt.Errorf("a new connection after one closed: %v", err)
			}
			return nil
		})
	})
}

// call sends a request with hc and returns the status.
func call(hc *http.Client, method, url string, body io.Reader) (int, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// upload stores n bytes as u through the SDK.
func upload(t *testing.T, u *harness.User, n int) (client.FileRef, error) {
	t.Helper()
	info := u.Info()
	return u.API().Upload(ctxT(t), info.UserID, info.SessionID, "f.bin", "", bytes.NewReader(make([]byte, n)), int64(n))
}

// wantAPIError checks that err is the route's answer with status and code
// and matches sentinel.
func wantAPIError(t *testing.T, err error, status int, code codes.Code, sentinel error, what string) {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != status || ae.Code != code || !errors.Is(err, sentinel) {
		t.Fatalf("%s: %v, want HTTP %d code %d matching %v", what, err, status, code, sentinel)
	}
}

// TestListingsPagedAndLimited: /onlineUser and a group's members answer at
// most the page asked for (by id, then after the last id), so no request
// makes the route send a whole list (100,000 users online are megabytes); a
// bad page is 400/3000; a user's listing requests and group changes are
// rate limited (--list-rate, 429/4291: one bucket), an API key's are not.
func TestListingsPagedAndLimited(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{"--list-rate", "0.001", "--list-burst", "5"}})
	ctx := ctxT(t)
	var users []*harness.User
	for _, name := range []string{"ann", "ben", "cat"} {
		users = append(users, c.Connect(t, name))
	}
	ann := users[0]
	type user struct {
		UserID   string `json:"userId"`
		UserName string `json:"userName"`
	}
	list := func(query string) []user {
		t.Helper()
		var env struct {
			harness.Envelope
			Data []user `json:"data"`
		}
		if st, err := harness.Call("GET", c.Route.URL+"/onlineUser"+query, harness.APIKey(harness.ListKey), nil, &env); err != nil || st != 200 {
			t.Fatalf("/onlineUser%s: HTTP %d %v", query, st, err)
		}
		return env.Data
	}
	first := list("?limit=2")
	if len(first) != 2 {
		t.Fatalf("a page of 2: %v", first)
	}
	rest := list("?limit=2&after=" + first[1].UserID)
	all := list("")
	if len(rest) != 1 || len(all) != 3 || fmt.Sprint(append(first, rest...)) != fmt.Sprint(all) {
		t.Fatalf("pages %v + %v, all %v", first, rest, all)
	}
	checkAPI(t, c, "GET", "/onlineUser?limit=0", harness.APIKey(harness.ListKey), nil, 400, codes.BadArgument)
	checkAPI(t, c, "GET", "/onlineUser?after=ann", harness.APIKey(harness.ListKey), nil, 400, codes.BadArgument)
	// ann's listings and group changes: the SDK's pages and a new group,
	// then her burst of 5 is used up.
	if page, err := ann.OnlineUsersAfter(ctx, first[1].UserID, 2); err != nil || len(page) != 1 || page[0].UserID != rest[0].UserID {
		t.Fatalf("the SDK's page after %s: %v %v, want %v", first[1].UserID, page, err, rest)
	}
	g, err := ann.CreateGroup(ctx, "all", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users[1:] {
		if _, err := u.JoinGroup(ctx, g.ID); err != nil {
			t.Fatal(err)
		}
	}
	m1, err := ann.GroupMembersAfter(ctx, g.ID, "", 2)
	if err != nil || len(m1) != 2 {
		t.Fatalf("members, a page of 2: %v %v", m1, err)
	}
	m2, err := ann.GroupMembersAfter(ctx, g.ID, m1[1].UserID, 2)
	if err != nil || len(m2) != 1 || m2[0].UserID == m1[0].UserID || m2[0].UserID == m1[1].UserID {
		t.Fatalf("members after %s: %v %v", m1[1].UserID, m2, err)
	}
	if _, err := ann.Groups(ctx); err != nil {
		t.Fatalf("ann's 5th request: %v", err)
	}
	_, err = ann.GroupMembers(ctx, g.ID)
	wantCode(t, err, codes.RateLimited, "ann's 6th request, a listing")
	_, err = ann.RenameGroup(ctx, g.ID, "everybody")
	wantCode(t, err, codes.RateLimited, "ann's 7th request, a group change")
	if _, err := users[1].GroupMembers(ctx, g.ID); err != nil {
		t.Fatalf("ben's listing (his own budget): %v", err)
	}
	if len(list("")) != 3 {
		t.Fatal("the API key's listing")
	}
}

// TestGroupCopiesBounded: a message to a group without a timeline is stored
// once per member; a user's messages to such groups spend its budget of
// copies (--group-copies-rate), then get ERROR 4293 (final in the SDK) and
// are stored nowhere; the other members still write.
func TestGroupCopiesBounded(t *testing.T) {
	groupBudgetBounded(t, "--group-copies-rate", "--group-copies-burst")
}

// TestGroupPushBounded: a message to a group with a timeline is stored once
// but goes to every member; a user's messages to such groups spend its
// budget of deliveries (--group-push-rate), then get ERROR 4293 and go to
// nobody; the other members still write.
func TestGroupPushBounded(t *testing.T) {
	groupBudgetBounded(t, "--group-push-rate", "--group-push-burst", "--group-timeline-min", "3")
}

// groupBudgetBounded runs a cluster whose per-user group budget (rate,
// burst) holds five messages to a group of three, and checks that ann's
// sixth is refused for good while ben still writes.
func groupBudgetBounded(t *testing.T, rate, burst string, args ...string) {
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: append([]string{
		"--group-max-members", "10", rate, "0.001", burst, "10"}, args...)})
	ctx := ctxT(t)
	ann, ben, cat := c.Connect(t, "ann"), c.Connect(t, "ben"), c.Connect(t, "cat")
	gid := openGroup(t, ctx, ann, "chatty", ben, cat)
	// 2 recipients a message: 5 fit in the burst of 10, the 6th does not.
	var last string
	var err error
	for i := range 6 {
		if last, err = ann.SendGroup(ctx, gid, fmt.Sprint("chat ", i)); err != nil {
			t.Fatal(err)
		}
	}
	k := ann.WaitFor(t, 0, wait, "the refusal", func(e client.Event) bool {
		return e.Kind == client.EventError && e.Err.GetClientMsgId() == last
	})
	if code := ann.Seen()[k].Err.GetCode(); code != int32(codes.QuotaExceeded) {
		t.Fatalf("ann's 6th message answered %d, want 4293", code)
	}
	if _, err := ben.SendGroup(ctx, gid, "ben here"); err != nil {
		t.Fatal(err)
	}
	cat.WaitFor(t, 0, wait, "ann's 5th", harness.IsMessage("chat 4"))
	cat.WaitFor(t, 0, wait, "ben's message", harness.IsMessage("ben here"))
	for _, e := range cat.Seen() {
		if e.Kind == client.EventMessage && string(e.Msg.Body) == "chat 5" {
			t.Fatal("cat got the refused message")
		}
	}
}

// TestGroupsPerUserBounded: one user cannot create or join groups without
// end (each costs Redis, and every login's SYNC reads them): past
// --max-groups-per-user memberships, and past --groups-per-hour creations,
// 429/4293, whatever the user dissolves in between.
func TestGroupsPerUserBounded(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{"--max-groups-per-user", "2", "--groups-per-hour", "3"}})
	ctx := ctxT(t)
	ann, ben := c.Connect(t, "ann"), c.Connect(t, "ben")
	for _, name := range []string{"one", "two"} {
		if _, err := ann.CreateGroup(ctx, name, true); err != nil {
			t.Fatalf("ann creates %s: %v", name, err)
		}
	}
	_, err := ann.CreateGroup(ctx, "three", true)
	wantCode(t, err, codes.QuotaExceeded, "ann's 3rd group")
	g, err := ben.CreateGroup(ctx, "bens", true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ann.JoinGroup(ctx, g.ID)
	wantCode(t, err, codes.QuotaExceeded, "ann joins a 3rd group")
	// ben creates and dissolves: the hour's 3 creations, then no more.
	for i := range 2 {
		if err := ben.DissolveGroup(ctx, g.ID); err != nil {
			t.Fatal(err)
		}
		if g, err = ben.CreateGroup(ctx, fmt.Sprint("again", i), true); err != nil {
			t.Fatalf("ben's creation %d of 3: %v", i+2, err)
		}
	}
	if err := ben.DissolveGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	_, err = ben.CreateGroup(ctx, "fourth", true)
	wantCode(t, err, codes.QuotaExceeded, "ben's 4th creation in an hour")
	if gs, err := ben.Groups(ctx); err != nil || len(gs) != 0 {
		t.Fatalf("ben's groups after the refusal: %v %v, want none", gs, err)
	}
}

// TestUploadLimits: one user's uploads are bounded per day and per second,
// everybody's together by a global cap; refusals are 429/4293 and
// 507/5070, keep nothing, and the SDK names them (ErrQuotaExceeded,
// ErrStorageFull).
func TestUploadLimits(t *testing.T) {
	// An upload directory of its own: the global cap counts what is in it.
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{
		"--upload-dir", t.TempDir(), "--upload-quota", "3000", "--upload-total", "5000", "--upload-rate", "0.001", "--upload-burst", "3",
		"--history-rate", "0.001", "--history-burst", "2",
	}})
	ann, ben, cat, dan := c.Connect(t, "ann"), c.Connect(t, "ben"), c.Connect(t, "cat"), c.Connect(t, "dan")
	if _, err := upload(t, ann, 2000); err != nil {
		t.Fatal(err)
	}
	_, err := upload(t, ann, 2000)
	wantAPIError(t, err, 429, codes.QuotaExceeded, client.ErrQuotaExceeded, "ann over her daily quota")
	if _, err := upload(t, ben, 2000); err != nil {
		t.Fatal(err)
	}
	_, err = upload(t, cat, 2000) // 4000 stored + 2000 > 5000
	wantAPIError(t, err, 507, codes.StorageFull, client.ErrStorageFull, "cat over the global cap")
	for i := range 3 {
		if _, err := upload(t, dan, 100); err != nil {
			t.Fatalf("dan's upload %d: %v", i+1, err)
		}
	}
	_, err = upload(t, dan, 100) // within quota and cap: the rate refuses
	wantAPIError(t, err, 429, codes.QuotaExceeded, client.ErrQuotaExceeded, "dan's 4th upload at once")

	// /history per user: the burst of 2, then 429/4291.
	for i := range 2 {
		if _, err := ann.History(ctxT(t), client.HistoryQuery{}); err != nil {
			t.Fatalf("history %d: %v", i+1, err)
		}
	}
	_, err = ann.History(ctxT(t), client.HistoryQuery{})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != 429 || ae.Code != codes.RateLimited {
		t.Fatalf("3rd history at once: %v, want 429/4291", err)
	}
	if _, err := ben.History(ctxT(t), client.HistoryQuery{}); err != nil {
		t.Fatalf("ben's history (his own budget): %v", err)
	}
}

// TestUploadExpiry: an upload nobody but its uploader fetched is deleted by
// the janitor after --upload-unreferenced-ttl; one another user fetched is
// in use and stays.
func TestUploadExpiry(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{
		"--upload-dir", t.TempDir(), "--upload-unreferenced-ttl", "3s", "--upload-sweep", "200ms",
	}})
	eve, fay := c.Connect(t, "eve"), c.Connect(t, "fay")
	kept, err := upload(t, eve, 500) // uploaded first: older than dropped
	if err != nil {
		t.Fatal(err)
	}
	sent, err := upload(t, eve, 500) // named by a message eve sends: in use
	if err != nil {
		t.Fatal(err)
	}
	dropped, err := upload(t, eve, 500)
	if err != nil {
		t.Fatal(err)
	}
	if err := eve.SendMsg(ctxT(t), &cimpb.Msg{To: "fay", Kind: cimpb.Kind_KIND_FILE,
		File: &cimpb.FileInfo{Name: "f.bin", Size: 500, Ref: sent.Ref}}); err != nil {
		t.Fatal(err)
	}
	fay.WaitFor(t, 0, wait, "eve's file", func(e client.Event) bool {
		return e.Kind == client.EventMessage && e.Msg.GetFile().GetRef() == sent.Ref
	})
	fetch := func(u *harness.User, ref string) error {
		rc, _, err := u.API().Download(ctxT(t), ref)
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(io.Discard, rc)
		return err
	}
	if err := fetch(fay, kept.Ref); err != nil { // someone else: in use
		t.Fatal(err)
	}
	if err := fetch(eve, dropped.Ref); err != nil { // its uploader only
		t.Fatal(err)
	}
	harness.Eventually(t, wait, func() error {
		err := fetch(eve, dropped.Ref)
		var ae *client.APIError
		if errors.As(err, &ae) && ae.HTTPStatus == 404 {
			return nil
		}
		return fmt.Errorf("the unreferenced upload: %v, want 404", err)
	})
	// The sweep that deleted it found the older one expired too, and kept
	// it because fay fetched it.
	if err := fetch(eve, kept.Ref); err != nil {
		t.Fatalf("the upload in use was deleted: %v", err)
	}
	if err := fetch(eve, sent.Ref); err != nil {
		t.Fatalf("the upload a stored message names was deleted: %v", err)
	}
}

// TestRegistrationFloodKeepsLoginsWorking: registrations from many
// goroutines hash passwords on at most half of the route's bcrypt slots
// and are refused (503/5032) beyond a short queue, so a user logging in
// again and again meanwhile always gets in. Names are unique in any case.
func TestRegistrationFloodKeepsLoginsWorking(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{
		"--bcrypt-cost", "8", "--hash-queue", "4",
	}})
	api := client.NewAPI(c.Route.URL, nil)
	if _, err := api.Register(ctxT(t), "Mona", harness.Password); err != nil {
		t.Fatal(err)
	}
	_, err := api.Register(ctxT(t), "mona", harness.Password)
	if !errors.As(err, new(*client.APIError)) || client.CodeOf(err) != codes.BadAccount {
		t.Fatalf("register mona when Mona exists: %v, want 409/9100", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var busy, made atomic.Int64
	var wg sync.WaitGroup
	for g := range 24 {
		wg.Go(func() {
			fl := client.NewAPI(c.Route.URL, &http.Client{Timeout: wait})
			for i := 0; ctx.Err() == nil; i++ {
				_, err := fl.Register(ctx, fmt.Sprintf("flood%02d-%04d", g, i), "flood-password")
				switch {
				case err == nil:
					made.Add(1)
				case client.CodeOf(err) == codes.Busy:
					busy.Add(1)
					select { // a client retrying a busy server, not a spin
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		})
	}
	// Logins (by name in another case, with the harness's 5 s client) go
	// through while the flood runs.
	for i := range 8 {
		lr, err := client.NewAPI(c.Route.URL, c.HTTP()).Login(ctxT(t), "MONA", harness.Password)
		if err != nil || lr.UserName != "Mona" {
			t.Fatalf("login %d during the registration flood: %+v %v", i+1, lr, err)
		}
	}
	harness.Eventually(t, wait, func() error {
		if busy.Load() == 0 {
			return errors.New("no registration was refused as busy yet")
		}
		return nil
	})
	cancel()
	wg.Wait()
	t.Logf("flood: %d registered, %d refused busy", made.Load(), busy.Load())
}
