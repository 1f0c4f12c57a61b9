package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// An operator's actions on accounts (router's admin.go): bans, password
// resets, deleting an account with everything it owns, and per-gateway
// user counts.

// ban:{uid} is a hash (reason, until, by, at) in the user's slot; a ban
// with an end expires with it.
func (k keys) ban(uid string) string { return k.prefix + "ban:{" + uid + "}" }

// userFamilies are the key families tagged with a user id ("<family>:{uid}"
// and "<family>:{uid}:..."), all deleted with the account. Families tagged
// with a group id (group, gmembers, ginvited) look the same and are not in
// here; a new per-user family must be added (storetest's Admin section
// fails until it is).
var userFamilies = map[string]bool{
	"user": true, "route": true, "cleared": true, "device": true, "ban": true,
	"seq": true, "inbox": true, "ack": true, "rd": true, "dedup": true,
	"ugroups": true, "gdedup": true, "grd": true, "grr": true,
	"rev": true, "hdel": true, "udelay": true, "upquota": true, "resume": true,
	"blocks": true, "blk": true,
}

// banScript bans a user that exists. KEYS[1] user, KEYS[2] ban; ARGV
// reason, until (ms, 0: none), by, at. Answers 0 when there is no user.
var banScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'name') == 0 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'reason', ARGV[1], 'until', ARGV[2], 'by', ARGV[3], 'at', ARGV[4])
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIREAT', KEYS[2], ARGV[2]) end
return 1
`)

// setPasswordScript replaces the password hash of a user that exists.
// KEYS[1] user; ARGV hash. Answers 0 when there is no user.
var setPasswordScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'name') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'pw', ARGV[1])
return 1
`)

// unindexScript deletes name index fields that still point at a user id.
// KEYS[1] names; ARGV[1] id, ARGV[2..] fields.
var unindexScript = redis.NewScript(`
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 1
`)

// Ban records b for uid; errs.ErrBadAccount when uid is no account.
func (s *Store) Ban(ctx context.Context, uid string, b model.Ban) error {
	n, err := banScript.Run(ctx, s.rdb, []string{s.k.user(uid), s.k.ban(uid)}, b.Reason, b.Until, b.By, b.At).Int()
	if err != nil {
		return unavailable(err)
	}
	if n == 0 {
		return fmt.Errorf("%w: unknown user id %q", errs.ErrBadAccount, uid)
	}
	return nil
}

// Unban lifts uid's ban; false when there was none.
func (s *Store) Unban(ctx context.Context, uid string) (bool, error) {
	n, err := s.rdb.Del(ctx, s.k.ban(uid)).Result()
	return n > 0, unavailable(err)
}

// BanOf returns uid's ban, if one is in force (one that ended is none).
func (s *Store) BanOf(ctx context.Context, uid string) (model.Ban, bool, error) {
	m, err := s.rdb.HGetAll(ctx, s.k.ban(uid)).Result()
	if err != nil || len(m) == 0 {
		return model.Ban{}, false, unavailable(err)
	}
	until, _ := strconv.ParseInt(m["until"], 10, 64)
	at, _ := strconv.ParseInt(m["at"], 10, 64)
	if until > 0 && until <= s.now().UnixMilli() {
		return model.Ban{}, false, nil // Redis has not expired it yet
	}
	return model.Ban{Reason: m["reason"], Until: until, By: m["by"], At: at}, true, nil
}

// SetPassword replaces uid's password hash; errs.ErrBadAccount when uid
// is no account.
func (s *Store) SetPassword(ctx context.Context, uid, pwHash string) error {
	n, err := setPasswordScript.Run(ctx, s.rdb, []string{s.k.user(uid)}, pwHash).Int()
	if err != nil {
		return unavailable(err)
	}
	if n == 0 {
		return fmt.Errorf("%w: unknown user id %q", errs.ErrBadAccount, uid)
	}
	return nil
}

