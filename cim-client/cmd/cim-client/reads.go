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

// readMarker marks the private and group messages the terminal showed as
// read: shown collects them per sender (and group) without blocking the
// printing, and a goroutine sends one READ per peer and group for each
// burst.
type readMarker struct {
	c   *client.Client
	log *slog.Logger

	mu    sync.Mutex
	batch map[readKey][]string // msgIds
	peers []readKey            // in the order they first appeared

	wake chan struct{}
	quit chan bool // true: flush what is left first
	done chan struct{}
}

// readKey is whose messages, through which group ("" for private ones),
// one READ covers.
type readKey struct{ peer, group string }

func startReadMarker(c *client.Client, log *slog.Logger) *readMarker {
	r := &readMarker{c: c, log: log, batch: map[readKey][]string{}, wake: make(chan struct{}, 1), quit: make(chan bool), done: make(chan struct{})}
	go r.run()
	return r
}

// shown notes that m was printed. Only stored messages from others get
// read receipts, private or group; broadcasts are not stored, and a
// reaction is no message to read.
func (r *readMarker) shown(m *cimpb.Msg, me string) {
	if m.GetSeq() == 0 || m.GetBroadcast() || m.GetMsgId() == "" || m.GetFrom() == "" || m.GetFrom() == me ||
		m.GetOp() == cimpb.MsgOp_MSG_OP_REACT {
		return
	}
	k := readKey{peer: m.GetFrom(), group: m.GetGroup()}
	r.mu.Lock()
	if _, ok := r.batch[k]; !ok {
		r.peers = append(r.peers, k)
	}
	r.batch[k] = append(r.batch[k], m.GetMsgId())
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
	r.batch, r.peers = map[readKey][]string{}, nil
	r.mu.Unlock()
	for _, k := range peers {
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		var err error
		if k.group != "" {
			err = r.c.MarkGroupRead(ctx, k.group, k.peer, batch[k]...)
		} else {
			err = r.c.MarkRead(ctx, k.peer, batch[k]...)
		}
		if err != nil {
			r.log.Warn("marking messages read", "peer", k.peer, "group", k.group, "count", len(batch[k]), "err", err)
		}
		cancel()
	}
}
