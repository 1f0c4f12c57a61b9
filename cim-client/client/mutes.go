package client

// Mutes (docs/ARCHITECTURE.md, "Mutes"): a user mutes a conversation, with
// a user or in a group it is in, for a while or until it unmutes. Messages
// still come and are stored as ever; the list only tells apps where to
// notify less (no sound, badge or desktop notification), except for a
// message that mentions the user. The route pushes nothing when the list
// changes: a Client keeps the list it last read (Mutes, and its own
// MuteUser, MuteGroup, UnmuteUser, UnmuteGroup) for Muted, so another
// device's changes arrive with the next Mutes call.

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gocim/gocim/proto/cimpb"
)

// MaxMuted is how many conversations one user may have muted at once (the
// route's limit).
const MaxMuted = 1000

// MaxMuteFor is the longest mute with an end (the route's bound): a mute
// for longer lasts until unmuted.
const MaxMuteFor = 366 * 24 * time.Hour

// Mute is one muted conversation: with the user UserID (named UserName),
// or in the group Group.
type Mute struct {
	UserID   string
	UserName string
	Group    string
	Until    time.Time // zero: until unmuted
}

// inForce reports whether m holds at now (the route's rule: an end after
// now, or none).
func (m Mute) inForce(now time.Time) bool {
	return m.Until.IsZero() || m.Until.After(now)
}

// muteJSON is a mute in the route's /mutes answers.
type muteJSON struct {
	UserID   flexString `json:"userId"`
	UserName flexString `json:"userName"`
	Group    flexString `json:"group"`
	UntilMs  flexInt    `json:"untilMs"`
}

func (j muteJSON) mute() Mute {
	m := Mute{UserID: string(j.UserID), UserName: string(j.UserName), Group: string(j.Group)}
	if j.UntilMs > 0 {
		m.Until = time.UnixMilli(int64(j.UntilMs))
	}
	return m
}

// muteRequest is POST /mutes.
type muteRequest struct {
	User       string `json:"user,omitempty"`
	Group      string `json:"group,omitempty"`
	ForSeconds int64  `json:"forSeconds,omitempty"`
}

// muteSeconds is d in whole seconds, away from zero: a positive d never
// becomes 0 (which would mean until unmuted), a negative one never 0
// either (the route refuses it).
func muteSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	switch r := d % time.Second; {
	case r > 0:
		s++
	case r < 0:
		s--
	}
	return s
}

// MuteUser mutes the caller's conversation with user (an id or a name) for
// d (POST /mutes), rounded up to whole seconds; 0, or more than MaxMuteFor,
// until unmuted. Muting again replaces the end. It returns the mute: who
// that is, and when it ends. The caller itself and a negative d are an
// *APIError with codes.BadArgument, an unknown user codes.BadAccount, more
// than MaxMuted conversations codes.QuotaExceeded; an empty user is
// ErrNoRecipient.
func (a *API) MuteUser(ctx context.Context, user string, d time.Duration) (Mute, error) {
	if user == "" {
		return Mute{}, ErrNoRecipient
	}
	return a.mute(ctx, muteRequest{User: user, ForSeconds: muteSeconds(d)})
}

// MuteGroup is MuteUser for group gid, which the caller must be in: a
// group it is not in is an *APIError with codes.Forbidden, one that does
// not exist codes.NoGroup; an empty gid is ErrNoGroup.
func (a *API) MuteGroup(ctx context.Context, gid string, d time.Duration) (Mute, error) {
	if gid == "" {
		return Mute{}, ErrNoGroup
	}
	return a.mute(ctx, muteRequest{Group: gid, ForSeconds: muteSeconds(d)})
}

func (a *API) mute(ctx context.Context, req muteRequest) (Mute, error) {
	var d muteJSON
	if err := a.call(ctx, http.MethodPost, "/mutes", req, &d, a.authorize); err != nil {
		return Mute{}, err
	}
	return d.mute(), nil
}

// UnmuteUser undoes MuteUser for user (an id or a name; DELETE
// /mutes?user=) and returns the conversation (Until zero). Unmuting a
// conversation that is not muted succeeds; the errors are MuteUser's.
func (a *API) UnmuteUser(ctx context.Context, user string) (Mute, error) {
	if user == "" {
		return Mute{}, ErrNoRecipient
	}
	return a.unmute(ctx, url.Values{"user": {user}})
}

// UnmuteGroup undoes MuteGroup for group gid (DELETE /mutes?group=); the
// errors are MuteGroup's.
func (a *API) UnmuteGroup(ctx context.Context, gid string) (Mute, error) {
	if gid == "" {
		return Mute{}, ErrNoGroup
	}
	return a.unmute(ctx, url.Values{"group": {gid}})
}

func (a *API) unmute(ctx context.Context, q url.Values) (Mute, error) {
	var d muteJSON
	if err := a.call(ctx, http.MethodDelete, "/mutes?"+q.Encode(), nil, &d, a.authorize); err != nil {
		return Mute{}, err
	}
	m := d.mute()
	m.Until = time.Time{}
	return m, nil
}

