package router

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/proto/cimpb"
)

// Group timelines (docs/ARCHITECTURE.md, "Group timelines"). A message to
// a group of at least Config.GroupTimelineMin members is stored once, as
// an entry of the inbox model.TimelineID(gid), whose seq is the message's
// group_seq; every online member is pushed the same frame. Each member's
// client shows a group's messages in group_seq order, acknowledges them
// with ACK{groups}, and asks SYNC{group} for gaps and, after a login, for
// the groups the login SYNC's answer lists (Sync.with_groups). Senders of
// such messages get RECEIPT_SENT only: no per-member DELIVERED or READ
// counts.

// maxAckGroups bounds the group positions one ACK frame raises; more are
// ignored (the SDK sends at most this many per ACK).
const maxAckGroups = 64

// maxListedGroups bounds the groups a login SYNC's answer lists.
const maxListedGroups = 1000

// usesTimeline reports whether a message to a group of n members (sender
// included) goes to the group's timeline.
func (r *Router) usesTimeline(n int) bool {
	return r.cfg.GroupTimelineMin > 0 && n >= r.cfg.GroupTimelineMin
}

// devices reports whether users hold a session per device slot
// (--login-policy platform): then what a user sends also goes to its own
// other devices.
func (r *Router) devices() bool { return r.cfg.LoginPolicy == PolicyPlatform }

// addGroupAcks notes uid's acknowledged group positions of one ACK frame,
// the highest per group of the batch.
func (j *job) addGroupAcks(uid string, gs []*cimpb.GroupSeq) {
	for i, g := range gs {
		if i == maxAckGroups {
			break
		}
		if g.GetSeq() == 0 || !isID(g.GetGroup()) {
			continue
		}
		k := model.MemberRef{Group: g.Group, User: uid}
		if at, ok := j.gackAt[k]; ok {
			j.gacks[at].Seq = max(j.gacks[at].Seq, g.Seq)
			continue
		}
		if j.gackAt == nil {
			j.gackAt = map[model.MemberRef]int{}
		}
		j.gackAt[k] = len(j.gacks)
		j.gacks = append(j.gacks, model.GroupPos{Group: g.Group, User: uid, Seq: g.Seq})
	}
}

// raiseTimelines stores the batch's group acknowledgements (one round
// trip). A position is only ever used for its own member's catch-up, and
// the store raises none past its timeline's head, so it needs no
// membership check: a non-member cannot sync the group anyway.
func (j *job) raiseTimelines(ctx context.Context) error {
	return j.r.st.RaiseTimelinePositions(ctx, j.gacks)
}

// timelineSyncs prepares the batch's timeline SYNCs (one round trip each
// for membership, the groups of login SYNCs, and positions): a group SYNC
// of a member reads the timeline after its after_seq, or after its
// acknowledged position with from_acked; a non-member's reads nothing. A
// login SYNC (with_groups) learns the member's timeline groups with
// messages past its position.
func (j *job) timelineSyncs(ctx context.Context) error {
	var checks []model.MemberRef
	var grouped []*syncReq
	for _, s := range j.syncs {
		if g := s.req.GetGroup(); g != "" {
			s.group = g
			if isID(g) {
				checks = append(checks, model.MemberRef{Group: g, User: s.uid})
				grouped = append(grouped, s)
			}
		}
	}
	if len(checks) > 0 {
		_, isMember, err := j.r.st.GroupMembers(ctx, nil, checks)
		if err != nil {
			return err
		}
		for i, s := range grouped {
			s.member = isMember[i]
		}
	}
	// The groups of every login SYNC in the batch, in one round trip (a
	// login storm brings hundreds per batch). A stale entry of the
	// membership mirror is harmless: a group gone has no head, and a
	// non-member's group SYNC is answered empty.
	var listing []*syncReq
	var uids []string
	for _, s := range j.syncs {
		if s.group == "" && s.req.GetWithGroups() {
			listing = append(listing, s)
			uids = append(uids, s.uid)
		}
	}
	var gidsOf [][]string
	if len(uids) > 0 {
		var err error
		if gidsOf, err = j.r.st.GroupIDsOf(ctx, uids); err != nil {
			return err
		}
	}
	var refs []model.MemberRef
	var forSync []*syncReq // aligned with refs: the SYNC each ref is for
	for _, s := range j.syncs {
		if s.group != "" && s.member {
			refs = append(refs, model.MemberRef{Group: s.group, User: s.uid})
			forSync = append(forSync, s)
		}
	}
	for i, s := range listing {
		for k, gid := range gidsOf[i] {
			if k == maxListedGroups {
				break
			}
			refs = append(refs, model.MemberRef{Group: gid, User: s.uid})
			forSync = append(forSync, s)
		}
	}
	if len(refs) == 0 {
		return nil
	}
	pos, err := j.r.st.TimelinePositions(ctx, refs)
	if err != nil {
		return err
	}
	for i, s := range forSync {
		p := pos[i]
		if s.group != "" {
			s.pos = p
			continue
		}
		if p.Head > p.Pos {
			s.groups = append(s.groups, &cimpb.GroupSeq{Group: refs[i].Group, Seq: p.Head})
		}
	}
	return nil
}

// timelineQuery is the range a member's group SYNC reads.
func (s *syncReq) timelineQuery() model.RangeQuery {
	after := s.req.GetAfterSeq()
	if s.req.GetFromAcked() {
		after = max(after, s.pos.Pos)
	}
	return model.RangeQuery{UserID: model.TimelineID(s.group), After: after, Limit: s.limit}
}

// timelineAnswer appends a group SYNC's answer: the entries as MSG frames
// with their group_seq, then the SYNC frame naming the group. A
// non-member's answer holds nothing and covers everything up to its
// after_seq, so its client has nothing left to ask.
func (s *syncReq) timelineAnswer(out []*cimpb.Delivery, maxFrame int) []*cimpb.Delivery {
	if !s.member {
		after := s.req.GetAfterSeq()
		return append(out, &cimpb.Delivery{UserId: s.uid, SessionId: s.sid, Frame: &cimpb.Frame{
			Type: cimpb.Type_SYNC, ReqId: s.reqID, Sync: &cimpb.Sync{Group: s.group, AfterSeq: after, HeadSeq: after, Limit: uint32(s.limit)},
		}})
	}
	var last uint64
	for _, e := range s.res.Entries {
		last = e.Seq // past entries left out too (see answer)
		if f := decodeTimelineEntry(e); f != nil && proto.Size(f) <= maxFrame {
			out = append(out, &cimpb.Delivery{UserId: s.uid, SessionId: s.sid, Frame: f})
		}
	}
	return append(out, &cimpb.Delivery{UserId: s.uid, SessionId: s.sid, Frame: &cimpb.Frame{
		Type: cimpb.Type_SYNC, ReqId: s.reqID, Sync: &cimpb.Sync{
			Group: s.group, AfterSeq: s.res.After, Limit: uint32(s.limit), HeadSeq: s.res.Head, FirstSeq: s.res.First, LastSeq: last,
		},
	}})
}

// decodeTimelineEntry returns a timeline entry's MSG with its group_seq,
// nil if it does not decode.
func decodeTimelineEntry(e model.Entry) *cimpb.Frame {
	f := &cimpb.Frame{}
	if proto.Unmarshal(e.Frame, f) != nil || f.Type != cimpb.Type_MSG || f.Msg == nil {
		return nil
	}
	f.Msg.GroupSeq = e.Seq
	return f
}
