package router

// Mutes (docs/ARCHITECTURE.md, "Mutes"): a user mutes a conversation, a
// peer or a group, for a while or until it unmutes. Messages still come
// and are stored as ever; what changes is who is told loudly: the user's
// clients read the list (GET /mutes) to notify less, and the message
// webhooks mark the recipients who muted the conversation (Message.Muted,
// MutedRecipients), so that an app back-end pushes to phones only where
// wanted (a mention may still be worth it: Mentions).

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// MaxMutes bounds the conversations one user has muted at once.
const MaxMutes = 1000

// MaxMuteFor is the longest mute with an end; longer ones have none.
const MaxMuteFor = 366 * 24 * time.Hour

// Mutes are the conversations users muted (model.MutePeer,
// model.MuteGroup), each until a time or until unmuted.
type Mutes interface {
	// SetMute records that uid muted target until (unix ms; 0: until
	// unmuted), dropping uid's expired mutes (now) first, or that it
	// unmuted target (until < 0); errs.ErrQuotaExceeded, nothing changed,
	// when uid would have more than max.
	SetMute(ctx context.Context, uid, target string, until, now int64, max int) error
	// Mutes reads uid's mutes, target → until (expired ones included).
	Mutes(ctx context.Context, uid string) (map[string]int64, error)
	// MutedUntil reads, in one round trip, until when each ref's user
	// muted its target: -1 when not, 0 for no end (expired ones included).
	MutedUntil(ctx context.Context, refs []model.MuteRef) ([]int64, error)
}

// Mute is one muted conversation: with User, or in Group; UntilMs 0 until
// unmuted.
type Mute struct {
	User    User
	Group   string
	UntilMs int64
}

// mutedNow reports whether a mute until until (MutedUntil) holds at now.
func mutedNow(until int64, now time.Time) bool {
	return until == 0 || until > now.UnixMilli()
}

// Mute makes uid mute its conversation with user (an id or a name) or in
// group gid (one of them), for d (0: until unmuted; beyond MaxMuteFor: no
// end either). errs.ErrBadAccount for an unknown user, errs.ErrForbidden
// for a group uid is not in, errs.ErrQuotaExceeded beyond MaxMutes.
func (r *Router) Mute(ctx context.Context, uid, user, gid string, d time.Duration) (Mute, error) {
	m, target, err := r.muteTarget(ctx, uid, user, gid)
	if err != nil {
		return Mute{}, err
	}
	if d < 0 {
		return Mute{}, fmt.Errorf("%w: a mute lasts 0 (until unmuted) or more", errs.ErrBadArgument)
	}
	now := r.now()
	if d > 0 && d <= MaxMuteFor {
		m.UntilMs = now.Add(d).UnixMilli()
	}
	if err := r.st.SetMute(ctx, uid, target, m.UntilMs, now.UnixMilli(), MaxMutes); err != nil {
		return Mute{}, err
	}
	return m, nil
}

// Unmute undoes Mute (not muted: no change).
func (r *Router) Unmute(ctx context.Context, uid, user, gid string) (Mute, error) {
	m, target, err := r.muteTarget(ctx, uid, user, gid)
	if err != nil {
		return Mute{}, err
	}
	return m, r.st.SetMute(ctx, uid, target, -1, 0, MaxMutes)
}

// Muted lists uid's mutes in force: users in id order, then groups in id
// order (an account deleted since is left out).
func (r *Router) Muted(ctx context.Context, uid string) ([]Mute, error) {
	if err := checkUserID("userId", uid); err != nil {
		return nil, err
	}
	all, err := r.st.Mutes(ctx, uid)
	if err != nil {
		return nil, err
	}
	now := r.now()
	var ids []string
	var out []Mute
	for t, until := range all {
		if !mutedNow(until, now) {
			continue
		}
		if id, ok := strings.CutPrefix(t, "u"); ok {
			ids = append(ids, id)
			out = append(out, Mute{User: User{ID: id}, UntilMs: until})
		} else if gid, ok := strings.CutPrefix(t, "g"); ok {
			out = append(out, Mute{Group: gid, UntilMs: until})
		}
	}
	names, err := r.userNames(ctx, ids)
	if err != nil {
		return nil, err
	}
	kept := out[:0]
	for _, m := range out {
		if m.Group == "" {
			n, ok := names[m.User.ID]
			if !ok {
				continue
			}
			m.User.Name = n
		}
		kept = append(kept, m)
	}
	out = kept
	slices.SortFunc(out, func(a, b Mute) int {
		switch {
		case a.Group == "" && b.Group == "":
			return model.CompareIDs(a.User.ID, b.User.ID)
		case a.Group != "" && b.Group != "":
			return model.CompareIDs(a.Group, b.Group)
		case a.Group == "":
			return -1
		}
		return 1
	})
	return out, nil
}

// muteTarget checks a mute's conversation: a user other than uid, or a
// group uid is in.
func (r *Router) muteTarget(ctx context.Context, uid, user, gid string) (Mute, string, error) {
	if err := checkUserID("userId", uid); err != nil {
		return Mute{}, "", err
	}
	switch {
	case (user == "") == (gid == ""):
		return Mute{}, "", fmt.Errorf("%w: a mute names a user or a group", errs.ErrBadArgument)
	case gid != "":
		if !isID(gid) {
			return Mute{}, "", fmt.Errorf("%w: group must be a group id", errs.ErrBadArgument)
		}
		if err := r.checkMember(ctx, uid, gid); err != nil {
			return Mute{}, "", err
		}
		return Mute{Group: gid}, model.MuteGroup(gid), nil
	}
	id, err := r.resolveUser(ctx, user)
	switch {
	case err != nil:
		return Mute{}, "", err
	case id == uid:
		return Mute{}, "", fmt.Errorf("%w: you cannot mute yourself", errs.ErrBadArgument)
	}
	names, err := r.userNames(ctx, []string{id})
	if err != nil {
		return Mute{}, "", err
	}
	return Mute{User: User{ID: id, Name: names[id]}}, model.MutePeer(id), nil
}
