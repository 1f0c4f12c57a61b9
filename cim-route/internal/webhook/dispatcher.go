package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/event"
	"github.com/gocim/gocim/internal/backoff"
)

// Defaults of Config.
const (
	DefaultQueueMax     = 100000
	DefaultMaxAge       = 24 * time.Hour
	DefaultTimeout      = 10 * time.Second
	DefaultConcurrency  = 4
	DefaultBuffer       = 2048
	DefaultRetryMin     = time.Second
	DefaultRetryMax     = 5 * time.Minute
	DefaultPoll         = 500 * time.Millisecond
	DefaultFlushTimeout = 2 * time.Second
	DefaultLogEvery     = 10 * time.Second

	// MinSecretLen is the shortest secret New takes.
	MinSecretLen = 16
)

// Config wires a Dispatcher. Redis, URLs and Secret are required; zero
// values of the rest mean their defaults.
type Config struct {
	Redis  redis.UniversalClient
	Prefix string   // of every key, as the route's other keys (--redis-prefix)
	URLs   []string // http:// or https://
	Secret []byte   // signs every request; at least MinSecretLen bytes
	// Types are the event types sent; nil: all.
	Types []event.Type

	QueueMax    int           // events a URL's queue holds; more are refused
	MaxAge      time.Duration // an event failing when older than this is dropped
	Timeout     time.Duration // one POST, answer included
	Concurrency int           // POSTs in flight per URL and replica
	Buffer      int           // events waiting in memory for Redis
	// RetryMin and RetryMax bound the backoff between attempts: RetryMin
	// after the first failure, doubling up to RetryMax, jittered.
	RetryMin, RetryMax time.Duration
	// Lease is how long a claimed event is the claimer's alone (default
	// Timeout + 30s); a replica that dies holding one delays it this much.
	Lease time.Duration
	// Poll is how often a sender looks for due events when nothing woke
	// it (events queued by this process wake it at once).
	Poll time.Duration
	// FlushTimeout bounds writing the memory buffer to Redis at shutdown.
	FlushTimeout time.Duration
	// LogEvery spaces the warnings of one kind (buffer full, queue full,
	// failing deliveries, Redis errors).
	LogEvery time.Duration
	// Client sends the requests; nil: one of the Dispatcher's own, which
	// follows no redirects (a 3xx is a failure).
	Client *http.Client
	Logger *slog.Logger
}

// Stats count what became of the events since New.
type Stats struct {
	Queued    uint64 // events written to a URL's queue (once per URL)
	Dropped   uint64 // events lost before Redis: buffer full, or unwritten at shutdown
	Refused   uint64 // events a full queue refused (once per URL)
	Delivered uint64 // 2xx answers
	Failed    uint64 // failed attempts, each retried later
	Expired   uint64 // events dropped after failing beyond MaxAge
}

// Dispatcher is an event.Sink that delivers events to webhooks.
type Dispatcher struct {
	cfg     Config
	log     *slog.Logger
	in      chan event.Event
	types   map[event.Type]bool // nil: all
	targets []*target
	client  *http.Client
	stopped atomic.Bool

	queued, dropped, refused     atomic.Uint64
	delivered, failed, expired   atomic.Uint64
	dropLog, refuseLog, redisLog every
	hook                         func(kind string) // tests: called after a counter moved
}

// target is one URL and its queue.
type target struct {
	url  string
	name string // for logs: without credentials and query
	q    *queue
	wake chan struct{}
	fail every // spaces its failure warnings
}

// New checks cfg and returns a Dispatcher; nothing runs until Run.
func New(cfg Config) (*Dispatcher, error) {
	if cfg.Redis == nil {
		return nil, errors.New("webhook: Redis is required")
	}
	if len(cfg.URLs) == 0 {
		return nil, errors.New("webhook: no URL")
	}
	if len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("webhook: the secret is shorter than %d bytes", MinSecretLen)
	}
	setDefaults(&cfg)
	d := &Dispatcher{cfg: cfg, log: cfg.Logger.With("component", "webhook"), in: make(chan event.Event, cfg.Buffer)}
	if cfg.Types != nil {
		d.types = make(map[event.Type]bool, len(cfg.Types))
		for _, t := range cfg.Types {
			if !event.Known(t) {
				return nil, fmt.Errorf("webhook: unknown event type %q", t)
			}
			d.types[t] = true
		}
	}
	seen := map[string]bool{}
	for _, raw := range cfg.URLs {
		name, err := CheckURL(raw)
		if err != nil {
			return nil, err
		}
		if seen[raw] {
			continue
		}
		seen[raw] = true
		d.targets = append(d.targets, &target{url: raw, name: name, wake: make(chan struct{}, 1),
			q: newQueue(cfg.Redis, cfg.Prefix, raw, cfg.QueueMax)})
	}
	d.client = cfg.Client
	if d.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.Concurrency
		d.client = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	return d, nil
}

