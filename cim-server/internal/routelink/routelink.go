// Package routelink holds the streams the route replicas open to this
// gateway (package stream, started on the gateway's /push) and carries the
// gateway's side of them: pushes in, uplink batches out.
//
// Uplinks go over a live stream, one replica's after another's in turn;
// with none up, or when one breaks or times out mid-call, the batch goes
// over the route's HTTP API instead (the Fallback, with its retries). A
// batch sent twice that way is harmless: the route recognizes resent
// messages, ACK and READ are idempotent, a SYNC is a read. Links is safe for
// concurrent use.
package routelink

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/stream"
	"github.com/gocim/gocim/proto/cimpb"
)

// Pusher delivers pushed frames to this gateway's connections, given a
// PushBatch's bytes; an error means they are no PushBatch.
type Pusher interface {
	PushWire(body []byte) (*cimpb.PushResult, error)
}

// Fallback sends an uplink batch without a stream (routeclient.Client).
type Fallback interface {
	Uplink(ctx context.Context, b *cimpb.UplinkBatch) (*cimpb.PushBatch, error)
}

// Config configures Links. Zero values take the defaults.
type Config struct {
	// CallTimeout bounds one uplink call on a stream before the batch
	// takes the fallback (default 10s).
	CallTimeout time.Duration
	Stream      stream.Config
	Logger      *slog.Logger
}

// Links is the gateway's set of route streams.
type Links struct {
	push     Pusher
	fallback Fallback
	timeout  time.Duration
	scfg     stream.Config
	log      *slog.Logger

	mu     sync.Mutex
	conns  []*stream.Conn
	next   int
	closed bool
	wg     sync.WaitGroup
}

// New returns Links delivering pushes to p and falling back to fb.
func New(p Pusher, fb Fallback, cfg Config) *Links {
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Stream.Logger = cfg.Logger
	return &Links{push: p, fallback: fb, timeout: cfg.CallTimeout, scfg: cfg.Stream, log: cfg.Logger.With("component", "routelink")}
}

// ServeStream runs a stream a route opened on /push (after stream.Hijack)
// until it ends or Close.
func (l *Links) ServeStream(nc net.Conn, br *bufio.Reader) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		nc.Close()
		return
	}
	c := stream.New(nc, br, l.handle, l.scfg)
	l.conns = append(l.conns, c)
	l.wg.Add(1)
	l.mu.Unlock()
	l.log.Info("route stream up", "route", nc.RemoteAddr().String())
	go func() {
		defer l.wg.Done()
		<-c.Done()
		l.remove(c)
		c.Close()
	}()
}

func (l *Links) remove(c *stream.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, x := range l.conns {
		if x == c {
			l.conns = append(l.conns[:i], l.conns[i+1:]...)
			return
		}
	}
}

// Len is the number of live streams.
func (l *Links) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// handle answers a route's request: pushes only.
func (l *Links) handle(_ context.Context, kind stream.Kind, p []byte) ([]byte, error) {
	if kind != stream.KindPush {
		return nil, stream.Reject(fmt.Errorf("a gateway takes pushes only, not kind %d", kind))
	}
	res, err := l.push.PushWire(p)
	if err != nil {
		return nil, stream.Reject(err)
	}
	return proto.Marshal(res)
}

// pick returns the next live stream in turn, nil with none.
func (l *Links) pick() *stream.Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) == 0 {
		return nil
	}
	l.next = (l.next + 1) % len(l.conns)
	return l.conns[l.next]
}

// Uplink sends one batch and returns the frames for its senders: over a
// stream when one is up, else (or when it fails on the way) over the
// fallback.
func (l *Links) Uplink(ctx context.Context, b *cimpb.UplinkBatch) (*cimpb.PushBatch, error) {
	if c := l.pick(); c != nil {
		out, err := l.call(ctx, c, b)
		if err == nil {
			return out, nil
		}
		if errors.Is(err, contract.ErrRejected) || ctx.Err() != nil {
			return nil, err
		}
		l.log.Warn("uplink over the route stream failed; sending over HTTP", "uplinks", len(b.Uplinks), "err", err)
	}
	return l.fallback.Uplink(ctx, b)
}

func (l *Links) call(ctx context.Context, c *stream.Conn, b *cimpb.UplinkBatch) (*cimpb.PushBatch, error) {
	body, err := proto.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode uplink batch: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	data, err := c.Call(cctx, stream.KindUplink, body)
	if err != nil {
		var re *stream.RemoteError
		if errors.As(err, &re) && re.Rejected {
			return nil, fmt.Errorf("%w: %v", contract.ErrRejected, err)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %v", contract.ErrUnavailable, err)
		}
		return nil, err
	}
	out := &cimpb.PushBatch{}
	if err := proto.Unmarshal(data, out); err != nil {
		return nil, fmt.Errorf("%w: uplink answer is not a PushBatch: %v", contract.ErrRejected, err)
	}
	return out, nil
}

// Close ends every stream and refuses new ones; uplinks take the fallback
// from then on.
func (l *Links) Close() {
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	l.wg.Wait()
}
