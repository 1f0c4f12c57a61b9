package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/gocim/gocim/cim-route/internal/event"
	"github.com/gocim/gocim/internal/testenv"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{}) // a test without Redis makes it complain
	goleak.VerifyTestMain(m)
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var testSecret = []byte("webhook-test-secret-0123")

// newRedis starts a throwaway redis-server (skipped without one, failed
// under CI=true) and returns a client of it.
func newRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// hit is one request the receiver answered.
type hit struct {
	id, typ string
	status  int
	at      time.Time
}

// receiver is an app back-end: it checks every request and answers with
// what status says (for the n-th request, from 1), 200 when that is 0.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	status atomic.Pointer[func(n int, id string) int]
	hits   chan hit

	mu  sync.Mutex
	n   int
	oks map[string]int // event id -> 2xx answers
}

func newReceiver(t *testing.T, status func(n int, id string) int) *receiver {
	r := &receiver{t: t, hits: make(chan hit, 10000), oks: map[string]int{}}
	r.setStatus(status)
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setStatus(f func(n int, id string) int) {
	if f == nil {
		f = func(int, string) int { return 0 }
	}
	r.status.Store(&f)
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	if err := Verify(testSecret, req.Header.Get(HeaderSignature), body, time.Now(), time.Minute); err != nil {
		r.t.Errorf("signature: %v", err)
	}
	var ev struct {
		ID     string          `json:"id"`
		Type   string          `json:"type"`
		TimeMs int64           `json:"timeMs"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		r.t.Errorf("body %q: %v", body, err)
	}
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" ||
		req.Header.Get(HeaderIdempotency) != ev.ID || req.Header.Get(HeaderEvent) != ev.Type || ev.TimeMs == 0 || len(ev.Data) == 0 {
		r.t.Errorf("request %s %v with body %s", req.Method, req.Header, body)
	}
	r.mu.Lock()
	r.n++
	status := (*r.status.Load())(r.n, ev.ID)
	if status == 0 {
		status = http.StatusOK
	}
	if status < 300 {
		r.oks[ev.ID]++
	}
	r.mu.Unlock()
	w.WriteHeader(status)
	r.hits <- hit{id: ev.ID, typ: ev.Type, status: status, at: time.Now()}
}

// until reads hits until done says so, failing after a generous time.
func (r *receiver) until(done func(h hit) bool) {
	r.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case h := <-r.hits:
			if done(h) {
				return
			}
		case <-timeout:
			r.t.Fatal("the receiver did not get what was expected in 30s")
		}
	}
}

// delivered waits until every id was answered 2xx.
func (r *receiver) delivered(ids []string) {
	r.t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	r.until(func(h hit) bool {
		if h.status < 300 {
			delete(want, h.id)
		}
		return len(want) == 0
	})
}

func (r *receiver) okCount(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.oks[id]
}

// fast is a Config with short waits, for tests.
func fast(rdb redis.UniversalClient, urls ...string) Config {
	return Config{Redis: rdb, Prefix: "cim:", URLs: urls, Secret: testSecret,
		RetryMin: 5 * time.Millisecond, RetryMax: 40 * time.Millisecond, Poll: 5 * time.Millisecond,
		Timeout: 5 * time.Second, LogEvery: time.Hour, Logger: slog.New(slog.DiscardHandler)}
}

// run starts d.Run; the returned func stops it and waits.
func run(d *Dispatcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func newDispatcher(t *testing.T, cfg Config) *Dispatcher {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// emit emits n events of several types and returns their ids.
func emit(d *Dispatcher, n int) []string {
	ids := make([]string, n)
	for i := range n {
		var ev event.Event
		switch i % 3 {
		case 0:
			ev = event.New(event.MessageOffline, time.Now(), event.Message{MsgID: strconv.Itoa(i), From: "1", To: "2", Kind: "text", Text: "hi"})
		case 1:
			ev = event.New(event.UserKicked, time.Now(), event.Presence{UserID: "2", Reason: "logged in elsewhere"})
		default:
			ev = event.New(event.GroupCreated, time.Now(), event.Group{GroupID: "5", Name: "team", By: "1", Users: []string{"1"}})
		}
		ids[i] = ev.ID
		d.Emit(ev)
	}
	return ids
}

// queueLen is the length of the stream, the schedule and the tries of
// url's queue.
func queueLen(t *testing.T, rdb redis.UniversalClient, url string) [3]int64 {
	t.Helper()
	q := newQueue(rdb, "cim:", url, 0)
	ctx := context.Background()
	return [3]int64{rdb.XLen(ctx, q.keys[0]).Val(), rdb.ZCard(ctx, q.keys[1]).Val(), rdb.HLen(ctx, q.keys[2]).Val()}
}

func TestEveryEventArrivesDespiteFailures(t *testing.T) {
	rdb := newRedis(t)
	// Every other request fails, one way or another.
	rcv := newReceiver(t, func(n int, _ string) int {
		return []int{0, 500, 0, 503, 0, 404, 0, 302}[n%8]
	})
	other := newReceiver(t, nil)
	d := newDispatcher(t, fast(rdb, rcv.srv.URL+"/hook?token=x", other.srv.URL))
	stop := run(d)
	ids := emit(d, 60)
	rcv.delivered(ids)
	other.delivered(ids)
	stop()

	for _, id := range ids {
		if n := rcv.okCount(id); n != 1 {
			t.Errorf("event %s answered 2xx %d times, want once", id, n)
		}
	}
	if l := queueLen(t, rdb, rcv.srv.URL+"/hook?token=x"); l != [3]int64{} {
		t.Errorf("queue not empty after delivery: stream, due, tries = %v", l)
	}
	s := d.Stats()
	if s.Queued != 120 || s.Delivered != 120 || s.Failed == 0 || s.Dropped+s.Refused+s.Expired != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestRetriesBackOff(t *testing.T) {
	rdb := newRedis(t)
	const failures = 5
	rcv := newReceiver(t, func(n int, _ string) int {
		if n <= failures {
			return http.StatusServiceUnavailable
		}
		return 0
	})
	cfg := fast(rdb, rcv.srv.URL)
	cfg.RetryMin, cfg.RetryMax = 20*time.Millisecond, 80*time.Millisecond
	d := newDispatcher(t, cfg)
	stop := run(d)
	ids := emit(d, 1)
	var hits []hit
	rcv.until(func(h hit) bool {
		hits = append(hits, h)
		return h.status < 300
	})
	stop() // the last attempt is recorded
	if len(hits) != failures+1 || hits[failures].id != ids[0] {
		t.Fatalf("hits %+v", hits)
	}
	// The k-th wait is at least half of its step: 20ms doubling, at most 80ms.
	step := cfg.RetryMin
	for k := 1; k <= failures; k++ {
		if gap := hits[k].at.Sub(hits[k-1].at); gap < step/2 {
			t.Errorf("wait after failure %d: %v, want at least %v", k, gap, step/2)
		}
		step = min(2*step, cfg.RetryMax)
	}
	if s := d.Stats(); s.Failed != failures || s.Delivered != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestRestartDeliversWhatWasQueued(t *testing.T) {
	rdb := newRedis(t)
	rcv := newReceiver(t, func(int, string) int { return http.StatusServiceUnavailable })
	cfg := fast(rdb, rcv.srv.URL)
	cfg.Lease = time.Hour // given back on a clean stop: the next one need not wait
	first := newDispatcher(t, cfg)
	stop := run(first)
	ids := emit(first, 30)
	seen := map[string]bool{}
	rcv.until(func(h hit) bool {
		seen[h.id] = true
		return len(seen) == len(ids)
	})
	stop()
	if l := queueLen(t, rdb, rcv.srv.URL); l[0] != 30 {
		t.Fatalf("queue after the stop: stream, due, tries = %v, want 30 events", l)
	}

	rcv.setStatus(func(int, string) int { return 0 })
	second := newDispatcher(t, cfg)
	stop = run(second)
	defer stop()
	rcv.delivered(ids)
}

func TestLeaseOfACrashedSenderRunsOut(t *testing.T) {
	rdb := newRedis(t)
	rcv := newReceiver(t, nil)
	cfg := fast(rdb, rcv.srv.URL)
	cfg.Lease = 300 * time.Millisecond
	// A replica queued events, claimed them and died.
	q := newQueue(rdb, cfg.Prefix, rcv.srv.URL, DefaultQueueMax)
	ctx := context.Background()
	var recs []record
	var ids []string
	for i := range 10 {
		id := fmt.Sprintf("ev_crash%d", i)
		ids = append(ids, id)
		recs = append(recs, record{id: id, typ: string(event.UserKicked),
			body: fmt.Appendf(nil, `{"id":%q,"type":"user.kicked","timeMs":1,"data":{"userId":"3"}}`, id)})
	}
	if n, err := q.enqueue(ctx, time.Now(), recs); n != 10 || err != nil {
		t.Fatalf("enqueue: %d, %v", n, err)
	}
	if es, err := q.claim(ctx, time.Now(), cfg.Lease, 100); len(es) != 10 || err != nil {
		t.Fatalf("claim: %d, %v", len(es), err)
	}
	if es, err := q.claim(ctx, time.Now(), cfg.Lease, 100); len(es) != 0 || err != nil {
		t.Fatalf("claimed twice: %d, %v", len(es), err)
	}
	d := newDispatcher(t, cfg)
	stop := run(d)
	defer stop()
	rcv.delivered(ids)
}

func TestFullQueueRefusesNewEvents(t *testing.T) {
	rdb := newRedis(t)
	rcv := newReceiver(t, func(int, string) int { return http.StatusServiceUnavailable })
	cfg := fast(rdb, rcv.srv.URL)
	cfg.QueueMax = 5
	cfg.RetryMin = time.Hour // failed events stay queued
	d := newDispatcher(t, cfg)
	refused := make(chan struct{}, 100)
	d.hook = func(kind string) {
		if kind == "refused" {
			refused <- struct{}{}
		}
	}
	emit(d, 12) // buffered before Run: one batch
	stop := run(d)
	defer stop()
	<-refused
	if s := d.Stats(); s.Queued != 5 || s.Refused != 7 {
		t.Fatalf("stats %+v, want 5 queued and 7 refused", s)
	}
	emit(d, 1)
	<-refused
	if s := d.Stats(); s.Queued != 5 || s.Refused != 8 {
		t.Fatalf("stats %+v, want 5 queued and 8 refused", s)
	}
	if l := queueLen(t, rdb, rcv.srv.URL); l[0] != 5 {
		t.Fatalf("stream holds %d events, want 5", l[0])
	}
}

func TestEmitNeverBlocksWithoutRedis(t *testing.T) {
	// Nothing listens there.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)), Protocol: 2, MaxRetries: -1})
	defer rdb.Close()
	cfg := fast(rdb, "http://127.0.0.1:1/hook")
	cfg.Buffer = 8
	cfg.FlushTimeout = 50 * time.Millisecond
	d := newDispatcher(t, cfg)
	stop := run(d)
	const n = 1000
	emit(d, n)
	if s := d.Stats(); s.Dropped < uint64(n-cfg.Buffer-maxBatch) || s.Queued != 0 {
		t.Fatalf("stats %+v, want at least %d dropped", s, n-cfg.Buffer-maxBatch)
	}
	stop()
	// What was in memory is lost at the stop, and counted.
	if s := d.Stats(); s.Dropped != n {
		t.Fatalf("stats after the stop %+v, want all %d dropped", s, n)
	}
	emit(d, 1)
	if s := d.Stats(); s.Dropped != n+1 {
		t.Fatalf("an event after the stop: %+v", s)
	}
}

func TestTypesAndConfig(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	cfg := fast(rdb, "https://app.example.org/hook")
	cfg.Types = []event.Type{event.MessageApp, event.UserKicked}
	d := newDispatcher(t, cfg)
	for typ, want := range map[event.Type]bool{event.MessageApp: true, event.UserKicked: true, event.MessageOffline: false, event.GroupCreated: false} {
		if d.Wants(typ) != want || event.Wants(d, typ) != want {
			t.Errorf("Wants(%s) = %v, want %v", typ, d.Wants(typ), want)
		}
	}
	d.Emit(event.New(event.GroupCreated, time.Now(), event.Group{GroupID: "1"}))
	if len(d.in) != 0 {
		t.Fatal("an unwanted event was buffered")
	}
	d.Emit(event.New(event.UserKicked, time.Now(), event.Presence{UserID: "1"}))
	if len(d.in) != 1 {
		t.Fatal("a wanted event was not buffered")
	}
	if event.Wants(event.Discard{}, event.UserOnline) || event.Wants(nil, event.UserOnline) {
		t.Fatal("Discard wants events")
	}

	for _, tt := range []struct {
		name string
		edit func(*Config)
	}{
		{"no url", func(c *Config) { c.URLs = nil }},
		{"bad url", func(c *Config) { c.URLs = []string{"ftp://x/"} }},
		{"relative url", func(c *Config) { c.URLs = []string{"/hook"} }},
		{"short secret", func(c *Config) { c.Secret = []byte("short") }},
		{"unknown type", func(c *Config) { c.Types = []event.Type{"user.sneezed"} }},
		{"no redis", func(c *Config) { c.Redis = nil }},
	} {
		c := fast(rdb, "https://app.example.org/hook")
		tt.edit(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted it", tt.name)
		}
	}
	if name, err := CheckURL("https://user:pw@app.example.org/hook?token=x#f"); err != nil || name != "https://app.example.org/hook" {
		t.Errorf("CheckURL = %q, %v", name, err)
	}
}

// TestEnqueue: Enqueue returns once every URL's queue in Redis holds the
// events (Run need not be running), sends only the types wanted, says when
// a queue is full or Redis fails, and what it queued is delivered.
func TestEnqueue(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2})
	t.Cleanup(func() { rdb.Close() })
	rcv, other := newReceiver(t, nil), newReceiver(t, nil)
	cfg := fast(rdb, rcv.srv.URL, other.srv.URL)
	cfg.QueueMax = 3
	cfg.Types = []event.Type{event.DeviceData}
	d := newDispatcher(t, cfg)
	ctx := context.Background()
	data := func(i int) event.Event {
		return event.New(event.DeviceData, time.Now(), event.AppMessage{MsgID: strconv.Itoa(i), From: "1", Kind: "binary", Body: []byte{0xff, byte(i)}})
	}
	evs := []event.Event{data(1), data(2), event.New(event.UserOnline, time.Now(), event.Presence{UserID: "1"})}
	if err := d.Enqueue(ctx, evs); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{rcv.srv.URL, other.srv.URL} {
		if l := queueLen(t, rdb, u); l[0] != 2 || l[1] != 2 {
			t.Fatalf("queue of %s after Enqueue: stream, due, tries = %v, want the 2 device.data events", u, l)
		}
	}
	if err := d.Enqueue(ctx, []event.Event{data(3), data(4)}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Enqueue beyond the queue's bound: %v, want ErrQueueFull", err)
	}
	if s := d.Stats(); s.Queued != 5 || s.Refused != 1 {
		t.Fatalf("stats %+v, want 5 queued (2+2, then 1) and 1 refused", s)
	}
	stop := run(d)
	rcv.delivered([]string{evs[0].ID, evs[1].ID})
	stop()

	srv.Kill()
	if err := d.Enqueue(ctx, []event.Event{data(5)}); err == nil || errors.Is(err, ErrQueueFull) {
		t.Fatalf("Enqueue with Redis down: %v, want a Redis error", err)
	}
}
