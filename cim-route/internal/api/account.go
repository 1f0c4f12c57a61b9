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
	if err := h.bind(c, req); err != nil {
		h.fail(c, err)
		return
	}
	who := callerOf(c)
	if err := h.limitLogin(c, who.user.UserID, ""); err != nil {
		h.fail(c, err)
		return
	}
	s, err := do(who.user.UserID, who.user.SessionID)
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, securedJSON{SessionsEnded: s.Ended, ResumeToken: s.ResumeToken, ResumeExpiresAt: s.ResumeExpiresAt})
}

// deleteAccount (POST /account/delete, bearer): with the password, deletes
// the caller's account and everything of it; every session is kicked. It
// checks a password, so it takes from the /login buckets as a password
// change does.
func (h *handler) deleteAccount(c *gin.Context) {
	var req struct {
		Password string `json:"password"`
	}
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	who := callerOf(c)
	if err := h.limitLogin(c, who.user.UserID, ""); err != nil {
		h.fail(c, err)
		return
	}
	u, err := h.svc.DeleteAccount(c.Request.Context(), who.user.UserID, who.user.SessionID, req.Password)
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, userJSON(u))
}
