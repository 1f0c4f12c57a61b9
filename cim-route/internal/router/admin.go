package router

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/internal/contract"
)

// An operator's actions (the /admin endpoints, cimctl): who is where,
// kicking, banning, password resets, deleting accounts, draining gateways.
// Each is logged at Info as "admin action" with who did it (by: the admin
// API key's name), the action and its target.

// Admin is what the operator's actions need from the store.
type Admin interface {
	// Ban records b for uid; errs.ErrBadAccount when uid is no account.
	Ban(ctx context.Context, uid string, b model.Ban) error
	// Unban lifts uid's ban; false when none was in force.
	Unban(ctx context.Context, uid string) (bool, error)
	// BanOf returns uid's ban if one is in force (one whose Until passed
	// is none).
	BanOf(ctx context.Context, uid string) (model.Ban, bool, error)
	// SetPassword replaces uid's password hash; errs.ErrBadAccount when
	// uid is no account.
	SetPassword(ctx context.Context, uid, pwHash string) error
	// DeleteUser deletes account uid and every key it owns, its name (free
	// to register again), its entries in the shared sets and its pending
	// delayed messages; group memberships are ended before, by the caller.
	// errs.ErrBadAccount when uid is no account.
	DeleteUser(ctx context.Context, uid string) error
	// GatewayUserCounts returns how many users each gateway's set holds.
	GatewayUserCounts(ctx context.Context, gws []string) ([]int, error)
}

// Ban is a user's ban (model.Ban).
type Ban = model.Ban

// GatewayStatus is a live gateway as an operator sees it.
type GatewayStatus struct {
	Addr  contract.GatewayAddr
	WSURL string
	// Healthy: handed out for logins (health checked and proven).
	Healthy bool
	// Connections is what the gateway's health answer reports; -1 when it
	// did not answer (Err says why).
	Connections int
	// Users is how many users the route has on it.
	Users int
	Err   string
}

// MaxBanReason bounds a ban's reason (bytes).
const MaxBanReason = 512

// gatewayCallTimeout bounds one admin call to a gateway when the client
// has no timeout of its own.
const gatewayCallTimeout = 5 * time.Second

var defaultGatewayHTTP = &http.Client{Timeout: gatewayCallTimeout}

func (r *Router) gatewayHTTP() *http.Client {
	if r.cfg.GatewayHTTP != nil {
		return r.cfg.GatewayHTTP
	}
	return defaultGatewayHTTP
}

// audit logs an operator's action.
func (r *Router) audit(by, action, target string, args ...any) {
	r.log.Info("admin action", append([]any{"by", by, "action", action, "target", target}, args...)...)
}

// adminTarget finds the account user names (an id or a name, in any case),
// from the store, not the caches: an operator acts on what is there now.
func (r *Router) adminTarget(ctx context.Context, user string) (model.User, error) {
	switch {
	case user == "":
		return model.User{}, fmt.Errorf("%w: a user id or name is required", errs.ErrBadArgument)
	case isID(user):
		return r.st.UserByID(ctx, user)
	case isName(user):
		return r.st.UserByName(ctx, user)
	}
	return model.User{}, fmt.Errorf("%w: unknown user %q", errs.ErrBadAccount, user)
}

// AdminGateways lists the live gateways (discovery's list) with their
// connection counts, asked of each gateway at once, and the users the
// route has on each.
func (r *Router) AdminGateways(ctx context.Context) ([]GatewayStatus, error) {
	var ids []string
	if l, ok := r.gw.(interface{ Gateways() []string }); ok {
		ids = l.Gateways()
	} else {
		ids = r.gw.Healthy()
	}
	slices.Sort(ids)
	users, err := r.st.GatewayUserCounts(ctx, ids)
	if err != nil {
		return nil, err
	}
	healthy := r.gw.Healthy()
	out := make([]GatewayStatus, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		out[i] = GatewayStatus{Users: users[i], Healthy: slices.Contains(healthy, id), WSURL: r.wsURL(id), Connections: -1}
		addr, err := contract.ParseGatewayID(id)
		if err != nil {
			out[i].Addr.ID, out[i].Err = id, err.Error()
			continue
		}
		out[i].Addr = addr
		wg.Go(func() {
			h, err := r.gatewayHealth(ctx, addr)
			if err != nil {
				out[i].Err = err.Error()
				return
			}
			out[i].Connections = h.Connections
		})
	}
	wg.Wait()
	return out, nil
}

