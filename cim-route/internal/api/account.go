package api

import (
	"github.com/gin-gonic/gin"

	"github.com/gocim/gocim/cim-route/internal/router"
)

// securedJSON answers POST /account/password and /account/logout-others:
// the caller's session keeps a new resume token in place of the revoked
// ones.
type securedJSON struct {
	SessionsEnded   int    `json:"sessionsEnded"`
	ResumeToken     string `json:"resumeToken,omitempty"`
	ResumeExpiresAt int64  `json:"resumeExpiresAt,omitempty"`
}

// changePassword (POST /account/password, bearer): the caller's current
// password and a new one. Each attempt checks a password, so it takes from
// the same buckets as a /login (the address's and the account's): a
// stolen access token cannot be used to guess the password.
func (h *handler) changePassword(c *gin.Context) {
	var req struct {
		Password    string `json:"password"`
		NewPassword string `json:"newPassword"`
	}
	h.secure(c, &req, func(uid, sid string) (router.Secured, error) {
		return h.svc.ChangePassword(c.Request.Context(), uid, sid, req.Password, req.NewPassword)
	})
}

// logoutOthers (POST /account/logout-others, bearer): with the password,
// ends every other session of the caller and every remembered login.
func (h *handler) logoutOthers(c *gin.Context) {
	var req struct {
		Password string `json:"password"`
	}
	h.secure(c, &req, func(uid, sid string) (router.Secured, error) {
		return h.svc.LogoutOthers(c.Request.Context(), uid, sid, req.Password)
	})
}

func (h *handler) secure(c *gin.Context, req any, do func(uid, sid string) (router.Secured, error)) {
	who, ok := h.passwordCall(c, req)
	if !ok {
		return
	}
	s, err := do(who.user.UserID, who.user.SessionID)
	h.answer(c, securedJSON{SessionsEnded: s.Ended, ResumeToken: s.ResumeToken, ResumeExpiresAt: s.ResumeExpiresAt}, err)
}

// deleteAccount (POST /account/delete, bearer): with the password, deletes
// the caller's account and everything of it; every session is kicked.
func (h *handler) deleteAccount(c *gin.Context) {
	var req struct {
		Password string `json:"password"`
	}
	who, ok := h.passwordCall(c, &req)
	if !ok {
		return
	}
	u, err := h.svc.DeleteAccount(c.Request.Context(), who.user.UserID, who.user.SessionID, req.Password)
	h.answer(c, userJSON(u), err)
}

// passwordCall reads the body of a call that checks the caller's password
// into req and takes from the /login buckets of the address and the
// account (a stolen access token cannot guess the password faster than a
// login can); false when it answered already.
func (h *handler) passwordCall(c *gin.Context, req any) (caller, bool) {
	if err := h.bind(c, req); err != nil {
		h.fail(c, err)
		return caller{}, false
	}
	who := callerOf(c)
	if err := h.limitLogin(c, who.user.UserID, ""); err != nil {
		h.fail(c, err)
		return caller{}, false
	}
	return who, true
}

// answer answers data, or err when there is one.
func (h *handler) answer(c *gin.Context, data any, err error) {
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, data)
}
