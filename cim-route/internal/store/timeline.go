package store

import (
	"context"
	"slices"

	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/redis/go-redis/v9"
)

// Group timelines (docs/ARCHITECTURE.md, "Group timelines"): a large
// group's messages are the entries of the inbox named
// model.TimelineID(gid), written and read like any inbox; each member's
// acknowledged position is a field of gpos:{#gid}, in the timeline's slot.

// gpos holds the members' positions in gid's timeline.
func (k keys) gpos(gid string) string { return k.prefix + "gpos:{" + model.TimelineID(gid) + "}" }

// joinPosScript gives a joining member its start: the timeline's head now,
// unless it has a position already (a member joining again keeps its own).
// It answers 1 when it set one.
//
// KEYS timeline seq, gpos; ARGV user.
var joinPosScript = redis.NewScript(`
return redis.call('HSETNX', KEYS[2], ARGV[1], redis.call('GET', KEYS[1]) or '0')
`)

// raisePosScript raises members' positions, never down and never past the
// head (a client cannot acknowledge what does not exist yet).
//
// KEYS timeline seq, gpos; ARGV (user, seq)...
var raisePosScript = redis.NewScript(`
local head = tonumber(redis.call('GET', KEYS[1]) or '0')
for i = 1, #ARGV, 2 do
  local want = math.min(tonumber(ARGV[i+1]), head)
  local cur = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0')
  if want > cur then redis.call('HSET', KEYS[2], ARGV[i], want) end
end
return 0
`)

// joinPos marks uid's start in gid's timeline before it joins, so no
// message stored after the join can be missed; it reports whether it set
// one (the caller takes it back when the join fails).
func (s *Store) joinPos(ctx context.Context, gid, uid string) (bool, error) {
	n, err := joinPosScript.Run(ctx, s.rdb, []string{s.k.inboxSeq(model.TimelineID(gid)), s.k.gpos(gid)}, uid).Int()
	if err != nil {
		return false, unavailable(err)
	}
	return n == 1, nil
}

// dropPos forgets uid's position in gid's timeline (it left, or its join
// failed).
func (s *Store) dropPos(ctx context.Context, gid, uid string) error {
	if err := s.rdb.HDel(ctx, s.k.gpos(gid), uid).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// dropTimeline deletes a dissolved group's timeline and positions.
func (s *Store) dropTimeline(ctx context.Context, gid string) error {
	id := model.TimelineID(gid)
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range []string{s.k.inbox(id), s.k.inboxSeq(id), s.k.ack(id), s.k.gpos(gid)} {
			p.Del(ctx, k)
		}
		return nil
	})
	return pipeErr(err, cmds)
}

// TimelinePositions reads each ref's timeline head and member position,
// pipelined (a round trip per maxPipeline/2 refs).
func (s *Store) TimelinePositions(ctx context.Context, refs []model.MemberRef) ([]model.TimelinePos, error) {
	out := make([]model.TimelinePos, 0, len(refs))
	for chunk := range slices.Chunk(refs, maxPipeline/2) {
		var heads []*redis.StringCmd
		var pos []*redis.StringCmd
		cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, r := range chunk {
				heads = append(heads, p.Get(ctx, s.k.inboxSeq(model.TimelineID(r.Group))))
				pos = append(pos, p.HGet(ctx, s.k.gpos(r.Group), r.User))
			}
			return nil
		})
		if err := pipeErr(err, cmds); err != nil {
			return nil, err
		}
		for i := range chunk {
			h, _ := heads[i].Uint64()
			p, _ := pos[i].Uint64()
			out = append(out, model.TimelinePos{Head: h, Pos: min(p, h)})
		}
	}
	return out, nil
}

// RaiseTimelinePositions raises members' positions: one script run per
// group, all pipelined.
func (s *Store) RaiseTimelinePositions(ctx context.Context, ps []model.GroupPos) error {
	if len(ps) == 0 {
		return nil
	}
	args := map[string][]any{}
	var order []string
	for _, p := range ps {
		if p.Seq == 0 {
			continue
		}
		if _, ok := args[p.Group]; !ok {
			order = append(order, p.Group)
		}
		args[p.Group] = append(args[p.Group], p.User, p.Seq)
	}
	ops := make([]op, len(order))
	for i, gid := range order {
		ops[i] = op{script: raisePosScript, keys: []string{s.k.inboxSeq(model.TimelineID(gid)), s.k.gpos(gid)}, args: args[gid]}
	}
	_, err := s.run(ctx, ops)
	return err
}
