package routeclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
)

const testSecret = "internal-secret-for-tests"

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// deadURL returns a URL nothing listens on.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	return u
}

func newClient(t *testing.T, retry time.Duration, urls ...string) *Client {
	c := New(Config{URLs: urls, GatewayID: "gw1", Secret: testSecret, RetryFor: retry})
	t.Cleanup(c.Close)
	return c
}

func TestOnlineSendsJSON(t *testing.T) {
	var got contract.Session
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != contract.PathOnline || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("unexpected request %s %s %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		_ = json.NewDecoder(r.Body).Decode(&got)
		w.Write([]byte(`{"code":9000,"message":"ok"}`))
	}))
	defer srv.Close()
	c := newClient(t, time.Second, srv.URL+"/")
	if err := c.Online(context.Background(), "7", "s7", ""); err != nil {
		t.Fatal(err)
	}
	if got != (contract.Session{UserID: "7", SessionID: "s7", GatewayID: "gw1"}) {
		t.Fatalf("body %+v", got)
	}
	if err := c.Reassert(context.Background(), "7", "s7", ""); err != nil {
		t.Fatal(err)
	}
	if got != (contract.Session{UserID: "7", SessionID: "s7", GatewayID: "gw1", Reassert: true}) {
		t.Fatalf("reassert body %+v", got)
	}
}

func TestOnlineNotCurrent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusConflict)
		w.Write([]byte(`{"code":4010,"message":"session replaced"}`))
	}))
	defer srv.Close()
	err := newClient(t, time.Second, srv.URL).Online(context.Background(), "7", "s7", "")
	if !errors.Is(err, contract.ErrNotCurrent) {
		t.Fatalf("err = %v, want contract.ErrNotCurrent", err)
	}
}

func TestClientErrorNotRetried(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"code":3000,"message":"bad"}`))
	}))
	defer srv.Close()
	err := newClient(t, 5*time.Second, srv.URL).Offline(context.Background(), "7", "s7", "")
	if !errors.Is(err, contract.ErrRejected) || calls.Load() != 1 {
		t.Fatalf("err = %v after %d calls, want contract.ErrRejected after 1", err, calls.Load())
	}
}

func TestRetriesServerErrors(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"code":9000}`))
	}))
	defer srv.Close()
	if err := newClient(t, 10*time.Second, srv.URL).Online(context.Background(), "1", "s", ""); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 4 {
		t.Fatalf("%d calls, want 4", calls.Load())
	}
}

func TestRotatesToLiveRoute(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Write([]byte(`{"code":9000}`))
	}))
	defer srv.Close()
	c := newClient(t, 10*time.Second, deadURL(t), srv.URL)
	for range 3 {
		if err := c.Online(context.Background(), "1", "s", ""); err != nil {
			t.Fatal(err)
		}
	}
	// After the first failure every call goes to the live route directly.
	if calls.Load() != 3 {
		t.Fatalf("live route saw %d calls, want 3", calls.Load())
	}
}

func TestGivesUpAfterRetryWindow(t *testing.T) {
	c := newClient(t, 300*time.Millisecond, deadURL(t))
	_, err := c.Uplink(context.Background(), &cimpb.UplinkBatch{})
	if !errors.Is(err, contract.ErrUnavailable) {
		t.Fatalf("err = %v, want contract.ErrUnavailable", err)
	}
}

func TestContextCancelStopsRetrying(t *testing.T) {
	c := newClient(t, time.Hour, deadURL(t))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Offline(ctx, "1", "s", "") }()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, contract.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("call kept retrying after its context ended")
	}
}

