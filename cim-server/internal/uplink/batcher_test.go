package uplink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeRoute records batches and answers each MSG with a RECEIPT.
type fakeRoute struct {
	mu      sync.Mutex
	batches [][]*cimpb.Uplink
	gate    chan struct{} // if set, the first call waits for it
	err     error
	// failOnce: err is answered once, then calls succeed.
	failOnce bool
	started  chan struct{} // closed when the first call arrives
	once     sync.Once
}

func (r *fakeRoute) Uplink(ctx context.Context, b *cimpb.UplinkBatch) (*cimpb.PushBatch, error) {
	if r.started != nil {
		r.once.Do(func() { close(r.started) })
	}
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %v", contract.ErrUnavailable, ctx.Err())
		}
	}
	r.mu.Lock()
	r.batches = append(r.batches, append([]*cimpb.Uplink(nil), b.Uplinks...))
	r.mu.Unlock()
	r.mu.Lock()
	err := r.err
	if r.failOnce {
		r.err = nil
	}
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := &cimpb.PushBatch{}
	for _, u := range b.Uplinks {
		if m := u.Frame.GetMsg(); m != nil {
			out.Deliveries = append(out.Deliveries, &cimpb.Delivery{UserId: u.UserId,
				Frame: &cimpb.Frame{Type: cimpb.Type_RECEIPT, Receipt: &cimpb.Receipt{ClientMsgId: m.ClientMsgId}}})
		}
	}
	return out, nil
}

func (r *fakeRoute) all() []*cimpb.Uplink {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*cimpb.Uplink
	for _, b := range r.batches {
		out = append(out, b...)
	}
	return out
}

type sink struct {
	mu  sync.Mutex
	got []*cimpb.Delivery
}

func (s *sink) deliver(b *cimpb.PushBatch) {
	s.mu.Lock()
	s.got = append(s.got, b.Deliveries...)
	s.mu.Unlock()
}

func (s *sink) deliveries() []*cimpb.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*cimpb.Delivery(nil), s.got...)
}

