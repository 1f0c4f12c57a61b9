package client

import "sync"

// shownKept is how many msgIds of shown messages the client remembers to
// drop repeats (and to tell group messages apart in MarkRead).
const shownKept = 4096

// shownMsg is what the client remembers of a message it showed.
type shownMsg struct {
	group string // the group it came through; "" for a private message
	seq   uint64 // its inbox seq
	own   bool   // sent by this user (a copy for its devices): never READ
}

// shownSet remembers the last max messages shown, the oldest forgotten
// first. Nothing in it is ever refreshed, so it is a ring of values with an
// index rather than an LRU: a list node per message shown was a fifth of a
// busy client's CPU (a 5,000-member group's members, each one an SDK
// client, in the fan-out bench). Safe for concurrent use.
type shownSet struct {
	mu   sync.Mutex
	max  int
	ring []shownEntry // grows to max, then wraps at next
	next int          // where the next entry goes once ring is full
	at   map[string]int
}

type shownEntry struct {
	id string
	m  shownMsg
}

func newShownSet(max int) *shownSet {
	return &shownSet{max: max, at: make(map[string]int)}
}

// ContainsOrAdd reports whether id is remembered, remembering it with m if
// not.
func (s *shownSet) ContainsOrAdd(id string, m shownMsg) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.at[id]; ok {
		return true
	}
	s.add(id, m)
	return false
}

// Add remembers id with m, replacing what was remembered of it.
func (s *shownSet) Add(id string, m shownMsg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.at[id]; ok {
		s.ring[i].m = m
		return
	}
	s.add(id, m)
}

func (s *shownSet) add(id string, m shownMsg) {
	if len(s.ring) < s.max {
		s.at[id] = len(s.ring)
		s.ring = append(s.ring, shownEntry{id, m})
		return
	}
	delete(s.at, s.ring[s.next].id)
	s.ring[s.next] = shownEntry{id, m}
	s.at[id] = s.next
	s.next = (s.next + 1) % s.max
}

// Contains reports whether id is remembered.
func (s *shownSet) Contains(id string) bool {
	_, ok := s.Peek(id)
	return ok
}

// Peek returns what is remembered of id.
func (s *shownSet) Peek(id string) (shownMsg, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.at[id]
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
