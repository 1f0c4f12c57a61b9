// Package fanout delivers frames to gateways: one protobuf PushBatch POSTed to
// each gateway's /push, all gateways in parallel, on one shared keep-alive
// HTTP client. A dead or slow gateway (bounded by the push timeout) fails on
// its own and never holds up or aborts the others.
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
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-route/internal/gateway"
	"github.com/gocim/gocim/proto/cimpb"
)

// ContentType is the media type of PushBatch / PushResult bodies.
const ContentType = "application/x-protobuf"

// maxResult bounds a PushResult body: a few bytes per missing index.
const maxResult = 8 << 20

// SecretHeader carries the internal secret on every route ⇄ gateway call.
const SecretHeader = "X-CIM-Internal"

// ErrStatus means the gateway answered /push with a non-200 status.
var ErrStatus = errors.New("fanout: gateway refused the push")

// Config configures a Pusher.
type Config struct {
	Timeout time.Duration // per gateway call; default 3s
	// MaxConnsPerGateway bounds idle keep-alive connections kept per gateway;
	// default 64 (route replicas push to each gateway from many requests).
	MaxConnsPerGateway int
	// Secret is sent as X-CIM-Internal (the current --internal-secret);
	// gateways refuse pushes without it.
	Secret string
	Logger *slog.Logger
}

// Pusher calls the gateways' /push.
type Pusher struct {
	client  *http.Client
	timeout time.Duration
	secret  string
	log     *slog.Logger
}

// Result is the outcome of one gateway's push.
type Result struct {
	Delivered uint32
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
	return &Pusher{client: &http.Client{Transport: tr}, timeout: cfg.Timeout, secret: cfg.Secret,
		log: cfg.Logger.With("component", "fanout")}
}

// Close drops idle connections.
func (p *Pusher) Close() { p.client.CloseIdleConnections() }

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

// PushOne sends one gateway its deliveries.
func (p *Pusher) PushOne(ctx context.Context, gw string, deliveries []*cimpb.Delivery) Result {
	if len(deliveries) == 0 {
		return Result{}
	}
	r := p.push(ctx, gw, deliveries)
	if r.Err != nil {
		p.log.Warn("push failed", "gateway", gw, "deliveries", len(deliveries), "err", r.Err)
	}
	return r
}

func (p *Pusher) push(ctx context.Context, gw string, deliveries []*cimpb.Delivery) Result {
	addr, err := gateway.Parse(gw)
	if err != nil {
		return Result{Err: err}
	}
	body, err := proto.Marshal(&cimpb.PushBatch{Deliveries: deliveries})
	if err != nil {
		return Result{Err: fmt.Errorf("fanout: marshal: %w", err)}
	}
	// A push outlives its caller: the uplink request that caused it may be
	// cancelled (its gateway died mid-call) while the deliveries, already
	// stored, still belong to users on healthy gateways. Only the push
	// timeout bounds it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, addr.HTTPBase()+"/push", bytes.NewReader(body))
	if err != nil {
		return Result{Err: err}
	}
	req.Header.Set("Content-Type", ContentType)
	if p.secret != "" {
		req.Header.Set(SecretHeader, p.secret)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return Result{Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResult))
	if err != nil {
		return Result{Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return Result{Err: fmt.Errorf("%w: HTTP %d", ErrStatus, resp.StatusCode)}
	}
	var res cimpb.PushResult
	if err := proto.Unmarshal(data, &res); err != nil {
		return Result{Err: fmt.Errorf("fanout: bad PushResult from %s: %w", gw, err)}
	}
	// Trust but verify: an index outside the batch is ignored.
	missing := res.Missing[:0]
	for _, i := range res.Missing {
		if int(i) < len(deliveries) {
			missing = append(missing, i)
		}
	}
	return Result{Delivered: res.Delivered, Missing: missing}
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