func msg(user string, i int) *cimpb.Uplink {
	return &cimpb.Uplink{UserId: user, SessionId: "s-" + user, Frame: &cimpb.Frame{Type: cimpb.Type_MSG, ReqId: uint64(i),
		Msg: &cimpb.Msg{ClientMsgId: strconv.Itoa(i), To: "x"}}}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestBatchesWhileRouteIsBusy(t *testing.T) {
	r := &fakeRoute{gate: make(chan struct{}), started: make(chan struct{})}
	s := &sink{}
	b := New(Config{GatewayID: "gw", Shards: 1}, r, s.deliver)
	b.Start()
	defer b.Shutdown(context.Background())

	ctx := context.Background()
	if err := b.Submit(ctx, msg("u", 0)); err != nil {
		t.Fatal(err)
	}
	<-r.started // the first batch (one uplink) is in flight and held
	for i := 1; i < 100; i++ {
		if err := b.Submit(ctx, msg("u", i)); err != nil {
			t.Fatal(err)
		}
	}
	close(r.gate)
	waitFor(t, "all uplinks", func() bool { return len(r.all()) == 100 })
	r.mu.Lock()
	n := len(r.batches)
	r.mu.Unlock()
	if n != 2 {
		t.Fatalf("100 uplinks took %d requests, want 2 (one held, the rest batched)", n)
	}
	for i, u := range r.all() {
		if u.Frame.Msg.ClientMsgId != strconv.Itoa(i) {
			t.Fatalf("uplink %d is %s: order lost", i, u.Frame.Msg.ClientMsgId)
		}
	}
	waitFor(t, "receipts", func() bool { return len(s.deliveries()) == 100 })
	if d := s.deliveries()[7]; d.Frame.Type != cimpb.Type_RECEIPT || d.Frame.Receipt.ClientMsgId != "7" {
		t.Fatalf("delivery 7 = %v", d)
	}
}

func TestPerUserOrderAcrossShards(t *testing.T) {
	r := &fakeRoute{}
	b := New(Config{Shards: 4, MaxBatch: 7}, r, func(*cimpb.PushBatch) {})
	b.Start()
	const users, per = 20, 200
	var wg sync.WaitGroup
	for u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if err := b.Submit(context.Background(), msg("user"+strconv.Itoa(u), i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	all := r.all()
	if len(all) != users*per {
		t.Fatalf("route got %d uplinks, want %d", len(all), users*per)
	}
	// r.all concatenates batches in the order the route received them; each
	// user's frames must appear in the order that user submitted them.
	next := map[string]int{}
	for _, u := range all {
		if want := strconv.Itoa(next[u.UserId]); u.Frame.Msg.ClientMsgId != want {
			t.Fatalf("user %s: got %s, want %s", u.UserId, u.Frame.Msg.ClientMsgId, want)
		}
		next[u.UserId]++
	}
	for _, batch := range r.batches {
		if len(batch) > 7 {
			t.Fatalf("batch of %d exceeds MaxBatch 7", len(batch))
		}
	}
}

func TestFailureAnswersMsgSenders(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("x: %w", contract.ErrUnavailable), codes.Unavailable},
		{fmt.Errorf("x: %w", contract.ErrRejected), codes.Internal},
	} {
		r := &fakeRoute{err: tc.err, gate: make(chan struct{}), started: make(chan struct{})}
		s := &sink{}
		b := New(Config{Shards: 1}, r, s.deliver)
		b.Start()
		ack := &cimpb.Uplink{UserId: "a", Frame: &cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: 3}}}
		b.Submit(context.Background(), msg("a", 1))
		<-r.started
		b.Submit(context.Background(), ack)
		b.Submit(context.Background(), msg("b", 2))
		close(r.gate)
		b.Shutdown(context.Background())

		// Per sender: its MSG's ERROR, then ERROR Reconnect for its
		// connection (the ACK gets no answer).
		got := s.deliveries()
		if len(got) != 4 {
			t.Fatalf("%d error deliveries, want 4: %v", len(got), got)
		}
		for i, d := range got {
			user, id := []string{"a", "b"}[i/2], strconv.Itoa(i/2+1)
			f := d.Frame
			if d.UserId != user || d.SessionId != "s-"+user || f.Type != cimpb.Type_ERROR {
				t.Fatalf("delivery %d = %v, want an ERROR for %s", i, d, user)
			}
			if i%2 == 1 {
				if codes.Code(f.Error.Code) != codes.Reconnect || f.Error.ClientMsgId != "" {
					t.Fatalf("delivery %d = %v, want ERROR Reconnect for %s's connection", i, d, user)
				}
				continue
			}
			if codes.Code(f.Error.Code) != tc.code || f.Error.ClientMsgId != id || f.ReqId != uint64(i/2+1) {
				t.Fatalf("delivery %d = %v, want ERROR %d for %s/%s", i, d, tc.code, user, id)
			}
		}
	}
}

// TestFailedSenderGoesNoFurther: once a session's messages failed (the
// route could not be reached in time), nothing it queued meanwhile is sent
// when the route is back: stored now, those would come before the failed
// ones, which the client resends after logging in again. Other sessions go
// on.
func TestFailedSenderGoesNoFurther(t *testing.T) {
	r := &fakeRoute{gate: make(chan struct{}), started: make(chan struct{}), err: fmt.Errorf("x: %w", contract.ErrUnavailable)}
	s := &sink{}
	b := New(Config{Shards: 1}, r, s.deliver)
	b.Start()
	defer b.Shutdown(context.Background())
	b.Submit(context.Background(), msg("a", 1))
	<-r.started
	b.Submit(context.Background(), msg("a", 2)) // queued behind the failing batch
	b.Submit(context.Background(), msg("b", 3))
	r.mu.Lock()
	r.failOnce = true // the route is back after this call
	r.mu.Unlock()
	close(r.gate)
	waitFor(t, "b's message sent", func() bool {
		for _, u := range r.all() {
			if u.UserId == "b" {
				return true
			}
		}
		return false
	})
	b.Submit(context.Background(), msg("a", 4)) // still the failed session
	b.Submit(context.Background(), msg("c", 5))
	waitFor(t, "c's message sent", func() bool { return len(r.all()) >= 3 })
	var sent []string
	for _, u := range r.all() {
		sent = append(sent, u.UserId+u.Frame.Msg.ClientMsgId)
	}
	if got := strings.Join(sent, " "); got != "a1 b3 c5" {
		t.Fatalf("the route got %s, want a1 b3 c5 (nothing more from a's session)", got)
	}
}

