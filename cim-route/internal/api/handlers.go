package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/routeapi"
)

// userID accepts a JSON string or a JSON integer ("12" or 12): callers
// written against CIM send ids as numbers.
type userID = routeapi.ID

func userJSON(u router.User) routeapi.User {
	return routeapi.User{UserID: routeapi.ID(u.ID), UserName: routeapi.ID(u.Name)}
}

func usersJSON(users []router.User) []routeapi.User {
	out := make([]routeapi.User, len(users))
	for i, u := range users {
		out[i] = userJSON(u)
	}
	return out
}

func (h *handler) register(c *gin.Context) {
	var req struct {
		UserName string `json:"userName"`
		Password string `json:"password"`
	}
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	if err := h.limitLogin(c, "", req.UserName); err != nil {
		h.fail(c, err)
		return
	}
	if err := allow(c, h.registrations, errs.ErrRateLimited, "too many registrations on this server", "all"); err != nil {
		h.fail(c, err)
		return
	}
	u, err := h.svc.Register(c.Request.Context(), req.UserName, req.Password)
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, userJSON(u))
}

func (h *handler) login(c *gin.Context) {
	var req routeapi.LoginRequest
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	limit := func() error { return h.limitLogin(c, string(req.UserID), req.UserName) }
	if req.ResumeToken != "" {
		limit = func() error { return h.limitResume(c, req.ResumeToken) }
	}
	if err := limit(); err != nil {
		h.fail(c, err)
		return
	}
	s, err := h.svc.Login(c.Request.Context(), router.LoginRequest{UserID: string(req.UserID), UserName: req.UserName, Password: req.Password, Platform: req.Platform, Resume: req.ResumeToken})
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, routeapi.Login{
		UserID: routeapi.ID(s.UserID), UserName: routeapi.ID(s.UserName), SessionID: routeapi.ID(s.SessionID),
		Token: s.Token, ExpiresAt: routeapi.UnixTime(s.ExpiresAt),
		AccessToken: s.AccessToken, AccessExpiresAt: routeapi.UnixTime(s.AccessExpiresAt),
		ResumeToken: s.ResumeToken, ResumeExpiresAt: routeapi.UnixTime(s.ResumeExpiresAt),
		Server: routeapi.Server{ID: s.Gateway.ID, Host: s.Gateway.Host,
			TCPPort: routeapi.Int(s.Gateway.TCPPort), HTTPPort: routeapi.Int(s.Gateway.HTTPPort), WSURL: s.WSURL},
	})
}

func (h *handler) p2p(c *gin.Context) {
	var req struct {
		UserID        userID `json:"userId"`
		ReceiveUserID userID `json:"receiveUserId"`
		Msg           string `json:"msg"`
	}
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	from, err := callerOf(c).speaksFor(string(req.UserID))
	if err != nil {
		h.fail(c, err)
		return
	}
	id, err := h.svc.P2P(c.Request.Context(), from, string(req.ReceiveUserID), req.Msg)
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, gin.H{"msgId": id})
}

func (h *handler) group(c *gin.Context) {
	var req struct {
		UserID userID `json:"userId"`
		Msg    string `json:"msg"`
	}
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	from, err := callerOf(c).speaksFor(string(req.UserID))
	if err != nil {
		h.fail(c, err)
		return
	}
	id, n, err := h.svc.Broadcast(c.Request.Context(), from, req.Msg)
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, gin.H{"msgId": id, "delivered": n})
}

// onlineUsers answers GET /onlineUser[?after=<userId>&limit=<n>]: a page of
// the users online, by id, at most router.PageLimit (the default); a full
// page means there may be more after its last id.
func (h *handler) onlineUsers(c *gin.Context) {
	page, err := pageOf(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	users, err := h.svc.OnlineUsers(c.Request.Context(), page)
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, usersJSON(users))
}

// pageOf reads a listing's page from the query: after (a user id, checked
// by the router) and limit.
func pageOf(c *gin.Context) (router.Page, error) {
	page := router.Page{After: c.Query("after")}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return page, fmt.Errorf("%w: limit must be a positive number", errs.ErrBadArgument)
		}
		page.Limit = n
	}
	return page, nil
}

// presenceJSON is one user's state in GET /presence.
type presenceJSON struct {
	UserID   routeapi.ID `json:"userId"`
	UserName string      `json:"userName"`
	Online   bool        `json:"online"`
	// Since: when the user's session came online (unix ms); absent offline.
	Since int64 `json:"since,omitempty"`
	// LastSeen: offline, when the user's last session ended (unix ms);
	// absent online, never seen, or to one the user blocked.
	LastSeen int64 `json:"lastSeen,omitempty"`
}

