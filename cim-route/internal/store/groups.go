package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// Group is model.Group (package model holds the shared types).
type Group = model.Group

// Dedup states of a group message.
const (
	GroupPending = model.GroupPending // claimed; the fan-out may not have finished
	GroupDone    = model.GroupDone    // stored for every member
)

// GroupClaim is model.GroupClaim (package model holds the shared types).
type GroupClaim = model.GroupClaim

// GroupDedup is model.GroupDedup (package model holds the shared types).
type GroupDedup = model.GroupDedup

// GroupReceipt is model.GroupReceipt (package model holds the shared types).
type GroupReceipt = model.GroupReceipt

// ReceiptCount is model.ReceiptCount (package model holds the shared types).
type ReceiptCount = model.ReceiptCount

// MemberRef is model.MemberRef (package model holds the shared types).
type MemberRef = model.MemberRef

// groupKeys are the {gid}-tagged keys of one group.
func (s *Store) groupKeys(gid string) []string {
	return []string{s.k.group(gid), s.k.gmembers(gid), s.k.ginvited(gid)}
}

// CreateGroup creates a group owned by owner (its first member) with an id
// from the group counter.
func (s *Store) CreateGroup(ctx context.Context, owner, name string, open bool) (Group, error) {
	n, err := s.rdb.Incr(ctx, s.k.groupSeq()).Result()
	if err != nil {
		return Group{}, unavailable(err)
	}
	gid := strconv.FormatInt(n, 10)
	v, err := createGroupScript.Run(ctx, s.rdb, s.groupKeys(gid)[:2], name, owner, onOff(open), s.now().UnixMilli()).Slice()
	if err != nil {
		return Group{}, unavailable(err)
	}
	if len(v) > 0 && str(v[0]) == "exists" {
		return Group{}, unavailable(fmt.Errorf("group id %s from %s is taken", gid, s.k.groupSeq()))
	}
	g, _, err := groupAnswer(gid, v)
	if err != nil {
		return Group{}, err
	}
	return g, s.mirror(ctx, gid, owner)
}

// JoinGroup adds uid to an open group or one it was invited to, unless the
// group has max members. A member joining again gets the group, no error.
func (s *Store) JoinGroup(ctx context.Context, gid, uid string, max int) (Group, error) {
	marked, err := s.joinPos(ctx, gid, uid)
	if err != nil {
		return Group{}, err
	}
	v, err := joinGroupScript.Run(ctx, s.rdb, s.groupKeys(gid), uid, max).Slice()
	if err != nil {
		return Group{}, unavailable(err)
	}
	g, _, err := groupAnswer(gid, v)
	if err != nil {
		if marked {
			_ = s.dropPos(ctx, gid, uid) // best effort: a stale start is harmless
		}
		return Group{}, err
	}
	// Also for "already": repairs a mirror an earlier join failed to write.
	return g, s.mirror(ctx, gid, uid)
}

// InviteToGroup invites users (ids) to gid on behalf of by: the owner, or
// any member of an open group. It returns the users newly invited (members
// and users with a pending invitation are skipped). errs.ErrGroupFull when
// the group has max members.
func (s *Store) InviteToGroup(ctx context.Context, gid, by string, users []string, max int) (Group, []string, error) {
	args := append([]any{by, max}, anys(users)...)
	v, err := inviteGroupScript.Run(ctx, s.rdb, s.groupKeys(gid), args...).Slice()
	if err != nil {
		return Group{}, nil, unavailable(err)
	}
	g, rest, err := groupAnswer(gid, v)
	if err != nil {
		return Group{}, nil, err
	}
	var invited []string
	if len(rest) > 0 {
		list, _ := rest[0].([]any)
		for _, u := range list {
			invited = append(invited, str(u))
		}
	}
	return g, invited, nil
}

// LeaveGroup removes uid from gid; the owner cannot leave (errs.ErrForbidden).
func (s *Store) LeaveGroup(ctx context.Context, gid, uid string) error {
	v, err := leaveGroupScript.Run(ctx, s.rdb, s.groupKeys(gid)[:2], uid).Slice()
	if err != nil {
		return unavailable(err)
	}
	if _, _, err := groupAnswer(gid, v); err != nil {
		return err
	}
	if err := s.dropPos(ctx, gid, uid); err != nil {
		return err
	}
	return s.unmirror(ctx, uid, gid)
}

