package store

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// Devices (IoT): a device is an account without a password (user:{id},
// marked with device = 1, and the name index) plus a record in the same
// slot, and a place in the list.
//
//   - device:{<id>}: hash name, secret (SHA-256 of the credential, 32 raw
//     bytes; absent once revoked), created, revoked (ms), seen (ms of the
//     last connect or disconnect). It shares the {id} tag with the user's
//     other keys, so a device login's script also reaches seq:{id} and
//     ack:{id}.
//   - devices: sorted set of the device ids, scored by the id: the paged
//     list, and what --max-devices counts.
func (k keys) device(id string) string { return k.prefix + "device:{" + id + "}" }
func (k keys) devices() string         { return k.prefix + "devices" }

// deviceFields are the fields of a device record, in the order read.
var deviceFields = []string{"name", "secret", "created", "revoked", "seen"}

// createDeviceScript writes a passwordless account and its device record.
//
// KEYS[1] user, KEYS[2] device; ARGV name, secret, created (ms).
var createDeviceScript = redis.NewScript(`
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'pw', '', 'created', ARGV[3], 'device', '1')
redis.call('HSET', KEYS[2], 'name', ARGV[1], 'secret', ARGV[2], 'created', ARGV[3])
return 1
`)

// listDeviceScript adds a device id to the list unless it holds ARGV[2]
// already. KEYS[1] devices; ARGV id, max. Answers 1, or 0 when full.
var listDeviceScript = redis.NewScript(`
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1])
return 1
`)

// CreateDevice creates the passwordless account name and its device
// record: errs.ErrNameTaken when the name exists in any case,
// errs.ErrQuotaExceeded (nothing kept) when the list holds max devices.
//
// As CreateUser, in steps: the records are written before the name index,
// so whoever finds the name finds the device, and a lost race for the name
// (or for the last place in the list) deletes them again (the id stays
// unused).
func (s *Store) CreateDevice(ctx context.Context, name string, secret []byte, max int) (model.Device, error) {
	// One round trip for the cheap refusals: the list full, the name taken
	// (exact spelling or folded, as nameID).
	var count *redis.IntCmd
	var exact, folded *redis.StringCmd
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		count = p.ZCard(ctx, s.k.devices())
		exact = p.HGet(ctx, s.k.names(), name)
		folded = p.HGet(ctx, s.k.names(), FoldName(name))
		return nil
	})
	if err := pipeErr(err, cmds); err != nil {
		return model.Device{}, err
	}
	if n := count.Val(); n >= int64(max) {
		return model.Device{}, fmt.Errorf("%w: there are %d devices, the limit is %d", errs.ErrQuotaExceeded, n, max)
	}
	if exact.Val() != "" || folded.Val() != "" {
		return model.Device{}, fmt.Errorf("%w: %q", errs.ErrNameTaken, name)
	}
	n, err := s.rdb.Incr(ctx, s.k.seq()).Result()
	if err != nil {
		return model.Device{}, unavailable(err)
	}
	id := strconv.FormatInt(n, 10)
	created := s.now().UnixMilli()
	res, err := s.run(ctx, []op{
		{script: createDeviceScript, keys: []string{s.k.user(id), s.k.device(id)}, args: []any{name, secret, created}},
		{script: listDeviceScript, keys: []string{s.k.devices()}, args: []any{id, max}},
	})
	if err != nil {
		return model.Device{}, err
	}
	if listed, _ := res[1].(*redis.Cmd).Int(); listed != 1 {
		s.forgetDevice(ctx, id, false)
		return model.Device{}, fmt.Errorf("%w: the limit of %d devices is reached", errs.ErrQuotaExceeded, max)
	}
	ok, err := s.rdb.HSetNX(ctx, s.k.names(), FoldName(name), id).Result()
	if err != nil {
		return model.Device{}, unavailable(err)
	}
	if !ok {
		s.forgetDevice(ctx, id, true)
		return model.Device{}, fmt.Errorf("%w: %q", errs.ErrNameTaken, name)
	}
	return model.Device{ID: id, Name: name, Secret: secret, Created: created}, nil
}

// forgetDevice deletes the records of a device that was not created after
// all, best effort (an orphan is invisible: no name points to it).
func (s *Store) forgetDevice(ctx context.Context, id string, listed bool) {
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.k.user(id), s.k.device(id))
		if listed {
			p.ZRem(ctx, s.k.devices(), id)
		}
		return nil
	})
}

// Device reads uid's device record; errs.ErrNotFound when uid is no device.
func (s *Store) Device(ctx context.Context, uid string) (model.Device, error) {
	v, err := s.rdb.HMGet(ctx, s.k.device(uid), deviceFields...).Result()
	if err != nil {
		return model.Device{}, unavailable(err)
	}
	d, ok := parseDevice(uid, v)
	if !ok {
		return model.Device{}, fmt.Errorf("%w: no device %q", errs.ErrNotFound, uid)
	}
	return d, nil
}