func TestUplinkRoundTrip(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != contract.PathUplink || r.Header.Get("Content-Type") != contract.ProtobufType {
			t.Errorf("unexpected %s %q", r.URL.Path, r.Header.Get("Content-Type"))
		}
		body, _ := io.ReadAll(r.Body)
		var in cimpb.UplinkBatch
		if err := proto.Unmarshal(body, &in); err != nil {
			t.Errorf("bad body: %v", err)
		}
		out := &cimpb.PushBatch{}
		for _, u := range in.Uplinks {
			out.Deliveries = append(out.Deliveries, &cimpb.Delivery{UserId: u.UserId, SessionId: in.GatewayId,
				Frame: &cimpb.Frame{Type: cimpb.Type_RECEIPT, Receipt: &cimpb.Receipt{ClientMsgId: u.Frame.Msg.ClientMsgId}}})
		}
		b, _ := proto.Marshal(out)
		w.Header().Set("Content-Type", contract.ProtobufType)
		w.Write(b)
	}))
	defer srv.Close()
	c := newClient(t, time.Second, srv.URL)
	resp, err := c.Uplink(context.Background(), &cimpb.UplinkBatch{Uplinks: []*cimpb.Uplink{
		{UserId: "1", Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "a"}}},
		{UserId: "2", Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{ClientMsgId: "b"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	d := resp.Deliveries
	if len(d) != 2 || d[0].UserId != "1" || d[1].Frame.Receipt.ClientMsgId != "b" || d[0].SessionId != "gw1" {
		t.Fatalf("answer %v", resp)
	}
}

func TestUplinkBadAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte{0xff, 0xff, 0xff})
	}))
	defer srv.Close()
	_, err := newClient(t, time.Second, srv.URL).Uplink(context.Background(), &cimpb.UplinkBatch{})
	if !errors.Is(err, contract.ErrRejected) {
		t.Fatalf("err = %v, want contract.ErrRejected", err)
	}
}

// TestSendsInternalSecret: every internal call carries X-CIM-Internal with
// the configured secret; a route that checks it (as the real one does)
// accepts all of them.
func TestSendsInternalSecret(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get(contract.Header); got != testSecret {
			t.Errorf("%s: %s = %q, want %q", r.URL.Path, contract.Header, got, testSecret)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		seen[r.URL.Path]++
		mu.Unlock()
		if r.URL.Path == contract.PathUplink {
			w.Header().Set("Content-Type", contract.ProtobufType)
			return // an empty PushBatch
		}
		w.Write([]byte(`{"code":9000}`))
	}))
	defer srv.Close()
	c := newClient(t, time.Second, srv.URL)
	ctx := context.Background()
	if err := c.Online(ctx, "1", "s", ""); err != nil {
		t.Fatal(err)
	}
	if err := c.Reassert(ctx, "1", "s", ""); err != nil {
		t.Fatal(err)
	}
	if err := c.Offline(ctx, "1", "s", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Uplink(ctx, &cimpb.UplinkBatch{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen[contract.PathOnline] != 2 || seen[contract.PathOffline] != 1 || seen[contract.PathUplink] != 1 {
		t.Fatalf("authenticated calls %v", seen)
	}
}

// TestSecretRefusedNotRetried: a 401 (the route does not know our secret) is
// a configuration error: no retries, ErrRejected naming the secret.
func TestSecretRefusedNotRetried(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"code":4010,"message":"unauthorized"}`))
	}))
	defer srv.Close()
	c := newClient(t, 5*time.Second, srv.URL)
	err := c.Online(context.Background(), "1", "s", "")
	if !errors.Is(err, contract.ErrRejected) || errors.Is(err, contract.ErrNotCurrent) || !strings.Contains(err.Error(), "internal secret") {
		t.Fatalf("Online err = %v, want contract.ErrRejected about the internal secret", err)
	}
	if _, err := c.Uplink(context.Background(), &cimpb.UplinkBatch{}); !errors.Is(err, contract.ErrRejected) {
		t.Fatalf("Uplink err = %v, want contract.ErrRejected", err)
	}
	if calls.Load() != 2 {
		t.Fatalf("%d calls, want 2 (no retries)", calls.Load())
	}
}
