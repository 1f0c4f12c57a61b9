package memstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// Ban records b for uid; errs.ErrBadAccount when uid is no account.
func (s *Store) Ban(_ context.Context, uid string, b model.Ban) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[uid]; !ok {
		return fmt.Errorf("%w: unknown user id %q", errs.ErrBadAccount, uid)
	}
	if s.bans == nil {
		s.bans = map[string]model.Ban{}
	}
	s.bans[uid] = b
	return nil
}

// Unban lifts uid's ban; false when none was in force.
func (s *Store) Unban(_ context.Context, uid string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.banOf(uid)
	delete(s.bans, uid)
	return ok, nil
}

// BanOf returns uid's ban, if one is in force.
func (s *Store) BanOf(_ context.Context, uid string) (model.Ban, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.banOf(uid)
	return b, ok, nil
}

// banOf is BanOf with s.mu held; a ban that ended is deleted.
func (s *Store) banOf(uid string) (model.Ban, bool) {
	b, ok := s.bans[uid]
	if ok && b.Until > 0 && b.Until <= s.now().UnixMilli() {
		delete(s.bans, uid)
		return model.Ban{}, false
	}
	return b, ok
}

// SetPassword replaces uid's password hash; errs.ErrBadAccount when uid
// is no account.
func (s *Store) SetPassword(_ context.Context, uid, pwHash string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[uid]
	if !ok {
		return fmt.Errorf("%w: unknown user id %q", errs.ErrBadAccount, uid)
	}
	u.PasswordHash = pwHash
	s.users[uid] = u
	return nil
}

// GatewayUserCounts returns, per gateway, how many users its set holds.
func (s *Store) GatewayUserCounts(_ context.Context, gws []string) ([]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, len(gws))
	for i, gw := range gws {
		out[i] = len(s.gwUsers[gw])
	}
	return out, nil
}

// DeleteUser deletes account uid and everything it owns (as store: its
// routes, inbox, acks, dedup and receipt state, revisions, deletions,
// quotas, pending delayed messages, device record and ban); group
// memberships are the caller's to end first. errs.ErrBadAccount when uid
// is no account.
func (s *Store) DeleteUser(_ context.Context, uid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[uid]; !ok {
		return fmt.Errorf("%w: unknown user id %q", errs.ErrBadAccount, uid)
	}
	delete(s.users, uid)
	delete(s.seen, uid)
	for n, id := range s.names {
		if id == uid {
			delete(s.names, n)
		}
	}
	for _, slot := range allSlots {
		delete(s.routes, inSlot(uid, slot))
		delete(s.cleared, inSlot(uid, slot))
	}
	s.dropResumes(uid, "")
	delete(s.online, uid)
	for _, users := range s.gwUsers {
		delete(users, uid)
	}
	delete(s.inboxes, uid)
	own := uid + "\x00"
	for _, m := range []map[string]expiring{s.dedup, s.gdedup} {
		for k := range m {
			if strings.HasPrefix(k, own) {
				delete(m, k)
			}
		}
	}
	for k := range s.receipts {
		if strings.HasPrefix(k, own) {
			delete(s.receipts, k)
		}
	}
	for k := range s.quotas {
		if strings.HasPrefix(k, own) {
			delete(s.quotas, k)
		}
	}
	for id, d := range s.delayed {
		if d.m.From == uid {
			delete(s.delayed, id)
		}
	}
	delete(s.revisions, uid)
	delete(s.deleted, uid)
	delete(s.devices, uid)
	delete(s.bans, uid)
	delete(s.blocks, uid)
	return nil
}
