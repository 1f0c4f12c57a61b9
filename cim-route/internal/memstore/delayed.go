package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// delayed is one scheduled message: due is when it is next handed out (its
// due time, then the end of each lease).
type delayed struct {
	m   model.DelayedMsg
	due time.Time
}

// ScheduleMessage is store's: an id, at most max pending per sender (those
// due more than a day ago no longer count).
func (s *Store) ScheduleMessage(_ context.Context, m model.DelayedMsg, max int) (model.DelayedMsg, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.delayed == nil {
		s.delayed = map[string]*delayed{}
	}
	s.delaySeq++
	m.ID = strconv.FormatInt(s.delaySeq, 10)
	stale := s.now().Add(-24 * time.Hour)
	pending := 0
	for _, d := range s.delayed {
		if d.m.From == m.From && !d.m.Due.Before(stale) {
			pending++
		}
	}
	if pending >= max {
		s.delaySeq--
		return m, fmt.Errorf("%w: at most %d delayed messages pending per user", errs.ErrQuotaExceeded, max)
	}
	s.delayed[m.ID] = &delayed{m: m, due: m.Due}
	return m, nil
}

// ClaimDueMessages leases up to n messages due by now, earliest first.
func (s *Store) ClaimDueMessages(_ context.Context, now time.Time, n int, lease time.Duration) ([]model.DelayedMsg, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []*delayed
	for _, d := range s.delayed {
		if !d.due.After(now) {
			due = append(due, d)
		}
	}
	slices.SortFunc(due, func(a, b *delayed) int { return cmp.Or(a.due.Compare(b.due), cmp.Compare(a.m.ID, b.m.ID)) })
	out := make([]model.DelayedMsg, 0, min(n, len(due)))
	for _, d := range due[:min(n, len(due))] {
		m := d.m
		m.Due = d.due
		out = append(out, m)
		d.due = now.Add(lease)
	}
	return out, nil
}

// DelayedSent forgets the messages.
func (s *Store) DelayedSent(_ context.Context, ms []model.DelayedMsg) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range ms {
		delete(s.delayed, m.ID)
	}
	return nil
}
