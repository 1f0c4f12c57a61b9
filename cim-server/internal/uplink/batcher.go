// Package uplink forwards the frames clients send (MSG, ACK, READ, SYNC) to
// the route in batches.
//
// One Batcher serves the whole gateway. Uplinks are spread over shards by a
// hash of the user id; each shard sends one batch at a time and collects
// whatever arrived meanwhile into the next, so a user's frames reach the
// route in the order they were read, the shards work in parallel, and batches
// grow on their own under load. A busy shard also starts its batches at
// least Config.Linger apart, so that more uplinks share each; a quiet one
// never waits (Config.LingerMin). The route's answer (a
// PushBatch of RECEIPT/ERROR frames for the senders) is handed to the
// DeliverFunc. When the route cannot be reached within the sender's retry
// window, every MSG in the batch is answered with ERROR Unavailable, and
// the connection of each session that had a MSG in it gets ERROR Reconnect,
// which ends it: the route may be back for the next batch, and storing that
// session's later messages before the failed ones (resent after a timeout)
// would break the sender's order. What the shard still holds from those
// sessions is dropped; the client logs in again and writes everything
// unanswered on the new link, in order.
//
// Submit is safe for concurrent use.
package uplink

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocim/gocim/cim-server/internal/hrtimer"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// ErrClosed is returned by Submit after Shutdown began.
var ErrClosed = errors.New("uplink: batcher shut down")

// Sender posts one batch to the route (routeclient.Client satisfies it).
type Sender interface {
	Uplink(ctx context.Context, b *cimpb.UplinkBatch) (*cimpb.PushBatch, error)
}

// DeliverFunc writes frames to the connected users named in b.
type DeliverFunc func(b *cimpb.PushBatch)

// Config configures a Batcher. Zero values take the defaults.
type Config struct {
	GatewayID string
	// Shards is the number of batches in flight at once (default
	// max(4, GOMAXPROCS)).
	Shards int
	// QueueLen is the number of uplinks a shard buffers before Submit
	// blocks (default 4096).
	QueueLen int
	// MaxBatch caps the uplinks in one request (default 256).
	MaxBatch int
	// MaxBatchBytes caps the summed message bodies in one request (default
	// 1 MiB).
	MaxBatchBytes int
	// Linger is the least time between the starts of two batches of a
	// busy shard (0: none): an uplink to a shard that sent nothing for
	// that long goes at once; one that comes sooner waits out the rest,
	// and what comes meanwhile joins it. Under load that makes fewer,
	// larger batches (fewer round trips for the gateway, the route and
	// Redis); an idle shard adds no wait, and neither does a quiet one:
	// while the shard's recent rate would gather fewer than LingerMin
	// uplinks in a Linger, its batches go as soon as the one in flight
	// is answered.
	Linger time.Duration
	// LingerMin is that least number of uplinks; 0 or less: a shard
	// lingers whatever its rate.
	LingerMin float64
	Logger    *slog.Logger
}

// Batcher collects uplinks and posts them to the route.
type Batcher struct {
	cfg     Config
	send    Sender
	deliver DeliverFunc
	log     *slog.Logger
	seed    maphash.Seed
	shards  []*shard

	// closeMu makes shutdown airtight: Submit holds it shared while it
	// enqueues, Shutdown takes it exclusively to set closed, and only then
	// tells the shards to drain, so no uplink lands in a shard that left.
	closeMu sync.RWMutex
	closed  bool
	stop    chan struct{}   // wakes Submits waiting on a full shard
	drain   chan struct{}   // shards flush what is queued and exit
	ctx     context.Context // cancelled when Shutdown gives up
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
}

// shard is one queue of uplinks and the goroutine sending them.
type shard struct {
	ch chan *cimpb.Uplink
	// room is how many more uplinks the batch waiting out its linger
	// takes (0: none is): the shard sleeps through the linger instead of
	// waking for every uplink, and the Submit that queues the room's
	// worth wakes it through full.
	room atomic.Int64
	full chan struct{} // one token: the lingering batch can be filled
}

