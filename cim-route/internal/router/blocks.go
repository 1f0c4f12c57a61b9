package router

import (
	"context"
	"fmt"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/proto/cimpb"
)

// MaxBlocks is how many users one user may block.
const MaxBlocks = 1000

// Blocks are the users each user blocked (blocks.go). A private message
// is not stored when its recipient blocked its sender, nor when its sender
// blocked its recipient (model.Append.From); both ways are checked in the
// recipient's inbox script, so they cost the message path no round trip.
type Blocks interface {
	// Block makes uid block peer (again: no change); errs.ErrQuotaExceeded,
	// nothing changed, when uid blocks max users.
	Block(ctx context.Context, uid, peer string, max int) error
	// Unblock undoes Block (not blocked: no change).
	Unblock(ctx context.Context, uid, peer string) error
	// BlockedUsers lists whom uid blocks, in id order.
	BlockedUsers(ctx context.Context, uid string) ([]string, error)
	// BlockBetween reports whether uid blocks peer
	// (model.BlockedByRecipient) or peer blocks uid (model.BlockedBySender).
	BlockBetween(ctx context.Context, uid, peer string) (model.Blocked, error)
	// BlockedBy reports, for each of peers, whether it blocks uid (one
	// read).
	BlockedBy(ctx context.Context, uid string, peers []string) ([]bool, error)
}

// blockedText answers a private message to a user its sender blocked.
const blockedText = "you blocked this user: unblock them to write to them"

// Block makes uid block user (an id or a name): user's private messages to
// uid, typing and invitations are no longer stored or shown to uid (the
// sender is answered SENT as before and never sees DELIVERED), and uid's
// private messages to user are refused until uid unblocks them. Group
// messages are not affected. errs.ErrBadAccount for an unknown user,
// errs.ErrBadArgument for uid itself, errs.ErrQuotaExceeded beyond
// MaxBlocks.
func (r *Router) Block(ctx context.Context, uid, user string) (User, error) {
	peer, err := r.blockPeer(ctx, uid, user)
	if err != nil {
		return User{}, err
	}
	if err := r.st.Block(ctx, uid, peer.ID, MaxBlocks); err != nil {
		return User{}, err
	}
	r.log.Debug("blocked", "user", uid, "peer", peer.ID)
	r.showPresence(ctx, peer.ID, uid, false)
	return peer, nil
}

// Unblock undoes Block.
func (r *Router) Unblock(ctx context.Context, uid, user string) (User, error) {
	peer, err := r.blockPeer(ctx, uid, user)
	if err != nil {
		return User{}, err
	}
	if err := r.st.Unblock(ctx, uid, peer.ID); err != nil {
		return User{}, err
	}
	r.showPresence(ctx, peer.ID, uid, true)
	return peer, nil
}

// Blocked lists the users uid blocks, in id order (an account deleted
// since is left out).
func (r *Router) Blocked(ctx context.Context, uid string) ([]User, error) {
	if err := checkUserID("userId", uid); err != nil {
		return nil, err
	}
	ids, err := r.st.BlockedUsers(ctx, uid)
	if err != nil {
		return nil, err
	}
	names, err := r.userNames(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]User, 0, len(ids))
	for _, id := range ids {
		if n, ok := names[id]; ok {
			out = append(out, User{ID: id, Name: n})
		}
	}
	return out, nil
}

func (r *Router) blockPeer(ctx context.Context, uid, user string) (User, error) {
	if err := checkUserID("userId", uid); err != nil {
		return User{}, err
	}
	if user == "" {
		return User{}, fmt.Errorf("%w: user (an id or a name) is required", errs.ErrBadArgument)
	}
	id, err := r.resolveUser(ctx, user)
	switch {
	case err != nil:
		return User{}, err
	case id == uid:
		return User{}, fmt.Errorf("%w: you cannot block yourself", errs.ErrBadArgument)
	case id == SystemUserID:
		return User{}, fmt.Errorf("%w: %q is the system, not a user", errs.ErrBadArgument, user)
	}
	names, err := r.userNames(ctx, []string{id})
	if err != nil {
		return User{}, err
	}
	return User{ID: id, Name: names[id]}, nil
}

// hideBlockers drops from uids the users who blocked viewer: whoever
// blocked you does not show you when they are online.
func (r *Router) hideBlockers(ctx context.Context, viewer string, uids []string) ([]string, error) {
	shown, _, err := r.splitBlockers(ctx, viewer, uids)
	return shown, err
}

// splitBlockers splits uids into those shown to viewer and those who
// blocked viewer, each in the order given.
func (r *Router) splitBlockers(ctx context.Context, viewer string, uids []string) (shown, hidden []string, err error) {
	if viewer == "" || len(uids) == 0 {
		return uids, nil, nil
	}
	by, err := r.st.BlockedBy(ctx, viewer, uids)
	if err != nil {
		return nil, nil, err
	}
	shown = uids[:0:0]
	for i, id := range uids {
		if by[i] {
			hidden = append(hidden, id)
		} else {
			shown = append(shown, id)
		}
	}
	return shown, hidden, nil
}

// showPresence tells the gateways of viewer's online sessions to show
// them user's presence again (shown: user unblocked viewer) or to stop
// (user blocked viewer), for subscriptions made before, and gives those
// sessions user's state as of now: offline while hidden. It runs within
// the request, so that a block and an unblock right after reach the
// gateways in order; a failure is logged (the block itself holds, and the
// next subscription is right).
func (r *Router) showPresence(ctx context.Context, viewer, user string, shown bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), presenceTimeout)
	defer cancel()
	if err := r.pushWatch(ctx, viewer, user, shown); err != nil {
		r.log.Debug("presence change not pushed", "user", viewer, "peer", user, "shown", shown, "err", err)
	}
}

func (r *Router) pushWatch(ctx context.Context, viewer, user string, shown bool) error {
	routes, err := r.st.Routes(ctx, []string{viewer})
	if err != nil {
		return err
	}
	batches := map[string][]*cimpb.Delivery{}
	for _, rt := range routes[viewer].Sessions() {
		if rt.Online() && r.gw.Live(rt.Gateway) {
			batches[rt.Gateway] = append(batches[rt.Gateway], &cimpb.Delivery{UserId: viewer, SessionId: rt.Session})
		}
	}
	if len(batches) == 0 {
		return nil
	}
	states, err := r.presenceOf(ctx, []string{user})
	if err != nil {
		return err
	}
	st := states[0]
	// Newer than any state the sessions hold of user: the change is now.
	st.AtMs = r.now().UnixMilli()
	p := &cimpb.Presence{States: states}
	if shown {
		p.Rewatch = []string{user}
	} else {
		st.Online, st.Platform = false, ""
		p.Unwatch = []string{user}
	}
	f := &cimpb.Frame{Type: cimpb.Type_PRESENCE, Presence: p}
	for _, ds := range batches {
		for _, d := range ds {
			d.Frame = f
		}
	}
	r.push.Push(ctx, batches)
	return nil
}
