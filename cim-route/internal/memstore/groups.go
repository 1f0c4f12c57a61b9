package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// group is a group's record, members and invitations.
type group struct {
	rec     model.Group // Members unset: len(members)
	members map[string]bool
	invited map[string]bool
	pos     map[string]uint64 // members' timeline positions
}

func (g *group) view() model.Group {
	r := g.rec
	r.Members = len(g.members)
	return r
}

// forbidden is store's error for a refused membership change.
func forbidden(gid, reason string) error {
	why := map[string]string{
		"invite":      "group %s is closed: join needs an invitation",
		"member":      "not a member of group %s",
		"owner":       "only the owner of group %s may do this",
		"owner-leave": "the owner cannot leave group %s: hand it to a member first or dissolve it",
		"heir":        "the new owner must be a member of group %s",
		"kick-owner":  "the owner of group %s cannot be kicked",
	}[reason]
	return fmt.Errorf("%w: "+why, errs.ErrForbidden, gid)
}

// groupOf returns gid, or errs.ErrNoGroup.
func (s *Store) groupOf(gid string) (*group, error) {
	g := s.groups[gid]
	if g == nil {
		return nil, fmt.Errorf("%w: %s", errs.ErrNoGroup, gid)
	}
	return g, nil
}

// CreateGroup creates a group owned by owner, its first member.
func (s *Store) CreateGroup(ctx context.Context, owner, name string, open bool) (model.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groupSeq++
	gid := strconv.FormatInt(s.groupSeq, 10)
	g := &group{
		rec:     model.Group{ID: gid, Name: name, Owner: owner, Open: open, Created: s.now().UnixMilli()},
		members: map[string]bool{owner: true},
		invited: map[string]bool{},
	}
	s.groups[gid] = g
	return g.view(), nil
}

// JoinGroup adds uid to an open group or one it was invited to, unless it
// has max members; a member joining again gets the group.
func (s *Store) JoinGroup(ctx context.Context, gid, uid string, max int) (model.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.groupOf(gid)
	if err != nil {
		return model.Group{}, err
	}
	if !g.members[uid] {
		if !g.rec.Open && !g.invited[uid] {
			return model.Group{}, forbidden(gid, "invite")
		}
		if len(g.members) >= max {
			return model.Group{}, fmt.Errorf("%w: group %s", errs.ErrGroupFull, gid)
		}
		g.members[uid] = true
		if g.pos == nil {
			g.pos = map[string]uint64{}
		}
		g.pos[uid] = s.inboxOf(model.TimelineID(gid)).seq
		delete(g.invited, uid)
	}
	return g.view(), nil
}

// InviteToGroup invites users on behalf of by (the owner, or any member of
// an open group) and returns those newly invited.
func (s *Store) InviteToGroup(ctx context.Context, gid, by string, users []string, max int) (model.Group, []string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.groupOf(gid)
	if err != nil {
		return model.Group{}, nil, err
	}
	if !g.members[by] {
		return model.Group{}, nil, forbidden(gid, "member")
	}
	if !g.rec.Open && g.rec.Owner != by {
		return model.Group{}, nil, forbidden(gid, "owner")
	}
	if len(g.members) >= max {
		return model.Group{}, nil, fmt.Errorf("%w: group %s", errs.ErrGroupFull, gid)
	}
	var invited []string
	for _, u := range users {
		if !g.members[u] && !g.invited[u] {
			g.invited[u] = true
			invited = append(invited, u)
		}
	}
	return g.view(), invited, nil
}

// TransferGroup hands gid to to, a member, on behalf of its owner.
func (s *Store) TransferGroup(ctx context.Context, gid, owner, to string) (model.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.groupOf(gid)
	if err != nil {
		return model.Group{}, err
	}
	if g.rec.Owner != owner {
		return model.Group{}, forbidden(gid, "owner")
	}
	if !g.members[to] {
		return model.Group{}, forbidden(gid, "heir")
	}
	g.rec.Owner = to
	return g.view(), nil
}

