// Package hub maps device keys (a user id, or a user id and device slot:
// contract.DeviceKey) to the one live connection each has on this gateway.
//
// The map is split into shards, each with its own lock, so logins, logouts
// and the route's pushes for different users rarely contend. A key has at
// most one entry: Put replaces and returns the previous one (the caller kicks
// it), and Remove only removes the entry if it is still the same connection,
// so the late cleanup of a replaced connection never evicts its successor.
//
// All methods are safe for concurrent use.
package hub

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// Entry is what the hub stores: a comparable handle (usually a pointer) that
// knows its key (its user's id, or user and device slot).
type Entry interface {
	comparable
	HubKey() string
}

// DefaultShards is the shard count New uses when given zero or less.
const DefaultShards = 64

// Hub is a sharded device key → connection map.
type Hub[C Entry] struct {
	seed   maphash.Seed
	shards []shard[C]
	mask   uint64
	n      atomic.Int64
}

type shard[C Entry] struct {
	mu sync.RWMutex
	m  map[string]C
	// Pad to a cache line so neighbouring shard locks do not false-share.
	_ [40]byte
}

// New returns an empty hub with at least the given number of shards (rounded
// up to a power of two).
func New[C Entry](shards int) *Hub[C] {
	if shards <= 0 {
		shards = DefaultShards
	}
	n := 1
	for n < shards {
		n <<= 1
	}
	h := &Hub[C]{seed: maphash.MakeSeed(), shards: make([]shard[C], n), mask: uint64(n - 1)}
	for i := range h.shards {
		h.shards[i].m = make(map[string]C)
	}
	return h
}

func (h *Hub[C]) shard(key string) *shard[C] {
	return &h.shards[maphash.String(h.seed, key)&h.mask]
}

// Put stores c under its key and returns the entry it replaced, if any.
// Putting the same entry twice is a no-op that reports no replacement.
func (h *Hub[C]) Put(c C) (old C, replaced bool) {
	s := h.shard(c.HubKey())
	s.mu.Lock()
	old, replaced = s.m[c.HubKey()]
	s.m[c.HubKey()] = c
	s.mu.Unlock()
	if !replaced {
		h.n.Add(1)
	}
	if replaced && old == c {
		var zero C
		return zero, false
	}
	return old, replaced
}

// Get returns the entry of key.
func (h *Hub[C]) Get(key string) (C, bool) {
	s := h.shard(key)
	s.mu.RLock()
	c, ok := s.m[key]
	s.mu.RUnlock()
	return c, ok
}

// GetBytes is Get for a key held as bytes, without making a string of it.
func (h *Hub[C]) GetBytes(key []byte) (C, bool) {
	s := &h.shards[maphash.Bytes(h.seed, key)&h.mask]
	s.mu.RLock()
	c, ok := s.m[string(key)]
	s.mu.RUnlock()
	return c, ok
}

// Remove deletes c if it is still the entry of its key and reports whether
// it did.
func (h *Hub[C]) Remove(c C) bool {
	id := c.HubKey()
	s := h.shard(id)
	s.mu.Lock()
	cur, ok := s.m[id]
	if ok && cur == c {
		delete(s.m, id)
		h.n.Add(-1)
	} else {
		ok = false
	}
	s.mu.Unlock()
	return ok
}

// Len returns the number of keys with an entry.
func (h *Hub[C]) Len() int { return int(h.n.Load()) }

// Range calls fn for every entry until fn returns false. Each shard is copied
// before fn runs, so fn may call back into the hub; entries added or removed
// during Range may or may not be seen.
func (h *Hub[C]) Range(fn func(C) bool) {
	var buf []C
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		buf = buf[:0]
		for _, c := range s.m {
			buf = append(buf, c)
		}
		s.mu.RUnlock()
		for _, c := range buf {
			if !fn(c) {
				return
			}
		}
	}
}
