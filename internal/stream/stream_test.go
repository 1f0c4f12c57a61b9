package stream

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echo answers every request with its kind and payload, reversed.
func echo(_ context.Context, kind Kind, p []byte) ([]byte, error) {
	out := []byte{byte(kind)}
	for i := len(p) - 1; i >= 0; i-- {
		out = append(out, p[i])
	}
	return out, nil
}

func pair(t *testing.T, ha, hb Handler, cfg Config) (*Conn, *Conn) {
	t.Helper()
	na, nb := net.Pipe()
	a, b := New(na, nil, ha, cfg), New(nb, nil, hb, cfg)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func wantEcho(t *testing.T, got []byte, kind Kind, sent string) {
	t.Helper()
	want := []byte{byte(kind)}
	for i := len(sent) - 1; i >= 0; i-- {
		want = append(want, sent[i])
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("answer %q, want %q", got, want)
	}
}

func TestCallsBothWaysMatchAnswers(t *testing.T) {
	// The handler answers in the reverse order of arrival, so answers are
	// matched by id, not by order.
	var mu sync.Mutex
	gates := map[string]chan struct{}{}
	slow := func(ctx context.Context, kind Kind, p []byte) ([]byte, error) {
		mu.Lock()
		g := gates[string(p)]
		mu.Unlock()
		if g != nil {
			<-g
		}
		return echo(ctx, kind, p)
	}
	a, b := pair(t, echo, slow, Config{})
	const n = 50
	for i := range n {
		gates[fmt.Sprint("req-", i)] = make(chan struct{})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			p := fmt.Sprint("req-", i)
			got, err := a.Call(context.Background(), KindUplink, []byte(p))
			if err != nil {
				errs <- err
				return
			}
			want := []byte{byte(KindUplink)}
			for j := len(p) - 1; j >= 0; j-- {
				want = append(want, p[j])
			}
			if !bytes.Equal(got, want) {
				errs <- fmt.Errorf("call %d got %q", i, got)
			}
		})
	}
	// The other direction works meanwhile.
	got, err := b.Call(context.Background(), KindPush, []byte("push"))
	if err != nil {
		t.Fatal(err)
	}
	wantEcho(t, got, KindPush, "push")
	for i := n - 1; i >= 0; i-- {
		close(gates[fmt.Sprint("req-", i)])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// oneByte hands out at most one byte per Read and writes in 3-byte
// pieces, so every frame arrives split.
type oneByte struct{ net.Conn }

func (o oneByte) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.Conn.Read(p)
}

func (o oneByte) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(3, len(p))
		m, err := o.Conn.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

func TestSplitFrames(t *testing.T) {
	na, nb := net.Pipe()
	a := New(oneByte{na}, nil, echo, Config{})
	b := New(oneByte{nb}, nil, echo, Config{})
	defer a.Close()
	defer b.Close()
	for _, p := range []string{"", "x", strings.Repeat("long payload ", 500)} {
		got, err := a.Call(context.Background(), KindPush, []byte(p))
		if err != nil {
			t.Fatal(err)
		}
		wantEcho(t, got, KindPush, p)
	}
}

func TestHandlerErrors(t *testing.T) {
	h := func(_ context.Context, _ Kind, p []byte) ([]byte, error) {
		switch string(p) {
		case "reject":
			return nil, Reject(errors.New("bad batch"))
		case "fail":
			return nil, errors.New("storage down")
		case "panic":
			panic("boom")
		}
		return p, nil
	}
	a, _ := pair(t, nil, h, Config{})
	for _, tc := range []struct {
		in       string
		rejected bool
		text     string
	}{{"reject", true, "bad batch"}, {"fail", false, "storage down"}, {"panic", false, "internal error"}} {
		_, err := a.Call(context.Background(), KindUplink, []byte(tc.in))
		var re *RemoteError
		if !errors.As(err, &re) || re.Rejected != tc.rejected || !strings.Contains(re.Text, tc.text) {
			t.Errorf("%s: err %v, want RemoteError rejected=%v with %q", tc.in, err, tc.rejected, tc.text)
		}
	}
	// The stream survives its handler's failures.
	got, err := a.Call(context.Background(), KindUplink, []byte("ok"))
	if err != nil || string(got) != "ok" {
		t.Fatalf("after failures: %q, %v", got, err)
	}
}