// LeaveGroup removes uid from gid; the owner cannot leave.
func (s *Store) LeaveGroup(ctx context.Context, gid, uid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.groupOf(gid)
	if err != nil {
		return err
	}
	if g.rec.Owner == uid {
		return forbidden(gid, "owner-leave")
	}
	if !g.members[uid] {
		return forbidden(gid, "member")
	}
	delete(g.members, uid)
	delete(g.pos, uid)
	return nil
}

// KickFromGroup removes uid (and its invitation), on behalf of the owner.
func (s *Store) KickFromGroup(ctx context.Context, gid, owner, uid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.ownedGroup(gid, owner)
	if err != nil {
		return err
	}
	if uid == g.rec.Owner {
		return forbidden(gid, "kick-owner")
	}
	delete(g.members, uid)
	delete(g.invited, uid)
	delete(g.pos, uid)
	return nil
}

// RenameGroup renames gid on behalf of its owner.
func (s *Store) RenameGroup(ctx context.Context, gid, owner, name string) (model.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.ownedGroup(gid, owner)
	if err != nil {
		return model.Group{}, err
	}
	g.rec.Name = name
	return g.view(), nil
}

// DissolveGroup deletes gid on behalf of its owner.
func (s *Store) DissolveGroup(ctx context.Context, gid, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.ownedGroup(gid, owner); err != nil {
		return err
	}
	delete(s.groups, gid)
	delete(s.inboxes, model.TimelineID(gid))
	return nil
}

// ownedGroup returns gid if owner owns it (s.mu held).
func (s *Store) ownedGroup(gid, owner string) (*group, error) {
	g, err := s.groupOf(gid)
	if err != nil {
		return nil, err
	}
	if g.rec.Owner != owner {
		return nil, forbidden(gid, "owner")
	}
	return g, nil
}

// GroupOf returns gid's record and whether viewer (may be empty) is a
// member; errs.ErrNoGroup if there is no such group.
func (s *Store) GroupOf(ctx context.Context, gid, viewer string) (model.Group, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.groupOf(gid)
	if err != nil {
		return model.Group{}, false, err
	}
	return g.view(), viewer != "" && g.members[viewer], nil
}

// UserGroups returns the groups uid is a member of, by id.
func (s *Store) UserGroups(ctx context.Context, uid string) ([]model.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []model.Group{}
	for _, g := range s.groups {
		if g.members[uid] {
			out = append(out, g.view())
		}
	}
	slices.SortFunc(out, func(a, b model.Group) int {
		return cmp.Or(cmp.Compare(len(a.ID), len(b.ID)), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// GroupIDsOf returns, for each of uids, the ids of its groups.
func (s *Store) GroupIDsOf(ctx context.Context, uids []string) ([][]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]string, len(uids))
	for i, uid := range uids {
		for gid, g := range s.groups {
			if g.members[uid] {
				out[i] = append(out[i], gid)
			}
		}
		slices.Sort(out[i])
	}
	return out, nil
}

// GroupMembers returns the member ids of each of gids (none for a missing
// group) and answers checks.
func (s *Store) GroupMembers(ctx context.Context, gids []string, checks []model.MemberRef) (map[string][]string, []bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	members := make(map[string][]string, len(gids))
	for _, gid := range gids {
		list := []string{}
		if g := s.groups[gid]; g != nil {
			for m := range g.members {
				list = append(list, m)
			}
		}
		members[gid] = list
	}
	isMember := make([]bool, len(checks))
	for i, c := range checks {
		if g := s.groups[c.Group]; g != nil {
			isMember[i] = g.members[c.User]
		}
	}
	return members, isMember, nil
}

// ClaimGroupMessages claims each group message's dedup key for the dedup
// window, or reports what an earlier attempt left.
func (s *Store) ClaimGroupMessages(ctx context.Context, ds []model.GroupDedup) ([]model.GroupClaim, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]model.GroupClaim, len(ds))
	for i, d := range ds {
		key := d.Sender + "\x00" + d.ClientMsgID
		if v, ok := s.get(s.gdedup, key); ok {
			id, state, _ := strings.Cut(v, "|")
			out[i] = model.GroupClaim{MsgID: id, State: state}
			continue
		}
		s.gdedup[key] = expiring{v: d.MsgID + "|" + model.GroupPending, exp: s.after(s.inbox.DedupWindow)}
		out[i] = model.GroupClaim{Claimed: true}
	}
	return out, nil
}

