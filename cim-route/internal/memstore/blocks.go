package memstore

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// Block makes uid block peer; errs.ErrQuotaExceeded, nothing changed,
// when uid blocks max users already.
func (s *Store) Block(_ context.Context, uid, peer string, max int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	own := s.blocks[uid]
	if !own[peer] && len(own) >= max {
		return fmt.Errorf("%w: at most %d blocked users", errs.ErrQuotaExceeded, max)
	}
	if own == nil {
		own = map[string]bool{}
		if s.blocks == nil {
			s.blocks = map[string]map[string]bool{}
		}
		s.blocks[uid] = own
	}
	own[peer] = true
	return nil
}

// Unblock undoes Block.
func (s *Store) Unblock(_ context.Context, uid, peer string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.blocks[uid], peer)
	return nil
}

// BlockedUsers lists whom uid blocks, in id order.
func (s *Store) BlockedUsers(_ context.Context, uid string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.SortedFunc(maps.Keys(s.blocks[uid]), model.CompareIDs), nil
}

// BlockBetween reports whether uid blocks peer (model.BlockedByRecipient)
// or peer blocks uid (model.BlockedBySender).
func (s *Store) BlockBetween(_ context.Context, uid, peer string) (model.Blocked, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blockBetween(uid, peer), nil
}

func (s *Store) blockBetween(uid, peer string) model.Blocked {
	switch {
	case s.blocks[uid][peer]:
		return model.BlockedByRecipient
	case s.blocks[peer][uid]:
		return model.BlockedBySender
	}
	return model.NotBlocked
}

// BlockedBy reports, for each of peers, whether it blocks uid.
func (s *Store) BlockedBy(_ context.Context, uid string, peers []string) ([]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]bool, len(peers))
	for i, p := range peers {
		out[i] = s.blocks[p][uid]
	}
	return out, nil
}
