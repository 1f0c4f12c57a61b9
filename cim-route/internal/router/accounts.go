package router

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gocim/gocim/cim-route/internal/auth"
	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/event"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/token"
)

// User is an account as the API shows it.
type User struct {
	ID   string
	Name string
}

// LoginRequest identifies the account by id or by name.
type LoginRequest struct {
	UserID   string
	UserName string
	Password string
	Platform string // see routeapi.LoginRequest
	// Resume, instead of Password, is the resume token of an earlier login
	// (see routeapi.LoginRequest).
	Resume string
}

// Session is a successful login: where to connect and with what tokens.
type Session struct {
	UserID    string
	UserName  string
	SessionID string
	Token     string // gateway token (LOGIN)
	ExpiresAt int64  // unix seconds, as in the token
	// AccessToken is the bearer token of the user API (audience "api"); it
	// dies with the session.
	AccessToken     string
	AccessExpiresAt int64 // unix seconds
	// ResumeToken logs in again once without the password (audience
	// "rs"; "" with Config.ResumeTTL 0).
	ResumeToken     string
	ResumeExpiresAt int64 // unix seconds
	Gateway         contract.GatewayAddr
	// WSURL is the gateway's WebSocket URL, for browsers ("" when it has
	// no WebSocket listener).
	WSURL string
}

// wsURL returns gateway gw's WebSocket URL, if it published one.
func (r *Router) wsURL(gw string) string {
	if r.cfg.GatewayInfo == nil {
		return ""
	}
	return r.cfg.GatewayInfo(gw).WSURL
}

// Register creates an account. Only the builtin authenticator has
// accounts of its own: with an external one it is errs.ErrForbidden.
func (r *Router) Register(ctx context.Context, name, password string) (User, error) {
	if a := r.cfg.Authenticator; a != nil {
		return User{}, fmt.Errorf("%w: accounts are managed by %s", errs.ErrForbidden, a.Name())
	}
	if err := checkName(name); err != nil {
		return User{}, err
	}
	if err := checkPassword(password); err != nil {
		return User{}, err
	}
	if reservedName(name) {
		return User{}, fmt.Errorf("%w: %q is reserved", errs.ErrNameTaken, name)
	}
	// Cheap check first: bcrypt costs tens of milliseconds. CreateUser still
	// settles a race atomically.
	if taken, err := r.st.NameTaken(ctx, name); err != nil {
		return User{}, err
	} else if taken {
		return User{}, fmt.Errorf("%w: %q", errs.ErrNameTaken, name)
	}
	// bcrypt runs on the bounded pool, registrations on at most half of
	// it: a registration flood answers errs.ErrBusy instead of starving
	// logins of CPU.
	var hash string
	var err error
	if perr := r.hash.run(ctx, true, func() { hash, err = hashPassword(password, r.cfg.BcryptCost) }); perr != nil {
		return User{}, perr
	}
	if err != nil {
		return User{}, err
	}
	id, err := r.st.CreateUser(ctx, name, hash)
	if err != nil {
		return User{}, err
	}
	r.remember(id, name)
	r.log.Info("account registered", "user", id, "name", name)
	return User{ID: id, Name: name}, nil
}

// errBadLogin is the one answer for an unknown user and a wrong password.
var errBadLogin = fmt.Errorf("%w: wrong user or password", errs.ErrBadAccount)

