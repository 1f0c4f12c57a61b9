package router

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/event"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// Group limits.
const (
	DefaultGroupMaxMembers = 10000
	MaxGroupName           = 64   // characters
	MaxInvite              = 100  // users of one invite
	MaxReceiptQuery        = 1000 // msg ids of one /groups/receipts
)

// Group is a group as the API shows it.
type Group struct {
	ID      string
	Name    string
	Owner   string // user id
	Open    bool
	Members int
}

// ReceiptCount is how many members received and read a group message.
type ReceiptCount struct {
	Delivered int
	Read      int
}

func groupOf(g model.Group) Group {
	return Group{ID: g.ID, Name: g.Name, Owner: g.Owner, Open: g.Open, Members: g.Members}
}

// CreateGroup creates a group owned by uid, its first member. The name is
// trimmed and must be 1-64 printable characters.
func (r *Router) CreateGroup(ctx context.Context, uid, name string, open bool) (Group, error) {
	if err := checkUserID("userId", uid); err != nil {
		return Group{}, err
	}
	name, err := groupName(name)
	if err != nil {
		return Group{}, err
	}
	if err := r.roomForGroup(ctx, uid, ""); err != nil {
		return Group{}, err
	}
	if wait, err := r.creates.Allow(ctx, uid); err != nil {
		return Group{}, fmt.Errorf("%w: %v", errs.ErrUnavailable, err)
	} else if wait > 0 {
		return Group{}, fmt.Errorf("%w: at most %d new groups per hour", errs.ErrQuotaExceeded, r.cfg.Limits.GroupsPerHour)
	}
	g, err := r.st.CreateGroup(ctx, uid, name, open)
	if err != nil {
		return Group{}, err
	}
	r.log.Info("group created", "group", g.ID, "owner", uid, "open", open)
	r.emitGroup(event.GroupCreated, g.ID, g.Name, uid, uid)
	return groupOf(g), nil
}

// roomForGroup refuses (errs.ErrQuotaExceeded) when uid is a member of
// Limits.GroupsPerUser groups already, unless gid is one of them (joining
// again). Its membership mirror may name groups gone or left: over the
// limit, UserGroups drops those before the verdict.
func (r *Router) roomForGroup(ctx context.Context, uid, gid string) error {
	limit := r.cfg.Limits.GroupsPerUser
	ids, err := r.st.GroupIDsOf(ctx, []string{uid})
	if err != nil {
		return err
	}
	if len(ids[0]) < limit || (gid != "" && slices.Contains(ids[0], gid)) {
		return nil
	}
	gs, err := r.st.UserGroups(ctx, uid)
	if err != nil {
		return err
	}
	if len(gs) < limit {
		return nil
	}
	return fmt.Errorf("%w: a member of %d groups already, at most %d: leave one first", errs.ErrQuotaExceeded, len(gs), limit)
}

// Groups returns the groups uid is a member of, by id.
func (r *Router) Groups(ctx context.Context, uid string) ([]Group, error) {
	if err := checkUserID("userId", uid); err != nil {
		return nil, err
	}
	gs, err := r.st.UserGroups(ctx, uid)
	if err != nil {
		return nil, err
	}
	out := make([]Group, len(gs))
	for i, g := range gs {
		out[i] = groupOf(g)
	}
	return out, nil
}

// Group returns gid for a member, or for anyone when it is open.
func (r *Router) Group(ctx context.Context, uid, gid string) (Group, error) {
	if err := checkGroup(uid, gid); err != nil {
		return Group{}, err
	}
	g, member, err := r.st.GroupOf(ctx, gid, uid)
	if err != nil {
		return Group{}, err
	}
	if !member && !g.Open {
		return Group{}, fmt.Errorf("%w: not a member of group %s", errs.ErrForbidden, gid)
	}
	return groupOf(g), nil
}

