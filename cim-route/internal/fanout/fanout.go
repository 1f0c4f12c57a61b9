// Package fanout delivers frames to gateways: protobuf PushBatch bodies
// POSTed to each gateway's /push, all gateways in parallel, on one shared
// keep-alive HTTP client. A dead or slow gateway (bounded by the push
// timeout) fails on its own and never holds up or aborts the others.
//
// Each gateway has a lane that batches naturally, without timers: a push
// finding fewer than Config.MaxInFlight requests to its gateway in flight is
// sent at once; otherwise it queues, and when a request finishes, everything
// queued behind it (up to Config.MaxBatch deliveries) goes out as one
// request. Under load a gateway gets one request per round trip instead of
// one per job, which saves syscalls and wake-ups on both ends. Requests
// leave in the order their pushes were queued (Enqueue queues before it
// returns); with MaxInFlight > 1 two requests to one gateway may overlap,
// and their frames interleave (clients order by seq), except that a request
// carrying an ordered push (Enqueue) starts only when no other is in
// flight, so ordered pushes reach a gateway's connections in order. Each
// merged push gets its own Result, as if it had been sent alone. A lane with nothing queued or in flight is
// dropped, so gateways may come and go.
//
// A Pusher is safe for concurrent use.
package fanout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/stream"
	"github.com/gocim/gocim/proto/cimpb"
)

// maxResult bounds a PushResult body: a few bytes per missing index.
const maxResult = 8 << 20

// ErrStatus means the gateway answered /push with a non-200 status.
var ErrStatus = errors.New("fanout: gateway refused the push")

// Config configures a Pusher.
type Config struct {
	Timeout time.Duration // per gateway call; default 3s
	// MaxConnsPerGateway bounds idle keep-alive connections kept per gateway;
	// default 64 (route replicas push to each gateway from many requests).
	MaxConnsPerGateway int
	// MaxInFlight bounds the requests in flight to one gateway; pushes
	// beyond it queue and are merged into the next request. Default 2: one
	// request on the wire while the next one fills. A request with an
	// ordered push (Enqueue) waits until none is in flight: a gateway
	// handles its requests in parallel, and with two in flight a large
	// group's later message often reached its members before an earlier
	// one still being written, and every member asked a SYNC for the gap
	// (docs/benchmarks/issue13-log.md, "Ordered fan-out").
	MaxInFlight int
	// MaxBatch bounds the deliveries of one merged request; default 4096.
	// One push larger than that is still sent whole, on its own.
	MaxBatch int
	// Secret is sent in contract.Header (the current --internal-secret);
	// gateways refuse pushes without it.
	Secret string
	// NoStreams pushes over HTTP only, never opening streams.
	NoStreams bool
	// Observer is told about every push request; nil: nobody.
	Observer Observer
	Logger   *slog.Logger
}

// Observer is told about every push request sent to a gateway (package
// metrics implements it). Pushed is called once per request, merged or
// not, on the pushing goroutine: it must be cheap.
type Observer interface {
	// Pushed: a request of frames (Targets of its deliveries) took d; local:
	// it went to a gateway in this process (SetLocal); err is its failure as
	// a whole (nil: the gateway answered).
	Pushed(frames int, d time.Duration, local bool, err error)
}

// Pusher calls the gateways' /push.
type Pusher struct {
	client      *http.Client
	timeout     time.Duration
	maxInFlight int
	maxBatch    int
	secret      string
	obs         Observer // nil: none
	log         *slog.Logger

	mu        sync.Mutex
	lanes     map[string]*lane // by gateway id; only lanes in use
	links     map[string]*link // by gateway id: its stream (streams.go)
	handler   stream.Handler   // answers the gateways' requests on streams
	noStreams bool
	closed    bool
	wg        sync.WaitGroup // the links' dial loops

	local atomic.Pointer[local] // a gateway in this process; nil: none
}

// local is a gateway in the pusher's own process (SetLocal).
type local struct {
	id   string
	push func(*cimpb.PushBatch) *cimpb.PushResult
}

// SetLocal makes pushes to gateway id calls of push in this process,
// without a stream, an encoding or a syscall: for a route replica inside
// that gateway (cim-server --route-replica). The lanes, their merging and
// their order are the same as for any gateway.
func (p *Pusher) SetLocal(id string, push func(*cimpb.PushBatch) *cimpb.PushResult) {
	p.local.Store(&local{id: id, push: push})
}

