package fanout

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gocim/gocim/internal/backoff"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/stream"
)

// A Pusher keeps one stream (package stream) open to every gateway it is
// told about (SetGateways), opened on the gateway's /push with the internal
// secret. Pushes go over it when it is up and over a POST otherwise; the
// gateway sends its uplink batches back on the same stream, answered by the
// handler given to Serve. A stream that breaks is dialled again with
// backoff while its gateway stays listed.

// link is the stream to one gateway.
type link struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	conn   *stream.Conn // nil while down
}

func (l *link) get() *stream.Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn
}

func (l *link) set(c *stream.Conn) {
	l.mu.Lock()
	l.conn = c
	l.mu.Unlock()
}

// Serve sets the handler of the gateways' requests on the streams; call it
// before SetGateways. Without one, streams carry pushes only and gateways
// send their uplinks over HTTP.
func (p *Pusher) Serve(h stream.Handler) {
	p.mu.Lock()
	p.handler = h
	p.mu.Unlock()
}

// SetGateways keeps a stream open to each of gws (gateway ids) and closes
// the others'.
func (p *Pusher) SetGateways(gws []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.noStreams {
		return
	}
	keep := make(map[string]bool, len(gws))
	for _, gw := range gws {
		keep[gw] = true
		if p.links[gw] != nil {
			continue
		}
		addr, err := contract.ParseGatewayID(gw)
		if err != nil {
			continue // pushes to it fail on their own
		}
		ctx, cancel := context.WithCancel(context.Background())
		l := &link{cancel: cancel}
		p.links[gw] = l
		p.wg.Go(func() { p.keep(ctx, gw, addr, l, p.handler) })
	}
	for gw, l := range p.links {
		if !keep[gw] {
			l.cancel()
			delete(p.links, gw)
		}
	}
}

// keep dials gw's stream and dials it again whenever it ends, until ctx
// ends.
func (p *Pusher) keep(ctx context.Context, gw string, addr contract.GatewayAddr, l *link, h stream.Handler) {
	hostPort := net.JoinHostPort(addr.Host, strconv.Itoa(addr.HTTPPort))
	header := http.Header{}
	if p.secret != "" {
		header.Set(contract.Header, p.secret)
	}
	bo := backoff.New(100*time.Millisecond, 5*time.Second, backoff.Equal)
	failures := 0
	for {
		dctx, cancel := context.WithTimeout(ctx, p.timeout)
		c, err := stream.Dial(dctx, hostPort, contract.PathPush, header, h, stream.Config{Logger: p.log})
		cancel()
		if err == nil {
			failures = 0
			bo.Reset()
			p.log.Info("gateway stream up", "gateway", gw)
			l.set(c)
			select {
			case <-c.Done():
			case <-ctx.Done():
			}
			l.set(nil)
			c.Close()
			if ctx.Err() != nil {
				return
			}
			p.log.Warn("gateway stream ended; dialling again", "gateway", gw, "err", c.Err())
		} else if ctx.Err() != nil {
			return
		} else {
			failures++
			if failures == 1 || failures%20 == 0 {
				p.log.Warn("cannot open a stream to the gateway; pushing over HTTP", "gateway", gw, "attempts", failures, "err", err)
			}
		}
		t := time.NewTimer(bo.Next())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// streamTo returns gw's live stream, nil when there is none.
func (p *Pusher) streamTo(gw string) *stream.Conn {
	p.mu.Lock()
	l := p.links[gw]
	p.mu.Unlock()
	if l == nil {
		return nil
	}
	return l.get()
}

// Streams is the number of streams up.
func (p *Pusher) Streams() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.links {
		if l.get() != nil {
			n++
		}
	}
	return n
}

// Drain refuses the gateways' new requests on every stream (they take
// HTTP, to another route replica) and waits until the ones being handled
// are answered or ctx ends. Pushes keep using the streams.
func (p *Pusher) Drain(ctx context.Context) error {
	p.mu.Lock()
	var conns []*stream.Conn
	for _, l := range p.links {
		if c := l.get(); c != nil {
			conns = append(conns, c)
		}
	}
	p.mu.Unlock()
	var errs []error
	for _, c := range conns {
		if err := c.Drain(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
