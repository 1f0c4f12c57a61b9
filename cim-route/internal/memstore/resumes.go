package memstore

import (
	"context"
	"strings"
	"time"

	"github.com/gocim/gocim/cim-route/internal/model"
)

// Resumes (as package store): the latest resume token of each user's login
// slot, "<sid>|<nonce>", in resumes under inSlot(uid, slot).

// SetResume makes nonce, issued with session sid, the latest resume token
// of uid's slot, for ttl.
func (s *Store) SetResume(_ context.Context, uid, slot, sid, nonce string, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resumes[inSlot(uid, slot)] = expiring{sid + "|" + nonce, s.after(ttl)}
	return nil
}

// TakeResume replaces the latest resume token of uid's slot, if it is
// nonce, with next, issued with session sid, for ttl. An earlier nonce of
// the latest's chain clears the slot and names the latest's session.
func (s *Store) TakeResume(_ context.Context, uid, slot, nonce, sid, next string, ttl time.Duration) (model.ResumeTake, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := inSlot(uid, slot)
	cur, ok := s.get(s.resumes, k)
	latestSID, latest, _ := strings.Cut(cur, "|")
	switch {
	case !ok:
		return model.ResumeTake{}, nil
	case latest == nonce:
		s.resumes[k] = expiring{sid + "|" + next, s.after(ttl)}
		return model.ResumeTake{Taken: true}, nil
	case model.ResumeChain(latest) == model.ResumeChain(nonce):
		delete(s.resumes, k)
		return model.ResumeTake{Reused: latestSID}, nil
	}
	return model.ResumeTake{}, nil
}

// DropResumes forgets uid's latest resume tokens issued with session sid;
// with sid "", all of them.
func (s *Store) DropResumes(_ context.Context, uid, sid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropResumes(uid, sid)
	return nil
}

func (s *Store) dropResumes(uid, sid string) {
	for _, slot := range allSlots {
		k := inSlot(uid, slot)
		if cur, ok := s.resumes[k]; ok && (sid == "" || strings.HasPrefix(cur.v, sid+"|")) {
			delete(s.resumes, k)
		}
	}
}
