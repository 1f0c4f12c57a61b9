package memstore

import "context"

// UsersSeen records when a session of each user of seen ended: an
// account's last seen moves there if later.
func (s *Store) UsersSeen(_ context.Context, seen map[string]int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for uid, at := range seen {
		if _, ok := s.users[uid]; ok {
			s.seen[uid] = max(s.seen[uid], at)
		}
	}
	return nil
}

// LastSeen returns when each of uids was last seen (0: never).
func (s *Store) LastSeen(_ context.Context, uids []string) ([]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int64, len(uids))
	for i, uid := range uids {
		out[i] = s.seen[uid]
	}
	return out, nil
}