func setDefaults(c *Config) {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.QueueMax <= 0 {
		c.QueueMax = DefaultQueueMax
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Buffer <= 0 {
		c.Buffer = DefaultBuffer
	}
	def(&c.MaxAge, DefaultMaxAge)
	def(&c.Timeout, DefaultTimeout)
	def(&c.RetryMin, DefaultRetryMin)
	def(&c.RetryMax, DefaultRetryMax)
	c.RetryMax = max(c.RetryMax, c.RetryMin)
	def(&c.Lease, c.Timeout+30*time.Second)
	def(&c.Poll, DefaultPoll)
	def(&c.FlushTimeout, DefaultFlushTimeout)
	def(&c.LogEvery, DefaultLogEvery)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// CheckURL checks a webhook URL (http or https, with a host) and returns
// the form logs show: without credentials, query and fragment.
func CheckURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("webhook: %q is not an http:// or https:// URL", raw)
	}
	return u.Scheme + "://" + u.Host + u.Path, nil
}

// Wants reports whether events of type typ are sent (event.Filter).
func (d *Dispatcher) Wants(typ event.Type) bool {
	return d.types == nil || d.types[typ]
}

// Emit queues ev for every URL. It never blocks: with the memory buffer
// full, or after Run ended, the event is dropped and counted.
func (d *Dispatcher) Emit(ev event.Event) {
	if !d.Wants(ev.Type) {
		return
	}
	if !d.stopped.Load() {
		select {
		case d.in <- ev:
			return
		default:
		}
	}
	d.drop(1, "webhook buffer full: events dropped (Redis slow or unavailable?)")
}

// ErrQueueFull is Enqueue's refusal when a URL's queue holds QueueMax
// events.
var ErrQueueFull = errors.New("webhook: queue full")

// Enqueue writes the events of evs that are sent (Wants) to every URL's
// queue in Redis and returns once all of them are there (event.Queue):
// for events whose loss the caller must report (device.data), instead of
// Emit's memory buffer. An error says some URL's queue does not hold them:
// ErrQueueFull, or Redis failed; the URLs written before may hold them
// already. It does not depend on Run (only the delivery does).
func (d *Dispatcher) Enqueue(ctx context.Context, evs []event.Event) error {
	var sent []event.Event
	for _, ev := range evs {
		if d.Wants(ev.Type) {
			sent = append(sent, ev)
		}
	}
	if len(sent) == 0 {
		return nil
	}
	b := d.newBatch(sent)
	if len(b.recs) < len(sent) {
		return errors.New("webhook: an event does not encode")
	}
	for _, t := range d.targets {
		n, err := t.q.enqueue(ctx, time.Now(), b.recs)
		d.queued.Add(uint64(n))
		if n > 0 {
			select {
			case t.wake <- struct{}{}:
			default:
			}
			d.notify("queued")
		}
		if err != nil {
			return fmt.Errorf("webhook: queueing for %s: %w", t.name, err)
		}
		if refused := len(b.recs) - n; refused > 0 {
			total := d.refused.Add(uint64(refused))
			if d.refuseLog.allow(d.cfg.LogEvery) {
				d.log.Warn("webhook queue full: new events refused", "url", t.name, "limit", d.cfg.QueueMax,
					"refused", refused, "refusedTotal", total)
			}
			d.notify("refused")
			return fmt.Errorf("%w: %s holds %d events", ErrQueueFull, t.name, d.cfg.QueueMax)
		}
	}
	return nil
}

// drop counts n lost events and warns, at most once per LogEvery.
func (d *Dispatcher) drop(n int, msg string) {
	total := d.dropped.Add(uint64(n))
	if d.dropLog.allow(d.cfg.LogEvery) {
		d.log.Warn(msg, "dropped", n, "droppedTotal", total, "buffer", d.cfg.Buffer)
	}
	d.notify("dropped")
}

// Stats returns the counters.
func (d *Dispatcher) Stats() Stats {
	return Stats{Queued: d.queued.Load(), Dropped: d.dropped.Load(), Refused: d.refused.Load(),
		Delivered: d.delivered.Load(), Failed: d.failed.Load(), Expired: d.expired.Load()}
}

// Depth is how many events wait for delivery: those in this process's
// memory buffer plus every URL's queue in Redis (shared by the route
// replicas; an event sent to two URLs waits twice). One XLEN per URL.
func (d *Dispatcher) Depth(ctx context.Context) (int64, error) {
	n := int64(len(d.in))
	for _, t := range d.targets {
		l, err := t.q.length(ctx)
		if err != nil {
			return 0, err
		}
		n += l
	}
	return n, nil
}

func (d *Dispatcher) notify(kind string) {
	if d.hook != nil {
		d.hook(kind)
	}
}

