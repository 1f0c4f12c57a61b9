package memstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// revisions are one sender's revisions by msgId (Redis: rev:{uid}, a
// sorted set that expires as a whole).
type revisions struct {
	m   map[string]model.Revision
	exp time.Time
}

// oldestKept is the msgId prefix below which revisions and deletions
// concern messages no inbox holds any more (as package store).
func (s *Store) oldestKept() string {
	return model.MsgIDPrefix(s.now().Add(-s.inbox.TTL).UnixMilli())
}

// trimIDs drops, from a set of msgIds, those below oldest and then the
// smallest beyond max.
func trimIDs[V any](m map[string]V, oldest string, max int) {
	for id := range m {
		if id < oldest {
			delete(m, id)
		}
	}
	if n := len(m) - max; n > 0 {
		for _, id := range slices.Sorted(maps.Keys(m))[:n] {
			delete(m, id)
		}
	}
}

// Revise records revisions: see router.Revisions.
func (s *Store) Revise(ctx context.Context, rs []model.Revision) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.revisions == nil {
		s.revisions = map[string]*revisions{}
	}
	oldest := s.oldestKept()
	for _, r := range rs {
		if r.MsgID == "" || r.RevID == "" {
			continue
		}
		rv := s.revisions[r.Sender]
		if rv == nil || !s.alive(rv.exp) {
			rv = &revisions{m: map[string]model.Revision{}}
			s.revisions[r.Sender] = rv
		}
		if !r.Supersedes(rv.m[r.MsgID]) {
			continue
		}
		if !r.Recall {
			r.Text = slices.Clone(r.Text)
		} else {
			r.Text = nil
		}
		rv.m[r.MsgID] = r
		trimIDs(rv.m, oldest, s.inbox.MaxLen)
		rv.exp = s.after(s.inbox.TTL)
	}
	return nil
}

// RevisionsOf reads revisions and a viewer's deletions: see
// router.Revisions.
func (s *Store) RevisionsOf(ctx context.Context, viewer string, refs []model.MsgRef) ([]model.Revision, []bool, error) {
	if len(refs) == 0 {
		return nil, nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]model.Revision, len(refs))
	for i, ref := range refs {
		rv := s.revisions[ref.Sender]
		if rv == nil || !s.alive(rv.exp) {
			continue
		}
		if r, ok := rv.m[ref.MsgID]; ok {
			r.Text = slices.Clone(r.Text)
			out[i] = r
		}
	}
	if viewer == "" {
		return out, nil, nil
	}
	deleted := make([]bool, len(refs))
	if d := s.deletedSet(viewer); d != nil {
		for i, ref := range refs {
			deleted[i] = d.m[ref.MsgID]
		}
	}
	return out, deleted, nil
}

// deletedSet is uid's live deleted set, or nil.
func (s *Store) deletedSet(uid string) *set {
	d := s.deleted[uid]
	if d == nil || !s.alive(d.exp) {
		return nil
	}
	return d
}

// DeleteFromHistory hides msgIds from uid's history: see
// router.Revisions.
func (s *Store) DeleteFromHistory(ctx context.Context, uid string, msgIDs []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	oldest := s.oldestKept()
	d := s.deletedSet(uid)
	if d == nil {
		d = &set{m: map[string]bool{}}
	}
	trimIDs(d.m, oldest, len(d.m))
	var add []string
	for _, id := range msgIDs {
		if id >= oldest && !d.m[id] && !slices.Contains(add, id) {
			add = append(add, id)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if len(d.m)+len(add) > s.inbox.MaxLen {
		return fmt.Errorf("%w: at most %d messages of the last %v can be deleted from a history", errs.ErrQuotaExceeded, s.inbox.MaxLen, s.inbox.TTL)
	}
	for _, id := range add {
		d.m[id] = true
	}
	d.exp = s.after(s.inbox.TTL)
	if s.deleted == nil {
		s.deleted = map[string]*set{}
	}
	s.deleted[uid] = d
	return nil
}