// Mutes lists the conversations the caller muted that are in force (GET
// /mutes): users first, then groups, each in id order; at most MaxMuted.
func (a *API) Mutes(ctx context.Context) ([]Mute, error) {
	var d struct {
		Mutes []muteJSON `json:"mutes"`
	}
	if err := a.call(ctx, http.MethodGet, "/mutes", nil, &d, a.authorize); err != nil {
		return nil, err
	}
	out := make([]Mute, len(d.Mutes))
	for i, m := range d.Mutes {
		out[i] = m.mute()
	}
	return out, nil
}

// MuteUser is API.MuteUser as this client's user; Muted knows the mute at
// once.
func (c *Client) MuteUser(ctx context.Context, user string, d time.Duration) (Mute, error) {
	m, err := c.api.MuteUser(ctx, user, d)
	if err == nil {
		c.muted.put(m)
	}
	return m, err
}

// MuteGroup is API.MuteGroup as this client's user; Muted knows the mute
// at once.
func (c *Client) MuteGroup(ctx context.Context, gid string, d time.Duration) (Mute, error) {
	m, err := c.api.MuteGroup(ctx, gid, d)
	if err == nil {
		c.muted.put(m)
	}
	return m, err
}

// UnmuteUser is API.UnmuteUser as this client's user; Muted knows at once.
func (c *Client) UnmuteUser(ctx context.Context, user string) (Mute, error) {
	m, err := c.api.UnmuteUser(ctx, user)
	if err == nil {
		c.muted.drop(m)
	}
	return m, err
}

// UnmuteGroup is API.UnmuteGroup as this client's user; Muted knows at
// once.
func (c *Client) UnmuteGroup(ctx context.Context, gid string) (Mute, error) {
	m, err := c.api.UnmuteGroup(ctx, gid)
	if err == nil {
		c.muted.drop(m)
	}
	return m, err
}

// Mutes is API.Mutes as this client's user. The list replaces the one
// Muted consults: call it at start, and again to learn what the user's
// other devices muted or unmuted since (the route pushes no change). Of
// calls made at the same time, the answer that arrives last wins.
func (c *Client) Mutes(ctx context.Context) ([]Mute, error) {
	ms, err := c.api.Mutes(ctx)
	if err == nil {
		c.muted.set(ms)
	}
	return ms, err
}

// Muted reports whether an app should stay quiet about m (no sound, badge
// or desktop notification): m belongs to a conversation muted in the list
// this client read last (Mutes, and its own mute and unmute calls), with
// the mute's end respected, and does not mention the user (MentionsMe). A
// private message's conversation is its other party: From for an incoming
// one, To for the user's own copy from another device (Event.Outgoing); a
// group message's is its Group. A broadcast and a message to the app
// belong to no conversation: never muted. False before the first Mutes
// call; what other devices muted arrives with the next one.
func (c *Client) Muted(m *cimpb.Msg) bool {
	if m.GetBroadcast() || m.GetToApp() || c.MentionsMe(m) {
		return false
	}
	now := time.Now()
	if gid := m.GetGroup(); gid != "" {
		return c.muted.group(gid, now)
	}
	peer := m.GetFrom()
	if sentBy(c.Info().UserID, m) {
		peer = m.GetTo()
	}
	return c.muted.user(peer, now)
}

// muteList is the conversations the user muted as the client last read
// them.
type muteList struct {
	mu     sync.Mutex
	users  map[string]Mute   // by user id
	names  map[string]string // user name → id, for a peer given by name
	groups map[string]Mute   // by group id
}

// set replaces the list with ms.
func (l *muteList) set(ms []Mute) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.users, l.names, l.groups = map[string]Mute{}, map[string]string{}, map[string]Mute{}
	for _, m := range ms {
		l.putLocked(m)
	}
}

// put adds or replaces one mute.
func (l *muteList) put(m Mute) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.putLocked(m)
}

func (l *muteList) putLocked(m Mute) {
	switch {
	case m.Group != "":
		if l.groups == nil {
			l.groups = map[string]Mute{}
		}
		l.groups[m.Group] = m
	case m.UserID != "":
		if l.users == nil {
			l.users, l.names = map[string]Mute{}, map[string]string{}
		}
		l.users[m.UserID] = m
		if m.UserName != "" {
			l.names[m.UserName] = m.UserID
		}
	}
}

// drop removes the mute of m's conversation.
func (l *muteList) drop(m Mute) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if m.Group != "" {
		delete(l.groups, m.Group)
		return
	}
	if old, ok := l.users[m.UserID]; ok {
		delete(l.names, old.UserName)
		delete(l.users, m.UserID)
	}
}

// user reports whether the conversation with peer (an id or a name) is
// muted at now.
func (l *muteList) user(peer string, now time.Time) bool {
	if peer == "" {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.users[peer]
	if !ok {
		m, ok = l.users[l.names[peer]]
	}
	return ok && m.inForce(now)
}

// group reports whether group gid is muted at now.
func (l *muteList) group(gid string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.groups[gid]
	return ok && m.inForce(now)
}
