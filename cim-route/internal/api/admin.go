package api

import (
	"context"
	"fmt"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/internal/contract"
)

// The /admin endpoints are an operator's (API key with the admin scope;
// cimctl speaks them): the gateways with their load, and actions on one
// user (kick, ban, unban, password reset, delete) or one gateway (drain).
// A user is named by id or name in the path. The router logs every action
// with the acting key's name.

// AdminService is what the /admin endpoints need (router.Router
// implements it). It is not part of Service, so that fakes of Service need
// not implement it: a Service without it answers 404 here.
type AdminService interface {
	AdminGateways(ctx context.Context) ([]router.GatewayStatus, error)
	AdminDrain(ctx context.Context, by, gw string) (contract.Drain, error)
	AdminKick(ctx context.Context, by, user, session, slot string) (router.User, int, error)
	AdminBan(ctx context.Context, by, user, reason string, until time.Time) (router.User, router.Ban, error)
	AdminUnban(ctx context.Context, by, user string) (router.User, bool, error)
	AdminResetPassword(ctx context.Context, by, user, password string) (router.User, string, error)
	AdminDeleteUser(ctx context.Context, by, user string) (router.User, error)
}

// gatewayJSON is a gateway as GET /admin/gateways shows it.
type gatewayJSON struct {
	ID       string `json:"id"`
	Host     string `json:"host"`
	TCPPort  int    `json:"tcpPort"`
	HTTPPort int    `json:"httpPort"`
	WSURL    string `json:"wsUrl,omitempty"`
	// Healthy: handed out for logins.
	Healthy bool `json:"healthy"`
	// Connections the gateway reports; -1 when it did not answer.
	Connections int `json:"connections"`
	// Users the route has on it.
	Users int    `json:"users"`
	Error string `json:"error,omitempty"`
}

// adminUserJSON is the account an action was about, with what it did.
type adminUserJSON struct {
	UserID   string `json:"userId"`
	UserName string `json:"userName"`
	// Kicked: sessions ended (kick).
	Kicked *int `json:"kicked,omitempty"`
	// WasBanned: unban found a ban.
	WasBanned *bool `json:"wasBanned,omitempty"`
	// Password: the generated one (password reset without a password).
	Password string `json:"password,omitempty"`
}

// banJSON is the answer of POST /admin/users/{id}/ban.
type banJSON struct {
	UserID   string `json:"userId"`
	UserName string `json:"userName"`
	Reason   string `json:"reason"`
	Until    int64  `json:"until,omitempty"` // unix ms; absent: for good
	By       string `json:"by"`
	At       int64  `json:"at"` // unix ms
}

// banRequestJSON is the body of POST /admin/users/{id}/ban (optional).
type banRequestJSON struct {
	Reason string `json:"reason,omitempty"`
	// Until ends the ban by itself: RFC 3339; empty: for good.
	Until string `json:"until,omitempty"`
}

// passwordRequestJSON is the body of POST /admin/users/{id}/password
// (optional): an empty password is generated and answered.
type passwordRequestJSON struct {
	Password string `json:"password,omitempty"`
}

// drainJSON is the answer of POST /admin/gateways/{id}/drain.
type drainJSON struct {
	Gateway     string `json:"gateway"`
	Connections int    `json:"connections"`
	Already     bool   `json:"already"`
}

// admin returns the service's admin side and the acting key's name.
func (h *handler) admin(c *gin.Context) (AdminService, string, bool) {
	a, ok := h.svc.(AdminService)
	if !ok {
		h.fail(c, fmt.Errorf("%w: this route has no admin actions", errs.ErrNotFound))
		return nil, "", false
	}
	return a, callerOf(c).key.Name, true
}

func (h *handler) adminGateways(c *gin.Context) {
	a, _, found := h.admin(c)
	if !found {
		return
	}
	gws, err := a.AdminGateways(c.Request.Context())
	if err != nil {
		h.fail(c, err)
		return
	}
	out := make([]gatewayJSON, len(gws))
	for i, g := range gws {
		out[i] = gatewayJSON{ID: g.Addr.ID, Host: g.Addr.Host, TCPPort: g.Addr.TCPPort, HTTPPort: g.Addr.HTTPPort,
			WSURL: g.WSURL, Healthy: g.Healthy, Connections: g.Connections, Users: g.Users, Error: g.Err}
	}
	ok(c, out)
}

func (h *handler) adminDrain(c *gin.Context) {
	a, by, found := h.admin(c)
	if !found {
		return
	}
	d, err := a.AdminDrain(c.Request.Context(), by, c.Param("id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, drainJSON{Gateway: c.Param("id"), Connections: d.Connections, Already: d.Already})
}

// adminKick is POST /admin/users/{id}/kick?session=<sid>&device=<slot>.
func (h *handler) adminKick(c *gin.Context) {
	a, by, found := h.admin(c)
	if !found {
		return
	}
	u, n, err := a.AdminKick(c.Request.Context(), by, c.Param("id"), c.Query("session"), c.Query("device"))
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, adminUserJSON{UserID: u.ID, UserName: u.Name, Kicked: &n})
}

func (h *handler) adminBan(c *gin.Context) {
	a, by, found := h.admin(c)
	if !found {
		return
	}
	var req banRequestJSON
	if err := h.bindOptional(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	var until time.Time
	if req.Until != "" {
		var err error
		if until, err = time.Parse(time.RFC3339, req.Until); err != nil {
			h.fail(c, fmt.Errorf("%w: until must be RFC 3339 (2006-01-02T15:04:05Z)", errs.ErrBadArgument))
			return
		}
	}
	u, b, err := a.AdminBan(c.Request.Context(), by, c.Param("id"), req.Reason, until)
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, banJSON{UserID: u.ID, UserName: u.Name, Reason: b.Reason, Until: b.Until, By: b.By, At: b.At})
}

func (h *handler) adminUnban(c *gin.Context) {
	a, by, found := h.admin(c)
	if !found {
		return
	}
	u, was, err := a.AdminUnban(c.Request.Context(), by, c.Param("id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, adminUserJSON{UserID: u.ID, UserName: u.Name, WasBanned: &was})
}

func (h *handler) adminPassword(c *gin.Context) {
	a, by, found := h.admin(c)
	if !found {
		return
	}
	var req passwordRequestJSON
	if err := h.bindOptional(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	u, generated, err := a.AdminResetPassword(c.Request.Context(), by, c.Param("id"), req.Password)
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, adminUserJSON{UserID: u.ID, UserName: u.Name, Password: generated})
}

func (h *handler) adminDelete(c *gin.Context) {
	a, by, found := h.admin(c)
	if !found {
		return
	}
	u, err := a.AdminDeleteUser(c.Request.Context(), by, c.Param("id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, adminUserJSON{UserID: u.ID, UserName: u.Name})
}