// KickFromGroup removes uid from gid (and drops its invitation), on behalf
// of the owner.
func (s *Store) KickFromGroup(ctx context.Context, gid, owner, uid string) error {
	v, err := kickGroupScript.Run(ctx, s.rdb, s.groupKeys(gid), owner, uid).Slice()
	if err != nil {
		return unavailable(err)
	}
	if _, _, err := groupAnswer(gid, v); err != nil {
		return err
	}
	if err := s.dropPos(ctx, gid, uid); err != nil {
		return err
	}
	return s.unmirror(ctx, uid, gid)
}

// RenameGroup renames gid on behalf of its owner.
func (s *Store) RenameGroup(ctx context.Context, gid, owner, name string) (Group, error) {
	v, err := renameGroupScript.Run(ctx, s.rdb, s.groupKeys(gid)[:2], owner, name).Slice()
	if err != nil {
		return Group{}, unavailable(err)
	}
	g, _, err := groupAnswer(gid, v)
	return g, err
}

// TransferGroup hands gid to to, a member, on behalf of its owner.
func (s *Store) TransferGroup(ctx context.Context, gid, owner, to string) (Group, error) {
	v, err := transferGroupScript.Run(ctx, s.rdb, s.groupKeys(gid)[:2], owner, to).Slice()
	if err != nil {
		return Group{}, unavailable(err)
	}
	g, _, err := groupAnswer(gid, v)
	return g, err
}

// DissolveGroup deletes gid on behalf of its owner, then takes it out of
// every former member's ugroups.
func (s *Store) DissolveGroup(ctx context.Context, gid, owner string) error {
	v, err := dissolveGroupScript.Run(ctx, s.rdb, s.groupKeys(gid), owner).Slice()
	if err != nil {
		return unavailable(err)
	}
	_, rest, err := groupAnswer(gid, v)
	if err != nil {
		return err
	}
	if err := s.dropTimeline(ctx, gid); err != nil {
		return err
	}
	var members []string
	if len(rest) > 0 {
		list, _ := rest[0].([]any)
		for _, m := range list {
			members = append(members, str(m))
		}
	}
	for chunk := range slices.Chunk(members, maxPipeline) {
		cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, m := range chunk {
				p.SRem(ctx, s.k.ugroups(m), gid)
			}
			return nil
		})
		if err := pipeErr(err, cmds); err != nil {
			return err
		}
	}
	return nil
}

// GroupOf returns gid's record and whether viewer (may be empty) is a
// member, in one round trip. errs.ErrNoGroup if there is no such group.
func (s *Store) GroupOf(ctx context.Context, gid, viewer string) (Group, bool, error) {
	gs, member, err := s.groups(ctx, []string{gid}, viewer)
	if err != nil {
		return Group{}, false, err
	}
	if gs[0].ID == "" {
		return Group{}, false, fmt.Errorf("%w: %s", errs.ErrNoGroup, gid)
	}
	return gs[0], member[0], nil
}

// UserGroups returns the groups uid is a member of, by id. Stale entries
// of its ugroups mirror (a group gone, or left in a race) are dropped from
// the answer and from the mirror.
func (s *Store) UserGroups(ctx context.Context, uid string) ([]Group, error) {
	gids, err := s.rdb.SMembers(ctx, s.k.ugroups(uid)).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	gs, member, err := s.groups(ctx, gids, uid)
	if err != nil {
		return nil, err
	}
	out := make([]Group, 0, len(gs))
	var stale []any
	for i, g := range gs {
		if g.ID != "" && member[i] {
			out = append(out, g)
		} else {
			stale = append(stale, gids[i])
		}
	}
	if len(stale) > 0 {
		// Best effort; the next listing tries again.
		_ = s.unmirror(ctx, uid, stale...)
	}
	slices.SortFunc(out, func(a, b Group) int {
		return cmp.Or(cmp.Compare(len(a.ID), len(b.ID)), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// GroupIDsOf returns, for each of uids, the ids of the groups its
// membership mirror names, in one pipeline; unlike UserGroups it reads no
// group records, so an entry may be stale (a group gone, or left in a
// race): callers that care check membership.
func (s *Store) GroupIDsOf(ctx context.Context, uids []string) ([][]string, error) {
	out := make([][]string, 0, len(uids))
	for chunk := range slices.Chunk(uids, maxPipeline) {
		cmds := make([]*redis.StringSliceCmd, len(chunk))
		res, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, uid := range chunk {
				cmds[i] = p.SMembers(ctx, s.k.ugroups(uid))
			}
			return nil
		})
		if err := pipeErr(err, res); err != nil {
			return nil, err
		}
		for _, c := range cmds {
			out = append(out, c.Val())
		}
	}
	return out, nil
}

// groups reads the records of gids (zero Group for a missing one) and
// whether viewer is a member of each, in one pipeline.
func (s *Store) groups(ctx context.Context, gids []string, viewer string) ([]Group, []bool, error) {
	out := make([]Group, len(gids))
	member := make([]bool, len(gids))
	if len(gids) == 0 {
		return out, member, nil
	}
	type cmds struct {
		rec  *redis.SliceCmd
		n    *redis.IntCmd
		memb *redis.BoolCmd
	}
	res := make([]cmds, len(gids))
	pcmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, gid := range gids {
			res[i].rec = p.HMGet(ctx, s.k.group(gid), "name", "owner", "open", "created")
			res[i].n = p.SCard(ctx, s.k.gmembers(gid))
			if viewer != "" {
				res[i].memb = p.SIsMember(ctx, s.k.gmembers(gid), viewer)
			}
		}
		return nil
	})
	if err := pipeErr(err, pcmds); err != nil {
		return nil, nil, err
	}
	for i, c := range res {
		v := c.rec.Val()
		if len(v) != 4 || v[0] == nil {
			continue
		}
		created, _ := strconv.ParseInt(str(v[3]), 10, 64)
		out[i] = Group{ID: gids[i], Name: str(v[0]), Owner: str(v[1]), Open: str(v[2]) == "1", Created: created, Members: int(c.n.Val())}
		if c.memb != nil {
			member[i] = c.memb.Val()
		}
	}
	return out, member, nil
}