// FinishGroupMessages marks group messages stored for every member.
func (s *Store) FinishGroupMessages(ctx context.Context, ds []model.GroupDedup) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ds {
		s.gdedup[d.Sender+"\x00"+d.ClientMsgID] = expiring{v: d.MsgID + "|" + model.GroupDone, exp: s.after(s.inbox.DedupWindow)}
	}
	return nil
}

func receiptKey(sender, msgID string, read bool) string {
	k := sender + "\x00" + msgID + "\x00"
	if read {
		return k + "r"
	}
	return k + "d"
}

// receiptSet returns a receipt set, nil when absent or expired.
func (s *Store) receiptSet(key string) *set {
	r := s.receipts[key]
	if r != nil && !s.alive(r.exp) {
		delete(s.receipts, key)
		return nil
	}
	return r
}

// AddGroupReceipts adds members to receipt sets (each expires --inbox-ttl
// after its last change) and returns each set's size, aligned with rs.
func (s *Store) AddGroupReceipts(ctx context.Context, rs []model.GroupReceipt) ([]int, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, len(rs))
	for i, r := range rs {
		key := receiptKey(r.Sender, r.MsgID, r.Read)
		rset := s.receiptSet(key)
		if rset == nil && len(r.Members) > 0 {
			rset = &set{m: map[string]bool{}}
			s.receipts[key] = rset
		}
		if rset == nil {
			continue
		}
		for _, m := range r.Members {
			rset.m[m] = true
		}
		rset.exp = s.after(s.inbox.TTL)
		out[i] = len(rset.m)
	}
	return out, nil
}

// GroupReceiptCounts returns how many members received and read each of
// sender's group messages (zero for unknown or expired ones).
func (s *Store) GroupReceiptCounts(ctx context.Context, sender string, msgIDs []string) ([]model.ReceiptCount, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]model.ReceiptCount, len(msgIDs))
	for i, id := range msgIDs {
		if d := s.receiptSet(receiptKey(sender, id, false)); d != nil {
			out[i].Delivered = len(d.m)
		}
		if r := s.receiptSet(receiptKey(sender, id, true)); r != nil {
			out[i].Read = len(r.m)
		}
	}
	return out, nil
}

// TimelinePositions reads each ref's timeline head and member position.
func (s *Store) TimelinePositions(ctx context.Context, refs []model.MemberRef) ([]model.TimelinePos, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]model.TimelinePos, len(refs))
	for i, r := range refs {
		var head uint64
		if b := s.inboxes[model.TimelineID(r.Group)]; b != nil {
			head = b.seq
		}
		out[i].Head = head
		if g := s.groups[r.Group]; g != nil {
			out[i].Pos = min(g.pos[r.User], head)
		}
	}
	return out, nil
}

// RaiseTimelinePositions raises members' positions, never past the head.
func (s *Store) RaiseTimelinePositions(ctx context.Context, ps []model.GroupPos) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ps {
		g := s.groups[p.Group]
		if g == nil || p.Seq == 0 {
			continue
		}
		var head uint64
		if b := s.inboxes[model.TimelineID(p.Group)]; b != nil {
			head = b.seq
		}
		if want := min(p.Seq, head); want > g.pos[p.User] {
			if g.pos == nil {
				g.pos = map[string]uint64{}
			}
			g.pos[p.User] = want
		}
	}
	return nil
}
