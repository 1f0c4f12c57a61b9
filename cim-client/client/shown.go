package client

import (
	"hash/maphash"
	"sync"
)

// shownKept is how many msgIds of shown messages the client remembers to
// drop repeats (and to tell group messages apart in MarkRead).
const shownKept = 4096

// shownMsg is what the client remembers of a message it showed.
type shownMsg struct {
	group string // the group it came through; "" for a private message
	seq   uint64 // its inbox seq
	own   bool   // sent by this user (a copy for its devices): never READ
	// reaction: a MSG_OP_REACT, not a chat message, never READ either.
	reaction bool
}

// shownSet remembers the last max messages shown, the oldest forgotten
// first. Nothing in it is ever refreshed, so it is a ring of values with an
// index rather than an LRU: a list node per message shown was a fifth of a
// busy client's CPU (a 5,000-member group's members, each one an SDK
// client, in the fan-out bench).
//
// A msgId is remembered by its 64-bit hash (maphash, seeded per set), not
// its string: the set then holds no string per message, and its index
// holds no pointers, so the garbage collector has next to nothing to
// trace in it. A busy client's set was 4,096 small strings and a map
// keyed by them, most of what a load generator of 100 clients kept alive
// and marked on every cycle. Two msgIds of the last 4,096 sharing a hash
// (about one chance in 10¹² per set) would make the second look like a
// repeat. Safe for concurrent use.
type shownSet struct {
	mu   sync.Mutex
	max  int
	seed maphash.Seed
	ring []shownEntry // grows to max, then wraps at next
	next int          // where the next entry goes once ring is full
	at   map[uint64]int32
}

type shownEntry struct {
	h uint64 // the msgId's hash
	m shownMsg
}

func newShownSet(max int) *shownSet {
	return &shownSet{max: max, seed: maphash.MakeSeed(), at: make(map[uint64]int32)}
}

// ContainsOrAdd reports whether id is remembered, remembering it with m if
// not.
func (s *shownSet) ContainsOrAdd(id string, m shownMsg) bool {
	h := maphash.String(s.seed, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.at[h]; ok {
		return true
	}
	s.add(h, m)
	return false
}

// Add remembers id with m, replacing what was remembered of it.
func (s *shownSet) Add(id string, m shownMsg) {
	h := maphash.String(s.seed, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.at[h]; ok {
		s.ring[i].m = m
		return
	}
	s.add(h, m)
}

func (s *shownSet) add(h uint64, m shownMsg) {
	if len(s.ring) < s.max {
		s.at[h] = int32(len(s.ring))
		s.ring = append(s.ring, shownEntry{h, m})
		return
	}
	delete(s.at, s.ring[s.next].h)
	s.ring[s.next] = shownEntry{h, m}
	s.at[h] = int32(s.next)
	s.next = (s.next + 1) % s.max
}

// Contains reports whether id is remembered.
func (s *shownSet) Contains(id string) bool {
	_, ok := s.Peek(id)
	return ok
}

// Peek returns what is remembered of id.
func (s *shownSet) Peek(id string) (shownMsg, bool) {
	h := maphash.String(s.seed, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.at[h]
	if !ok {
		return shownMsg{}, false
	}
	return s.ring[i].m, true
}

// HasSeq reports whether a remembered message has inbox seq seq.
func (s *shownSet) HasSeq(seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.ring {
		if e.m.seq == seq {
			return true
		}
	}
	return false
}
