package fanout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/cimpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeGateway records the batches it receives and reports as missing every
// delivery whose user is not in connected.
type fakeGateway struct {
	id        string
	srv       *httptest.Server
	mu        sync.Mutex
	requests  int // /push calls so far, counted before any waiting
	batches   []*cimpb.PushBatch
	connected map[string]bool
	block     chan struct{} // when set, /push waits on it

	// When hold is set, the first holdN (default 1) requests each send on
	// arrived, then wait on hold: pushes made meanwhile queue behind them.
	hold    chan struct{}
	holdN   int
	arrived chan struct{}
	// later, when set, may answer the requests after the held ones itself
	// (and then returns true).
	later func(w http.ResponseWriter, r *http.Request) bool
}

func newFakeGateway(t *testing.T, connected ...string) *fakeGateway {
	g := &fakeGateway{connected: map[string]bool{}}
	for _, u := range connected {
		g.connected[u] = true
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/push" || r.Header.Get("Content-Type") != contract.ProtobufType {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.requests++
		n := g.requests
		g.mu.Unlock()
		if g.hold != nil && n <= max(g.holdN, 1) {
			g.arrived <- struct{}{}
			select {
			case <-g.hold:
			case <-r.Context().Done():
				return
			}
		} else if g.later != nil && g.later(w, r) {
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
		i := uint32(0)
		for _, d := range b.Deliveries {
			users := []string{d.UserId}
			if len(d.Targets) > 0 { // shared: each target counts as one
				users = users[:0]
				for _, tg := range d.Targets {
					users = append(users, tg.UserId)
				}
			}
			for _, u := range users {
				if g.connected[u] {
					res.Delivered++
				} else {
					res.Missing = append(res.Missing, i)
				}
				i++
			}
		}
		g.mu.Unlock()
		out, _ := proto.Marshal(res)
		w.Header().Set("Content-Type", contract.ProtobufType)
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	g.id = "127.0.0.1:7000:" + u.Port()
	g.srv = srv
	return g
}

func (g *fakeGateway) got() []*cimpb.PushBatch {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.batches)
}

// shared is one delivery of one frame to several users.
func shared(uids ...string) *cimpb.Delivery {
	d := &cimpb.Delivery{Frame: &cimpb.Frame{Type: cimpb.Type_MSG, Msg: &cimpb.Msg{Body: []byte("hi all")}}}
	for _, u := range uids {
		d.Targets = append(d.Targets, &cimpb.Target{UserId: u, SessionId: "s" + u})
	}
	return d
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
		got <- r.Header.Get(contract.Header)
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
			t.Fatalf("%s = %q, want %q", contract.Header, h, secret)
		}
	}
}

// ---- lanes: merging pushes to one gateway ----

var quiet = slog.New(slog.DiscardHandler)

// queued is how many pushes wait in gw's lane.
func (p *Pusher) queued(gw string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.lanes[gw]; l != nil {
		return len(l.queue)
	}
	return 0
}

// laneCount is how many lanes p keeps.
func (p *Pusher) laneCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lanes)
}

// occupy takes all of gw's request slots as if requests were in flight, so
// pushes queue until p.release.
func (p *Pusher) occupy(gw string) *lane {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := &lane{inFlight: p.maxInFlight}
	p.lanes[gw] = l
	return l
}

// requestCount is how many /push calls g has seen.
func (g *fakeGateway) requestCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.requests
}

// waitQueued waits until n pushes wait in gw's lane. Queueing takes a
// goroutine start and a mutex, so yielding is enough; the bound only turns a
// bug into a failure instead of a hang.
func waitQueued(t *testing.T, p *Pusher, gw string, n int) {
	t.Helper()
	for i := 0; p.queued(gw) < n; i++ {
		if i == 50_000_000 {
			t.Fatalf("%d pushes queued for %s, want %d", p.queued(gw), gw, n)
		}
		runtime.Gosched()
	}
}

