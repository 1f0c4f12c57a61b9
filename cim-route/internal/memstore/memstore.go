// Package memstore keeps the route service's shared state in memory: an
// implementation of router.Store with the semantics of package store (its
// Lua scripts) for tests that run without Redis. Everything one Redis
// script does atomically, and more, happens under one mutex; what is an
// artefact of Redis (pipelines, round trips, bounded work per script run)
// is not reproduced: the memory store just does the work. Keys that expire
// in Redis expire here too, by the injectable clock.
//
// A Store is safe for concurrent use and never fails with
// errs.ErrUnavailable.
package memstore

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// Store is the in-memory state of the route service.
type Store struct {
	mu    sync.Mutex
	now   func() time.Time
	inbox model.InboxLimits

	userSeq int64
	users   map[string]model.User
	names   map[string]string // name index: folded name -> id
	seen    map[string]int64  // uid -> when a session of it last ended (seen.go)

	routes  map[string]route    // uid, or uid+"\x00"+device slot -> route
	cleared map[string]expiring // as routes -> "<gw>|<sid>"
	online  map[string]bool     // login-status
	gwUsers map[string]map[string]bool
	servers map[string]bool

	inboxes map[string]*inbox
	dedup   map[string]expiring // uid "\x00" dedup key -> "<msgId>|<seq>"

	groupSeq int64
	groups   map[string]*group
	gdedup   map[string]expiring // sender "\x00" clientMsgId -> "<msgId>|<state>"
	receipts map[string]*set     // sender "\x00" msgId "\x00" d|r

	quotas  map[string]*counter // uid "\x00" yyyymmdd
	resumes map[string]expiring // inSlot(uid, slot) -> "<sid>|<nonce>" (resumes.go)

	delaySeq int64
	delayed  map[string]*delayed // by id

	revisions map[string]*revisions       // by sender (revisions.go)
	deleted   map[string]*set             // uid -> msgIds deleted from its history
	reactions map[string]*convReactions   // by conversation (reactions.go)
	mutes     map[string]map[string]int64 // uid → target → until (mutes.go)

	devices map[string]*model.Device   // by user id (devices.go)
	bans    map[string]model.Ban       // by user id (admin.go)
	blocks  map[string]map[string]bool // uid -> whom it blocks (blocks.go)
}

// Option configures a Store.
type Option func(*Store)

// WithInbox sets the inbox limits; zero fields keep their defaults (those of
// package store).
func WithInbox(l model.InboxLimits) Option {
	return func(s *Store) {
		if l.MaxLen <= 0 {
			l.MaxLen = model.DefaultInboxMaxLen
		}
		if l.TTL <= 0 {
			l.TTL = model.DefaultInboxTTL
		}
		if l.DedupWindow <= 0 {
			l.DedupWindow = model.DefaultDedupWindow
		}
		s.inbox = l
	}
}

// WithClock sets the clock (default time.Now): timestamps and expiry.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// New returns an empty Store.
func New(opts ...Option) *Store {
	s := &Store{
		now:      time.Now,
		users:    map[string]model.User{},
		seen:     map[string]int64{},
		names:    map[string]string{},
		routes:   map[string]route{},
		cleared:  map[string]expiring{},
		online:   map[string]bool{},
		gwUsers:  map[string]map[string]bool{},
		servers:  map[string]bool{},
		inboxes:  map[string]*inbox{},
		dedup:    map[string]expiring{},
		groups:   map[string]*group{},
		gdedup:   map[string]expiring{},
		receipts: map[string]*set{},
		quotas:   map[string]*counter{},
		resumes:  map[string]expiring{},
	}
	WithInbox(model.InboxLimits{})(s)
	for _, o := range opts {
		o(s)
	}
	return s
}

// Ping always answers.
func (s *Store) Ping(ctx context.Context) error { return ctx.Err() }

// expiring is a string value with an optional expiry (zero: none).
type expiring struct {
	v   string
	exp time.Time
}

