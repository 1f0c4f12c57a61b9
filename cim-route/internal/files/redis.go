package files

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/errs"
)

// DefaultChunk is the size of the pieces Redis stores an upload in: big
// enough that a 10 MiB file is 40 keys, small enough that a download holds
// one piece in memory at a time.
const DefaultChunk = 256 << 10

// Redis keeps uploads in Redis, so every route replica sees every upload
// without a shared file system. Each upload is
//
//	<prefix>file:{<ref>}:meta  hash: name, type, size, owner, created, state, chunks, refd
//	<prefix>file:{<ref>}:<n>   the n-th piece of the bytes (DefaultChunk each)
//
// all under one hash tag, so in a Redis Cluster an upload lives on one node
// and is written and deleted in one transaction. The metadata is written
// first with state "partial" and a TTL (like Disk's temporary files): an
// upload whose replica died mid-way disappears by itself; a complete one
// gets state "done" and loses its TTLs in one transaction, so a ref is
// either complete or unknown.
//
// Space is accounted in two keys of one slot, <prefix>files:{uploads}:index
// (ref → bytes claimed or stored) and <prefix>files:{uploads}:used (their
// sum, the counter the global cap is checked against): a claim is one
// script, so replicas never overrun the cap together. Sweep (any replica,
// any number at once) deletes expired uploads, drops index entries whose
// upload is gone and recounts the counter from the index.
type Redis struct {
	rdb     redis.UniversalClient
	prefix  string
	max     int64
	chunk   int
	limits  Limits
	timeout time.Duration
	now     func() time.Time
}

// NewRedis returns a Redis store on rdb with keys under prefix (the route's
// --redis-prefix) accepting files of at most max bytes.
func NewRedis(rdb redis.UniversalClient, prefix string, max int64) *Redis {
	return &Redis{rdb: rdb, prefix: prefix, max: max, chunk: DefaultChunk, timeout: 10 * time.Second,
		now: time.Now, limits: Limits{UnreferencedTTL: 24 * time.Hour}}
}

// Max is the largest accepted file in bytes.
func (s *Redis) Max() int64 { return s.max }

// SetLimits sets the limits; call it before the Store is used.
func (s *Redis) SetLimits(l Limits) {
	if l.UnreferencedTTL <= 0 {
		l.UnreferencedTTL = 24 * time.Hour
	}
	s.limits = l
}

// Init checks that Redis answers.
func (s *Redis) Init() error {
	ctx, cancel := s.ctx()
	defer cancel()
	return s.rdb.Ping(ctx).Err()
}

// ctx bounds one Redis operation: the Store's methods have no context of
// their own (a download reads chunks long after the request began).
func (s *Redis) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

func (s *Redis) metaKey(ref string) string { return s.prefix + "file:{" + ref + "}:meta" }
func (s *Redis) chunkKey(ref string, n int) string {
	return s.prefix + "file:{" + ref + "}:" + strconv.Itoa(n)
}
func (s *Redis) usedKey() string  { return s.prefix + "files:{uploads}:used" }
func (s *Redis) indexKey() string { return s.prefix + "files:{uploads}:index" }

// claimScript reserves ARGV[2] bytes for ref ARGV[1] unless the counter
// would pass the cap ARGV[3] (0: none); 0 means refused.
var claimScript = redis.NewScript(`
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local n, cap = tonumber(ARGV[2]), tonumber(ARGV[3])
if cap > 0 and used + n > cap then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], n)
redis.call('INCRBY', KEYS[1], n)
return 1`)

// settleScript sets ref's accounted bytes to ARGV[2]; a negative value
// drops ref from the index. Once per entry: a ref already gone is a no-op.
var settleScript = redis.NewScript(`
local old = redis.call('HGET', KEYS[2], ARGV[1])
if not old then return 0 end
local n = tonumber(ARGV[2])
if n < 0 then
  redis.call('HDEL', KEYS[2], ARGV[1])
  n = 0
else
  redis.call('HSET', KEYS[2], ARGV[1], n)
end
redis.call('INCRBY', KEYS[1], n - tonumber(old))
return 1`)

// recountScript sets the counter to the sum of the index.
var recountScript = redis.NewScript(`
local sum = 0
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do sum = sum + tonumber(v) end
redis.call('SET', KEYS[1], sum)
return sum`)