func TestPeerClosesFailsCallsInFlight(t *testing.T) {
	started := make(chan struct{})
	block := func(ctx context.Context, _ Kind, _ []byte) ([]byte, error) {
		close(started)
		<-ctx.Done() // until the stream ends
		return nil, ctx.Err()
	}
	a, b := pair(t, nil, block, Config{})
	errc := make(chan error, 1)
	go func() {
		_, err := a.Call(context.Background(), KindUplink, []byte("x"))
		errc <- err
	}()
	<-started
	b.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("call in flight: %v, want ErrClosed", err)
	}
	<-a.Done()
	if !errors.Is(a.Err(), ErrClosed) {
		t.Fatalf("Err %v", a.Err())
	}
	if _, err := a.Call(context.Background(), KindUplink, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after the end: %v", err)
	}
}

// TestPeerStopsReading: a peer that reads nothing blocks senders once the
// queue is full (back-pressure, bounded by their context) and is dropped
// when a write makes no progress for WriteTimeout.
func TestPeerStopsReading(t *testing.T) {
	na, nb := net.Pipe() // unbuffered: nothing is written unless nb reads
	defer nb.Close()
	a := New(na, nil, nil, Config{MaxQueue: 1 << 10, WriteTimeout: 50 * time.Millisecond, PingEvery: time.Hour})
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	// The first frame is taken by the writer (stuck in the write), the
	// second fills the queue, the third waits for room until ctx ends or
	// the stream is dropped.
	var last error
	for range 3 {
		go func() { _, _ = a.Call(context.Background(), KindPush, make([]byte, 800)) }()
	}
	_, last = a.Call(ctx, KindPush, make([]byte, 800))
	if !errors.Is(last, context.DeadlineExceeded) && !errors.Is(last, ErrClosed) {
		t.Fatalf("call to a peer that reads nothing: %v", last)
	}
	<-a.Done()
	if !errors.Is(a.Err(), ErrClosed) || !strings.Contains(a.Err().Error(), "write") {
		t.Fatalf("Err %v, want a write failure", a.Err())
	}
}

// TestFrozenPeerDropped: a peer that sends nothing, not even pings, is
// dropped after IdleTimeout although it reads everything.
func TestFrozenPeerDropped(t *testing.T) {
	na, nb := net.Pipe()
	defer nb.Close()
	go io.Copy(io.Discard, nb)
	a := New(na, nil, nil, Config{PingEvery: 10 * time.Millisecond, IdleTimeout: 50 * time.Millisecond})
	defer a.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := a.Call(context.Background(), KindPush, []byte("hello?"))
		errc <- err
	}()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("call to a frozen peer: %v", err)
	}
	if !strings.Contains(a.Err().Error(), "timeout") {
		t.Fatalf("Err %v, want a read timeout", a.Err())
	}
}

// TestPingsKeepAnIdleStreamUp: two live ends with nothing to say stay
// connected past IdleTimeout.
func TestPingsKeepAnIdleStreamUp(t *testing.T) {
	cfg := Config{PingEvery: 5 * time.Millisecond, IdleTimeout: 300 * time.Millisecond}
	a, _ := pair(t, nil, echo, cfg)
	for range 4 {
		// Each wait outlasts IdleTimeout only if no ping came.
		select {
		case <-a.Done():
			t.Fatalf("idle stream dropped: %v", a.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	if _, err := a.Call(context.Background(), KindPush, nil); err != nil {
		t.Fatal(err)
	}
}

func rawFrame(typ byte, n uint32) []byte {
	h := make([]byte, hdrLen)
	binary.BigEndian.PutUint32(h[0:4], n)
	h[4] = typ
	return h
}

func TestHostileFrames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		want  error
	}{
		{"oversized", rawFrame(typeRequest, 1<<20+1), ErrTooLarge},
		{"unknown type", rawFrame(9, 0), ErrProtocol},
		{"cut short", rawFrame(typeRequest, 100)[:7], ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			na, nb := net.Pipe()
			a := New(na, nil, echo, Config{MaxFrame: 1 << 20})
			defer a.Close()
			go io.Copy(io.Discard, nb)
			_, _ = nb.Write(tc.frame)
			nb.Close()
			<-a.Done()
			if !errors.Is(a.Err(), tc.want) {
				t.Fatalf("Err %v, want %v", a.Err(), tc.want)
			}
		})
	}
	a, _ := pair(t, nil, echo, Config{MaxFrame: 10})
	if _, err := a.Call(context.Background(), KindPush, make([]byte, 11)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("sending an oversized frame: %v", err)
	}
}