// New returns a Batcher; call Start before Submit.
func New(cfg Config, send Sender, deliver DeliverFunc) *Batcher {
	if cfg.Shards <= 0 {
		cfg.Shards = max(4, runtime.GOMAXPROCS(0))
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 4096
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Batcher{
		cfg: cfg, send: send, deliver: deliver,
		log:  cfg.Logger.With("component", "uplink"),
		seed: maphash.MakeSeed(), stop: make(chan struct{}), drain: make(chan struct{}),
		ctx: ctx, cancel: cancel,
	}
	b.shards = make([]*shard, cfg.Shards)
	for i := range b.shards {
		b.shards[i] = &shard{ch: make(chan *cimpb.Uplink, cfg.QueueLen), full: make(chan struct{}, 1)}
	}
	return b
}

// Start starts one goroutine per shard.
func (b *Batcher) Start() {
	for _, s := range b.shards {
		b.wg.Add(1)
		go b.run(s)
	}
}

// Submit queues u. It blocks while u's shard is full (back-pressure on the
// client's reader while the route is slow) until ctx ends or the batcher
// shuts down.
func (b *Batcher) Submit(ctx context.Context, u *cimpb.Uplink) error {
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	s := b.shards[maphash.String(b.seed, u.UserId)%uint64(len(b.shards))]
	select {
	case s.ch <- u:
		s.queued()
		return nil
	default:
	}
	select {
	case s.ch <- u:
		s.queued()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-b.stop:
		return ErrClosed
	}
}

// queued wakes a shard lingering on a batch that what is queued now fills.
func (s *shard) queued() {
	if n := s.room.Load(); n > 0 && int64(len(s.ch)) >= n {
		select {
		case s.full <- struct{}{}:
		default:
		}
	}
}

func (b *Batcher) run(s *shard) {
	defer b.wg.Done()
	ch := s.ch
	batch := make([]*cimpb.Uplink, 0, b.cfg.MaxBatch)
	// failed: the sessions of this shard whose messages failed, by
	// user+"/"+session, and when: their later uplinks are dropped.
	failed := map[string]time.Time{}
	// The linger is usually under a millisecond's wait: an hrtimer keeps
	// it, where a Go timer in an idle gateway rounds up to the next whole
	// millisecond (package hrtimer).
	var linger *hrtimer.Timer
	if b.cfg.Linger > 0 {
		linger = hrtimer.New()
		defer linger.Close()
	}
	var last time.Time // when the last batch went
	var rate rateMeter
	rate.reset(time.Now())
	for {
		select {
		case u := <-ch:
			batch = append(batch[:0], u)
		case <-b.drain:
			b.drainQueue(ch, batch, failed)
			return
		}
		batch = b.collect(ch, batch)
		// A busy shard's batches leave at least one Linger apart: what
		// comes to a shard that sent nothing for that long goes at once,
		// what comes sooner waits out the rest of it. A quiet shard's
		// rate would gather fewer than LingerMin uplinks in a Linger: its
		// batches go as soon as the one before is answered.
		busy := b.cfg.LingerMin <= 0 || rate.perSecond()*b.cfg.Linger.Seconds() >= b.cfg.LingerMin
		if linger != nil && busy && len(batch) < b.cfg.MaxBatch {
			if wait := b.cfg.Linger - time.Since(last); wait > 0 {
				batch = b.linger(s, batch, linger, wait)
			}
		}
		last = time.Now()
		rate.add(len(batch), last)
		b.flush(batch, failed)
	}
}

// rateMeter estimates a shard's uplinks a second from its batches: the
// uplinks of each and the time since the one before, each smoothed on its
// own. (Smoothing each batch's own rate instead would overrate a quiet
// shard: a lone uplink right after a batch reads as thousands a second.)
type rateMeter struct {
	n, secs float64 // smoothed uplinks per batch, seconds between batches
	at      time.Time
}

// rateWeight is how much the latest batch counts; the rest is the
// estimate before it.
const rateWeight = 0.125

func (m *rateMeter) reset(now time.Time) { *m = rateMeter{at: now} }

// add counts a batch of n uplinks that left at now.
func (m *rateMeter) add(n int, now time.Time) {
	d := now.Sub(m.at).Seconds()
	m.at = now
	if m.secs == 0 {
		m.n, m.secs = float64(n), max(d, 1e-6)
		return
	}
	m.n += rateWeight * (float64(n) - m.n)
	m.secs += rateWeight * (d - m.secs)
}

// perSecond is the estimate (0 before the first batch).
func (m *rateMeter) perSecond() float64 {
	if m.secs == 0 {
		return 0
	}
	return m.n / m.secs
}

// drainQueue flushes what is queued in ch at shutdown, and answers the
// senders that are left if the batcher gives up.
func (b *Batcher) drainQueue(ch chan *cimpb.Uplink, batch []*cimpb.Uplink, failed map[string]time.Time) {
	for len(ch) > 0 && b.ctx.Err() == nil {
		batch = b.collect(ch, batch[:0])
		b.flush(batch, failed)
	}
	for len(ch) > 0 { // gave up: answer the senders that are left
		batch = b.collect(ch, batch[:0])
		b.fail(batch, fmt.Errorf("%w: gateway shutting down", contract.ErrUnavailable), failed)
	}
}

// linger adds what arrives within wait to batch, up to the caps. It
// sleeps until wait has passed, shutdown begins or enough is queued to
// fill the batch (s.full), rather than waking for every uplink, then
// collects what is queued.
func (b *Batcher) linger(s *shard, batch []*cimpb.Uplink, t *hrtimer.Timer, wait time.Duration) []*cimpb.Uplink {
	room := b.cfg.MaxBatch - len(batch)
	if room <= 0 {
		return batch
	}
	select { // a token left by an earlier batch's linger
	case <-s.full:
	default:
	}
	s.room.Store(int64(room)) // before looking at the queue: a Submit after this sees it
	if len(s.ch) < room {
		t.Reset(wait)
		select {
		case <-t.C:
		case <-s.full:
		case <-b.drain:
		}
		t.Stop()
	}
	s.room.Store(0)
	return b.collect(s.ch, batch)
}

// collect appends queued uplinks to batch without waiting, up to the caps.
func (b *Batcher) collect(ch chan *cimpb.Uplink, batch []*cimpb.Uplink) []*cimpb.Uplink {
	size := 0
	for _, u := range batch {
		size += bodyLen(u)
	}
	for len(batch) < b.cfg.MaxBatch && size < b.cfg.MaxBatchBytes {
		select {
		case u := <-ch:
			batch = append(batch, u)
			size += bodyLen(u)
		default:
			return batch
		}
	}
	return batch
}

func bodyLen(u *cimpb.Uplink) int {
	if m := u.GetFrame().GetMsg(); m != nil {
		return len(m.Body)
	}
	return 0
}

func (b *Batcher) flush(batch []*cimpb.Uplink, failed map[string]time.Time) {
	if len(failed) > 0 {
		// Nothing more from a session whose messages failed: its
		// connection is ending.
		kept := batch[:0]
		for _, u := range batch {
			if _, ok := failed[sessionKey(u)]; !ok {
				kept = append(kept, u)
			}
		}
		clear(batch[len(kept):])
		batch = kept
	}
	if len(batch) == 0 {
		return
	}
	req := &cimpb.UplinkBatch{GatewayId: b.cfg.GatewayID, Uplinks: batch}
	resp, err := b.send.Uplink(b.ctx, req)
	if err != nil {
		b.fail(batch, err, failed)
	} else if len(resp.GetDeliveries()) > 0 {
		b.deliver(resp)
	}
	clear(batch) // do not pin frames until the next batch overwrites them
}

func sessionKey(u *cimpb.Uplink) string { return u.GetUserId() + "/" + u.GetSessionId() }

// failedKept is how long a failed session's later uplinks are dropped: its
// connection ends at once, and a session id is never used again.
const failedKept = 5 * time.Minute

// fail answers every MSG in the batch with an ERROR, then ends the
// connection of each session that had one (ERROR Reconnect) and notes the
// session in failed; the other uplink kinds have no reply the client waits
// for.
func (b *Batcher) fail(batch []*cimpb.Uplink, err error, failed map[string]time.Time) {
	code := codes.Unavailable
	if !errors.Is(err, contract.ErrUnavailable) {
		code = codes.Internal
	}
	b.log.Warn("uplink batch failed", "uplinks", len(batch), "code", int32(code), "err", err)
	out := &cimpb.PushBatch{}
	for _, u := range batch {
		m := u.GetFrame().GetMsg()
		if u.GetFrame().GetType() != cimpb.Type_MSG || m == nil {
			continue
		}
		out.Deliveries = append(out.Deliveries, &cimpb.Delivery{
			UserId:    u.UserId,
			SessionId: u.SessionId,
			Frame: &cimpb.Frame{
				Type:  cimpb.Type_ERROR,
				ReqId: u.Frame.ReqId,
				Error: &cimpb.Error{Code: int32(code), Text: code.Text(), ClientMsgId: m.ClientMsgId},
			},
		})
	}
	now := time.Now()
	for k, at := range failed {
		if now.Sub(at) > failedKept {
			delete(failed, k)
		}
	}
	for _, u := range batch {
		if u.GetFrame().GetType() != cimpb.Type_MSG {
			continue
		}
		if _, ok := failed[sessionKey(u)]; ok {
			continue
		}
		failed[sessionKey(u)] = now
		out.Deliveries = append(out.Deliveries, &cimpb.Delivery{UserId: u.UserId, SessionId: u.SessionId,
			Frame: &cimpb.Frame{Type: cimpb.Type_ERROR, Error: &cimpb.Error{Code: int32(codes.Reconnect), Text: codes.Reconnect.Text()}}})
	}
	if len(out.Deliveries) > 0 {
		b.deliver(out)
	}
}

// Shutdown stops accepting uplinks, sends the queued ones until ctx ends,
// and waits for the shards. Safe to call more than once.
func (b *Batcher) Shutdown(ctx context.Context) error {
	b.once.Do(func() {
		close(b.stop)
		b.closeMu.Lock()
		b.closed = true
		b.closeMu.Unlock()
		close(b.drain)
	})
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		b.cancel()
		return nil
	case <-ctx.Done():
		b.cancel() // abort retries; the senders get ERROR Unavailable
		<-done
		return ctx.Err()
	}
}
