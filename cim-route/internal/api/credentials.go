package api

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gocim/gocim/cim-route/internal/apikey"
	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/ratelimit"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/token"
)

// access is what an endpoint accepts (docs/ARCHITECTURE.md, "Security").
type access struct {
	bearer bool         // a user's access token, for its current session
	stale  bool         // ... also for a session that has ended (/offLine)
	scope  apikey.Scope // an API key holding this scope; 0: no API key
}

// caller is who a request comes from: a user (bearer) or an application
// (API key).
type caller struct {
	user  token.Claims // bearer: UserID, UserName, SessionID
	key   apikey.Key
	isKey bool
}

const callerKey = "cim.caller"

// authorize lets a request through only with a credential that a accepts;
// otherwise it answers 401/4010 (no, bad or dead credential) or 403/4030
// (a valid credential not allowed here).
func (h *handler) authorize(a access) gin.HandlerFunc {
	return func(c *gin.Context) {
		who, err := h.identify(c, a)
		if err != nil {
			h.fail(c, err)
			c.Abort()
			return
		}
		c.Set(callerKey, who)
	}
}

func callerOf(c *gin.Context) caller {
	who, _ := c.Get(callerKey)
	w, _ := who.(caller)
	return w
}

func (h *handler) identify(c *gin.Context, a access) (caller, error) {
	if k := c.GetHeader(APIKeyHeader); k != "" {
		key, ok := h.apiKeys.Match(k)
		switch {
		case !ok:
			return caller{}, fmt.Errorf("%w: unknown API key", errs.ErrUnauthorized)
		case a.scope == 0:
			return caller{}, fmt.Errorf("%w: this endpoint needs a user's access token, not an API key", errs.ErrForbidden)
		case !key.Has(a.scope):
			return caller{}, fmt.Errorf("%w: API key %q lacks the %s scope", errs.ErrForbidden, key.Name, a.scope)
		}
		return caller{key: key, isKey: true}, nil
	}
	authz := c.GetHeader("Authorization")
	if authz == "" {
		return caller{}, fmt.Errorf("%w: no credential (Authorization: Bearer <accessToken> or %s)", errs.ErrUnauthorized, APIKeyHeader)
	}
	scheme, tok, ok := strings.Cut(authz, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return caller{}, fmt.Errorf("%w: Authorization must be \"Bearer <accessToken>\"", errs.ErrUnauthorized)
	}
	claims, err := token.VerifyAPI(h.tokenKeys, strings.TrimSpace(tok), h.now())
	if err != nil {
		return caller{}, fmt.Errorf("%w: %v", errs.ErrUnauthorized, err)
	}
	if !a.bearer {
		return caller{}, fmt.Errorf("%w: this endpoint needs an API key with the %s scope", errs.ErrForbidden, a.scope)
	}
	if !a.stale {
		if err := h.svc.CheckSession(c.Request.Context(), claims.UserID, claims.SessionID); err != nil {
			return caller{}, err
		}
	}
	return caller{user: claims}, nil
}

// speaksFor returns the user a request acts as: a bearer's own user (a
// userId given must be that one, else errs.ErrForbidden); for an API key,
// the userId given (the router checks it).
func (w caller) speaksFor(userID string) (string, error) {
	if w.isKey {
		return userID, nil
	}
	if userID != "" && userID != w.user.UserID {
		return "", fmt.Errorf("%w: userId %s is not the token's user", errs.ErrForbidden, userID)
	}
	return w.user.UserID, nil
}

// ownSession checks that a sessionId given (optional) is the bearer's.
func (w caller) ownSession(sid string) error {
	if sid != "" && sid != w.user.SessionID {
		return fmt.Errorf("%w: sessionId is not the token's session", errs.ErrForbidden)
	}
	return nil
}

// requireInternal refuses an /internal/* call without the internal secret.
func (h *handler) requireInternal(c *gin.Context) {
	if !h.internal.Valid(c.GetHeader(contract.Header)) {
		h.fail(c, fmt.Errorf("%w: internal calls need the %s secret", errs.ErrUnauthorized, contract.Header))
		c.Abort()
	}
}

// maxLimitKey bounds a user name used as a rate limit key.
const maxLimitKey = 64

// limitLogin takes a /login or /registerAccount attempt from the client IP's
// and the account's buckets; over either, errs.ErrRateLimited with the
// Retry-After header set. The account is named by id or name (in any case):
// both share one bucket (Service.LimitKey).
func (h *handler) limitLogin(c *gin.Context, userID, userName string) error {
	if len(userName) > maxLimitKey {
		userName = userName[:maxLimitKey]
	}
	if len(userID) > maxLimitKey {
		userID = userID[:maxLimitKey]
	}
	key := ""
	if h.limiter != nil {
		key = h.svc.LimitKey(c.Request.Context(), userID, userName)
	}
	return allow(c, h.limiter, errs.ErrRateLimited, "too many attempts", c.ClientIP(), key)
}

// limitResume takes a /login with a resume token from the account's
// bucket alone when the token is genuine: it cannot be guessed and costs
// no password hash, so the address's bucket, which stops guessing, would
// only hold back the users behind one address (a NAT, an office) coming
// back together after their gateway failed. A token that is not genuine
// is limited as a password attempt from its address.
func (h *handler) limitResume(c *gin.Context, tok string) error {
	claims, err := token.VerifyResume(h.tokenKeys, tok, h.now())
	if err != nil {
		return h.limitLogin(c, "", "")
	}
	key := ""
	if h.limiter != nil {
		key = h.svc.LimitKey(c.Request.Context(), claims.UserID, "")
	}
	return allow(c, h.limiter, errs.ErrRateLimited, "too many attempts", "", key)
}

// limitList takes a listing request from the bearer's --list-rate bucket
// (an API key's requests are not limited); over it, 429/4291.
func (h *handler) limitList(c *gin.Context) {
	who := callerOf(c)
	if who.isKey {
		return
	}
	if err := allow(c, h.lists, errs.ErrRateLimited, "too many listing requests", who.user.UserID); err != nil {
		h.fail(c, err)
		c.Abort()
	}
}

// allow takes a token from l for keys; over the limit it answers an error
// wrapping sentinel with Retry-After set, and when l cannot tell (its
// Redis failed) errs.ErrUnavailable: nothing passes unlimited.
func allow(c *gin.Context, l *ratelimit.Limiter, sentinel error, what string, keys ...string) error {
	wait, err := l.Allow(c.Request.Context(), keys...)
	if err != nil {
		return fmt.Errorf("%w: %v", errs.ErrUnavailable, err)
	}
	return retryAfter(c, wait, sentinel, what)
}

// retryAfter turns a limiter's wait into an error wrapping sentinel with
// the Retry-After header set; nil when wait is 0.
func retryAfter(c *gin.Context, wait time.Duration, sentinel error, what string) error {
	if wait <= 0 {
		return nil
	}
	if wait == ratelimit.Never {
		return fmt.Errorf("%w: %s: more than the limit allows at once", sentinel, what)
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	c.Header("Retry-After", strconv.Itoa(secs))
	return fmt.Errorf("%w: %s, retry in %ds", sentinel, what, secs)
}