// Run writes emitted events to the queues and delivers them, until ctx
// ends; then it writes what the memory buffer holds and lets the requests
// in flight finish, both for at most FlushTimeout, gives back the leases of
// the requests it had to cancel and returns.
func (d *Dispatcher) Run(ctx context.Context) {
	// Requests in flight outlive ctx by FlushTimeout: one cut short would
	// be sent again, though the receiver may have taken it.
	sends, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(d.cfg.FlushTimeout, cancel) })
	defer stop()
	var wg sync.WaitGroup
	for _, t := range d.targets {
		wg.Go(func() { d.deliverLoop(ctx, sends, t) })
	}
	d.appendLoop(ctx)
	wg.Wait()
	d.client.CloseIdleConnections()
}

// maxBatch bounds the events written to Redis together.
const maxBatch = 256

// batch is events on their way to the queues; next[t] is the first record
// target t still lacks (absent: none left).
type batch struct {
	recs []record
	next map[*target]int
}

// appendLoop moves events from the memory buffer to the queues.
func (d *Dispatcher) appendLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			d.flush(ctx, nil)
			return
		case ev := <-d.in:
			b := d.newBatch(d.take(ev, nil))
			if !d.store(ctx, b) {
				d.flush(ctx, b)
				return
			}
		}
	}
}

// take returns first and up to maxBatch-1 more buffered events, without
// waiting; to is reused.
func (d *Dispatcher) take(first event.Event, to []event.Event) []event.Event {
	to = append(to[:0], first)
	for len(to) < maxBatch {
		select {
		case ev := <-d.in:
			to = append(to, ev)
		default:
			return to
		}
	}
	return to
}

// newBatch encodes evs for every target.
func (d *Dispatcher) newBatch(evs []event.Event) *batch {
	b := &batch{recs: make([]record, 0, len(evs)), next: make(map[*target]int, len(d.targets))}
	for _, ev := range evs {
		body, err := json.Marshal(ev)
		if err != nil {
			d.log.Error("webhook event does not encode; dropped", "type", ev.Type, "id", ev.ID, "err", err)
			d.dropped.Add(1)
			continue
		}
		b.recs = append(b.recs, record{id: ev.ID, typ: string(ev.Type), body: body})
	}
	if len(b.recs) > 0 {
		for _, t := range d.targets {
			b.next[t] = 0
		}
	}
	return b
}

// store writes b to every queue, retrying with backoff while Redis fails;
// false when ctx ended first (b holds what is left).
func (d *Dispatcher) store(ctx context.Context, b *batch) bool {
	bo := backoff.New(100*time.Millisecond, 5*time.Second, backoff.Equal)
	for {
		d.write(ctx, b)
		if len(b.next) == 0 {
			return true
		}
		t := time.NewTimer(bo.Next())
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// write makes one attempt at every queue b still has records for.
func (d *Dispatcher) write(ctx context.Context, b *batch) {
	for t, from := range b.next {
		recs := b.recs[from:]
		n, err := t.q.enqueue(ctx, time.Now(), recs)
		d.queued.Add(uint64(n))
		if err != nil {
			b.next[t] = from + n
			if d.redisLog.allow(d.cfg.LogEvery) {
				d.log.Warn("webhook events not queued in Redis; retrying", "url", t.name, "err", err)
			}
			continue
		}
		delete(b.next, t)
		if n > 0 {
			select {
			case t.wake <- struct{}{}:
			default:
			}
			d.notify("queued")
		}
		if refused := len(recs) - n; refused > 0 {
			total := d.refused.Add(uint64(refused))
			if d.refuseLog.allow(d.cfg.LogEvery) {
				d.log.Warn("webhook queue full: new events refused", "url", t.name, "limit", d.cfg.QueueMax,
					"refused", refused, "refusedTotal", total)
			}
			d.notify("refused")
		}
	}
}

// flush writes left and whatever the buffer holds, for at most
// FlushTimeout; the rest is lost.
func (d *Dispatcher) flush(ctx context.Context, left *batch) {
	d.stopped.Store(true)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.FlushTimeout)
	defer cancel()
	lost := 0
	if left != nil && !d.store(fctx, left) {
		lost += len(left.recs)
	}
	var evs []event.Event
	for {
		select {
		case ev := <-d.in:
			evs = d.take(ev, evs)
			if lost > 0 || fctx.Err() != nil {
				lost += len(evs)
				continue
			}
			if b := d.newBatch(evs); !d.store(fctx, b) {
				lost += len(b.recs)
			}
			continue
		default:
		}
		break
	}
	if lost > 0 {
		d.dropped.Add(uint64(lost))
		d.log.Error("webhook events not written to Redis before shutdown; lost", "lost", lost)
	}
}

// every lets an action (a log line) happen at most once per interval.
type every struct{ last atomic.Int64 }

func (e *every) allow(interval time.Duration) bool {
	now := time.Now().UnixNano()
	last := e.last.Load()
	if last != 0 && now-last < int64(interval) {
		return false
	}
	return e.last.CompareAndSwap(last, now)
}
