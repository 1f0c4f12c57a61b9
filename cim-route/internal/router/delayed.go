package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/proto/cimpb"
)

// Bounds of delayed messages (POST /delay, the terminal's :delay).
const (
	MinDelay = time.Second
	MaxDelay = 7 * 24 * time.Hour
	// DefaultDelayPending is how many delayed messages one user may have
	// waiting at once.
	DefaultDelayPending = 100
)

// Delayed message sending: the scheduler claims due messages this often, a
// batch at a time, each claimed for delayLease (after which another
// replica, or this one, sends it again if it was not confirmed sent).
const (
	delayPoll  = 500 * time.Millisecond
	delayBatch = 100
	delayLease = 30 * time.Second
)

// DelayedMsg is a message scheduled with Delay.
type DelayedMsg = model.DelayedMsg

// Delay keeps a text message from one user to another (id or name) and
// sends it after d, through the same path as P2P: stored in the
// recipient's inbox, pushed if online. The recipient must exist now; d is
// between MinDelay and MaxDelay; a user has at most
// Config.DelayPending messages waiting (errs.ErrQuotaExceeded).
func (r *Router) Delay(ctx context.Context, from, to, text string, d time.Duration) (DelayedMsg, error) {
	if err := checkUserID("userId", from); err != nil {
		return DelayedMsg{}, err
	}
	if to == "" {
		return DelayedMsg{}, fmt.Errorf("%w: to is required", errs.ErrBadArgument)
	}
	if err := checkText(text); err != nil {
		return DelayedMsg{}, err
	}
	if d < MinDelay || d > MaxDelay {
		return DelayedMsg{}, fmt.Errorf("%w: the delay must be %v to %v", errs.ErrBadArgument, MinDelay, MaxDelay)
	}
	toID, err := r.resolveUser(ctx, to)
	if err != nil {
		return DelayedMsg{}, err
	}
	m := DelayedMsg{From: from, To: toID, Text: text, Due: r.now().Add(d).Truncate(time.Millisecond)}
	return r.st.ScheduleMessage(ctx, m, r.cfg.DelayPending)
}

// RunDelayed sends delayed messages as they fall due, until ctx ends. Any
// number of route replicas may run it: each message is claimed by one.
func (r *Router) RunDelayed(ctx context.Context) {
	t := time.NewTicker(delayPoll)
	defer t.Stop()
	for {
		for r.sendDue(ctx) == delayBatch && ctx.Err() == nil {
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sendDue sends one batch of due messages and returns how many it claimed.
func (r *Router) sendDue(ctx context.Context) int {
	due, err := r.st.ClaimDueMessages(ctx, r.now(), delayBatch, delayLease)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("reading delayed messages", "err", err)
		}
		return 0
	}
	var done []DelayedMsg
	for _, m := range due {
		err := r.sendDelayed(ctx, m)
		switch {
		case err == nil:
		case errors.Is(err, errs.ErrUnavailable):
			continue // claimed for delayLease: tried again after it
		default:
			// It can never go (the sender or recipient is gone): drop it.
			r.log.Warn("delayed message dropped", "id", m.ID, "from", m.From, "to", m.To, "err", err)
		}
		done = append(done, m)
	}
	if err := r.st.DelayedSent(context.WithoutCancel(ctx), done); err != nil {
		r.log.Warn("forgetting sent delayed messages", "count", len(done), "err", err)
	}
	return len(due)
}

// sendDelayed sends m as P2P does; its client message id is derived from
// m's id, so that a second send (a lease ran out after the first got
// through) is recognized as a resend and stored once.
func (r *Router) sendDelayed(ctx context.Context, m DelayedMsg) error {
	j := r.newJob()
	it := &outgoing{from: m.From, unshared: true, msg: &cimpb.Msg{To: m.To, Body: []byte(m.Text), Kind: cimpb.Kind_KIND_TEXT,
		ClientMsgId: "delay-" + m.ID}}
	j.msgs = []*outgoing{it}
	if err := j.run(ctx); err != nil {
		return err
	}
	return it.err()
}
