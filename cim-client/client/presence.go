package client

import (
	"context"
	"errors"
	"slices"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
)

// presence is the client's presence subscription and what it learned of the
// watched users.
type presence struct {
	mu     sync.Mutex
	sub    *cimpb.Subscribe // the subscription in force; nil: none
	states map[string]*cimpb.PresenceState
	req    uint64 // the last req_id handed out
	// waiting: Subscribe calls waiting for their answer, by req_id.
	waiting map[uint64]chan subAnswer
}

type subAnswer struct {
	states []*cimpb.PresenceState
	err    error
}

// subscribeReqBase keeps SUBSCRIBE req_ids apart from the LOGIN's.
const subscribeReqBase = 1 << 40

// Subscribe watches the presence of users (ids or names) and of the members
// of groups (the client must be a member of each), replacing the previous
// subscription; with neither it ends it. It returns the current state of
// every watched user (groups' members after the users, the client itself
// left out of groups). Changes then come as EventPresence. The client
// subscribes again after each reconnect (the snapshot comes as an
// EventPresence with Snapshot set). A refused subscription (unknown user,
// not a member of a group, more users than the cluster's limit) returns a
// *GatewayError and leaves the previous one in force.
func (c *Client) Subscribe(ctx context.Context, users, groups []string) ([]*cimpb.PresenceState, error) {
	sub := &cimpb.Subscribe{Users: slices.Clone(users), Groups: slices.Clone(groups)}
	p := &c.pres
	p.mu.Lock()
	p.req++
	req := subscribeReqBase + p.req
	prev := p.sub
	p.sub = sub
	ch := make(chan subAnswer, 1)
	if p.waiting == nil {
		p.waiting = map[uint64]chan subAnswer{}
	}
	p.waiting[req] = ch
	p.mu.Unlock()
	forget := func(restore bool) {
		p.mu.Lock()
		delete(p.waiting, req)
		if restore && p.sub == sub {
			p.sub = prev
		}
		p.mu.Unlock()
	}
	b, err := codec.Encode(&cimpb.Frame{Type: cimpb.Type_SUBSCRIBE, ReqId: req, Subscribe: sub})
	if err != nil {
		forget(true)
		return nil, err
	}
	if err := c.write(ctx, b); err != nil {
		forget(true)
		return nil, err
	}
	select {
	case a := <-ch:
		forget(a.err != nil)
		return a.states, a.err
	case <-ctx.Done():
		forget(false) // it may still be answered: the gateway keeps it
		return nil, ctx.Err()
	case <-c.life.Done():
		forget(false)
		return nil, ErrClosed
	}
}

// PresenceOf returns the latest state the client learned of a watched user
// (by id).
func (c *Client) PresenceOf(userID string) (*cimpb.PresenceState, bool) {
	p := &c.pres
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.states[userID]
	if !ok {
		return nil, false
	}
	return proto.Clone(s).(*cimpb.PresenceState), true
}

// resubscribe sends the subscription in force on a new link (its answer is
// a snapshot event).
func (c *Client) resubscribe(l *link) {
	p := &c.pres
	p.mu.Lock()
	sub := p.sub
	p.req++
	req := subscribeReqBase + p.req
	p.mu.Unlock()
	if sub == nil || len(sub.Users)+len(sub.Groups) == 0 {
		return
	}
	c.writeOn(l, &cimpb.Frame{Type: cimpb.Type_SUBSCRIBE, ReqId: req, Subscribe: sub})
}

// apply takes a PRESENCE frame in and returns the event to report, if any:
// a snapshot replaces what the client knew; a change is kept (and reported)
// for watched users only, and only when it is not older than what the
// client has.
func (p *presence) apply(f *cimpb.Frame) (Event, bool) {
	pr := f.GetPresence()
	if pr == nil {
		return Event{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr.Snapshot {
		p.states = make(map[string]*cimpb.PresenceState, len(pr.States))
		for _, s := range pr.States {
			p.states[s.UserId] = s
		}
		if ch := p.waiting[f.ReqId]; ch != nil {
			ch <- subAnswer{states: pr.States}
			delete(p.waiting, f.ReqId)
		}
		return Event{Kind: EventPresence, Presence: pr}, true
	}
	var kept []*cimpb.PresenceState
	for _, s := range pr.States {
		old, watched := p.states[s.GetUserId()]
		if !watched || old.GetAtMs() > s.GetAtMs() {
			continue
		}
		p.states[s.UserId] = s
		kept = append(kept, s)
	}
	if len(kept) == 0 {
		return Event{}, false
	}
	return Event{Kind: EventPresence, Presence: &cimpb.Presence{States: kept}}, true
}

// refused hands an ERROR answering a Subscribe to its caller and reports
// whether it did.
func (p *presence) refused(req uint64, err *GatewayError) bool {
	if req < subscribeReqBase {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := p.waiting[req]
	if ch == nil {
		return false
	}
	ch <- subAnswer{err: err}
	delete(p.waiting, req)
	return true
}

// ErrNoTypingTarget: Typing needs a user, TypingInGroup a group.
var ErrNoTypingTarget = errors.New("client: typing needs a user or a group")

// Typing tells a user (id or name) that we are typing (stopped: that we
// stopped). It is live only: nothing is stored, and a recipient offline
// misses it. The gateway drops indicators over its rate limit, so a caller
// sends one when typing starts and at most every few seconds after.
func (c *Client) Typing(ctx context.Context, to string, stopped bool) error {
	if to == "" {
		return ErrNoTypingTarget
	}
	return c.sendTyping(ctx, &cimpb.Typing{To: to, Stopped: stopped})
}

// TypingInGroup is Typing to a group's online members (groups of at most a
// couple of hundred members; larger ones get none).
func (c *Client) TypingInGroup(ctx context.Context, gid string, stopped bool) error {
	if gid == "" {
		return ErrNoTypingTarget
	}
	return c.sendTyping(ctx, &cimpb.Typing{Group: gid, Stopped: stopped})
}

func (c *Client) sendTyping(ctx context.Context, t *cimpb.Typing) error {
	b, err := codec.Encode(&cimpb.Frame{Type: cimpb.Type_TYPING, Typing: t})
	if err != nil {
		return err
	}
	return c.write(ctx, b)
}