// TestMaxHandlersSlowsThePeer: beyond MaxHandlers the reader stops, so a
// flood of requests never runs more handlers than that.
func TestMaxHandlersSlowsThePeer(t *testing.T) {
	var running, most atomic.Int32
	release := make(chan struct{})
	h := func(_ context.Context, _ Kind, p []byte) ([]byte, error) {
		n := running.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		return p, nil
	}
	a, b := pair(t, nil, h, Config{MaxHandlers: 2})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { _, _ = a.Call(context.Background(), KindUplink, []byte("x")) })
	}
	// Wait until both slots are taken and the reader is stuck on the
	// third request.
	for len(b.slots) < 2 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if m := most.Load(); m != 2 {
		t.Fatalf("at most %d handlers ran at once, want 2", m)
	}
}

func TestDrainRefusesNewRequests(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	h := func(_ context.Context, _ Kind, p []byte) ([]byte, error) {
		if string(p) == "slow" {
			close(started)
			<-release
		}
		return p, nil
	}
	a, b := pair(t, echo, h, Config{})
	slow := make(chan error, 1)
	go func() {
		_, err := a.Call(context.Background(), KindUplink, []byte("slow"))
		slow <- err
	}()
	<-started
	drained := make(chan error, 1)
	go func() { drained <- b.Drain(context.Background()) }()
	for {
		b.mu.Lock()
		d := b.draining
		b.mu.Unlock()
		if d {
			break
		}
		time.Sleep(time.Millisecond)
	}
	_, err := a.Call(context.Background(), KindUplink, []byte("new"))
	var re *RemoteError
	if !errors.As(err, &re) || re.Rejected {
		t.Fatalf("new request while draining: %v, want unavailable", err)
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatalf("request in flight at drain: %v", err)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	// The draining end still calls out.
	got, err := b.Call(context.Background(), KindPush, []byte("p"))
	if err != nil {
		t.Fatal(err)
	}
	wantEcho(t, got, KindPush, "p")
}

func TestUpgrade(t *testing.T) {
	var served sync.WaitGroup
	var conns []*Conn
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Secret") != "s3cret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		if !IsUpgrade(r) {
			http.Error(w, "streams only", http.StatusUpgradeRequired)
			return
		}
		nc, br, err := Hijack(w, r)
		if err != nil {
			t.Error(err)
			return
		}
		served.Add(1)
		mu.Lock()
		conns = append(conns, New(nc, br, echo, Config{}))
		mu.Unlock()
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	_, err := Dial(ctx, addr, "/push", http.Header{"X-Secret": {"wrong"}}, nil, Config{})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong secret: %v", err)
	}
	c, err := Dial(ctx, addr, "/push", http.Header{"X-Secret": {"s3cret"}}, nil, Config{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Call(ctx, KindPush, []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	wantEcho(t, got, KindPush, "hi")
	c.Close()
	mu.Lock()
	for _, sc := range conns {
		<-sc.Done() // the server end sees the close
		sc.Close()
	}
	mu.Unlock()
}

// TestHandlerGoroutinesAreReused: requests one after another are served by
// the goroutine that served the one before (its stack grown already), not
// by a new goroutine each.
func TestHandlerGoroutinesAreReused(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	h := func(_ context.Context, kind Kind, p []byte) ([]byte, error) {
		buf := make([]byte, 64)
		id, _, _ := strings.Cut(strings.TrimPrefix(string(buf[:runtime.Stack(buf, false)]), "goroutine "), " ")
		mu.Lock()
		seen[id] = true
		mu.Unlock()
		return p, nil
	}
	a, _ := pair(t, nil, h, Config{})
	for i := range 50 {
		if _, err := a.Call(context.Background(), KindUplink, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) > 2 {
		t.Fatalf("50 requests in a row served by %d goroutines, want the same one (two at most)", len(seen))
	}
}