// Login checks the credentials (a password, or a resume token),
// applies the single-login policy, picks a gateway, records the new
// session as pending and signs its tokens.
func (r *Router) Login(ctx context.Context, req LoginRequest) (Session, error) {
	switch {
	case req.UserID != "":
		if err := checkUserID("userId", req.UserID); err != nil {
			return Session{}, err
		}
	case req.UserName == "" && req.Resume == "":
		return Session{}, fmt.Errorf("%w: userName or userId is required", errs.ErrBadArgument)
	}
	if req.Password == "" && req.Resume == "" {
		return Session{}, fmt.Errorf("%w: password is required", errs.ErrBadArgument)
	}
	if err := checkPlatform(req.Platform); err != nil {
		return Session{}, err
	}
	var u model.User
	var resumed token.Claims
	var err error
	switch {
	case req.Resume != "":
		u, resumed, err = r.resumedAccount(ctx, req)
		req.Platform = resumed.Platform
	case r.cfg.Authenticator != nil:
		u, err = r.externalAccount(ctx, req)
	default:
		u, err = r.builtinAccount(ctx, req)
	}
	if err != nil {
		return Session{}, err
	}
	if err := r.checkBan(ctx, u.ID); err != nil {
		return Session{}, err
	}
	r.remember(u.ID, u.Name)

	gw, ok := r.gw.Pick(u.ID)
	if !ok {
		return Session{}, errs.ErrNoGateway
	}
	addr, err := contract.ParseGatewayID(gw)
	if err != nil {
		return Session{}, fmt.Errorf("%w: %v", errs.ErrNoGateway, err)
	}
	sid := newSessionID()
	slot := ""
	if r.devices() {
		slot = contract.SlotFor(req.Platform)
		sid = slot + "." + sid
	}
	// The resume token to hand out, made the slot's latest first: a resume
	// token takes the one it came with, so it logs in once. A chain of them
	// ends ResumeTTL after its password login: the password (and the
	// authenticator, which may have disabled the user meanwhile) is asked
	// again then.
	now := r.now()
	nonce, since := "", now.Unix()
	if req.Resume != "" {
		since = resumed.Since
	}
	resumeEnd := time.Unix(since, 0).Add(r.cfg.ResumeTTL)
	if r.cfg.ResumeTTL > 0 && (req.Resume != "" || resumeEnd.After(now)) {
		// A password login begins a chain: its nonce names it, and every
		// token a resume hands out after it is "<chain>.<n>".
		nonce = newSessionID()
		ttl := max(resumeEnd.Sub(now), time.Second)
		if req.Resume != "" {
			took, err := r.st.TakeResume(ctx, u.ID, slot, model.ResumeTakeReq{
				Nonce: resumed.Nonce, Next: model.ResumeChain(resumed.Nonce) + "." + nonce,
				SID: sid, TTL: ttl, Now: now, Grace: ResumeGrace,
			})
			if err != nil {
				return Session{}, err
			}
			if took.Reused != "" {
				r.resumeReused(ctx, u.ID, took.Reused)
			}
			if !took.Taken {
				return Session{}, errResumeUsed
			}
			nonce = took.Nonce
		} else if err := r.st.SetResume(ctx, u.ID, slot, sid, nonce, ttl); err != nil {
			return Session{}, err
		}
	}
	claim := model.Claim{Gateway: gw, Session: sid, TTL: r.cfg.TokenTTL, RejectOnline: r.cfg.LoginPolicy == PolicyReject, Platform: req.Platform}
	r.forgetCurrent(u.ID)
	old, err := r.st.ClaimRoute(ctx, u.ID, claim)
	if errors.Is(err, errs.ErrRepeatLogin) && !r.gw.Live(old.Gateway) {
		// Online on a gateway that is gone (its clean-up has not run yet):
		// that session cannot be in use, so it does not block the login.
		claim.Evict = old.Session
		old, err = r.st.ClaimRoute(ctx, u.ID, claim)
	}
	if err != nil {
		return Session{}, err
	}
	if old.Online() {
		// Kick policy: tell the old connection why it is closed. Its late
		// /internal/offline will not match the new session.
		r.kick(ctx, u.ID, old.Session, old.Gateway, old.Platform, "logged in elsewhere")
	}

	s := Session{UserID: u.ID, UserName: u.Name, SessionID: sid, Gateway: addr, WSURL: r.wsURL(gw),
		ExpiresAt: now.Add(r.cfg.TokenTTL).Unix(), AccessExpiresAt: now.Add(r.cfg.AccessTTL).Unix()}
	s.Token, err = token.Sign(r.cfg.TokenKeys[0], token.Claims{
		UserID: u.ID, UserName: u.Name, SessionID: sid, GatewayID: gw, ExpiresAt: s.ExpiresAt, Audience: token.AudienceGateway,
		Platform: req.Platform,
	})
	if err != nil {
		return Session{}, err
	}
	s.AccessToken, err = token.Sign(r.cfg.TokenKeys[0], token.Claims{
		UserID: u.ID, UserName: u.Name, SessionID: sid, ExpiresAt: s.AccessExpiresAt, Audience: token.AudienceAPI,
	})
	if err != nil {
		return Session{}, err
	}
	if nonce != "" && resumeEnd.After(now) {
		s.ResumeExpiresAt = resumeEnd.Unix()
		s.ResumeToken, err = token.Sign(r.cfg.TokenKeys[0], token.Claims{
			UserID: u.ID, UserName: u.Name, SessionID: sid, ExpiresAt: s.ResumeExpiresAt, Audience: token.AudienceResume,
			Platform: req.Platform, Nonce: nonce, Since: since,
		})
		if err != nil {
			return Session{}, err
		}
	}
	if req.Resume != "" {
		r.observer().Resumed()
	}
	r.log.Info("login", "user", u.ID, "session", sid, "gateway", gw, "replaced", old.Session, "resumed", req.Resume != "")
	return s, nil
}

