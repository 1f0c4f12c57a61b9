package routelink

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-server/internal/httpapi"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/stream"
	"github.com/gocim/gocim/proto/cimpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "internal-secret-for-tests"

// gateway is the gateway's side: pushes are counted, uplinks that take
// the fallback are answered "http".
type gateway struct {
	mu       sync.Mutex
	pushed   []string
	fallback atomic.Int32
}

func (g *gateway) PushWire(body []byte) (*cimpb.PushResult, error) {
	b := &cimpb.PushBatch{}
	if err := proto.Unmarshal(body, b); err != nil {
		return nil, err
	}
	return g.Push(b), nil
}

func (g *gateway) Push(b *cimpb.PushBatch) *cimpb.PushResult {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, d := range b.Deliveries {
		g.pushed = append(g.pushed, d.UserId)
	}
	return &cimpb.PushResult{Delivered: uint32(len(b.Deliveries))}
}

func (g *gateway) Uplink(_ context.Context, b *cimpb.UplinkBatch) (*cimpb.PushBatch, error) {
	g.fallback.Add(1)
	return answer("http", b), nil
}

func (g *gateway) Connections() int   { return 0 }
func (g *gateway) ShuttingDown() bool { return false }
func (g *gateway) ID() string         { return "127.0.0.1:1:2" }

// answer names who answered in each delivery's user id.
func answer(by string, b *cimpb.UplinkBatch) *cimpb.PushBatch {
	out := &cimpb.PushBatch{}
	for _, u := range b.Uplinks {
		out.Deliveries = append(out.Deliveries, &cimpb.Delivery{UserId: by + ":" + u.UserId})
	}
	return out
}

// start serves the gateway's HTTP API with its Links.
func start(t *testing.T, withStreams bool) (*gateway, *Links, string) {
	t.Helper()
	g := &gateway{}
	l := New(g, g, Config{})
	secrets, err := contract.ParseSecrets([]string{secret})
	if err != nil {
		t.Fatal(err)
	}
	var s httpapi.Streams
	if withStreams {
		s = l
	}
	srv := httptest.NewServer(httpapi.New(g, g, s, secrets, nil, httpapi.Ops{}))
	t.Cleanup(func() { srv.Close(); l.Close() })
	return g, l, strings.TrimPrefix(srv.URL, "http://")
}

