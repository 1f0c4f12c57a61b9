package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// mute:{uid} is a hash: target (model.MutePeer, model.MuteGroup) → until
// (unix ms; 0: until unmuted), the conversations uid muted.
func (k keys) mute(uid string) string { return k.prefix + "mute:{" + uid + "}" }

// gmute:{#gid} is a hash: member id → until, the members who muted group
// gid (what mute:{uid} says of the group, kept beside the group's timeline
// so that the webhooks of a group message read it in one HMGET).
func (k keys) gmute(gid string) string { return k.prefix + "gmute:{#" + gid + "}" }

// muteScript sets one mute in mute:{uid}, dropping the expired ones first;
// -1 when the hash would hold more than max.
//
// KEYS[1] mute; ARGV: target, until (ms; 0: forever), now ms, max.
var muteScript = redis.NewScript(`
local key, now = KEYS[1], tonumber(ARGV[3])
local all = redis.call('HGETALL', key)
for i = 1, #all, 2 do
  local u = tonumber(all[i + 1])
  if u ~= 0 and u <= now then redis.call('HDEL', key, all[i]) end
end
if redis.call('HEXISTS', key, ARGV[1]) == 0 and redis.call('HLEN', key) >= tonumber(ARGV[4]) then return -1 end
redis.call('HSET', key, ARGV[1], ARGV[2])
return 1
`)

// SetMute records that uid muted target until (unix ms; 0: until unmuted),
// or unmuted it (until < 0); see router.Mutes.
func (s *Store) SetMute(ctx context.Context, uid, target string, until, now int64, max int) error {
	gid, group := strings.CutPrefix(target, "g")
	if until < 0 {
		cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.HDel(ctx, s.k.mute(uid), target)
			if group {
				p.HDel(ctx, s.k.gmute(gid), uid)
			}
			return nil
		})
		return pipeErr(err, cmds)
	}
	n, err := muteScript.Run(ctx, s.rdb, []string{s.k.mute(uid)}, target, until, now, max).Int()
	if err != nil {
		return unavailable(err)
	}
	if n < 0 {
		return fmt.Errorf("%w: at most %d muted conversations", errs.ErrQuotaExceeded, max)
	}
	if group {
		if err := s.rdb.HSet(ctx, s.k.gmute(gid), uid, until).Err(); err != nil {
			return unavailable(err)
		}
	}
	return nil
}

// Mutes reads uid's mutes: target → until.
func (s *Store) Mutes(ctx context.Context, uid string) (map[string]int64, error) {
	all, err := s.rdb.HGetAll(ctx, s.k.mute(uid)).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	out := make(map[string]int64, len(all))
	for t, v := range all {
		if u, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[t] = u
		}
	}
	return out, nil
}

// MutedUntil reads, in one round trip, until when each ref's user muted its
// target (-1: not muted): a group's members from its gmute hash (one HMGET
// per group), a peer from the user's mute hash.
func (s *Store) MutedUntil(ctx context.Context, refs []model.MuteRef) ([]int64, error) {
	out := make([]int64, len(refs))
	type group struct {
		at   []int
		uids []string
		cmd  *redis.SliceCmd
	}
	groups := map[string]*group{}
	var order []string
	peers := make([]*redis.StringCmd, len(refs))
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range refs {
			if gid, ok := strings.CutPrefix(r.Target, "g"); ok {
				g := groups[gid]
				if g == nil {
					g = &group{}
					groups[gid] = g
					order = append(order, gid)
				}
				g.at, g.uids = append(g.at, i), append(g.uids, r.User)
				continue
			}
			peers[i] = p.HGet(ctx, s.k.mute(r.User), r.Target)
		}
		for _, gid := range order {
			g := groups[gid]
			g.cmd = p.HMGet(ctx, s.k.gmute(gid), g.uids...)
		}
		return nil
	})
	if err := pipeErr(err, cmds); err != nil {
		return nil, err
	}
	until := func(v any) int64 {
		str, ok := v.(string)
		if !ok {
			return -1
		}
		u, err := strconv.ParseInt(str, 10, 64)
		if err != nil {
			return -1
		}
		return u
	}
	for i, c := range peers {
		if c == nil {
			continue
		}
		out[i] = -1
		if v, err := c.Result(); err == nil {
			out[i] = until(v)
		}
	}
	for _, gid := range order {
		g := groups[gid]
		for k, v := range g.cmd.Val() {
			out[g.at[k]] = until(v)
		}
	}
	return out, nil
}
