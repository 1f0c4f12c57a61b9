package router

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/gateway"
	"github.com/gocim/gocim/cim-route/internal/store"
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
}

// Session is a successful login: where to connect and with what token.
type Session struct {
	UserID    string
	UserName  string
	SessionID string
	Token     string
	ExpiresAt int64 // unix seconds, as in the token
	Gateway   gateway.Addr
}

// Register creates an account.
func (r *Router) Register(ctx context.Context, name, password string) (User, error) {
	if err := checkName(name); err != nil {
		return User{}, err
	}
	if err := checkPassword(password); err != nil {
		return User{}, err
	}
	// Cheap check first: bcrypt costs tens of milliseconds. CreateUser still
	// settles a race atomically.
	if taken, err := r.st.NameTaken(ctx, name); err != nil {
		return User{}, err
	} else if taken {
		return User{}, fmt.Errorf("%w: %q", errs.ErrNameTaken, name)
	}
	hash, err := hashPassword(password, r.cfg.BcryptCost)
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

// Login checks the password, applies the single-login policy, picks a
// gateway, records the new session as pending and signs its token.
func (r *Router) Login(ctx context.Context, req LoginRequest) (Session, error) {
	var u store.User
	var err error
	switch {
	case req.UserID != "":
		if err := checkUserID("userId", req.UserID); err != nil {
			return Session{}, err
		}
	case req.UserName == "":
		return Session{}, fmt.Errorf("%w: userName or userId is required", errs.ErrBadArgument)
	}
	if req.Password == "" {
		return Session{}, fmt.Errorf("%w: password is required", errs.ErrBadArgument)
	}
	if req.UserID != "" {
		u, err = r.st.UserByID(ctx, req.UserID)
	} else {
		u, err = r.st.UserByName(ctx, req.UserName)
	}
	badLogin := fmt.Errorf("%w: wrong user or password", errs.ErrBadAccount)
	if errors.Is(err, errs.ErrBadAccount) {
		return Session{}, badLogin
	}
	if err != nil {
		return Session{}, err
	}
	if req.UserID != "" && req.UserName != "" && req.UserName != u.Name {
		return Session{}, badLogin
	}
	if !checkPasswordHash(u.PasswordHash, req.Password) {
		return Session{}, badLogin
	}
	r.remember(u.ID, u.Name)

	gw, ok := r.gw.Pick(u.ID)
	if !ok {
		return Session{}, errs.ErrNoGateway
	}
	addr, err := gateway.Parse(gw)
	if err != nil {
		return Session{}, fmt.Errorf("%w: %v", errs.ErrNoGateway, err)
	}
	sid := newSessionID()
	claim := store.Claim{Gateway: gw, Session: sid, TTL: r.cfg.TokenTTL, RejectOnline: r.cfg.LoginPolicy == PolicyReject}
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
		r.kick(ctx, u.ID, old.Session, old.Gateway, "logged in elsewhere")
	}

	exp := r.now().Add(r.cfg.TokenTTL).Unix()
	tok, err := token.Sign(r.cfg.TokenKeys[0], token.Claims{
		UserID: u.ID, UserName: u.Name, SessionID: sid, GatewayID: gw, ExpiresAt: exp,
	})
	if err != nil {
		return Session{}, err
	}
	r.log.Info("login", "user", u.ID, "session", sid, "gateway", gw, "replaced", old.Session)
	return Session{UserID: u.ID, UserName: u.Name, SessionID: sid, Token: tok, ExpiresAt: exp, Gateway: addr}, nil
}

// kick pushes a KICK to one session on a live gateway, best effort: a dead
// gateway has no connection left to close.
func (r *Router) kick(ctx context.Context, uid, sid, gw, reason string) {
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
