package memstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gocim/gocim/cim-route/internal/model"
)

// Resumes (as package store): the latest resume token of each user's login
// slot, "<sid>|<nonce>" or "<sid>|<nonce>|<taken nonce>|<its grace end,
// unix ms>", in resumes under inSlot(uid, slot).

// SetResume makes nonce, issued with session sid, the latest resume token
// of uid's slot, for ttl.
func (s *Store) SetResume(_ context.Context, uid, slot, sid, nonce string, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resumes[inSlot(uid, slot)] = expiring{sid + "|" + nonce, s.after(ttl)}
	return nil
}

// TakeResume replaces the latest resume token of uid's slot, if it is
// req.Nonce, with req.Next (see router.Resumes). The nonce it replaced
// comes back within req.Grace to the same latest; an earlier nonce of the
// latest's chain clears the slot and names the latest's session.
func (s *Store) TakeResume(_ context.Context, uid, slot string, req model.ResumeTakeReq) (model.ResumeTake, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := inSlot(uid, slot)
	cur, ok := s.get(s.resumes, k)
	f := strings.Split(cur, "|")
	if !ok || len(f) < 2 {
		return model.ResumeTake{}, nil
	}
	latestSID, latest := f[0], f[1]
	now := req.Now.UnixMilli()
	switch {
	case latest == req.Nonce:
		s.resumes[k] = expiring{fmt.Sprintf("%s|%s|%s|%d", req.SID, req.Next, latest, now+req.Grace.Milliseconds()), s.after(req.TTL)}
		return model.ResumeTake{Taken: true, Nonce: req.Next}, nil
	case len(f) == 4 && f[2] == req.Nonce && now < atoi(f[3]):
		s.resumes[k] = expiring{strings.Join([]string{req.SID, latest, f[2], f[3]}, "|"), s.after(req.TTL)}
		return model.ResumeTake{Taken: true, Nonce: latest}, nil
	case model.ResumeChain(latest) == model.ResumeChain(req.Nonce):
		delete(s.resumes, k)
		return model.ResumeTake{Reused: latestSID}, nil
	}
	return model.ResumeTake{}, nil
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
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
