package router

import (
	"context"
	"errors"
	"fmt"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/token"
)

// Secured is what ChangePassword and LogoutOthers did: how many of the
// user's other sessions they ended, and the resume token the caller's
// session keeps in place of the one they revoked ("" when the route hands
// none out).
type Secured struct {
	Ended           int
	ResumeToken     string
	ResumeExpiresAt int64
}

// ChangePassword sets the password of uid, logged in as session sid, to
// next once current is its password; then it is LogoutOthers: the
// password a thief may know stops working, and so do the sessions and
// remembered logins (resume tokens) anyone made with the old one.
func (r *Router) ChangePassword(ctx context.Context, uid, sid, current, next string) (Secured, error) {
	if err := checkPassword(next); err != nil {
		return Secured{}, err
	}
	return r.secure(ctx, uid, sid, current, next)
}

// LogoutOthers ends every session of uid but sid, the caller's, and
// revokes every resume token of uid (those of devices offline now too: a
// lost laptop's remembered login), handing sid a new one. It asks for the
// password: a session resumed with a stolen token must not be able to
// sign its owner out.
func (r *Router) LogoutOthers(ctx context.Context, uid, sid, password string) (Secured, error) {
	return r.secure(ctx, uid, sid, password, "")
}

// DeleteAccount deletes uid's account, from its session sid, given its
// password: everything AdminDeleteUser deletes, every session (sid's too)
// kicked with "account deleted", the name free again. What app stores
// ask of an app with accounts: a user can leave for good on their own.
func (r *Router) DeleteAccount(ctx context.Context, uid, sid, password string) (User, error) {
	if _, err := r.ownAccount(ctx, uid, sid, password); err != nil {
		return User{}, err
	}
	return r.AdminDeleteUser(ctx, uid, uid)
}

// ownAccount checks that sid is uid's current session and password its
// password (errs.ErrForbidden when wrong, or when --auth manages the
// accounts).
func (r *Router) ownAccount(ctx context.Context, uid, sid, password string) (model.User, error) {
	if a := r.cfg.Authenticator; a != nil {
		return model.User{}, fmt.Errorf("%w: passwords and sessions are managed by %s", errs.ErrForbidden, a.Name())
	}
	if err := r.CheckSession(ctx, uid, sid); err != nil {
		return model.User{}, err
	}
	u, err := r.builtinAccount(ctx, LoginRequest{UserID: uid, Password: password})
	if errors.Is(err, errBadLogin) {
		return model.User{}, fmt.Errorf("%w: wrong password", errs.ErrForbidden)
	}
	return u, err
}

// secure checks password, sets next (unless ""), ends uid's other
// sessions, revokes its resume tokens and gives sid a fresh chain.
//
// A change retried after it set next and then failed (Redis gave out
// before the sessions ended) finds next already in place: the retry,
// with the same passwords, finishes what the first attempt began.
func (r *Router) secure(ctx context.Context, uid, sid, password, next string) (Secured, error) {
	u, err := r.ownAccount(ctx, uid, sid, password)
	set := next != ""
	if errors.Is(err, errs.ErrForbidden) && set && r.cfg.Authenticator == nil && next != password {
		if nu, nerr := r.builtinAccount(ctx, LoginRequest{UserID: uid, Password: next}); nerr == nil {
			u, err, set = nu, nil, false
		}
	}
	if err != nil {
		return Secured{}, err
	}
	if set {
		var hash string
		if perr := r.hash.run(ctx, false, func() { hash, err = hashPassword(next, r.cfg.BcryptCost) }); perr != nil {
			return Secured{}, perr
		}
		if err != nil {
			return Secured{}, err
		}
		if err := r.st.SetPassword(ctx, u.ID, hash); err != nil {
			return Secured{}, err
		}
	}
	reason, action := "logged out by another device", "logout-others"
	if next != "" {
		reason, action = "password changed", "password"
	}
	if err := r.st.DropResumes(ctx, uid, ""); err != nil {
		return Secured{}, err
	}
	var out Secured
	routes, err := r.st.Routes(ctx, []string{uid})
	if err != nil {
		return Secured{}, err
	}
	platform := ""
	for _, s := range routes[uid].Sessions() {
		if s.Session == sid {
			platform = s.Platform
		}
	}
	if out.Ended, err = r.endSessions(ctx, uid, reason, func(s model.Route) bool { return s.Session != sid }); err != nil {
		return Secured{}, err
	}
	// The password was just checked: the caller's session begins a new
	// chain of resume tokens, as a password login does.
	if r.cfg.ResumeTTL > 0 {
		now := r.now()
		nonce := newSessionID()
		slot := ""
		if r.devices() {
			slot = contract.SlotOf(sid)
		}
		if err := r.st.SetResume(ctx, uid, slot, sid, nonce, r.cfg.ResumeTTL); err != nil {
			return Secured{}, err
		}
		out.ResumeExpiresAt = now.Add(r.cfg.ResumeTTL).Unix()
		out.ResumeToken, err = token.Sign(r.cfg.TokenKeys[0], token.Claims{
			UserID: u.ID, UserName: u.Name, SessionID: sid, ExpiresAt: out.ResumeExpiresAt, Audience: token.AudienceResume,
			Platform: platform, Nonce: nonce, Since: now.Unix(),
		})
		if err != nil {
			return Secured{}, err
		}
	}
	r.audit(uid, action, uid, "name", u.Name, "sessions", out.Ended)
	return out, nil
}