// presence answers GET /presence?users=ann,bob (ids or names, comma
// separated, at most router.MaxPresenceQuery): each user's state, in the
// order asked.
func (h *handler) presence(c *gin.Context) {
	var users []string
	for _, u := range strings.Split(c.Query("users"), ",") {
		if u = strings.TrimSpace(u); u != "" {
			users = append(users, u)
		}
	}
	var viewer string
	if who := callerOf(c); !who.isKey {
		viewer = who.user.UserID
	}
	states, err := h.svc.Presence(c.Request.Context(), viewer, users)
	if err != nil {
		h.fail(c, err)
		return
	}
	out := make([]presenceJSON, len(states))
	for i, s := range states {
		out[i] = presenceJSON{UserID: routeapi.ID(s.ID), UserName: s.Name, Online: s.Online, Since: s.Since, LastSeen: s.LastSeen}
	}
	ok(c, gin.H{"users": out})
}

// offline logs a session off. A bearer logs its own session off (a
// userId/sessionId in the body must be its own), even one already ended:
// logging off twice is fine. An admin API key names the user and,
// optionally, the session; without one the current session goes.
func (h *handler) offline(c *gin.Context) {
	var req struct {
		UserID    userID `json:"userId"`
		SessionID string `json:"sessionId"`
	}
	if err := h.bindOptional(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	who := callerOf(c)
	uid, sid := string(req.UserID), req.SessionID
	if !who.isKey {
		var err error
		if uid, err = who.speaksFor(uid); err == nil {
			err = who.ownSession(sid)
		}
		if err != nil {
			h.fail(c, err)
			return
		}
		sid = who.user.SessionID
	}
	if err := h.svc.Logoff(c.Request.Context(), uid, sid); err != nil {
		h.fail(c, err)
		return
	}
	ok(c, nil)
}

type pushJSON struct {
	MsgIDs    map[string]string `json:"msgIds"`
	MsgID     string            `json:"msgId,omitempty"`
	Delivered int               `json:"delivered"`
}

// push is an application's message (API key with the push scope only).
func (h *handler) push(c *gin.Context) {
	var req struct {
		To    []userID `json:"to"`
		Group userID   `json:"group"` // a group id: a decimal string or number
		All   bool     `json:"all"`
		From  userID   `json:"from"`
		Msg   string   `json:"msg"`
	}
	if err := h.decode(c, max(h.maxBody, minPushBody), &req, false); err != nil {
		h.fail(c, err)
		return
	}
	if len(req.To) > router.MaxPushRecipients {
		h.fail(c, fmt.Errorf("%w: at most %d recipients", errs.ErrBadArgument, router.MaxPushRecipients))
		return
	}
	to := make([]string, len(req.To))
	for i, u := range req.To {
		to[i] = string(u)
	}
	res, err := h.svc.Push(c.Request.Context(), router.PushRequest{To: to, Group: string(req.Group), All: req.All, From: string(req.From), Text: req.Msg})
	if err != nil {
		h.fail(c, err)
		return
	}
	if res.MsgIDs == nil {
		res.MsgIDs = map[string]string{}
	}
	ok(c, pushJSON{MsgIDs: res.MsgIDs, MsgID: res.MsgID, Delivered: res.Delivered})
}

func (h *handler) healthz(c *gin.Context) {
	n, err := h.svc.Health(c.Request.Context())
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, gin.H{"status": "ok", "gateways": n})
}

// sessionOnline: a gateway says a session connected there. With Reassert
// the gateway re-registered after a ZooKeeper session expiry and confirms a
// connection it kept (see Router.SessionOnline).
func (h *handler) sessionOnline(c *gin.Context) {
	var req contract.Session
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	if err := h.svc.SessionOnline(c.Request.Context(), req); err != nil {
		h.fail(c, err)
		return
	}
	ok(c, nil)
}

func (h *handler) sessionOffline(c *gin.Context) {
	var req contract.Session
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	if err := h.svc.SessionOffline(c.Request.Context(), req); err != nil {
		h.fail(c, err)
		return
	}
	ok(c, nil)
}

func (h *handler) uplink(c *gin.Context) {
	body, err := read(c, h.maxUplink)
	if err != nil {
		h.fail(c, err)
		return
	}
	var batch cimpb.UplinkBatch
	if err := proto.Unmarshal(body, &batch); err != nil {
		h.fail(c, fmt.Errorf("%w: bad UplinkBatch: %v", errs.ErrBadArgument, err))
		return
	}
	out, err := h.svc.Uplink(c.Request.Context(), &batch)
	if err != nil {
		h.fail(c, err)
		return
	}
	data, err := proto.Marshal(out)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.Data(http.StatusOK, contract.ProtobufType, data)
}