func TestShutdownFlushesQueued(t *testing.T) {
	r := &fakeRoute{gate: make(chan struct{}), started: make(chan struct{})}
	b := New(Config{Shards: 2}, r, func(*cimpb.PushBatch) {})
	b.Start()
	b.Submit(context.Background(), msg("a", 0))
	<-r.started
	for i := 1; i < 50; i++ {
		b.Submit(context.Background(), msg("a", i))
	}
	done := make(chan error)
	go func() { done <- b.Shutdown(context.Background()) }()
	// Shutdown waits for the held batch and what is queued behind it.
	// Submits racing with it are either refused or flushed, never lost.
	accepted := 0
	waitFor(t, "Submit refused", func() bool {
		err := b.Submit(context.Background(), msg("a", 99))
		if err == nil {
			accepted++
		}
		return errors.Is(err, ErrClosed)
	})
	close(r.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(r.all()); n != 50+accepted {
		t.Fatalf("route got %d uplinks, want %d", n, 50+accepted)
	}
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

func TestShutdownGivesUp(t *testing.T) {
	r := &fakeRoute{gate: make(chan struct{}), started: make(chan struct{})} // never opened
	s := &sink{}
	b := New(Config{Shards: 1}, r, s.deliver)
	b.Start()
	b.Submit(context.Background(), msg("a", 0))
	<-r.started
	b.Submit(context.Background(), msg("a", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	// The first message was answered and the connection told to log in
	// again; the second is answered too, or dropped (its connection is
	// ending: the client resends it on the next).
	var ids []string
	reconnect := 0
	for _, d := range s.deliveries() {
		switch e := d.Frame.GetError(); codes.Code(e.GetCode()) {
		case codes.Unavailable:
			ids = append(ids, e.ClientMsgId)
		case codes.Reconnect:
			reconnect++
		}
	}
	if j := strings.Join(ids, ","); (j != "0" && j != "0,1") || reconnect != 1 {
		t.Fatalf("deliveries %v, want ERROR Unavailable for 0 and 1 and one ERROR Reconnect", s.deliveries())
	}
}

func TestSubmitBlocksWhenFull(t *testing.T) {
	r := &fakeRoute{gate: make(chan struct{}), started: make(chan struct{})}
	b := New(Config{Shards: 1, QueueLen: 2}, r, func(*cimpb.PushBatch) {})
	b.Start()
	defer func() { close(r.gate); b.Shutdown(context.Background()) }()
	b.Submit(context.Background(), msg("a", 0))
	<-r.started
	b.Submit(context.Background(), msg("a", 1))
	b.Submit(context.Background(), msg("a", 2))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Submit(ctx, msg("a", 3)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Submit on a full shard = %v, want it to wait until ctx ends", err)
	}
}

// TestLingerSpacesBatches: an uplink to an idle shard goes at once; the
// ones after it wait out the linger together, up to a full batch, and a
// lingering batch goes out at once on shutdown. (The linger is long
// enough never to end on its own in this test.)
func TestLingerSpacesBatches(t *testing.T) {
	for _, lingerMin := range []float64{0, 3} { // always; and busy, since any rate fills an hour
		t.Run(fmt.Sprint("LingerMin=", lingerMin), func(t *testing.T) { testLingerSpacesBatches(t, lingerMin) })
	}
}

func testLingerSpacesBatches(t *testing.T, lingerMin float64) {
	r := &fakeRoute{}
	s := &sink{}
	b := New(Config{GatewayID: "gw", Shards: 1, MaxBatch: 10, Linger: time.Hour, LingerMin: lingerMin}, r, s.deliver)
	b.Start()
	ctx := context.Background()
	if err := b.Submit(ctx, msg("u", 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first uplink, sent without waiting", func() bool { return len(r.all()) == 1 })
	for i := 1; i < 13; i++ {
		if err := b.Submit(ctx, msg("u", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Ten fill a batch; the last two wait out the hour (until Shutdown).
	waitFor(t, "the full batch", func() bool { return len(r.all()) >= 11 })
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	sizes := []int{}
	for _, x := range r.batches {
		sizes = append(sizes, len(x))
	}
	r.mu.Unlock()
	if fmt.Sprint(sizes) != "[1 10 2]" {
		t.Fatalf("batches of %v, want [1 10 2]", sizes)
	}
	for i, u := range r.all() {
		if u.Frame.Msg.ClientMsgId != strconv.Itoa(i) {
			t.Fatalf("uplink %d is %s: order lost", i, u.Frame.Msg.ClientMsgId)
		}
	}
}

// TestQuietShardDoesNotLinger: a shard whose rate would gather fewer than
// LingerMin uplinks in a Linger sends each batch as soon as the one before
// is answered. (The linger is an hour: any batch that waited it would not
// arrive in this test.)
func TestQuietShardDoesNotLinger(t *testing.T) {
	r := &fakeRoute{}
	s := &sink{}
	b := New(Config{GatewayID: "gw", Shards: 1, MaxBatch: 10, Linger: time.Hour, LingerMin: 1e12}, r, s.deliver)
	b.Start()
	defer b.Shutdown(context.Background())
	for i := range 3 {
		if err := b.Submit(context.Background(), msg("u", i)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, fmt.Sprintf("uplink %d, sent without lingering", i), func() bool { return len(r.all()) == i+1 })
	}
}

// TestRateMeter: the rate is the smoothed uplinks per batch over the
// smoothed time between batches, so a lone uplink just after a batch does
// not read as thousands a second.
func TestRateMeter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }
	var m rateMeter
	m.reset(t0)
	if r := m.perSecond(); r != 0 {
		t.Fatalf("rate before any batch %v, want 0", r)
	}
	m.add(1, at(2)) // the first batch sets it: 1 in 2 ms
	if r := m.perSecond(); r != 500 {
		t.Fatalf("rate %v, want 500/s", r)
	}
	// 500 a second, but unevenly: batches 0.1 ms and 3.9 ms apart.
	ms := 2.0
	for range 200 {
		ms += 0.1
		m.add(1, at(ms))
		ms += 3.9
		m.add(1, at(ms))
	}
	if r := m.perSecond(); r < 400 || r > 600 {
		t.Fatalf("rate %v for 500 a second unevenly spaced, want about 500", r)
	}
	for range 100 { // then a burst: 10 every millisecond
		ms++
		m.add(10, at(ms))
	}
	if r := m.perSecond(); r < 9000 || r > 11000 {
		t.Fatalf("rate %v after a burst of 10,000 a second, want about that", r)
	}
}

// TestLingerSleepsUntilFull: a shard waiting out its linger leaves what
// comes meanwhile queued instead of waking for each uplink, and wakes as
// soon as the queue holds enough to fill its batch.
func TestLingerSleepsUntilFull(t *testing.T) {
	r := &fakeRoute{}
	s := &sink{}
	b := New(Config{GatewayID: "gw", Shards: 1, MaxBatch: 10, Linger: time.Hour}, r, s.deliver)
	b.Start()
	ctx := context.Background()
	sh := b.shards[0]
	if err := b.Submit(ctx, msg("u", 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first uplink, sent without waiting", func() bool { return len(r.all()) == 1 })
	if err := b.Submit(ctx, msg("u", 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the shard lingering on a batch of one", func() bool { return sh.room.Load() == 9 })
	for i := 2; i < 10; i++ {
		if err := b.Submit(ctx, msg("u", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(sh.ch); n != 8 {
		t.Fatalf("%d uplinks queued while the shard lingers, want all 8: it woke for them", n)
	}
	if err := b.Submit(ctx, msg("u", 10)); err != nil { // the batch's tenth
		t.Fatal(err)
	}
	waitFor(t, "the full batch, before the linger ends", func() bool { return len(r.all()) == 11 })
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.batches) != 2 || len(r.batches[1]) != 10 {
		t.Fatalf("%d batches, want 2: one, then ten", len(r.batches))
	}
	for i, u := range r.batches[1] {
		if u.Frame.Msg.ClientMsgId != strconv.Itoa(i+1) {
			t.Fatalf("uplink %d of the full batch is %s: order lost", i, u.Frame.Msg.ClientMsgId)
		}
	}
}