// queueBehind pushes each of first to g concurrently and holds those requests
// in flight, then queues calls behind them one after the other, so their order
// is known. The returned func releases the held requests and returns every
// Result: first's, then calls'.
func queueBehind(t *testing.T, p *Pusher, g *fakeGateway, first [][]*cimpb.Delivery, calls ...[]*cimpb.Delivery) func() []Result {
	t.Helper()
	g.hold, g.holdN, g.arrived = make(chan struct{}), len(first), make(chan struct{}, len(first))
	release := sync.OnceFunc(func() { close(g.hold) })
	t.Cleanup(release) // a failed test must not leave pushes hanging
	out := make([]Result, len(first)+len(calls))
	var wg sync.WaitGroup
	for i, d := range first {
		wg.Go(func() { out[i] = p.PushOne(context.Background(), g.id, d) })
	}
	for range first {
		<-g.arrived
	}
	for i, d := range calls {
		wg.Go(func() { out[len(first)+i] = p.PushOne(context.Background(), g.id, d) })
		waitQueued(t, p, g.id, i+1)
	}
	return func() []Result {
		release()
		wg.Wait()
		return out
	}
}

// deliveries makes n deliveries to users prefix.0 … prefix.n-1.
func deliveries(prefix string, n int) []*cimpb.Delivery {
	out := make([]*cimpb.Delivery, n)
	for i := range out {
		out[i] = msg(fmt.Sprintf("%s.%d", prefix, i))
	}
	return out
}

func users(ds []*cimpb.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.UserId
	}
	return out
}

// TestPushMergesQueuedPushes: pushes made while a request to their gateway is
// in flight go out together, in order, as the next request; each still gets
// its own Result.
func TestPushMergesQueuedPushes(t *testing.T) {
	first := deliveries("first", 1)
	calls := make([][]*cimpb.Delivery, 5)
	for i := range calls {
		calls[i] = deliveries("c"+strconv.Itoa(i), i+1)
	}
	g := newFakeGateway(t, users(slices.Concat(append(calls, first)...))...)
	p := New(Config{MaxInFlight: 1, Timeout: 10 * time.Second, Logger: quiet})
	defer p.Close()

	res := queueBehind(t, p, g, [][]*cimpb.Delivery{first}, calls...)()
	got := g.got()
	if len(got) != 2 {
		t.Fatalf("gateway got %d requests, want the first and one merged", len(got))
	}
	if want := users(slices.Concat(calls...)); !slices.Equal(users(got[1].Deliveries), want) {
		t.Fatalf("merged request carried %v, want %v", users(got[1].Deliveries), want)
	}
	for i, r := range res {
		n := 1
		if i > 0 {
			n = len(calls[i-1])
		}
		if r.Err != nil || r.Delivered != uint32(n) || len(r.Missing) != 0 {
			t.Fatalf("push %d: %+v, want %d delivered", i, r, n)
		}
	}
	if n := p.laneCount(); n != 0 {
		t.Fatalf("%d lanes left after the pushes finished", n)
	}
}

// TestPushSplitsMissingAcrossMergedPushes: the gateway's missing indexes into
// the merged batch come back to each push as indexes into its own slice.
func TestPushSplitsMissingAcrossMergedPushes(t *testing.T) {
	g := newFakeGateway(t, "1", "2", "3")
	p := New(Config{MaxInFlight: 1, Timeout: 10 * time.Second, Logger: quiet})
	defer p.Close()
	res := queueBehind(t, p, g, [][]*cimpb.Delivery{{msg("1")}},
		[]*cimpb.Delivery{msg("1"), msg("x"), msg("2")},    // merged 0-2
		[]*cimpb.Delivery{msg("y"), msg("z")},              // merged 3-4
		[]*cimpb.Delivery{msg("3"), msg("w")},              // merged 5-6
		[]*cimpb.Delivery{shared("1", "v", "3"), msg("u")}, // merged 7-9 (one shared), 10
		[]*cimpb.Delivery{msg("2")},                        // merged 11
	)()
	want := []Result{
		{Delivered: 1},
		{Delivered: 2, Missing: []uint32{1}},
		{Delivered: 0, Missing: []uint32{0, 1}},
		{Delivered: 1, Missing: []uint32{1}},
		{Delivered: 2, Missing: []uint32{1, 3}},
		{Delivered: 1},
	}
	for i, r := range res {
		if r.Err != nil || r.Delivered != want[i].Delivered || !slices.Equal(r.Missing, want[i].Missing) {
			t.Errorf("push %d: %+v, want %+v", i, r, want[i])
		}
	}
	if n := g.requestCount(); n != 2 {
		t.Fatalf("gateway got %d requests, want 2", n)
	}
}