// route opens a stream to the gateway as the route does; h answers its
// uplinks.
func route(t *testing.T, addr, sec string, h stream.Handler) (*stream.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := stream.Dial(ctx, addr, contract.PathPush, http.Header{contract.Header: {sec}}, h, stream.Config{})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func routeAnswers(_ context.Context, kind stream.Kind, p []byte) ([]byte, error) {
	b := &cimpb.UplinkBatch{}
	if err := proto.Unmarshal(p, b); err != nil {
		return nil, stream.Reject(err)
	}
	if len(b.Uplinks) > 0 && b.Uplinks[0].UserId == "bad" {
		return nil, stream.Reject(errors.New("bad batch"))
	}
	return proto.Marshal(answer("stream", b))
}

func batch(users ...string) *cimpb.UplinkBatch {
	b := &cimpb.UplinkBatch{GatewayId: "127.0.0.1:1:2"}
	for _, u := range users {
		b.Uplinks = append(b.Uplinks, &cimpb.Uplink{UserId: u, Frame: &cimpb.Frame{Type: cimpb.Type_ACK}})
	}
	return b
}

func waitLinks(t *testing.T, l *Links, n int) {
	t.Helper()
	for l.Len() != n {
		time.Sleep(time.Millisecond)
	}
}

func TestPushesAndUplinksOverTheStream(t *testing.T) {
	g, l, addr := start(t, true)
	// No stream yet: uplinks take the fallback.
	out, err := l.Uplink(context.Background(), batch("u1"))
	if err != nil || out.Deliveries[0].UserId != "http:u1" || g.fallback.Load() != 1 {
		t.Fatalf("without a stream: %v, %v, fallback %d", out, err, g.fallback.Load())
	}
	rc, err := route(t, addr, secret, routeAnswers)
	if err != nil {
		t.Fatal(err)
	}
	waitLinks(t, l, 1)
	out, err = l.Uplink(context.Background(), batch("u1", "u2"))
	if err != nil || len(out.Deliveries) != 2 || out.Deliveries[1].UserId != "stream:u2" {
		t.Fatalf("over the stream: %v, %v", out, err)
	}
	if g.fallback.Load() != 1 {
		t.Fatalf("the fallback was used with a stream up")
	}
	// The route pushes on the same stream.
	body, _ := proto.Marshal(&cimpb.PushBatch{Deliveries: []*cimpb.Delivery{{UserId: "a"}, {UserId: "b"}}})
	data, err := rc.Call(context.Background(), stream.KindPush, body)
	if err != nil {
		t.Fatal(err)
	}
	res := &cimpb.PushResult{}
	if err := proto.Unmarshal(data, res); err != nil || res.Delivered != 2 {
		t.Fatalf("push result %v, %v", res, err)
	}
	g.mu.Lock()
	pushed := strings.Join(g.pushed, ",")
	g.mu.Unlock()
	if pushed != "a,b" {
		t.Fatalf("pushed %q", pushed)
	}
	// A malformed push is refused, and the stream lives on.
	if _, err := rc.Call(context.Background(), stream.KindPush, []byte{0xff, 0xff}); !isRejected(err) {
		t.Fatalf("malformed push: %v", err)
	}
	// A rejected uplink is the caller's error, not retried over HTTP.
	if _, err := l.Uplink(context.Background(), batch("bad")); !errors.Is(err, contract.ErrRejected) || g.fallback.Load() != 1 {
		t.Fatalf("rejected uplink: %v, fallback %d", err, g.fallback.Load())
	}
	// The route goes away: uplinks fall back again.
	rc.Close()
	waitLinks(t, l, 0)
	out, err = l.Uplink(context.Background(), batch("u3"))
	if err != nil || out.Deliveries[0].UserId != "http:u3" {
		t.Fatalf("after the stream ended: %v, %v", out, err)
	}
}

func isRejected(err error) bool {
	var re *stream.RemoteError
	return errors.As(err, &re) && re.Rejected
}

// TestStreamBreaksMidCall: a batch in flight when the stream breaks is sent
// again over the fallback, and its senders get the fallback's answer.
func TestStreamBreaksMidCall(t *testing.T) {
	g, l, addr := start(t, true)
	got := make(chan struct{})
	var rc *stream.Conn
	rc, err := route(t, addr, secret, func(ctx context.Context, _ stream.Kind, _ []byte) ([]byte, error) {
		close(got)
		<-ctx.Done() // the route dies holding the batch
		return nil, ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	waitLinks(t, l, 1)
	go func() { <-got; rc.Close() }()
	out, err := l.Uplink(context.Background(), batch("u1"))
	if err != nil || out.Deliveries[0].UserId != "http:u1" || g.fallback.Load() != 1 {
		t.Fatalf("batch in flight on a broken stream: %v, %v, fallback %d", out, err, g.fallback.Load())
	}
}

func TestUpgradeGuarded(t *testing.T) {
	_, l, addr := start(t, true)
	if _, err := route(t, addr, "wrong-secret", routeAnswers); !errors.Is(err, stream.ErrRefused) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong secret: %v", err)
	}
	if l.Len() != 0 {
		t.Fatal("a stream with a wrong secret was kept")
	}
	_, _, plain := start(t, false)
	if _, err := route(t, plain, secret, routeAnswers); !errors.Is(err, stream.ErrRefused) || !strings.Contains(err.Error(), "426") {
		t.Fatalf("gateway without streams: %v", err)
	}
}

// TestCloseEndsStreams: after Close the gateway's streams are gone and new
// ones are refused at once.
func TestCloseEndsStreams(t *testing.T) {
	_, l, addr := start(t, true)
	rc, err := route(t, addr, secret, routeAnswers)
	if err != nil {
		t.Fatal(err)
	}
	waitLinks(t, l, 1)
	l.Close()
	<-rc.Done()
	if rc2, err := route(t, addr, secret, routeAnswers); err == nil {
		<-rc2.Done()
	}
}
