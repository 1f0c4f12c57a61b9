package fanout

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeGateway records the batches it receives and reports as missing every
// delivery whose user is not in connected.
type fakeGateway struct {
	id        string
	mu        sync.Mutex
	batches   []*cimpb.PushBatch
	connected map[string]bool
	block     chan struct{} // when set, /push waits on it
}

func newFakeGateway(t *testing.T, connected ...string) *fakeGateway {
	g := &fakeGateway{connected: map[string]bool{}}
	for _, u := range connected {
		g.connected[u] = true
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/push" || r.Header.Get("Content-Type") != ContentType {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		if g.block != nil {
			select {
			case <-g.block:
			case <-r.Context().Done():
				return
			}
		}
		body, _ := io.ReadAll(r.Body)
		var b cimpb.PushBatch
		if err := proto.Unmarshal(body, &b); err != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.batches = append(g.batches, &b)
		res := &cimpb.PushResult{}
		for i, d := range b.Deliveries {
			if g.connected[d.UserId] {
				res.Delivered++
			} else {
				res.Missing = append(res.Missing, uint32(i))
			}
		}
		g.mu.Unlock()
		out, _ := proto.Marshal(res)
		w.Header().Set("Content-Type", ContentType)
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	g.id = "127.0.0.1:7000:" + u.Port()
	return g
}

func (g *fakeGateway) got() []*cimpb.PushBatch {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.batches)
}

func msg(uid string) *cimpb.Delivery {
	return &cimpb.Delivery{UserId: uid, SessionId: "s" + uid, Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{Body: []byte("hi " + uid)}}}
}

func TestPushGroupsAndSurvivesDeadGateways(t *testing.T) {
	a := newFakeGateway(t, "1", "2")
	b := newFakeGateway(t, "3")
	slow := newFakeGateway(t, "5")
	slow.block = make(chan struct{})
	defer close(slow.block)
	dead := "127.0.0.1:7000:" + strconv.Itoa(testenv.FreePort(t))

	p := New(Config{Timeout: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	defer p.Close()
	res := p.Push(context.Background(), map[string][]*cimpb.Delivery{
		a.id:       {msg("1"), msg("9"), msg("2")},
		b.id:       {msg("3")},
		slow.id:    {msg("5")},
		dead:       {msg("4")},
		"bad-name": {msg("6")},
	})
	if r := res[a.id]; r.Err != nil || r.Delivered != 2 || !slices.Equal(r.Missing, []uint32{1}) {
		t.Fatalf("gateway a: %+v", r)
	}
	if r := res[b.id]; r.Err != nil || r.Delivered != 1 || len(r.Missing) != 0 {
		t.Fatalf("gateway b: %+v", r)
	}
	if r := res[slow.id]; r.Err == nil || !Timeout(r.Err) {
		t.Fatalf("slow gateway: %+v, want a timeout", r)
	}
	if r := res[dead]; r.Err == nil || Timeout(r.Err) {
		t.Fatalf("dead gateway: %+v, want a non-timeout error", r)
	}
	if r := res["bad-name"]; r.Err == nil {
		t.Fatalf("unparsable gateway id: %+v", r)
	}
	// One call per gateway, carrying exactly its deliveries in order.
	ga := a.got()
	if len(ga) != 1 || len(ga[0].Deliveries) != 3 || ga[0].Deliveries[1].UserId != "9" || ga[0].Deliveries[2].SessionId != "s2" {
		t.Fatalf("gateway a got %v", ga)
	}
	if gb := b.got(); len(gb) != 1 || len(gb[0].Deliveries) != 1 {
		t.Fatalf("gateway b got %v", gb)
	}
}

func TestPushErrorStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	p := New(Config{Logger: slog.New(slog.DiscardHandler)})
	defer p.Close()
	r := p.PushOne(context.Background(), "127.0.0.1:1:"+u.Port(), []*cimpb.Delivery{msg("1")})
	if r.Err == nil || Timeout(r.Err) {
		t.Fatalf("503 answer: %+v", r)
	}
	if r := p.PushOne(context.Background(), "127.0.0.1:1:"+u.Port(), nil); r.Err != nil {
		t.Fatalf("empty push: %+v", r)
	}
}

// TestPushOutlivesCancelledCaller: the uplink that caused a push may be
// cancelled (its gateway died mid-request); deliveries to other gateways
// must still go out, not fail and get their users' routes dropped.
func TestPushOutlivesCancelledCaller(t *testing.T) {
	g := newFakeGateway(t, "1")
	g.block = make(chan struct{})
	p := New(Config{Timeout: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result)
	go func() { done <- p.PushOne(ctx, g.id, []*cimpb.Delivery{msg("1")}) }()
	cancel()
	close(g.block)
	if r := <-done; r.Err != nil || r.Delivered != 1 {
		t.Fatalf("push after the caller was cancelled: %+v, want delivered", r)
	}
}

// TestPushSendsTheInternalSecret: gateways refuse a /push without the
// current internal secret.
func TestPushSendsTheInternalSecret(t *testing.T) {
	got := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get(SecretHeader)
		out, _ := proto.Marshal(&cimpb.PushResult{Delivered: 1})
		w.Write(out)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	gw := "127.0.0.1:1:" + u.Port()
	for _, secret := range []string{"current-internal-secret", ""} {
		p := New(Config{Secret: secret, Logger: slog.New(slog.DiscardHandler)})
		if r := p.PushOne(context.Background(), gw, []*cimpb.Delivery{msg("1")}); r.Err != nil {
			t.Fatal(r.Err)
		}
		p.Close()
		if h := <-got; h != secret {
			t.Fatalf("%s = %q, want %q", SecretHeader, h, secret)
		}
	}
}
