package memstore

import (
	"context"
	"fmt"
	"maps"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// SetMute records a mute or an unmute: see router.Mutes.
func (s *Store) SetMute(ctx context.Context, uid, target string, until, now int64, max int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mutes[uid]
	if until < 0 {
		delete(m, target)
		return nil
	}
	for t, u := range m {
		if u != 0 && u <= now {
			delete(m, t)
		}
	}
	if _, ok := m[target]; !ok && len(m) >= max {
		return fmt.Errorf("%w: at most %d muted conversations", errs.ErrQuotaExceeded, max)
	}
	if m == nil {
		m = map[string]int64{}
		if s.mutes == nil {
			s.mutes = map[string]map[string]int64{}
		}
		s.mutes[uid] = m
	}
	m[target] = until
	return nil
}

// Mutes reads uid's mutes: see router.Mutes.
func (s *Store) Mutes(ctx context.Context, uid string) (map[string]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.mutes[uid]), nil
}

// MutedUntil reads mutes: see router.Mutes.
func (s *Store) MutedUntil(ctx context.Context, refs []model.MuteRef) ([]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int64, len(refs))
	for i, r := range refs {
		u, ok := s.mutes[r.User][r.Target]
		if !ok {
			u = -1
		}
		out[i] = u
	}
	return out, nil
}