// TestPushMergedFailureReachesEveryPush: every push merged into a failed
// request gets its error, still classified by Timeout.
func TestPushMergedFailureReachesEveryPush(t *testing.T) {
	calls := [][]*cimpb.Delivery{{msg("1")}, {msg("2"), msg("3")}, {msg("4")}}
	check := func(t *testing.T, res []Result, timeout bool) {
		t.Helper()
		for i, r := range res {
			if r.Err == nil || r.Err != res[0].Err || Timeout(r.Err) != timeout {
				t.Fatalf("push %d: %+v, want the request's error (timeout %v)", i, r, timeout)
			}
		}
	}

	t.Run("status", func(t *testing.T) {
		g := newFakeGateway(t, "1")
		g.later = func(w http.ResponseWriter, r *http.Request) bool {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		p := New(Config{MaxInFlight: 1, Timeout: 10 * time.Second, Logger: quiet})
		defer p.Close()
		res := queueBehind(t, p, g, [][]*cimpb.Delivery{{msg("1")}}, calls...)()
		if r := res[0]; r.Err != nil || r.Delivered != 1 {
			t.Fatalf("held push: %+v", r)
		}
		check(t, res[1:], false)
		if !errors.Is(res[1].Err, ErrStatus) || g.requestCount() != 2 {
			t.Fatalf("merged pushes got %v in %d requests, want ErrStatus in 2", res[1].Err, g.requestCount())
		}
	})

	t.Run("refused", func(t *testing.T) {
		g := newFakeGateway(t, "1")
		g.srv.Config.SetKeepAlivesEnabled(false) // the held request's connection is not reused
		p := New(Config{MaxInFlight: 1, Timeout: 10 * time.Second, Logger: quiet})
		defer p.Close()
		release := queueBehind(t, p, g, [][]*cimpb.Delivery{{msg("1")}}, calls...)
		g.srv.Listener.Close() // the merged request finds nobody listening
		res := release()
		if r := res[0]; r.Err != nil || r.Delivered != 1 {
			t.Fatalf("held push: %+v", r)
		}
		check(t, res[1:], false)
		if errors.Is(res[1].Err, ErrStatus) {
			t.Fatalf("merged pushes got %v, want a connection error", res[1].Err)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		g := newFakeGateway(t, "1")
		g.block = make(chan struct{}) // every request waits until the client gives up
		defer close(g.block)
		p := New(Config{MaxInFlight: 1, Timeout: 200 * time.Millisecond, Logger: quiet})
		defer p.Close()
		// A pretend request in flight rather than a held one: a real one
		// would race the short timeout while the pushes queue.
		l := p.occupy(g.id)
		res := make([]Result, len(calls))
		var wg sync.WaitGroup
		for i, d := range calls {
			wg.Go(func() { res[i] = p.PushOne(context.Background(), g.id, d) })
			waitQueued(t, p, g.id, i+1)
		}
		addr, err := contract.ParseGatewayID(g.id)
		if err != nil {
			t.Fatal(err)
		}
		p.release(g.id, addr, l)
		wg.Wait()
		check(t, res, true)
		if n := g.requestCount(); n != 1 {
			t.Fatalf("gateway got %d requests, want 1", n)
		}
		if n := p.laneCount(); n != 0 {
			t.Fatalf("%d lanes left after the pushes finished", n)
		}
	})
}

// TestPushMaxBatch: a merged request stops before MaxBatch deliveries, in
// order, and a push larger than MaxBatch goes whole, alone.
func TestPushMaxBatch(t *testing.T) {
	first := deliveries("first", 1)
	sizes := []int{2, 2, 3, 5, 1}
	calls := make([][]*cimpb.Delivery, len(sizes))
	for i, n := range sizes {
		calls[i] = deliveries("c"+strconv.Itoa(i), n)
	}
	all := slices.Concat(append([][]*cimpb.Delivery{first}, calls...)...)
	g := newFakeGateway(t, users(all)...)
	p := New(Config{MaxInFlight: 1, MaxBatch: 4, Timeout: 10 * time.Second, Logger: quiet})
	defer p.Close()

	res := queueBehind(t, p, g, [][]*cimpb.Delivery{first}, calls...)()
	var got []int
	var sent []string
	for _, b := range g.got() {
		got = append(got, len(b.Deliveries))
		sent = append(sent, users(b.Deliveries)...)
	}
	// 2+2 fit; 3 does not fit with the 5 after it; 5 goes alone; then 1.
	if want := []int{1, 4, 3, 5, 1}; !slices.Equal(got, want) {
		t.Fatalf("request sizes %v, want %v", got, want)
	}
	if want := users(all); !slices.Equal(sent, want) {
		t.Fatalf("sent %v, want %v", sent, want)
	}
	for i, r := range res[1:] {
		if r.Err != nil || r.Delivered != uint32(sizes[i]) || len(r.Missing) != 0 {
			t.Fatalf("push %d: %+v, want %d delivered", i, r, sizes[i])
		}
	}
}

// TestPushMaxInFlight: by default two requests to one gateway run at once;
// pushes behind them merge into one.
func TestPushMaxInFlight(t *testing.T) {
	g := newFakeGateway(t, "a", "b", "c", "d", "e")
	p := New(Config{Timeout: 10 * time.Second, Logger: quiet})
	defer p.Close()
	// queueBehind returns only once both first pushes reached the gateway.
	res := queueBehind(t, p, g, [][]*cimpb.Delivery{{msg("a")}, {msg("b")}},
		[]*cimpb.Delivery{msg("c")}, []*cimpb.Delivery{msg("d")}, []*cimpb.Delivery{msg("e")})()
	for i, r := range res {
		if r.Err != nil || r.Delivered != 1 {
			t.Fatalf("push %d: %+v", i, r)
		}
	}
	got := g.got()
	if len(got) != 3 || !slices.ContainsFunc(got, func(b *cimpb.PushBatch) bool {
		return slices.Equal(users(b.Deliveries), []string{"c", "d", "e"})
	}) {
		t.Fatalf("gateway got %v, want a, b, then c d e merged", got)
	}
}

// TestIdleLanesAreRemoved: once pushes finish, whether they succeeded or
// failed, no lane (or goroutine, checked by goleak) stays behind.
func TestIdleLanesAreRemoved(t *testing.T) {
	a := newFakeGateway(t, "1")
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer refusing.Close()
	u, _ := url.Parse(refusing.URL)
	bad := "127.0.0.1:1:" + u.Port()
	dead := "127.0.0.1:7000:" + strconv.Itoa(testenv.FreePort(t))

	p := New(Config{Timeout: 10 * time.Second, Logger: quiet})
	defer p.Close()
	const jobs = 20
	var wg sync.WaitGroup
	for range jobs {
		wg.Go(func() {
			res := p.Push(context.Background(), map[string][]*cimpb.Delivery{
				a.id: {msg("1")}, bad: {msg("2")}, dead: {msg("3")}, "bad-name": {msg("4")},
			})
			if r := res[a.id]; r.Err != nil || r.Delivered != 1 {
				t.Errorf("gateway a: %+v", r)
			}
			if res[bad].Err == nil || res[dead].Err == nil || res["bad-name"].Err == nil {
				t.Errorf("failing gateways: %+v", res)
			}
		})
	}
	wg.Wait()
	if n := p.laneCount(); n != 0 {
		t.Fatalf("%d lanes left after the pushes finished", n)
	}
	n := 0
	for _, b := range a.got() {
		n += len(b.Deliveries)
	}
	if n != jobs {
		t.Fatalf("gateway a got %d deliveries, want %d", n, jobs)
	}
}

// TestPushIgnoresBogusMissing: indexes outside the batch, or repeated, do not
// reach the caller or skew Delivered.
func TestPushIgnoresBogusMissing(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, _ := proto.Marshal(&cimpb.PushResult{Delivered: 99, Missing: []uint32{2, 0, 0, 7}})
		w.Write(out)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	p := New(Config{Logger: quiet})
	defer p.Close()
	r := p.PushOne(context.Background(), "127.0.0.1:1:"+u.Port(), deliveries("u", 3))
	if r.Err != nil || r.Delivered != 1 || !slices.Equal(r.Missing, []uint32{0, 2}) {
		t.Fatalf("%+v, want missing [0 2] and 1 delivered", r)
	}
}

// TestEnqueueQueuesBeforeReturning: what one Enqueue puts in a gateway's
// queue is there when it returns, so a later Enqueue goes behind it (the
// route relies on it to keep a group's messages in order).
func TestEnqueueQueuesBeforeReturning(t *testing.T) {
	first, a, b := deliveries("first", 1), deliveries("a", 2), deliveries("b", 3)
	g := newFakeGateway(t, users(slices.Concat(first, a, b))...)
	p := New(Config{MaxInFlight: 1, Timeout: 10 * time.Second, Logger: quiet})
	defer p.Close()
	ctx := context.Background()

	release := queueBehind(t, p, g, [][]*cimpb.Delivery{first})
	waitA := p.Enqueue(ctx, map[string][]*cimpb.Delivery{g.id: a})
	if n := p.queued(g.id); n != 1 {
		t.Fatalf("%d pushes queued after the first Enqueue returned, want 1", n)
	}
	waitB := p.Enqueue(ctx, map[string][]*cimpb.Delivery{g.id: b, "not-a-gateway-id": a})
	if n := p.queued(g.id); n != 2 {
		t.Fatalf("%d pushes queued after the second Enqueue returned, want 2", n)
	}
	release()
	ra, rb := waitA(), waitB()
	if r := ra[g.id]; r.Err != nil || r.Delivered != 2 {
		t.Fatalf("first Enqueue: %+v, want 2 delivered", r)
	}
	if r := rb[g.id]; r.Err != nil || r.Delivered != 3 {
		t.Fatalf("second Enqueue: %+v, want 3 delivered", r)
	}
	if r, ok := rb["not-a-gateway-id"]; !ok || r.Err == nil {
		t.Fatalf("a bad gateway id got %+v, want an error", r)
	}
	got := g.got()
	if len(got) != 2 {
		t.Fatalf("gateway got %d requests, want the first and one merged", len(got))
	}
	if want := users(slices.Concat(a, b)); !slices.Equal(users(got[1].Deliveries), want) {
		t.Fatalf("merged request carried %v, want %v", users(got[1].Deliveries), want)
	}
}

// TestEnqueueWaitsForRequestsInFlight: an ordered push (Enqueue) does not
// start beside a request in flight, though a slot is free, and pushes made
// after it queue behind it; once the gateway answered, it goes (with them).
func TestEnqueueWaitsForRequestsInFlight(t *testing.T) {
	first, a, b := deliveries("first", 1), deliveries("a", 2), deliveries("b", 1)
	g := newFakeGateway(t, users(slices.Concat(first, a, b))...)
	p := New(Config{Timeout: 10 * time.Second, Logger: quiet}) // two in flight
	defer p.Close()
	ctx := context.Background()

	release := queueBehind(t, p, g, [][]*cimpb.Delivery{first})
	waitA := p.Enqueue(ctx, map[string][]*cimpb.Delivery{g.id: a})
	if n := p.queued(g.id); n != 1 {
		t.Fatalf("%d pushes queued, want the ordered one waiting for the request in flight", n)
	}
	resB := make(chan Result, 1)
	go func() { resB <- p.PushOne(ctx, g.id, b) }()
	waitQueued(t, p, g.id, 2) // behind the ordered one, though a slot is free
	release()
	if r := waitA()[g.id]; r.Err != nil || r.Delivered != 2 {
		t.Fatalf("ordered push: %+v", r)
	}
	if r := <-resB; r.Err != nil || r.Delivered != 1 {
		t.Fatalf("push behind it: %+v", r)
	}
	got := g.got()
	if len(got) != 2 || !slices.Equal(users(got[1].Deliveries), users(slices.Concat(a, b))) {
		t.Fatalf("gateway got %v, want first, then a and b in one request", got)
	}
}