// GroupMembers returns the member ids of each of gids (none for a missing
// group) and answers checks (is that user a member of that group), all in
// one pipeline.
func (s *Store) GroupMembers(ctx context.Context, gids []string, checks []MemberRef) (map[string][]string, []bool, error) {
	members := make(map[string][]string, len(gids))
	isMember := make([]bool, len(checks))
	if len(gids)+len(checks) == 0 {
		return members, isMember, nil
	}
	sets := make([]*redis.StringSliceCmd, len(gids))
	tests := make([]*redis.BoolCmd, len(checks))
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, gid := range gids {
			sets[i] = p.SMembers(ctx, s.k.gmembers(gid))
		}
		for i, c := range checks {
			tests[i] = p.SIsMember(ctx, s.k.gmembers(c.Group), c.User)
		}
		return nil
	})
	if err := pipeErr(err, cmds); err != nil {
		return nil, nil, err
	}
	for i, gid := range gids {
		members[gid] = sets[i].Val()
	}
	for i, t := range tests {
		isMember[i] = t.Val()
	}
	return members, isMember, nil
}

// ClaimGroupMessages claims the dedup key of each group message
// (gdedup:{sender}:<clientMsgId> = "<msgId>|pending", for the dedup window)
// or reports what an earlier attempt left, one pipeline for all.
func (s *Store) ClaimGroupMessages(ctx context.Context, ds []GroupDedup) ([]GroupClaim, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	var ttl any = s.inbox.DedupWindow.Milliseconds()
	calls := make([]scriptCall, len(ds))
	for i, d := range ds {
		calls[i] = scriptCall{[]string{s.k.gdedup(d.Sender, d.ClientMsgID)}, []any{d.MsgID + "|" + GroupPending, ttl}}
	}
	res, err := s.evalAll(ctx, groupDedupScript, calls)
	if err != nil {
		return nil, err
	}
	out := make([]GroupClaim, len(ds))
	for i, c := range res {
		v, err := c.Text()
		if errors.Is(err, redis.Nil) {
			out[i] = GroupClaim{Claimed: true}
			continue
		}
		id, state, _ := strings.Cut(v, "|")
		out[i] = GroupClaim{MsgID: id, State: state}
	}
	return out, nil
}

// FinishGroupMessages marks group messages stored for every member
// ("<msgId>|done"), one pipeline for all.
func (s *Store) FinishGroupMessages(ctx context.Context, ds []GroupDedup) error {
	if len(ds) == 0 {
		return nil
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, d := range ds {
			p.Set(ctx, s.k.gdedup(d.Sender, d.ClientMsgID), d.MsgID+"|"+GroupDone, s.inbox.DedupWindow)
		}
		return nil
	})
	return pipeErr(err, cmds)
}