// parseDevice reads an HMGET of deviceFields; false when there is no
// record.
func parseDevice(uid string, v []any) (model.Device, bool) {
	if len(v) != len(deviceFields) || str(v[0]) == "" {
		return model.Device{}, false
	}
	d := model.Device{ID: uid, Name: str(v[0])}
	if sec := str(v[1]); sec != "" {
		d.Secret = []byte(sec)
	}
	d.Created, _ = strconv.ParseInt(str(v[2]), 10, 64)
	d.Revoked, _ = strconv.ParseInt(str(v[3]), 10, 64)
	d.Seen, _ = strconv.ParseInt(str(v[4]), 10, 64)
	return d, true
}

// ListDevices returns up to n devices with an id above after, in id order,
// without secrets: one read of the list, one pipeline of the records.
func (s *Store) ListDevices(ctx context.Context, after string, n int) ([]model.Device, error) {
	lo := "-inf"
	if after != "" {
		lo = "(" + after
	}
	ids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: s.k.devices(), Start: lo, Stop: "+inf", ByScore: true, Count: int64(max(n, 1)),
	}).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	ops := make([]op, len(ids))
	for i, id := range ids {
		ops[i] = op{keys: []string{s.k.device(id)}, fields: deviceFields}
	}
	res, err := s.run(ctx, ops)
	if err != nil {
		return nil, err
	}
	out := make([]model.Device, 0, len(ids))
	var orphans []any
	for i, id := range ids {
		d, ok := parseDevice(id, res[i].(*redis.SliceCmd).Val())
		if !ok {
			orphans = append(orphans, id) // a creation that was undone half-way
			continue
		}
		d.Secret = nil
		out = append(out, d)
	}
	if len(orphans) > 0 {
		_ = s.rdb.ZRem(ctx, s.k.devices(), orphans...).Err() // best effort: the next listing tries again
	}
	return out, nil
}

// setDeviceSecretScript gives a device a new credential hash (ARGV[1]) and
// forgets a revocation. KEYS[1] device. Answers 0 when there is no device.
var setDeviceSecretScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'secret', ARGV[1])
redis.call('HDEL', KEYS[1], 'revoked')
return 1
`)

// revokeDeviceScript deletes a device's credential and notes when
// (ARGV[1], ms; a second revocation keeps the first time). KEYS[1] device.
// Answers 0 when there is no device.
var revokeDeviceScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], 'secret')
redis.call('HSETNX', KEYS[1], 'revoked', ARGV[1])
return 1
`)

// SetDeviceSecret replaces uid's credential hash, reinstating a revoked
// device; errs.ErrNotFound when uid is no device.
func (s *Store) SetDeviceSecret(ctx context.Context, uid string, secret []byte) error {
	return s.changeDevice(ctx, setDeviceSecretScript, uid, secret)
}

// RevokeDevice deletes uid's credential; errs.ErrNotFound when uid is no
// device.
func (s *Store) RevokeDevice(ctx context.Context, uid string, at int64) error {
	return s.changeDevice(ctx, revokeDeviceScript, uid, at)
}

func (s *Store) changeDevice(ctx context.Context, script *redis.Script, uid string, arg any) error {
	n, err := script.Run(ctx, s.rdb, []string{s.k.device(uid)}, arg).Int()
	if err != nil {
		return unavailable(err)
	}
	if n != 1 {
		return fmt.Errorf("%w: no device %q", errs.ErrNotFound, uid)
	}
	return nil
}

// deviceConnectedScript records a device's connect: unless its credential
// hash is no longer ARGV[1] (answer -1, nothing changed), seen becomes
// ARGV[2] (ms; it never goes back), with ARGV[3] = 1 the acknowledged seq
// rises to the inbox head, and the answer is seen as it was.
//
// KEYS[1] device, KEYS[2] seq, KEYS[3] ack.
var deviceConnectedScript = redis.NewScript(`
local secret = redis.call('HGET', KEYS[1], 'secret')
if not secret or secret ~= ARGV[1] then return -1 end
local seen = tonumber(redis.call('HGET', KEYS[1], 'seen') or '0') or 0
if tonumber(ARGV[2]) > seen then redis.call('HSET', KEYS[1], 'seen', ARGV[2]) end
if ARGV[3] == '1' then
  local head = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
  if head > (tonumber(redis.call('GET', KEYS[3]) or '0') or 0) then
    redis.call('SET', KEYS[3], head)
  end
end
return seen
`)

// DeviceConnected records a connect of uid with the credential hashed to
// secret and returns when the device was seen before (one script run);
// with clean its inbox counts as acknowledged up to its head.
// errs.ErrBadAccount when secret is not the device's credential any more.
func (s *Store) DeviceConnected(ctx context.Context, uid string, secret []byte, at int64, clean bool) (int64, error) {
	c := "0"
	if clean {
		c = "1"
	}
	keys := []string{s.k.device(uid), s.k.inboxSeq(uid), s.k.ack(uid)}
	prev, err := deviceConnectedScript.Run(ctx, s.rdb, keys, secret, at, c).Int64()
	if err != nil {
		return 0, unavailable(err)
	}
	if prev < 0 {
		return 0, fmt.Errorf("%w: device %s: the credential changed", errs.ErrBadAccount, uid)
	}
	return prev, nil
}

// DevicesSeen records a disconnect at at for those of uids that are
// devices (their device record's seen; one pipeline of script runs).
func (s *Store) DevicesSeen(ctx context.Context, uids []string, at int64) error {
	return s.moveSeen(ctx, s.k.device, uids, at)
}