// lane is one gateway's queue. Its fields are guarded by Pusher.mu.
type lane struct {
	queue    []*call // FIFO, waiting for a request slot
	inFlight int     // requests being sent, at most maxInFlight
}

// call is one PushOne waiting for its Result.
type call struct {
	ctx        context.Context // only its values reach the request (the first call's, when merged)
	deliveries []*cimpb.Delivery
	n          int         // Targets(deliveries)
	done       chan Result // buffered: handing over the result never blocks
	ordered    bool        // Enqueue's: its request starts only with none in flight
}

// Targets is how many users' sessions deliveries go to: one per delivery,
// or a shared delivery's targets (contract.Targets). A PushResult's indexes
// count them.
func Targets(deliveries []*cimpb.Delivery) int {
	n := 0
	for _, d := range deliveries {
		n += contract.Targets(d)
	}
	return n
}

// Result is the outcome of one gateway's push.
type Result struct {
	Delivered uint32   // Targets(deliveries) - len(Missing)
	Missing   []uint32 // indexes into that gateway's deliveries
	Err       error    // the whole push failed; see Timeout
}

// New returns a Pusher with its own connection pool.
func New(cfg Config) *Pusher {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.MaxConnsPerGateway <= 0 {
		cfg.MaxConnsPerGateway = 64
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 2
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.MaxConnsPerGateway * 16,
		MaxIdleConnsPerHost: cfg.MaxConnsPerGateway,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // protobuf on a LAN: gzip costs more than it saves
	}
	return &Pusher{
		client:      &http.Client{Transport: tr},
		timeout:     cfg.Timeout,
		maxInFlight: cfg.MaxInFlight,
		maxBatch:    cfg.MaxBatch,
		secret:      cfg.Secret,
		obs:         cfg.Observer,
		log:         cfg.Logger.With("component", "fanout"),
		lanes:       make(map[string]*lane),
		links:       make(map[string]*link),
		noStreams:   cfg.NoStreams,
	}
}

// Close ends the streams and drops idle connections. Pushes in flight
// finish on their own, bounded by the timeout (over HTTP once their stream
// is gone).
func (p *Pusher) Close() {
	p.mu.Lock()
	p.closed = true
	links := p.links
	p.links = map[string]*link{}
	p.mu.Unlock()
	for _, l := range links {
		l.cancel()
	}
	p.wg.Wait()
	p.client.CloseIdleConnections()
}

