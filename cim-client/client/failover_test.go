package client

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

const loginOK = `{"code":9000,"message":"ok","data":{"userId":"7","userName":"bob","sessionId":"s","token":"t",` +
	`"server":{"host":"10.0.0.1","tcpPort":9000,"httpPort":9100},"accessToken":"a"}}`

// fakeRoute answers every call with status and body and counts them by path.
func fakeRoute(t *testing.T, status int, body string) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// deadURL is an address nothing listens on (connection refused).
func deadURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// TestRouteListRoundRobin: logins go to each replica in turn.
func TestRouteListRoundRobin(t *testing.T) {
	a, na := fakeRoute(t, 200, loginOK)
	b, nb := fakeRoute(t, 200, loginOK)
	api := NewAPI(a.URL+", "+b.URL+"/", nil)
	for range 6 {
		if _, err := api.Login(context.Background(), "bob", "pw"); err != nil {
			t.Fatal(err)
		}
	}
	if na.Load() != 3 || nb.Load() != 3 {
		t.Fatalf("logins per replica %d and %d, want 3 and 3", na.Load(), nb.Load())
	}
}

// TestRouteListFailover: a replica that refuses connections or answers 503
// is skipped for logins and other calls; a 4xx answer is the answer.
func TestRouteListFailover(t *testing.T) {
	live, nl := fakeRoute(t, 200, loginOK)
	unavailable, nu := fakeRoute(t, 503, `{"code":7000,"message":"unavailable"}`)
	api := NewAPI(strings.Join([]string{deadURL(t), unavailable.URL, live.URL}, ","), nil)
	for i := range 4 {
		if _, err := api.Login(context.Background(), "bob", "pw"); err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
	}
	if nl.Load() != 4 || nu.Load() == 0 {
		t.Fatalf("the live replica took %d of 4 logins (the 503 one was tried %d times)", nl.Load(), nu.Load())
	}
	// Other calls stick to the replica that answered last.
	before := nu.Load()
	if err := api.Offline(context.Background(), "7", "s"); err != nil {
		t.Fatal(err)
	}
	if nl.Load() != 5 || nu.Load() != before {
		t.Fatalf("a call after the logins went elsewhere: live %d, unavailable %d→%d", nl.Load(), before, nu.Load())
	}

	// Every replica down: the caller sees the failure of the last tried.
	api = NewAPI(unavailable.URL+","+deadURL(t), nil)
	api.rr.Store(^uint64(0)) // the next login starts at unavailable
	before = nu.Load()
	_, err := api.Login(context.Background(), "bob", "pw")
	var op *net.OpError
	if !errors.As(err, &op) || nu.Load() != before+1 {
		t.Fatalf("every replica down: %v, want the dead one's connection error after the 503", err)
	}

	// A refusal (4xx) is an answer, not a reason to try another replica.
	denied, nd := fakeRoute(t, 401, `{"code":4010,"message":"unauthorized"}`)
	other, no := fakeRoute(t, 200, loginOK)
	api = NewAPI(denied.URL+","+other.URL, nil)
	api.rr.Store(^uint64(0)) // the next login starts at denied
	if _, err := api.Login(context.Background(), "bob", "pw"); !errors.Is(err, ErrUnauthorized) || nd.Load() != 1 || no.Load() != 0 {
		t.Fatalf("refused login: %v (denied %d, other %d)", err, nd.Load(), no.Load())
	}
}

// TestConfigRouteList: RouteURL takes a comma-separated list and RouteURLs
// adds to it; each must be an http(s) URL.
func TestConfigRouteList(t *testing.T) {
	c := Config{RouteURL: "http://a:1, http://b:2", RouteURLs: []string{"https://c:3"}, UserName: "u", Password: "p"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.routes(), " "); got != "http://a:1 http://b:2 https://c:3" {
		t.Fatalf("routes %q", got)
	}
	c.RouteURLs = []string{"tcp://d:4"}
	if err := c.Validate(); err == nil {
		t.Fatal("a tcp:// replica passed")
	}
	if err := (Config{RouteURLs: []string{"http://a:1"}, UserName: "u", Password: "p"}).Validate(); err != nil {
		t.Fatalf("RouteURLs alone: %v", err)
	}
}