// AddGroupReceipts adds members to receipt sets (one script per set: SADD,
// expiry --inbox-ttl, SCARD) and returns each set's size, aligned with rs.
func (s *Store) AddGroupReceipts(ctx context.Context, rs []GroupReceipt) ([]int, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	calls := make([]scriptCall, len(rs))
	for i, r := range rs {
		key := s.k.grd(r.Sender, r.MsgID)
		if r.Read {
			key = s.k.grr(r.Sender, r.MsgID)
		}
		calls[i] = scriptCall{[]string{key}, append([]any{s.inbox.TTL.Milliseconds()}, anys(r.Members)...)}
	}
	res, err := s.evalAll(ctx, groupReceiptScript, calls)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(rs))
	for i, c := range res {
		n, _ := c.Int()
		out[i] = n
	}
	return out, nil
}

// GroupReceiptCounts returns how many members received and read each of
// sender's group messages (zero for unknown or expired ones), aligned with
// msgIDs, in one round trip.
func (s *Store) GroupReceiptCounts(ctx context.Context, sender string, msgIDs []string) ([]ReceiptCount, error) {
	out := make([]ReceiptCount, len(msgIDs))
	if len(msgIDs) == 0 {
		return out, nil
	}
	rd := make([]*redis.IntCmd, len(msgIDs))
	rr := make([]*redis.IntCmd, len(msgIDs))
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range msgIDs {
			rd[i] = p.SCard(ctx, s.k.grd(sender, id))
			rr[i] = p.SCard(ctx, s.k.grr(sender, id))
		}
		return nil
	})
	if err := pipeErr(err, cmds); err != nil {
		return nil, err
	}
	for i := range msgIDs {
		out[i] = ReceiptCount{Delivered: int(rd[i].Val()), Read: int(rr[i].Val())}
	}
	return out, nil
}

// mirror adds gid to uid's ugroups, after uid joined it.
func (s *Store) mirror(ctx context.Context, gid, uid string) error {
	return unavailable(s.rdb.SAdd(ctx, s.k.ugroups(uid), gid).Err())
}

// unmirror removes groups from uid's ugroups, after uid left them, then
// puts back any uid is a member of again: a join racing with the removal
// (its mirror write landing before it) is never lost.
func (s *Store) unmirror(ctx context.Context, uid string, gids ...any) error {
	key := s.k.ugroups(uid)
	if err := s.rdb.SRem(ctx, key, gids...).Err(); err != nil {
		return unavailable(err)
	}
	member := make([]*redis.BoolCmd, len(gids))
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, gid := range gids {
			member[i] = p.SIsMember(ctx, s.k.gmembers(gid.(string)), uid)
		}
		return nil
	})
	if err := pipeErr(err, cmds); err != nil {
		return err
	}
	var back []any
	for i, m := range member {
		if m.Val() {
			back = append(back, gids[i])
		}
	}
	if len(back) == 0 {
		return nil
	}
	return unavailable(s.rdb.SAdd(ctx, key, back...).Err())
}

// forbiddenReasons explain a script's "forbidden" answer.
var forbiddenReasons = map[string]string{
	"invite":      "group %s is closed: join needs an invitation",
	"member":      "not a member of group %s",
	"owner":       "only the owner of group %s may do this",
	"owner-leave": "the owner cannot leave group %s: hand it to a member first or dissolve it",
	"heir":        "the new owner must be a member of group %s",
	"kick-owner":  "the owner of group %s cannot be kicked",
}

// groupAnswer decodes a membership script's answer into the group and the
// values that follow it, or the error its status means.
func groupAnswer(gid string, v []any) (Group, []any, error) {
	if len(v) == 0 {
		return Group{}, nil, unavailable(fmt.Errorf("group script answered %v", v))
	}
	switch st := str(v[0]); st {
	case "ok", "already":
	case "nogroup":
		return Group{}, nil, fmt.Errorf("%w: %s", errs.ErrNoGroup, gid)
	case "full":
		return Group{}, nil, fmt.Errorf("%w: group %s", errs.ErrGroupFull, gid)
	case "forbidden":
		why := "not allowed in group %s"
		if len(v) > 1 && forbiddenReasons[str(v[1])] != "" {
			why = forbiddenReasons[str(v[1])]
		}
		return Group{}, nil, fmt.Errorf("%w: "+why, errs.ErrForbidden, gid)
	default:
		return Group{}, nil, unavailable(fmt.Errorf("group script answered %q", st))
	}
	if len(v) < 6 {
		return Group{}, nil, unavailable(fmt.Errorf("group script answered %v", v))
	}
	created, _ := strconv.ParseInt(str(v[4]), 10, 64)
	n, _ := v[5].(int64)
	g := Group{ID: gid, Name: str(v[1]), Owner: str(v[2]), Open: str(v[3]) == "1", Created: created, Members: int(n)}
	return g, v[6:], nil
}

func onOff(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
