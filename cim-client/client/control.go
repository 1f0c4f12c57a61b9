package client

import (
	"time"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
)

// control runs the client's timers and writes the frames nobody waits for:
// SYNC requests from the reader, SYNCs asked again after SyncTimeout,
// batched ACKs, resends of unanswered MSGs and their final errors. It lives
// from Start to Close. The reader only records what it wants and pokes, so
// it never blocks on a write.
func (c *Client) control() {
	defer c.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		if next := c.controlStep(time.Now()); next.IsZero() {
			t.Stop()
		} else {
			t.Reset(time.Until(next))
		}
		select {
		case <-c.life.Done():
			return
		case <-c.wake:
		case <-t.C:
		}
	}
}

// controlStep does what is due at now and returns when to come back (zero:
// when poked).
func (c *Client) controlStep(now time.Time) time.Time {
	c.mu.Lock()
	cur, open, want := c.cur, c.open, c.syncOn
	c.syncOn = nil
	c.mu.Unlock()

	var next time.Time
	soonest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}

	// SYNC: a request for an old link is moot; the new link's login synced.
	again, at := c.inbox.expire(now, c.cfg.SyncTimeout)
	soonest(at)
	if cur != nil && (want == cur || again) {
		if again {
			c.log.Debug("SYNC unanswered, asking again", "after", c.inbox.lastSeq())
		}
		last, lastTS := c.inbox.position()
		c.writeOn(cur, &cimpb.Frame{Type: cimpb.Type_SYNC, Sync: &cimpb.Sync{AfterSeq: last, AfterTsMs: lastTS}})
	}

	// ACK: stays due while there is no link; a new link pokes.
	if seq, ok, at := c.acks.due(now); !ok {
		soonest(at)
	} else if cur != nil && c.writeOn(cur, &cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: seq}}) {
		c.acks.sent(seq, time.Now())
		_, _, at = c.acks.due(time.Now())
		soonest(at)
	}

	// Group timelines: their SYNCs and ACKs, on the current link.
	if cur != nil {
		frames, at := c.tl.syncs(now, c.cfg.SyncTimeout)
		soonest(at)
		for _, f := range frames {
			c.writeOn(cur, f)
		}
		gs, at := c.tl.dueAcks(now, false)
		soonest(at)
		if len(gs) > 0 && c.writeOn(cur, &cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Groups: gs}}) {
			c.tl.acked(gs, time.Now())
			_, at = c.tl.dueAcks(time.Now(), false)
			soonest(at)
		}
	}

	// Resends: only on a link open for sends, after the new link's replay;
	// opening a link pokes.
	resends, failed, at := c.out.expire(now)
	soonest(at)
	for _, r := range resends {
		if cur == nil || !open {
			break
		}
		if cur.send(c.life, r.frame) != nil {
			break
		}
		c.log.Debug("resending an unanswered message", "client_msg_id", r.rec.ClientMsgID)
		_, at := c.out.wrote(r.rec, time.Now())
		soonest(at)
	}
	for _, e := range failed {
		c.log.Info("giving up on a message", "client_msg_id", e.GetClientMsgId(), "reason", e.GetText())
		c.emit(Event{Kind: EventError, Err: e, Gateway: gatewayOf(cur)})
	}
	return next
}

func gatewayOf(l *link) string {
	if l == nil {
		return ""
	}
	return l.gateway
}

// writeOn writes one frame on l, reporting success.
func (c *Client) writeOn(l *link, f *cimpb.Frame) bool {
	b, err := codec.Encode(f)
	if err != nil {
		c.log.Error("encoding a frame", "type", f.GetType(), "err", err)
		return false
	}
	return l.send(c.life, b) == nil
}

// replay writes on a new link, in their order, the messages still waiting
// for an answer that an earlier link carried, and acknowledges again what
// was shown before l (seq, when not yet acknowledged: the last ACK may have
// died with the old link). New sends wait until it is done, so they cannot
// overtake the replay.
func (c *Client) replay(l *link, seq uint64) {
	for _, r := range c.out.replay() {
		if l.send(c.life, r.frame) != nil {
			return
		}
		c.out.wrote(r.rec, time.Now())
	}
	if seq > 0 && seq > c.acks.last() && c.writeOn(l, &cimpb.Frame{Type: cimpb.Type_ACK, Ack: &cimpb.Ack{Seq: seq}}) {
		c.acks.sent(seq, time.Now())
	}
}