// gatewayHealth asks a gateway's contract.PathHealth.
func (r *Router) gatewayHealth(ctx context.Context, a contract.GatewayAddr) (contract.Health, error) {
	var h contract.Health
	err := r.callGateway(ctx, http.MethodGet, a, contract.PathHealth, &h)
	return h, err
}

// callGateway sends an admin call (with the internal secret) to a gateway
// and decodes its JSON answer into v.
func (r *Router) callGateway(ctx context.Context, method string, a contract.GatewayAddr, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, gatewayCallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.HTTPBase()+path, nil)
	if err != nil {
		return err
	}
	if r.cfg.InternalSecret != "" {
		req.Header.Set(contract.Header, r.cfg.InternalSecret)
	}
	resp, err := r.gatewayHTTP().Do(req)
	if err != nil {
		return fmt.Errorf("gateway %s: %w", a.ID, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("gateway %s: %w", a.ID, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("gateway %s refused the internal secret (HTTP 401)", a.ID)
	case resp.StatusCode/100 != 2 && !(path == contract.PathHealth && resp.StatusCode == http.StatusServiceUnavailable):
		// A gateway shutting down answers its health with 503 and still
		// says how many connections it has.
		return fmt.Errorf("gateway %s answered %s: HTTP %d %s", a.ID, path, resp.StatusCode, contract.Snippet(body))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("gateway %s answered %s with bad JSON: %v", a.ID, path, err)
	}
	return nil
}

// AdminDrain asks gateway gw to drain: it leaves ZooKeeper, takes no new
// clients and moves its clients off (contract.PathDrain). errs.ErrNotFound
// for a gateway that is not live; errs.ErrUnavailable when it cannot be
// asked.
func (r *Router) AdminDrain(ctx context.Context, by, gw string) (contract.Drain, error) {
	addr, err := contract.ParseGatewayID(gw)
	if err != nil {
		return contract.Drain{}, fmt.Errorf("%w: gateway id: %v", errs.ErrBadArgument, err)
	}
	if !r.gw.Live(gw) {
		return contract.Drain{}, fmt.Errorf("%w: no live gateway %s", errs.ErrNotFound, gw)
	}
	var d contract.Drain
	if err := r.callGateway(ctx, http.MethodPost, addr, contract.PathDrain, &d); err != nil {
		r.log.Warn("admin action failed", "by", by, "action", "drain", "target", gw, "err", err)
		return d, fmt.Errorf("%w: %v", errs.ErrUnavailable, err)
	}
	r.audit(by, "drain", gw, "connections", d.Connections, "already", d.Already)
	return d, nil
}

// AdminKick ends user's sessions now: their routes go and their
// connections are kicked. With session only that one, with slot only the
// session in that device slot (contract.Slots; --login-policy platform).
// It returns the account and how many sessions ended.
func (r *Router) AdminKick(ctx context.Context, by, user, session, slot string) (User, int, error) {
	u, err := r.adminTarget(ctx, user)
	if err != nil {
		return User{}, 0, err
	}
	if slot != "" && !slices.Contains(contract.Slots, slot) {
		return User{}, 0, fmt.Errorf("%w: unknown device slot %q (want one of %v)", errs.ErrBadArgument, slot, contract.Slots)
	}
	n, err := r.endSessions(ctx, u.ID, "kicked by an administrator", func(s model.Route) bool {
		return (session == "" || s.Session == session) && (slot == "" || contract.SlotOf(s.Session) == slot)
	})
	if err != nil {
		return User{}, n, err
	}
	r.audit(by, "kick", u.ID, "name", u.Name, "sessions", n, "session", session, "slot", slot)
	return User{ID: u.ID, Name: u.Name}, n, nil
}

// endSessions drops uid's sessions that match (every one when match is
// nil) with their resume tokens (every one of uid's when match is nil) and
// kicks the confirmed ones; it returns how many it dropped.
func (r *Router) endSessions(ctx context.Context, uid, reason string, match func(model.Route) bool) (int, error) {
	if match == nil {
		if err := r.st.DropResumes(ctx, uid, ""); err != nil {
			return 0, err
		}
	}
	routes, err := r.st.Routes(ctx, []string{uid})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range routes[uid].Sessions() {
		if match != nil && !match(s) {
			continue
		}
		r.forgetCurrent(uid)
		if match != nil {
			if err := r.st.DropResumes(ctx, uid, s.Session); err != nil {
				return n, err
			}
		}
		old, dropped, err := r.st.DropSession(ctx, uid, s.Session)
		if err != nil {
			return n, err
		}
		if !dropped {
			continue
		}
		n++
		// A pending session's /internal/online will fail: only a
		// confirmed one has a connection to close.
		if old.Online() {
			r.kick(ctx, uid, s.Session, old.Gateway, old.Platform, reason)
			r.presenceChanged(ctx, []presenceChange{{uid: uid, sid: s.Session, gw: old.Gateway, platform: old.Platform, reason: reason}})
		}
	}
	return n, nil
}

// AdminBan bans user (until the zero time: for good) and ends its
// sessions: it cannot log in, confirm a session with a token it still
// holds, or log in as a device until unbanned.
func (r *Router) AdminBan(ctx context.Context, by, user, reason string, until time.Time) (User, Ban, error) {
	if len(reason) > MaxBanReason || !utf8.ValidString(reason) {
		return User{}, Ban{}, fmt.Errorf("%w: reason must be UTF-8 of at most %d bytes", errs.ErrBadArgument, MaxBanReason)
	}
	now := r.now()
	if !until.IsZero() && !until.After(now) {
		return User{}, Ban{}, fmt.Errorf("%w: until must be in the future", errs.ErrBadArgument)
	}
	u, err := r.adminTarget(ctx, user)
	if err != nil {
		return User{}, Ban{}, err
	}
	b := Ban{Reason: reason, By: by, At: now.UnixMilli()}
	if !until.IsZero() {
		b.Until = until.UnixMilli()
	}
	if err := r.st.Ban(ctx, u.ID, b); err != nil {
		return User{}, Ban{}, err
	}
	n, err := r.endSessions(ctx, u.ID, "banned", nil)
	if err != nil {
		return User{}, Ban{}, err
	}
	r.audit(by, "ban", u.ID, "name", u.Name, "reason", reason, "until", b.Until, "sessions", n)
	return User{ID: u.ID, Name: u.Name}, b, nil
}

// AdminUnban lifts user's ban; false when it had none.
func (r *Router) AdminUnban(ctx context.Context, by, user string) (User, bool, error) {
	u, err := r.adminTarget(ctx, user)
	if err != nil {
		return User{}, false, err
	}
	was, err := r.st.Unban(ctx, u.ID)
	if err != nil {
		return User{}, false, err
	}
	r.audit(by, "unban", u.ID, "name", u.Name, "wasBanned", was)
	return User{ID: u.ID, Name: u.Name}, was, nil
}

// checkBan refuses a banned user: errs.ErrForbidden naming the ban.
func (r *Router) checkBan(ctx context.Context, uid string) error {
	b, banned, err := r.st.BanOf(ctx, uid)
	if err != nil || !banned {
		return err
	}
	return banError(b)
}

// ErrBanned is the refusal of a banned user's login (it wraps
// errs.ErrForbidden: 403 / 4030).
var ErrBanned = fmt.Errorf("%w: account banned", errs.ErrForbidden)

func banError(b Ban) error {
	msg := ""
	if b.Reason != "" {
		msg = ": " + b.Reason
	}
	if b.Until > 0 {
		msg += " (until " + time.UnixMilli(b.Until).UTC().Format(time.RFC3339) + ")"
	}
	return fmt.Errorf("%w%s", ErrBanned, msg)
}

// generatedPasswordBytes is the entropy of a generated password (128
// bits, 22 characters of base64url).
const generatedPasswordBytes = 16

// AdminResetPassword sets user's password (hashed as at registration) and
// ends its sessions; an empty password is generated and returned.
// errs.ErrForbidden with an external authenticator (it owns the
// passwords) and for a device (it has a credential, not a password).
func (r *Router) AdminResetPassword(ctx context.Context, by, user, password string) (User, string, error) {
	if a := r.cfg.Authenticator; a != nil {
		return User{}, "", fmt.Errorf("%w: passwords are managed by %s", errs.ErrForbidden, a.Name())
	}
	generated := password == ""
	if generated {
		var b [generatedPasswordBytes]byte
		_, _ = rand.Read(b[:])
		password = base64.RawURLEncoding.EncodeToString(b[:])
	}
	if err := checkPassword(password); err != nil {
		return User{}, "", err
	}
	u, err := r.adminTarget(ctx, user)
	if err != nil {
		return User{}, "", err
	}
	if u.Device {
		return User{}, "", fmt.Errorf("%w: %s is a device: rotate its secret (POST /devices/{id}/secret)", errs.ErrForbidden, u.Name)
	}
	var hash string
	if perr := r.hash.run(ctx, false, func() { hash, err = hashPassword(password, r.cfg.BcryptCost) }); perr != nil {
		return User{}, "", perr
	}
	if err != nil {
		return User{}, "", err
	}
	if err := r.st.SetPassword(ctx, u.ID, hash); err != nil {
		return User{}, "", err
	}
	n, err := r.endSessions(ctx, u.ID, "password reset", nil)
	if err != nil {
		return User{}, "", err
	}
	r.audit(by, "password", u.ID, "name", u.Name, "generated", generated, "sessions", n)
	if !generated {
		password = ""
	}
	return User{ID: u.ID, Name: u.Name}, password, nil
}

// AdminDeleteUser deletes user's account and its data: it leaves its
// groups (one it owns goes to the member with the lowest id first, and is
// dissolved when it has no other member), its sessions are
// kicked, and everything stored for it goes (Admin.DeleteUser). The name
// can be registered again, as a new account.
func (r *Router) AdminDeleteUser(ctx context.Context, by, user string) (User, error) {
	u, err := r.adminTarget(ctx, user)
	if err != nil {
		return User{}, err
	}
	routes, err := r.st.Routes(ctx, []string{u.ID})
	if err != nil {
		return User{}, err
	}
	groups, err := r.st.UserGroups(ctx, u.ID)
	if err != nil {
		return User{}, err
	}
	left, dissolved := 0, 0
	for _, g := range groups {
		gone := false
		if g.Owner == u.ID {
			gone, err = r.handOver(ctx, u.ID, g.ID)
		} else {
			err = r.LeaveGroup(ctx, u.ID, g.ID)
		}
		if gone {
			dissolved++
		} else {
			left++
		}
		if err != nil && !errors.Is(err, errs.ErrNoGroup) && !errors.Is(err, errs.ErrForbidden) {
			return User{}, err
		}
	}
	r.forgetCurrent(u.ID)
	if err := r.st.DeleteUser(ctx, u.ID); err != nil {
		return User{}, err
	}
	r.forget(u.ID)
	// The routes are gone with the account; the connections are closed
	// here, from what was read before.
	for _, s := range routes[u.ID].Sessions() {
		if s.Online() {
			r.kick(ctx, u.ID, s.Session, s.Gateway, s.Platform, "account deleted")
			r.presenceChanged(ctx, []presenceChange{{uid: u.ID, sid: s.Session, gw: s.Gateway, platform: s.Platform, reason: "account deleted"}})
		}
	}
	r.audit(by, "delete", u.ID, "name", u.Name, "groupsLeft", left, "groupsDissolved", dissolved, "sessions", len(routes[u.ID].Sessions()))
	return User{ID: u.ID, Name: u.Name}, nil
}

// forget drops a deleted account from this process's caches, whose
// entries otherwise never go stale (another replica keeps its entries
// until they are evicted).
func (r *Router) forget(uid string) {
	r.names.Remove(uid)
	for _, name := range r.ids.Keys() {
		if id, ok := r.ids.Peek(name); ok && id == uid {
			r.ids.Remove(name)
		}
	}
}