// GatewayUserCounts returns, per gateway, how many users its set holds
// (members may be stale: they are filtered where it matters).
func (s *Store) GatewayUserCounts(ctx context.Context, gws []string) ([]int, error) {
	cmds := make([]*redis.IntCmd, len(gws))
	all, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, gw := range gws {
			cmds[i] = p.SCard(ctx, s.k.gwUsers(gw))
		}
		return nil
	})
	if err := pipeErr(err, all); err != nil {
		return nil, err
	}
	out := make([]int, len(gws))
	for i, c := range cmds {
		out[i] = int(c.Val())
	}
	return out, nil
}

// DeleteUser deletes account uid and everything it owns: every key tagged
// {uid} (found by SCAN, on every master of a cluster), its name in the
// index (so the name can be registered again), its membership of the
// online, per-gateway and device sets, and its pending delayed messages.
// Group memberships are the caller's to end first (leaving or dissolving
// touches the groups' own keys). Each command names keys of one slot, so
// it works on Redis Cluster. errs.ErrBadAccount when uid is no account.
func (s *Store) DeleteUser(ctx context.Context, uid string) error {
	u, err := s.UserByID(ctx, uid)
	if err != nil {
		return err
	}
	// The name first: once it is gone nobody logs in by name, and a failure
	// below leaves an account that can still be deleted by id.
	fields := []any{uid, u.Name}
	if f := FoldName(u.Name); f != u.Name {
		fields = append(fields, f)
	}
	if err := unindexScript.Run(ctx, s.rdb, []string{s.k.names()}, fields...).Err(); err != nil {
		return unavailable(err)
	}
	pending, err := s.rdb.ZRange(ctx, s.k.udelay(uid), 0, -1).Result()
	if err != nil {
		return unavailable(err)
	}
	gws, err := s.rdb.SMembers(ctx, s.k.servers()).Result()
	if err != nil {
		return unavailable(err)
	}
	keys, err := s.userKeys(ctx, uid)
	if err != nil {
		return err
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SRem(ctx, s.k.online(), uid)
		p.ZRem(ctx, s.k.devices(), uid)
		for _, gw := range gws {
			p.SRem(ctx, s.k.gwUsers(gw), uid)
		}
		for _, m := range pending {
			p.ZRem(ctx, s.k.delayq(), m)
		}
		// The user hash goes last: until then the account is found and a
		// failed deletion can be run again.
		for _, k := range keys {
			if k != s.k.user(uid) {
				p.Unlink(ctx, k)
			}
		}
		p.Unlink(ctx, s.k.user(uid))
		return nil
	})
	return pipeErr(err, cmds)
}

// userKeys lists the keys tagged {uid} of the families in userFamilies.
// They all live in one slot, so on a cluster one master holds them; every
// master is scanned rather than asking which.
func (s *Store) userKeys(ctx context.Context, uid string) ([]string, error) {
	pattern := globEscape(s.k.prefix) + "*{" + uid + "}*"
	scan := func(ctx context.Context, c redis.Cmdable) ([]string, error) {
		var out []string
		var cursor uint64
		for {
			ks, next, err := c.Scan(ctx, cursor, pattern, 1000).Result()
			if err != nil {
				return nil, unavailable(err)
			}
			for _, k := range ks {
				if s.ownedBy(k, uid) {
					out = append(out, k)
				}
			}
			if cursor = next; cursor == 0 {
				return out, nil
			}
		}
	}
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return scan(ctx, s.rdb)
	}
	var mu sync.Mutex
	var out []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		ks, err := scan(ctx, c)
		mu.Lock()
		out = append(out, ks...)
		mu.Unlock()
		return err
	})
	return out, unavailable(err)
}

// ownedBy reports whether key is "<prefix><family>:{uid}..." of a user
// family.
func (s *Store) ownedBy(key, uid string) bool {
	rest, ok := strings.CutPrefix(key, s.k.prefix)
	if !ok {
		return false
	}
	family, tail, ok := strings.Cut(rest, ":{"+uid+"}")
	if !ok || !userFamilies[family] {
		return false
	}
	return tail == "" || strings.HasPrefix(tail, ":")
}

// globEscape escapes SCAN's pattern characters in s.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