// markScript sets refd on an existing upload only.
var markScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'refd', '1') end
return 0`)

func (s *Redis) settle(ctx context.Context, ref string, n int64) error {
	return settleScript.Run(ctx, s.rdb, []string{s.usedKey(), s.indexKey()}, ref, n).Err()
}

// PutFor stores body, uploaded by owner; see Store.
func (s *Redis) PutFor(owner string, expect int64, name, contentType string, body io.Reader) (Info, error) {
	if expect <= 0 || expect > s.max {
		expect = s.max
	}
	ctx, cancel := s.ctx()
	defer cancel()
	info := Info{Ref: newRef(), Name: name, ContentType: contentType, Owner: owner}
	meta := s.metaKey(info.Ref)
	// The metadata first: Sweep drops an index entry whose upload is gone,
	// so the upload must exist before it is claimed.
	if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, meta, "ref", info.Ref, "name", name, "type", contentType, "owner", owner,
			"created", s.now().UnixNano(), "state", "partial")
		p.PExpire(ctx, meta, staleTemp)
		return nil
	}); err != nil {
		return Info{}, err
	}
	chunks := 0
	abort := func(err error) (Info, error) {
		keys := []string{meta}
		for i := range chunks {
			keys = append(keys, s.chunkKey(info.Ref, i))
		}
		// The request may be over; the cleanup must not be lost with it.
		cctx, ccancel := s.ctx()
		defer ccancel()
		s.rdb.Del(cctx, keys...)
		s.settle(cctx, info.Ref, -1)
		return Info{}, err
	}
	if err := s.claim(ctx, info.Ref, expect); err != nil {
		return abort(err)
	}
	buf := make([]byte, s.chunk)
	src := io.LimitReader(body, s.max+1)
	for {
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			info.Size += int64(n)
			if info.Size > s.max {
				return abort(fmt.Errorf("%w: uploads are limited to %d bytes", errs.ErrTooLarge, s.max))
			}
			// Each piece gets its own bounded call: a large upload is
			// slow because its client is, not because Redis is.
			wctx, wcancel := s.ctx()
			werr := s.rdb.Set(wctx, s.chunkKey(info.Ref, chunks), buf[:n], staleTemp).Err()
			wcancel()
			chunks++
			if werr != nil {
				return abort(werr)
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return abort(fmt.Errorf("%w: reading the upload: %v", errs.ErrBadArgument, err))
		}
	}
	ctx, cancel = s.ctx() // reading the body may have taken longer than one call
	defer cancel()
	if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, meta, "size", info.Size, "chunks", chunks, "state", "done")
		p.Persist(ctx, meta)
		for i := range chunks {
			p.Persist(ctx, s.chunkKey(info.Ref, i))
		}
		return nil
	}); err != nil {
		return abort(err)
	}
	if err := s.settle(ctx, info.Ref, info.Size); err != nil {
		return Info{}, err // stored; the next Sweep recounts
	}
	return info, nil
}

// claim reserves n bytes for ref against the global cap and Redis's
// maxmemory reserve.
func (s *Redis) claim(ctx context.Context, ref string, n int64) error {
	if s.limits.MinFree > 0 {
		free, limited, err := s.freeMemory(ctx)
		if err != nil {
			return err
		}
		if limited && free-n < s.limits.MinFree {
			return fmt.Errorf("%w: Redis keeps %d bytes below maxmemory", errs.ErrStorageFull, s.limits.MinFree)
		}
	}
	ok, err := claimScript.Run(ctx, s.rdb, []string{s.usedKey(), s.indexKey()}, ref, n, s.limits.Total).Int()
	if err != nil {
		return err
	}
	if ok == 0 {
		return fmt.Errorf("%w: uploads may take %d bytes in all", errs.ErrStorageFull, s.limits.Total)
	}
	return nil
}

// freeMemory is maxmemory less used_memory as INFO memory tells (of the
// node that answers); limited is false when no maxmemory is set.
func (s *Redis) freeMemory(ctx context.Context) (free int64, limited bool, err error) {
	txt, err := s.rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, false, err
	}
	var used, maxmem int64
	sc := bufio.NewScanner(strings.NewReader(txt))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		switch k {
		case "used_memory":
			used, _ = strconv.ParseInt(v, 10, 64)
		case "maxmemory":
			maxmem, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if maxmem <= 0 {
		return 0, false, nil
	}
	return maxmem - used, true, nil
}

// stored is an upload's metadata as Redis keeps it.
type stored struct {
	info    Info
	created time.Time
	chunks  int
	done    bool
	refd    bool
}

func parseMeta(m map[string]string) (stored, bool) {
	if len(m) == 0 || m["ref"] == "" {
		return stored{}, false
	}
	size, _ := strconv.ParseInt(m["size"], 10, 64)
	created, _ := strconv.ParseInt(m["created"], 10, 64)
	chunks, _ := strconv.Atoi(m["chunks"])
	return stored{
		info:    Info{Ref: m["ref"], Name: m["name"], ContentType: m["type"], Size: size, Owner: m["owner"]},
		created: time.Unix(0, created), chunks: chunks, done: m["state"] == "done", refd: m["refd"] == "1",
	}, true
}

// Open returns the upload ref, read piece by piece as the caller reads.
func (s *Redis) Open(ref string) (File, Info, time.Time, error) {
	notFound := fmt.Errorf("%w: no file %q", errs.ErrNotFound, ref)
	if !ValidRef(ref) {
		return nil, Info{}, time.Time{}, notFound
	}
	ctx, cancel := s.ctx()
	defer cancel()
	m, err := s.rdb.HGetAll(ctx, s.metaKey(ref)).Result()
	if err != nil {
		return nil, Info{}, time.Time{}, err
	}
	st, ok := parseMeta(m)
	if !ok || !st.done {
		return nil, Info{}, time.Time{}, notFound
	}
	if st.info.Ref != ref {
		return nil, Info{}, time.Time{}, fmt.Errorf("file %s: bad metadata", ref)
	}
	return &redisFile{s: s, ref: ref, size: st.info.Size, cur: -1}, st.info, st.created, nil
}

// redisFile reads an upload one piece at a time: at most one piece is held.
type redisFile struct {
	s    *Redis
	ref  string
	size int64
	pos  int64
	cur  int // index of the piece in buf; -1: none
	buf  []byte
}

func (f *redisFile) Read(p []byte) (int, error) {
	if f.pos >= f.size {
		return 0, io.EOF
	}
	chunk := int64(f.s.chunk)
	n := int(f.pos / chunk)
	if n != f.cur {
		ctx, cancel := f.s.ctx()
		b, err := f.s.rdb.Get(ctx, f.s.chunkKey(f.ref, n)).Bytes()
		cancel()
		if errors.Is(err, redis.Nil) {
			return 0, fmt.Errorf("file %s: piece %d is gone (deleted while read)", f.ref, n)
		}
		if err != nil {
			return 0, err
		}
		f.cur, f.buf = n, b
	}
	off := f.pos - int64(n)*chunk
	if off >= int64(len(f.buf)) {
		return 0, fmt.Errorf("file %s: piece %d is short", f.ref, n)
	}
	c := copy(p, f.buf[off:])
	f.pos += int64(c)
	return c, nil
}

func (f *redisFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.pos
	case io.SeekEnd:
		offset += f.size
	default:
		return 0, errors.New("seek: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	f.pos = offset
	return offset, nil
}

func (f *redisFile) Close() error {
	f.buf = nil
	return nil
}

// MarkReferenced records that the upload ref is in use; see Store.
func (s *Redis) MarkReferenced(ref string) error {
	if !ValidRef(ref) {
		return nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	return markScript.Run(ctx, s.rdb, []string{s.metaKey(ref)}).Err()
}

// Referenced reports whether ref is marked in use.
func (s *Redis) Referenced(ref string) bool {
	if !ValidRef(ref) {
		return false
	}
	ctx, cancel := s.ctx()
	defer cancel()
	v, err := s.rdb.HGet(ctx, s.metaKey(ref), "refd").Result()
	return err == nil && v == "1"
}

// Used is the bytes stored and claimed by uploads under way, all replicas
// together; 0 when Redis does not answer.
func (s *Redis) Used() int64 {
	ctx, cancel := s.ctx()
	defer cancel()
	n, _ := s.rdb.Get(ctx, s.usedKey()).Int64()
	return n
}

// Sweep deletes expired uploads, drops the accounting of uploads that are
// gone (a replica died mid-upload) and recounts the counter. It walks the
// index, sweepBatch refs at a time.
func (s *Redis) Sweep() (SweepResult, error) {
	var res SweepResult
	now := s.now()
	var cursor uint64
	for {
		ctx, cancel := s.ctx()
		kv, next, err := s.rdb.HScan(ctx, s.indexKey(), cursor, "", sweepBatch).Result()
		cancel()
		if err != nil {
			return res, err
		}
		refs := make([]string, 0, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			refs = append(refs, kv[i])
		}
		if err := s.sweepRefs(refs, now, &res); err != nil {
			return res, err
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if err := recountScript.Run(ctx, s.rdb, []string{s.usedKey(), s.indexKey()}).Err(); err != nil {
		return res, err
	}
	return res, nil
}

const sweepBatch = 256

func (s *Redis) sweepRefs(refs []string, now time.Time, res *SweepResult) error {
	ctx, cancel := s.ctx()
	defer cancel()
	cmds := make([]*redis.MapStringStringCmd, len(refs))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, ref := range refs {
			cmds[i] = p.HGetAll(ctx, s.metaKey(ref))
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	for i, ref := range refs {
		st, ok := parseMeta(cmds[i].Val())
		switch {
		case !ok: // gone: a partial upload whose TTL ran out
			if err := s.settle(ctx, ref, -1); err != nil {
				return err
			}
			continue
		case !st.done: // under way: its claim stays
			continue
		}
		age := now.Sub(st.created)
		expired := s.limits.MaxAge > 0 && age > s.limits.MaxAge
		if !expired && age > s.limits.UnreferencedTTL && !st.refd {
			expired = st.info.Owner != "" // owner-less uploads count as in use
		}
		if !expired {
			res.Kept++
			res.Used += st.info.Size
			continue
		}
		keys := []string{s.metaKey(ref)}
		for n := range st.chunks {
			keys = append(keys, s.chunkKey(ref, n))
		}
		if err := s.rdb.Del(ctx, keys...).Err(); err != nil {
			res.Kept++
			res.Used += st.info.Size
			continue
		}
		if err := s.settle(ctx, ref, -1); err != nil {
			return err
		}
		res.Deleted++
		res.Freed += st.info.Size
	}
	return nil
}
