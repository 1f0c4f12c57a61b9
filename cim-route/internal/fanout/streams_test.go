package fanout

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/stream"
	"github.com/gocim/gocim/proto/cimpb"
)

// streamGateway serves /push both ways: plain POSTs and streams.
type streamGateway struct {
	id      string
	srv     *httptest.Server
	posts   atomic.Int32 // plain /push requests
	dials   atomic.Int32 // streams opened
	pushed  atomic.Int32 // deliveries taken over streams
	mu      sync.Mutex
	streams []*stream.Conn
}

func newStreamGateway(t *testing.T) *streamGateway {
	t.Helper()
	g := &streamGateway{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(contract.Header) != testSecret {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		if stream.IsUpgrade(r) {
			nc, br, err := stream.Hijack(w, r)
			if err != nil {
				t.Error(err)
				return
			}
			g.dials.Add(1)
			c := stream.New(nc, br, func(_ context.Context, _ stream.Kind, p []byte) ([]byte, error) {
				var b cimpb.PushBatch
				if err := proto.Unmarshal(p, &b); err != nil {
					return nil, stream.Reject(err)
				}
				g.pushed.Add(int32(len(b.Deliveries)))
				return proto.Marshal(&cimpb.PushResult{Delivered: uint32(len(b.Deliveries))})
			}, stream.Config{})
			g.mu.Lock()
			g.streams = append(g.streams, c)
			g.mu.Unlock()
			return
		}
		g.posts.Add(1)
		var b cimpb.PushBatch
		body := make([]byte, r.ContentLength)
		_, _ = r.Body.Read(body)
		_ = proto.Unmarshal(body, &b)
		out, _ := proto.Marshal(&cimpb.PushResult{Delivered: uint32(len(b.Deliveries))})
		_, _ = w.Write(out)
	}))
	t.Cleanup(func() {
		g.mu.Lock()
		for _, c := range g.streams {
			c.Close()
		}
		g.mu.Unlock()
		g.srv.Close()
	})
	return g
}

const testSecret = "fanout-test-secret"

func (g *streamGateway) gatewayID() string {
	_, port, _ := splitHostPort(g.srv.Listener.Addr().String())
	return contract.FormatGatewayID("127.0.0.1", 1, port)
}

func splitHostPort(s string) (string, int, error) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' {
			p, err := strconv.Atoi(s[i+1:])
			return s[:i], p, err
		}
	}
	return s, 0, nil
}

// last is the gateway's newest stream end.
func (g *streamGateway) last() *stream.Conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.streams) == 0 {
		return nil
	}
	return g.streams[len(g.streams)-1]
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func toUsers(users ...string) []*cimpb.Delivery {
	out := make([]*cimpb.Delivery, len(users))
	for i, u := range users {
		out[i] = &cimpb.Delivery{UserId: u}
	}
	return out
}

func TestPushesTakeTheStream(t *testing.T) {
	g := newStreamGateway(t)
	p := New(Config{Secret: testSecret})
	defer p.Close()
	gw := g.gatewayID()
	// Before any stream: HTTP.
	if r := p.PushOne(context.Background(), gw, toUsers("a")); r.Err != nil || r.Delivered != 1 || g.posts.Load() != 1 {
		t.Fatalf("without a stream: %+v, posts %d", r, g.posts.Load())
	}
	p.SetGateways([]string{gw})
	waitFor(t, "the stream", func() bool { return p.Streams() == 1 })
	for range 5 {
		if r := p.PushOne(context.Background(), gw, toUsers("a", "b")); r.Err != nil || r.Delivered != 2 {
			t.Fatalf("over the stream: %+v", r)
		}
	}
	if g.posts.Load() != 1 || g.pushed.Load() != 10 {
		t.Fatalf("posts %d, stream deliveries %d; want 1 and 10", g.posts.Load(), g.pushed.Load())
	}

	// The gateway drops the stream: the route dials again, and pushes
	// made meanwhile still arrive (over HTTP while it is down).
	g.last().Close()
	for range 20 {
		if r := p.PushOne(context.Background(), gw, toUsers("c")); r.Err != nil || r.Delivered != 1 {
			t.Fatalf("while the stream comes back: %+v", r)
		}
	}
	waitFor(t, "the stream again", func() bool { return g.dials.Load() == 2 && p.Streams() == 1 })
	if got := g.pushed.Load() + g.posts.Load() - 1; got != 10+20 {
		t.Fatalf("%d deliveries arrived, want 30", got)
	}

	// Unlisted, the gateway's stream is closed.
	c := g.last()
	p.SetGateways(nil)
	<-c.Done()
	if p.Streams() != 0 {
		t.Fatalf("%d streams after the gateway left", p.Streams())
	}
}

func TestStreamsCarryGatewayRequests(t *testing.T) {
	g := newStreamGateway(t)
	p := New(Config{Secret: testSecret})
	defer p.Close()
	p.Serve(func(_ context.Context, kind stream.Kind, b []byte) ([]byte, error) {
		return append([]byte("route saw "), b...), nil
	})
	p.SetGateways([]string{g.gatewayID()})
	waitFor(t, "the stream", func() bool { return p.Streams() == 1 && g.last() != nil })
	got, err := g.last().Call(context.Background(), stream.KindUplink, []byte("uplink"))
	if err != nil || string(got) != "route saw uplink" {
		t.Fatalf("uplink over the stream: %q, %v", got, err)
	}
}

func TestNoStreams(t *testing.T) {
	g := newStreamGateway(t)
	p := New(Config{Secret: testSecret, NoStreams: true})
	defer p.Close()
	p.SetGateways([]string{g.gatewayID()})
	if r := p.PushOne(context.Background(), g.gatewayID(), toUsers("a")); r.Err != nil || g.posts.Load() != 1 || g.dials.Load() != 0 {
		t.Fatalf("NoStreams: %+v, posts %d, dials %d", r, g.posts.Load(), g.dials.Load())
	}
}