// ResumeGrace is how long a resume token still logs in after its first
// use, handing out the token that use handed out: a client whose answer
// was lost (a mobile network, a route restarting, a Redis that froze)
// tries the same token again, and two browser tabs restored together
// start from the one they share. After it, the token coming back again
// ends its chain (resumeReused).
const ResumeGrace = 30 * time.Second

// resumeReused ends the session a chain's latest resume token was issued
// with, after an earlier token of that chain came back: a token is used
// once, so two parties hold the chain (a copied file or a stolen browser
// profile and the user's own device), and the route cannot tell which is
// the user. Neither keeps it: the store cleared the slot, the presenter is
// refused, and the holder of the latest loses its session; the user logs
// in with the password again, which begins a new chain.
func (r *Router) resumeReused(ctx context.Context, uid, sid string) {
	n, err := r.endSessions(ctx, uid, "resume token reused", func(s model.Route) bool { return s.Session == sid })
	r.log.Warn("resume token reused: its chain is ended", "user", uid, "session", sid, "ended", n, "err", err)
}

// errResumeUsed refuses a resume token that is not its slot's latest: used
// already, or a login there, a log-off, a password reset, a kick or a ban
// came after it. The client logs in with its password.
var errResumeUsed = fmt.Errorf("%w: resume token used or revoked: log in with the password", errs.ErrUnauthorized)

// resumedAccount checks a resume token: signed, unexpired, naming the
// user the request names (if any) and the platform it names (if any), of
// an account that still exists. Whether it is its slot's latest is Login's
// question (TakeResume), asked after the ban check.
func (r *Router) resumedAccount(ctx context.Context, req LoginRequest) (model.User, token.Claims, error) {
	if r.cfg.ResumeTTL <= 0 {
		return model.User{}, token.Claims{}, fmt.Errorf("%w: this route takes no resume tokens: log in with the password", errs.ErrUnauthorized)
	}
	now := r.now()
	c, err := token.VerifyResume(r.cfg.TokenKeys, req.Resume, now)
	if err != nil {
		return model.User{}, c, fmt.Errorf("%w: resume token: %v", errs.ErrUnauthorized, err)
	}
	// A shorter --resume-ttl than when the chain began counts too.
	if !time.Unix(c.Since, 0).Add(r.cfg.ResumeTTL).After(now) {
		return model.User{}, c, fmt.Errorf("%w: resume token: its password login is older than --resume-ttl", errs.ErrUnauthorized)
	}
	if (req.UserID != "" && req.UserID != c.UserID) || (req.UserName != "" && !strings.EqualFold(req.UserName, c.UserName)) {
		return model.User{}, c, fmt.Errorf("%w: the resume token is another user's", errs.ErrUnauthorized)
	}
	if req.Platform != "" && req.Platform != c.Platform {
		return model.User{}, c, fmt.Errorf("%w: the resume token is for platform %q", errs.ErrUnauthorized, c.Platform)
	}
	u, err := r.st.UserByID(ctx, c.UserID)
	if errors.Is(err, errs.ErrBadAccount) || (err == nil && u.Device) {
		return model.User{}, c, fmt.Errorf("%w: the resume token's account is gone", errs.ErrUnauthorized)
	}
	return u, c, err
}

// builtinAccount checks the password against the account's bcrypt hash.
func (r *Router) builtinAccount(ctx context.Context, req LoginRequest) (model.User, error) {
	var u model.User
	var err error
	if req.UserID != "" {
		u, err = r.st.UserByID(ctx, req.UserID)
	} else {
		u, err = r.st.UserByName(ctx, req.UserName)
	}
	if errors.Is(err, errs.ErrBadAccount) {
		return u, errBadLogin
	}
	if err != nil {
		return u, err
	}
	if req.UserID != "" && req.UserName != "" && !strings.EqualFold(req.UserName, u.Name) {
		return u, errBadLogin
	}
	// An account created for an external authenticator has no password and
	// never logs in here (bcrypt would refuse the empty hash anyway).
	if u.PasswordHash == "" {
		return u, errBadLogin
	}
	var match bool
	if err := r.hash.run(ctx, false, func() { match = checkPasswordHash(u.PasswordHash, req.Password) }); err != nil {
		return u, err
	}
	if !match {
		return u, errBadLogin
	}
	return u, nil
}