// GroupMembers lists a page of gid's members, by id, for a member (a full
// page means there may be more after its last id).
func (r *Router) GroupMembers(ctx context.Context, uid, gid string, page Page) ([]User, error) {
	if err := checkGroup(uid, gid); err != nil {
		return nil, err
	}
	after, limit, err := page.bounds()
	if err != nil {
		return nil, err
	}
	members, isMember, err := r.st.GroupMembers(ctx, []string{gid}, []model.MemberRef{{Group: gid, User: uid}})
	if err != nil {
		return nil, err
	}
	ids := members[gid]
	switch {
	case len(ids) == 0: // the owner is always a member: no group
		return nil, fmt.Errorf("%w: %s", errs.ErrNoGroup, gid)
	case !isMember[0]:
		return nil, fmt.Errorf("%w: not a member of group %s", errs.ErrForbidden, gid)
	}
	nums := make([]uint64, 0, len(ids))
	for _, id := range ids {
		if n, err := strconv.ParseUint(id, 10, 64); err == nil && n > after {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	ids = ids[:0]
	for _, n := range nums[:min(len(nums), limit)] {
		ids = append(ids, strconv.FormatUint(n, 10))
	}
	names, err := r.userNames(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]User, len(ids))
	for i, id := range ids {
		out[i] = User{ID: id, Name: names[id]}
	}
	return out, nil
}

// JoinGroup makes uid a member of an open group or of one it was invited
// to. Joining again is fine.
func (r *Router) JoinGroup(ctx context.Context, uid, gid string) (Group, error) {
	if err := checkGroup(uid, gid); err != nil {
		return Group{}, err
	}
	if err := r.roomForGroup(ctx, uid, gid); err != nil {
		return Group{}, err
	}
	g, err := r.st.JoinGroup(ctx, gid, uid, r.cfg.GroupMaxMembers)
	if err != nil {
		return Group{}, err
	}
	// Also a member joining again: the store does not tell.
	r.emitGroup(event.GroupJoined, gid, g.Name, uid, uid)
	return groupOf(g), nil
}

// InviteToGroup invites users (ids or names) to gid on behalf of uid (the
// owner, or any member of an open group) and returns the ids newly invited
// (members and users already invited are skipped). Each of those gets a
// message from the inviter — not from the system user: the group name is
// the inviter's words — stored in its inbox, saying how to join. A re-invite
// sends nothing again. The users of a request count against the inviter's
// budget (Limits.InvitesPerHour; errs.ErrQuotaExceeded).
func (r *Router) InviteToGroup(ctx context.Context, uid, gid string, users []string) ([]string, error) {
	if err := checkGroup(uid, gid); err != nil {
		return nil, err
	}
	switch {
	case len(users) == 0:
		return nil, fmt.Errorf("%w: users (a list of ids or names) is required", errs.ErrBadArgument)
	case len(users) > MaxInvite:
		return nil, fmt.Errorf("%w: at most %d users per invite", errs.ErrBadArgument, MaxInvite)
	}
	byUser, err := r.resolveUsers(ctx, users)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, u := range users {
		if id := byUser[u]; !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if wait, err := r.invites.AllowN(ctx, len(ids), uid); err != nil {
		return nil, fmt.Errorf("%w: %v", errs.ErrUnavailable, err)
	} else if wait > 0 {
		return nil, fmt.Errorf("%w: at most %d invitations per hour", errs.ErrQuotaExceeded, r.cfg.Limits.InvitesPerHour)
	}
	g, invited, err := r.st.InviteToGroup(ctx, gid, uid, ids, r.cfg.GroupMaxMembers)
	if err != nil {
		return nil, err
	}
	if len(invited) == 0 {
		return []string{}, nil
	}
	inviter, err := r.userNames(ctx, []string{uid})
	if err != nil {
		return nil, err
	}
	// The invitations are recorded: a failure here is answered, and the
	// invitees can still join (a new invite sends nothing again).
	text := fmt.Sprintf("%s invited you to %s (group %s): :gjoin %s", cmp.Or(inviter[uid], uid), g.Name, gid, gid)
	if _, err := r.Push(ctx, PushRequest{To: invited, From: uid, Text: text}); err != nil {
		return nil, err
	}
	r.log.Debug("group invitations", "group", gid, "by", uid, "invited", len(invited))
	return invited, nil
}

// LeaveGroup takes uid out of gid. The owner cannot leave (it hands the
// group to a member first, or dissolves it), and neither can a non-member.
func (r *Router) LeaveGroup(ctx context.Context, uid, gid string) error {
	if err := checkGroup(uid, gid); err != nil {
		return err
	}
	if err := r.st.LeaveGroup(ctx, gid, uid); err != nil {
		return err
	}
	r.emitGroup(event.GroupLeft, gid, "", uid, uid)
	return nil
}

// KickFromGroup takes user (an id or name) out of gid, for the owner; a
// pending invitation of user is dropped too.
func (r *Router) KickFromGroup(ctx context.Context, uid, gid, user string) error {
	if err := checkGroup(uid, gid); err != nil {
		return err
	}
	if user == "" {
		return fmt.Errorf("%w: userId is required", errs.ErrBadArgument)
	}
	if !isID(user) && !isName(user) {
		return fmt.Errorf("%w: unknown user %q", errs.ErrBadAccount, user)
	}
	target, err := r.resolveUser(ctx, user)
	if err != nil {
		return err
	}
	if err := r.st.KickFromGroup(ctx, gid, uid, target); err != nil {
		return err
	}
	// Also a kick of a non-member (which drops its invitation).
	r.emitGroup(event.GroupKicked, gid, "", uid, target)
	return nil
}

// RenameGroup renames gid, for the owner.
func (r *Router) RenameGroup(ctx context.Context, uid, gid, name string) (Group, error) {
	if err := checkGroup(uid, gid); err != nil {
		return Group{}, err
	}
	name, err := groupName(name)
	if err != nil {
		return Group{}, err
	}
	g, err := r.st.RenameGroup(ctx, gid, uid, name)
	if err != nil {
		return Group{}, err
	}
	r.emitGroup(event.GroupRenamed, gid, g.Name, uid)
	return groupOf(g), nil
}

// TransferGroup hands gid to user (an id or name), a member, for the
// owner; naming the owner changes nothing. Nobody is pushed anything: the
// members see the owner in the group (GET /groups), as after a rename.
func (r *Router) TransferGroup(ctx context.Context, uid, gid, user string) (Group, error) {
	if err := checkGroup(uid, gid); err != nil {
		return Group{}, err
	}
	if user == "" {
		return Group{}, fmt.Errorf("%w: userId is required", errs.ErrBadArgument)
	}
	if !isID(user) && !isName(user) {
		return Group{}, fmt.Errorf("%w: unknown user %q", errs.ErrBadAccount, user)
	}
	to, err := r.resolveUser(ctx, user)
	if err != nil {
		return Group{}, err
	}
	g, err := r.st.TransferGroup(ctx, gid, uid, to)
	if err != nil {
		return Group{}, err
	}
	if to != uid {
		r.log.Info("group handed over", "group", gid, "from", uid, "to", to)
		r.emitGroup(event.GroupOwner, gid, g.Name, uid, to)
	}
	return groupOf(g), nil
}

// handOver hands gid, owned by uid, to its member with the lowest user id
// (the longest-registered) and takes uid out of it; a group with no other
// member is dissolved. For an account being deleted: its groups stay with
// their members. A member leaving meanwhile makes it look again.
func (r *Router) handOver(ctx context.Context, uid, gid string) (dissolved bool, err error) {
	for range 3 {
		members, _, err := r.st.GroupMembers(ctx, []string{gid}, nil)
		if err != nil {
			return false, err
		}
		heir := ""
		for _, m := range members[gid] {
			if m != uid && (heir == "" || idLess(m, heir)) {
				heir = m
			}
		}
		if heir == "" {
			return true, r.DissolveGroup(ctx, uid, gid)
		}
		if _, err := r.TransferGroup(ctx, uid, gid, heir); errors.Is(err, errs.ErrForbidden) {
			continue // the heir left, or the group changed hands: look again
		} else if err != nil {
			return false, err
		}
		return false, r.LeaveGroup(ctx, uid, gid)
	}
	// Still changing hands: uid leaves if it can (it owns the group no
	// longer), else the caller hears why not.
	return false, r.LeaveGroup(ctx, uid, gid)
}

// idLess orders user ids (decimal numbers) by value.
func idLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// DissolveGroup deletes gid, for the owner.
func (r *Router) DissolveGroup(ctx context.Context, uid, gid string) error {
	if err := checkGroup(uid, gid); err != nil {
		return err
	}
	if err := r.st.DissolveGroup(ctx, gid, uid); err != nil {
		return err
	}
	r.log.Info("group dissolved", "group", gid, "owner", uid)
	r.emitGroup(event.GroupDissolved, gid, "", uid)
	return nil
}

// GroupReceipts returns, for uid's own group messages, how many members
// received and read each (zero for unknown ids: the sets are uid's).
func (r *Router) GroupReceipts(ctx context.Context, uid string, msgIDs []string) (map[string]ReceiptCount, error) {
	if err := checkUserID("userId", uid); err != nil {
		return nil, err
	}
	switch {
	case len(msgIDs) == 0:
		return nil, fmt.Errorf("%w: msgIds is required", errs.ErrBadArgument)
	case len(msgIDs) > MaxReceiptQuery:
		return nil, fmt.Errorf("%w: at most %d msgIds", errs.ErrBadArgument, MaxReceiptQuery)
	}
	var ids []string
	for _, id := range msgIDs {
		if id == "" || len(id) > maxMsgID {
			return nil, fmt.Errorf("%w: bad msgId %q", errs.ErrBadArgument, id)
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	counts, err := r.st.GroupReceiptCounts(ctx, uid, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]ReceiptCount, len(ids))
	for i, id := range ids {
		out[id] = ReceiptCount{Delivered: counts[i].Delivered, Read: counts[i].Read}
	}
	return out, nil
}

// userNames returns the names of ids (absent: no such account), with one
// round trip for those the cache lacks.
func (r *Router) userNames(ctx context.Context, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	var need []string
	for _, id := range ids {
		if n, ok := r.names.Get(id); ok {
			out[id] = n
		} else {
			need = append(need, id)
		}
	}
	if len(need) == 0 {
		return out, nil
	}
	names, _, err := r.st.Lookup(ctx, need, nil)
	if err != nil {
		return nil, err
	}
	for id, n := range names {
		out[id] = n
		r.remember(id, n)
	}
	return out, nil
}

// checkGroup checks the acting user and the group id (a decimal string:
// anything else names no group).
func checkGroup(uid, gid string) error {
	if err := checkUserID("userId", uid); err != nil {
		return err
	}
	if !isID(gid) {
		return fmt.Errorf("%w: %q", errs.ErrNoGroup, gid)
	}
	return nil
}

// groupName trims a group name and checks it: 1-64 characters of printable
// UTF-8.
func groupName(name string) (string, error) {
	name = strings.TrimSpace(name)
	n := utf8.RuneCountInString(name)
	if n == 0 || n > MaxGroupName || !utf8.ValidString(name) || strings.ContainsFunc(name, func(c rune) bool { return !unicode.IsPrint(c) }) {
		return "", fmt.Errorf("%w: group name must be 1-%d printable characters", errs.ErrBadArgument, MaxGroupName)
	}
	return name, nil
}
