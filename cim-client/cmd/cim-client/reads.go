package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/proto/cimpb"
)

// readDelay gathers the messages shown in a burst into one READ per peer.
const readDelay = 100 * time.Millisecond

// readTimeout bounds one flush of READs (MarkRead waits while the link is
// down).
const readTimeout = 5 * time.Second

// readMarker marks the private messages the terminal showed as read: shown
// collects them per sender without blocking the printing, and a goroutine
// sends one READ per peer for each burst.
type readMarker struct {
	c   *client.Client
	log *slog.Logger

	mu    sync.Mutex
	batch map[string][]string // peer → msgIds
	peers []string            // in the order they first appeared

	wake chan struct{}
	quit chan bool // true: flush what is left first
	done chan struct{}
}

func startReadMarker(c *client.Client, log *slog.Logger) *readMarker {
	r := &readMarker{c: c, log: log, batch: map[string][]string{}, wake: make(chan struct{}, 1), quit: make(chan bool), done: make(chan struct{})}
	go r.run()
	return r
}

// shown notes that m was printed. Only stored private messages from others
// get read receipts; broadcasts are not stored.
func (r *readMarker) shown(m *cimpb.Msg, me string) {
	if m.GetSeq() == 0 || m.GetBroadcast() || m.GetMsgId() == "" || m.GetFrom() == "" || m.GetFrom() == me {
		return
	}
	r.mu.Lock()
	if _, ok := r.batch[m.GetFrom()]; !ok {
		r.peers = append(r.peers, m.GetFrom())
	}
	r.batch[m.GetFrom()] = append(r.batch[m.GetFrom()], m.GetMsgId())
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// stop ends the goroutine, after sending what is left when flush is set.
func (r *readMarker) stop(flush bool) {
	r.quit <- flush
	<-r.done
}

func (r *readMarker) run() {
	defer close(r.done)
	for {
		select {
		case flush := <-r.quit:
			if flush {
				r.flush()
			}
			return
		case <-r.wake:
		}
		select {
		case flush := <-r.quit:
			if flush {
				r.flush()
			}
			return
		case <-time.After(readDelay):
		}
		r.flush()
	}
}

func (r *readMarker) flush() {
	r.mu.Lock()
	batch, peers := r.batch, r.peers
	r.batch, r.peers = map[string][]string{}, nil
	r.mu.Unlock()
	for _, peer := range peers {
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		if err := r.c.MarkRead(ctx, peer, batch[peer]...); err != nil {
			r.log.Warn("marking messages read", "peer", peer, "count", len(batch[peer]), "err", err)
		}
		cancel()
	}
}