func (s *Store) alive(exp time.Time) bool { return exp.IsZero() || s.now().Before(exp) }

// get returns m[k] unless it expired (then it is deleted).
func (s *Store) get(m map[string]expiring, k string) (string, bool) {
	e, ok := m[k]
	if !ok {
		return "", false
	}
	if !s.alive(e.exp) {
		delete(m, k)
		return "", false
	}
	return e.v, true
}

func (s *Store) after(d time.Duration) time.Time { return s.now().Add(d) }

// set is a set of strings with an optional expiry.
type set struct {
	m   map[string]bool
	exp time.Time
}

type counter struct {
	n   int64
	exp time.Time
}

// Accounts.

// CreateUser registers name; errs.ErrNameTaken when it exists in any case.
func (s *Store) CreateUser(ctx context.Context, name, pwHash string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nameID(name) != "" {
		return "", fmt.Errorf("%w: %q", errs.ErrNameTaken, name)
	}
	s.userSeq++
	id := strconv.FormatInt(s.userSeq, 10)
	s.users[id] = model.User{ID: id, Name: name, PasswordHash: pwHash, Created: s.now().UnixMilli()}
	s.names[model.FoldName(name)] = id
	return id, nil
}

// nameID looks name up: its exact spelling, then its folded form.
func (s *Store) nameID(name string) string {
	if id := s.names[name]; id != "" {
		return id
	}
	return s.names[model.FoldName(name)]
}

// NameTaken reports whether name is registered, in any case.
func (s *Store) NameTaken(ctx context.Context, name string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nameID(name) != "", nil
}

// UserByName returns the account called name (in any case); errs.ErrBadAccount
// if none.
func (s *Store) UserByName(ctx context.Context, name string) (model.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nameID(name)
	if id == "" {
		return model.User{}, fmt.Errorf("%w: unknown user %q", errs.ErrBadAccount, name)
	}
	return s.users[id], nil
}

// UserByID returns the account with id; errs.ErrBadAccount if none.
func (s *Store) UserByID(ctx context.Context, id string) (model.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return model.User{}, fmt.Errorf("%w: unknown user id %q", errs.ErrBadAccount, id)
	}
	return u, nil
}

// Lookup resolves the names of ids and the ids of names (in any case, keyed
// as given); unknown ones are absent.
func (s *Store) Lookup(ctx context.Context, ids, names []string) (idToName, nameToID map[string]string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idToName = make(map[string]string, len(ids))
	nameToID = make(map[string]string, len(names))
	for _, id := range ids {
		if u, ok := s.users[id]; ok {
			idToName[id] = u.Name
		}
	}
	for _, n := range names {
		if id := s.nameID(n); id != "" {
			nameToID[n] = id
		}
	}
	return idToName, nameToID, nil
}

// Quotas.

// uploadQuotaTTL keeps a day's counter a little past its day (as store).
const uploadQuotaTTL = 25 * time.Hour

// ChargeUpload counts n more upload bytes against uid's quota for the day;
// errs.ErrQuotaExceeded (nothing counted) when that would pass quota.
func (s *Store) ChargeUpload(ctx context.Context, uid string, n, quota int64) (refund func(ctx context.Context, n int64), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := uid + "\x00" + s.now().UTC().Format("20060102")
	c := s.quotas[key]
	if c != nil && !s.alive(c.exp) {
		c = nil
	}
	cur := int64(0)
	if c != nil {
		cur = c.n
	}
	if cur+n > quota {
		return nil, fmt.Errorf("%w: uploads are limited to %d bytes per user and day", errs.ErrQuotaExceeded, quota)
	}
	if c == nil {
		c = &counter{}
		s.quotas[key] = c
	}
	c.n += n
	if c.n == n {
		c.exp = s.after(uploadQuotaTTL)
	}
	return func(ctx context.Context, n int64) {
		if n <= 0 {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		c := s.quotas[key]
		if c == nil || !s.alive(c.exp) {
			c = &counter{}
			s.quotas[key] = c
		}
		c.n -= n
	}, nil
}
