package fanout

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/proto/cimpb"
)

// pushLog records what an Observer is told.
type pushLog struct {
	mu     sync.Mutex
	frames []int
	local  []bool
	errs   []error
}

func (l *pushLog) Pushed(frames int, d time.Duration, local bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d <= 0 {
		panic("a push took no time")
	}
	l.frames = append(l.frames, frames)
	l.local = append(l.local, local)
	l.errs = append(l.errs, err)
}

// TestObserverSeesEveryRequest: one observation per request, with the
// frames counted per target (a shared delivery counts each), and the
// failure of a request refused as a whole.
func TestObserverSeesEveryRequest(t *testing.T) {
	ok := newFakeGateway(t, "1", "2", "3")
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer refusing.Close()
	u, _ := url.Parse(refusing.URL)
	var log pushLog
	p := New(Config{Observer: &log, Logger: slog.New(slog.DiscardHandler)})
	defer p.Close()

	if r := p.PushOne(context.Background(), ok.id, []*cimpb.Delivery{msg("1"), shared("2", "3")}); r.Err != nil || r.Delivered != 3 {
		t.Fatalf("push: %+v", r)
	}
	if r := p.PushOne(context.Background(), "127.0.0.1:1:"+u.Port(), []*cimpb.Delivery{msg("1")}); r.Err == nil {
		t.Fatalf("refused push: %+v", r)
	}
	// Not a request: nothing to observe.
	p.PushOne(context.Background(), ok.id, nil)
	p.PushOne(context.Background(), "bad-name", []*cimpb.Delivery{msg("1")})

	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.frames) != 2 || log.frames[0] != 3 || log.frames[1] != 1 {
		t.Fatalf("observed frames %v, want [3 1]", log.frames)
	}
	if log.errs[0] != nil || log.errs[1] == nil {
		t.Fatalf("observed errors %v, want [nil, the refusal]", log.errs)
	}
}

// TestLocalGateway: pushes to the gateway set with SetLocal are calls of
// its function, with the deliveries as they are (not encoded) and its
// missing indexes checked like a remote gateway's; other gateways are
// pushed to as before.
func TestLocalGateway(t *testing.T) {
	remote := newFakeGateway(t, "1")
	var log pushLog
	p := New(Config{Observer: &log, Logger: slog.New(slog.DiscardHandler)})
	defer p.Close()
	// Nothing listens at the local gateway's address: only the call can
	// deliver.
	const id = "127.0.0.1:1:1"
	var got []*cimpb.Delivery
	p.SetLocal(id, func(b *cimpb.PushBatch) *cimpb.PushResult {
		got = append(got, b.Deliveries...)
		return &cimpb.PushResult{Delivered: 2, Missing: []uint32{1, 1, 7}}
	})
	d := []*cimpb.Delivery{msg("1"), shared("2", "3")}
	r := p.PushOne(context.Background(), id, d)
	if r.Err != nil || r.Delivered != 2 || len(r.Missing) != 1 || r.Missing[0] != 1 {
		t.Fatalf("local push: %+v, want 2 delivered, [1] missing (7 is out of range, 1 once)", r)
	}
	if len(got) != 2 || got[0] != d[0] || got[1] != d[1] {
		t.Fatalf("the local gateway got %v, want the deliveries themselves", got)
	}
	if r := p.PushOne(context.Background(), remote.id, []*cimpb.Delivery{msg("1")}); r.Err != nil || r.Delivered != 1 {
		t.Fatalf("remote push: %+v", r)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.local) != 2 || !log.local[0] || log.local[1] {
		t.Fatalf("observed local %v, want [true false]", log.local)
	}
}