// Push sends each gateway its deliveries, in parallel, and returns one Result
// per gateway id. Gateway ids that do not parse get an error Result.
func (p *Pusher) Push(ctx context.Context, batches map[string][]*cimpb.Delivery) map[string]Result {
	out := make(map[string]Result, len(batches))
	if len(batches) == 1 { // the common case needs no goroutine
		for gw, d := range batches {
			out[gw] = p.PushOne(ctx, gw, d)
		}
		return out
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for gw, d := range batches {
		wg.Go(func() {
			r := p.PushOne(ctx, gw, d)
			mu.Lock()
			out[gw] = r
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// Enqueue puts each gateway's deliveries in that gateway's queue before it
// returns — behind whatever is queued there, so what one caller enqueues
// after another's Enqueue returned is sent after it — and returns a
// function waiting for one Result per gateway id, as Push does. Its request
// to a gateway starts only when no other request to it is in flight, so the
// gateway handles it after everything sent before and before anything
// Enqueued after. The route uses it to keep a large group's messages in
// order across its deliveries.
func (p *Pusher) Enqueue(ctx context.Context, batches map[string][]*cimpb.Delivery) (wait func() map[string]Result) {
	out := make(map[string]Result, len(batches))
	calls := make(map[string]*call, len(batches))
	for gw, d := range batches {
		if len(d) == 0 {
			out[gw] = Result{}
			continue
		}
		addr, err := contract.ParseGatewayID(gw)
		if err != nil {
			p.log.Warn("push failed", "gateway", gw, "deliveries", len(d), "err", err)
			out[gw] = Result{Err: err}
			continue
		}
		c := &call{ctx: ctx, deliveries: d, n: Targets(d), done: make(chan Result, 1), ordered: true}
		calls[gw] = c
		if l, free := p.queue(gw, c); free {
			go p.run(gw, addr, l, []*call{c})
		}
	}
	return func() map[string]Result {
		for gw, c := range calls {
			out[gw] = <-c.done
		}
		return out
	}
}

// queue appends c to gw's lane, unless c may start now: nothing queued
// before it and a request slot free (for an ordered call, every slot). Then
// it takes the slot and the caller sends c.
func (p *Pusher) queue(gw string, c *call) (l *lane, free bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l = p.lanes[gw]
	if l == nil {
		l = &lane{}
		p.lanes[gw] = l
	}
	if len(l.queue) > 0 || l.inFlight >= p.maxInFlight || (c.ordered && l.inFlight > 0) {
		// The requests in flight pick the queue up when they finish.
		l.queue = append(l.queue, c)
		return l, false
	}
	l.inFlight++
	return l, true
}

// PushOne sends one gateway its deliveries, possibly merged into one request
// with other pushes to that gateway, and waits for the outcome.
//
// A push outlives its caller: the uplink request that caused it may be
// cancelled (its gateway died mid-call) while the deliveries, already stored,
// still belong to users on healthy gateways. So PushOne ignores ctx's
// cancellation and waits for the answer; only ctx's values are kept. The wait
// is bounded by the timeout: at most one request ahead of this one (the
// queue is emptied each round), then its own, unless MaxBatch splits a long
// queue. Returning early instead would make a cancelled caller report a
// healthy gateway as failed.
func (p *Pusher) PushOne(ctx context.Context, gw string, deliveries []*cimpb.Delivery) Result {
	if len(deliveries) == 0 {
		return Result{}
	}
	addr, err := contract.ParseGatewayID(gw)
	if err != nil {
		p.log.Warn("push failed", "gateway", gw, "deliveries", len(deliveries), "err", err)
		return Result{Err: err}
	}
	c := &call{ctx: ctx, deliveries: deliveries, n: Targets(deliveries), done: make(chan Result, 1)}
	if l, free := p.queue(gw, c); free {
		// A free slot, so the queue is empty (a request always takes the
		// whole queue before giving up its slot): send now, on this
		// goroutine, so an unloaded gateway costs no extra goroutine or
		// wake-up.
		p.run(gw, addr, l, []*call{c})
	}
	return <-c.done
}

// run sends batch on one of l's slots, already counted in l.inFlight, and
// hands each call its Result. The slot is released first, so the next
// request starts sooner and a caller that got its Result finds no leftover
// lane.
func (p *Pusher) run(gw string, addr contract.GatewayAddr, l *lane, batch []*call) {
	results := p.send(gw, addr, batch)
	p.release(gw, addr, l)
	for i, c := range batch {
		c.done <- results[i]
	}
}

// release frees one of l's slots after its request finished. If pushes
// queued meanwhile, the free slots pass to new goroutines sending them (the
// current one may be a caller's, which must return) — a request with an
// ordered push only once no other is in flight; otherwise the slot is given
// back, and an idle lane is dropped. Deciding under p.mu closes the race with
// PushOne: a push either sees the slot still taken and queues where the next
// request finds it, or sees it free and sends itself.
func (p *Pusher) release(gw string, addr contract.GatewayAddr, l *lane) {
	p.mu.Lock()
	l.inFlight--
	var next [][]*call
	for l.inFlight < p.maxInFlight {
		b := l.take(p.maxBatch, l.inFlight == 0)
		if b == nil {
			break
		}
		l.inFlight++
		next = append(next, b)
	}
	if l.inFlight == 0 { // and so nothing queued
		delete(p.lanes, gw)
	}
	p.mu.Unlock()
	for _, b := range next {
		go p.run(gw, addr, l, b)
	}
}

// take removes the next request's calls from the front of the queue: all of
// them, in order, up to maxBatch deliveries, but at least one; with ordered
// false, none from the first ordered call on. It returns nil when there is
// nothing to take.
func (l *lane) take(maxBatch int, ordered bool) []*call {
	n, size := 0, 0
	for _, c := range l.queue {
		if (n > 0 && size+c.n > maxBatch) || (c.ordered && !ordered) {
			break
		}
		n++
		size += c.n
	}
	if n == 0 {
		return nil
	}
	batch := l.queue[:n:n]
	// A fresh array for the rest, so the queue does not keep the sent
	// calls (and their deliveries) reachable.
	l.queue = slices.Clone(l.queue[n:])
	return batch
}

// send POSTs the calls' deliveries as one PushBatch and splits the answer
// back into one Result per call. A failed request fails every call with the
// same error, logged once.
func (p *Pusher) send(gw string, addr contract.GatewayAddr, batch []*call) []Result {
	deliveries := batch[0].deliveries
	if len(batch) > 1 {
		n := 0
		for _, c := range batch {
			n += len(c.deliveries)
		}
		deliveries = make([]*cimpb.Delivery, 0, n)
		for _, c := range batch {
			deliveries = append(deliveries, c.deliveries...)
		}
	}
	out := make([]Result, len(batch))
	start := time.Now()
	var missing []uint32
	var err error
	l := p.local.Load()
	isLocal := l != nil && l.id == gw
	if isLocal {
		missing = missingIn(l.push(&cimpb.PushBatch{Deliveries: deliveries}), Targets(deliveries))
	} else {
		missing, err = p.post(batch[0].ctx, gw, addr, deliveries)
	}
	if p.obs != nil {
		n := 0
		for _, c := range batch {
			n += c.n
		}
		p.obs.Pushed(n, time.Since(start), isLocal, err)
	}
	if err != nil {
		p.log.Warn("push failed", "gateway", gw, "deliveries", len(deliveries), "pushes", len(batch), "err", err)
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	// missing is sorted: each call's indexes are the next run of it,
	// shifted by the call's offset into the merged batch.
	off, j := 0, 0
	for i, c := range batch {
		end := off + c.n
		var own []uint32
		for ; j < len(missing) && int(missing[j]) < end; j++ {
			own = append(own, missing[j]-uint32(off))
		}
		out[i] = Result{Delivered: uint32(c.n - len(own)), Missing: own}
		off = end
	}
	return out
}

// post sends one PushBatch and returns the indexes the gateway reports
// missing: sorted, unique, within deliveries.
func (p *Pusher) post(ctx context.Context, gw string, addr contract.GatewayAddr, deliveries []*cimpb.Delivery) ([]uint32, error) {
	body, err := proto.Marshal(&cimpb.PushBatch{Deliveries: deliveries})
	if err != nil {
		return nil, fmt.Errorf("fanout: marshal: %w", err)
	}
	// Not the caller's cancellation (see PushOne): only the push timeout
	// bounds the request.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.timeout)
	defer cancel()
	data, err := p.postStream(ctx, gw, body)
	if !errors.Is(err, errNoStream) {
		if err != nil {
			return nil, err
		}
		return missingOf(gw, data, Targets(deliveries))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, addr.HTTPBase()+contract.PathPush, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contract.ProtobufType)
	if p.secret != "" {
		req.Header.Set(contract.Header, p.secret)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err = io.ReadAll(io.LimitReader(resp.Body, maxResult))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: HTTP %d", ErrStatus, resp.StatusCode)
	}
	return missingOf(gw, data, Targets(deliveries))
}

// errNoStream: push over HTTP.
var errNoStream = errors.New("fanout: no stream")

// postStream pushes body over gw's stream. errNoStream means there is
// none, or it broke before the answer came: the gateway may have delivered
// some frames, and they go again over HTTP (clients drop a seq they have).
func (p *Pusher) postStream(ctx context.Context, gw string, body []byte) ([]byte, error) {
	c := p.streamTo(gw)
	if c == nil {
		return nil, errNoStream
	}
	data, err := c.Call(ctx, stream.KindPush, body)
	if errors.Is(err, stream.ErrClosed) {
		return nil, errNoStream
	}
	return data, err
}

// missingOf reads a PushResult for n deliveries.
func missingOf(gw string, data []byte, n int) ([]uint32, error) {
	var res cimpb.PushResult
	if err := proto.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("fanout: bad PushResult from %s: %w", gw, err)
	}
	return missingIn(&res, n), nil
}

// missingIn is res's missing indexes for n deliveries: sorted, unique,
// within them.
func missingIn(res *cimpb.PushResult, n int) []uint32 {
	// Trust but verify: an index outside the batch is ignored, and one
	// reported twice counts once (Delivered is derived from Missing).
	missing := res.Missing[:0]
	for _, i := range res.Missing {
		if int(i) < n {
			missing = append(missing, i)
		}
	}
	slices.Sort(missing)
	return slices.Compact(missing)
}

// Timeout reports whether err is a push that ran out of time: the gateway may
// be alive but slow, unlike a refused connection or an error status.
func Timeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