// externalAccount asks the authenticator, then finds or creates the local,
// passwordless account of the name it vouches for. A login by id asks
// about that account's name.
func (r *Router) externalAccount(ctx context.Context, req LoginRequest) (model.User, error) {
	name := req.UserName
	if req.UserID != "" {
		u, err := r.st.UserByID(ctx, req.UserID)
		if errors.Is(err, errs.ErrBadAccount) {
			return u, errBadLogin
		}
		if err != nil {
			return u, err
		}
		if name != "" && !strings.EqualFold(name, u.Name) {
			return u, errBadLogin
		}
		name = u.Name
	}
	a := r.cfg.Authenticator
	id, err := a.Authenticate(ctx, name, req.Password)
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		return model.User{}, errBadLogin
	case err != nil:
		// ErrUnavailable, or an error outside the contract, whose safe
		// reading is "could not tell". The details (addresses, directory
		// messages) are for the operator, not the caller.
		r.log.Warn("authenticator failed", "auth", a.Name(), "err", err, "unexpected", !errors.Is(err, auth.ErrUnavailable))
		return model.User{}, fmt.Errorf("%w: %s", errs.ErrAuthUnavailable, a.Name())
	}
	if err := checkName(id.Name); err != nil {
		return model.User{}, fmt.Errorf("%w: %s vouched for %q, not a valid user name (%v)", errs.ErrBadAccount, a.Name(), id.Name, err)
	}
	if req.UserID != "" && id.Name != name {
		return model.User{}, errBadLogin // the directory says it is someone else
	}
	u, err := r.localAccount(ctx, id.Name)
	if err == nil && u.Device {
		// A directory user named like a device is not that device.
		return model.User{}, errBadLogin
	}
	return u, err
}

// localAccount returns the account called name, creating it without a
// password on the first login. Concurrent first logins settle on one
// account: CreateUser claims the name atomically and the loser reads the
// winner's.
func (r *Router) localAccount(ctx context.Context, name string) (model.User, error) {
	u, err := r.st.UserByName(ctx, name)
	if !errors.Is(err, errs.ErrBadAccount) {
		return u, err
	}
	if reservedName(name) {
		return model.User{}, fmt.Errorf("%w: %q is reserved", errs.ErrBadAccount, name)
	}
	id, err := r.st.CreateUser(ctx, name, "")
	if errors.Is(err, errs.ErrNameTaken) {
		return r.st.UserByName(ctx, name)
	}
	if err != nil {
		return model.User{}, err
	}
	r.log.Info("account created for an external user", "user", id, "name", name, "auth", r.cfg.Authenticator.Name())
	return model.User{ID: id, Name: name}, nil
}

// LimitKey names the account a /login or /registerAccount attempt is about
// for rate limiting, so that an account has one bucket however it is named:
// its folded name, for a name in any case and for an id (through the cache
// or one Redis lookup). An unknown id, or a failed lookup, is "#<id>".
func (r *Router) LimitKey(ctx context.Context, userID, userName string) string {
	if userID == "" {
		return model.FoldName(userName)
	}
	if !isID(userID) {
		return "#" + userID // nobody has that id
	}
	if n, ok := r.names.Get(userID); ok {
		return model.FoldName(n)
	}
	names, _, err := r.st.Lookup(ctx, []string{userID}, nil)
	if n := names[userID]; err == nil && n != "" {
		r.remember(userID, n)
		return model.FoldName(n)
	}
	return "#" + userID
}

// rememberName caches the id of a name as someone spelled it (names are
// found in any case): the name→id side only, since that spelling need not
// be the account's own.
func (r *Router) rememberName(given, id string) {
	r.ids.Add(given, id)
}

// kick pushes a KICK to one session on a live gateway, best effort: a dead
// gateway has no connection left to close. The webhooks hear of it either
// way (user.kicked): the route ended the session.
func (r *Router) kick(ctx context.Context, uid, sid, gw, platform, reason string) {
	if r.wants(event.UserKicked) {
		name, _ := r.names.Get(uid)
		r.emit(event.UserKicked, event.Presence{UserID: uid, UserName: name, Platform: platform, SessionID: sid, Gateway: gw, Reason: reason})
	}
	if gw == "" || !r.gw.Live(gw) {
		return
	}
	d := &cimpb.Delivery{UserId: uid, SessionId: sid, Frame: &cimpb.Frame{
		Type: cimpb.Type_KICK, Kick: &cimpb.Kick{Reason: reason},
	}}
	res := r.push.Push(ctx, map[string][]*cimpb.Delivery{gw: {d}})[gw]
	if res.Err != nil {
		r.log.Warn("kick not delivered", "user", uid, "session", sid, "gateway", gw, "err", res.Err)
	}
}

// prehash turns a password into 44 bytes before bcrypt: bcrypt reads at most
// 72 bytes and passwords may be 128 characters (up to 512 bytes of UTF-8).
func prehash(pw string) []byte {
	sum := sha256.Sum256([]byte(pw))
	return []byte(base64.StdEncoding.EncodeToString(sum[:]))
}

func hashPassword(pw string, cost int) (string, error) {
	h, err := bcrypt.GenerateFromPassword(prehash(pw), cost)
	return string(h), err
}

func checkPasswordHash(hash, pw string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), prehash(pw)) == nil
}
