package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// blocks:{uid} is the set of users uid blocks (the list it reads, and its
// bound); blk:{uid} the hash the append script reads (see appendRunLua):
// peer -> bit 1 if uid blocks peer, bit 2 if peer blocks uid. Both live as
// long as the account.
func (k keys) blocks(uid string) string { return k.prefix + "blocks:{" + uid + "}" }
func (k keys) blk(uid string) string    { return k.prefix + "blk:{" + uid + "}" }

// Bits of a blk field.
const (
	blkBlocks    = 1 // the key's user blocks the field's
	blkBlockedBy = 2 // the field's user blocks the key's
)

// blockScript adds ARGV[1] to the users KEYS[1] (blocks) holds, at most
// ARGV[2] of them, and sets bit 1 of its field in KEYS[2] (blk). Answers 1
// when added, 0 when already there, -1 when full.
var blockScript = redis.NewScript(`
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
  redis.call('SADD', KEYS[1], ARGV[1])
end
local v = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or 0)
if v % 2 == 0 then redis.call('HSET', KEYS[2], ARGV[1], v + 1) end
return 1
`)

// blockFlagScript sets (ARGV[3] "1") or clears bit ARGV[2] of field
// ARGV[1] of KEYS[1] (blk), deleting a field left 0; with KEYS[2]
// (blocks), it also adds ARGV[1] to that set or removes it.
var blockFlagScript = redis.NewScript(`
local bit = tonumber(ARGV[2])
local v = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or 0)
local has = math.floor(v / bit) % 2 == 1
if ARGV[3] == '1' and not has then v = v + bit end
if ARGV[3] ~= '1' and has then v = v - bit end
if v == 0 then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], v) end
if KEYS[2] then
  if ARGV[3] == '1' then redis.call('SADD', KEYS[2], ARGV[1]) else redis.call('SREM', KEYS[2], ARGV[1]) end
end
return v
`)

// Block makes uid block peer: uid's own set and bit first (peer's messages
// to uid are no longer stored), then peer's mirror bit (uid's messages to
// peer are refused), each one script on its user's slot; both are
// idempotent, so a retry completes a block that stopped half-way.
// errs.ErrQuotaExceeded, nothing changed, when uid blocks max users.
func (s *Store) Block(ctx context.Context, uid, peer string, max int) error {
	n, err := blockScript.Run(ctx, s.rdb, []string{s.k.blocks(uid), s.k.blk(uid)}, peer, max).Int()
	if err != nil {
		return unavailable(err)
	}
	if n < 0 {
		return fmt.Errorf("%w: at most %d blocked users", errs.ErrQuotaExceeded, max)
	}
	return s.blockFlag(ctx, peer, uid, blkBlockedBy, true)
}

// Unblock undoes Block, in the same order.
func (s *Store) Unblock(ctx context.Context, uid, peer string) error {
	err := blockFlagScript.Run(ctx, s.rdb, []string{s.k.blk(uid), s.k.blocks(uid)}, peer, blkBlocks, "0").Err()
	if err != nil {
		return unavailable(err)
	}
	return s.blockFlag(ctx, peer, uid, blkBlockedBy, false)
}

func (s *Store) blockFlag(ctx context.Context, uid, peer string, bit int, on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	if err := blockFlagScript.Run(ctx, s.rdb, []string{s.k.blk(uid)}, peer, bit, v).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// BlockedUsers lists whom uid blocks, in id order.
func (s *Store) BlockedUsers(ctx context.Context, uid string) ([]string, error) {
	ids, err := s.rdb.SMembers(ctx, s.k.blocks(uid)).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	slices.SortFunc(ids, model.CompareIDs)
	return ids, nil
}

// BlockBetween reports whether uid blocks peer (model.BlockedByRecipient,
// as if peer wrote to uid) or peer blocks uid (model.BlockedBySender).
func (s *Store) BlockBetween(ctx context.Context, uid, peer string) (model.Blocked, error) {
	v, err := s.rdb.HGet(ctx, s.k.blk(uid), peer).Result()
	if errors.Is(err, redis.Nil) {
		return model.NotBlocked, nil
	}
	if err != nil {
		return model.NotBlocked, unavailable(err)
	}
	n, _ := strconv.Atoi(v)
	switch {
	case n&blkBlocks != 0:
		return model.BlockedByRecipient, nil
	case n&blkBlockedBy != 0:
		return model.BlockedBySender, nil
	}
	return model.NotBlocked, nil
}

// BlockedBy reports, for each of peers, whether it blocks uid: bit 2 of
// its field in uid's blk (one HMGET).
func (s *Store) BlockedBy(ctx context.Context, uid string, peers []string) ([]bool, error) {
	if len(peers) == 0 {
		return nil, nil
	}
	vs, err := s.rdb.HMGet(ctx, s.k.blk(uid), peers...).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]bool, len(peers))
	for i, v := range vs {
		if v, ok := v.(string); ok {
			n, _ := strconv.Atoi(v)
			out[i] = n&blkBlockedBy != 0
		}
	}
	return out, nil
}
