package memstore

import "context"

// UsersSeen records that a session of each of uids ended at at: an
// account's last seen moves there if later.
func (s *Store) UsersSeen(_ context.Context, uids []string, at int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, uid := range uids {
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
