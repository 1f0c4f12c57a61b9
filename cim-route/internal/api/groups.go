package api

import (
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gocim/gocim/cim-route/internal/router"
)

// The /groups endpoints act for the bearer's own user; the group id is in
// the path (docs/ARCHITECTURE.md, "Groups").

type groupJSON struct {
	GroupID string `json:"groupId"`
	Name    string `json:"name"`
	Owner   string `json:"owner"`
	Open    bool   `json:"open"`
	Members int    `json:"members"`
}

func toGroupJSON(g router.Group) groupJSON {
	return groupJSON{GroupID: g.ID, Name: g.Name, Owner: g.Owner, Open: g.Open, Members: g.Members}
}

type receiptCountJSON struct {
	Delivered int `json:"delivered"`
	Read      int `json:"read"`
}

// me is the bearer's user id (authorize has let only bearers through).
func me(c *gin.Context) string { return callerOf(c).user.UserID }

// answerGroup answers a group or the error.
func (h *handler) answerGroup(c *gin.Context, g router.Group, err error) {
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, toGroupJSON(g))
}

// answerNull answers null or the error.
func (h *handler) answerNull(c *gin.Context, err error) {
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, nil)
}

func (h *handler) createGroup(c *gin.Context) {
	var req struct {
		Name string `json:"name"`
		Open bool   `json:"open"`
	}
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	g, err := h.svc.CreateGroup(c.Request.Context(), me(c), req.Name, req.Open)
	h.answerGroup(c, g, err)
}

func (h *handler) myGroups(c *gin.Context) {
	gs, err := h.svc.Groups(c.Request.Context(), me(c))
	if err != nil {
		h.fail(c, err)
		return
	}
	out := make([]groupJSON, len(gs))
	for i, g := range gs {
		out[i] = toGroupJSON(g)
	}
	ok(c, out)
}

func (h *handler) getGroup(c *gin.Context) {
	g, err := h.svc.Group(c.Request.Context(), me(c), c.Param("gid"))
	h.answerGroup(c, g, err)
}

// groupMembers answers GET /groups/{gid}/members[?after=<userId>&limit=<n>]:
// a page of the members, by id (see onlineUsers).
func (h *handler) groupMembers(c *gin.Context) {
	page, err := pageOf(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	users, err := h.svc.GroupMembers(c.Request.Context(), me(c), c.Param("gid"), page)
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, usersJSON(users))
}

func (h *handler) joinGroup(c *gin.Context) {
	g, err := h.svc.JoinGroup(c.Request.Context(), me(c), c.Param("gid"))
	h.answerGroup(c, g, err)
}

func (h *handler) inviteToGroup(c *gin.Context) {
	var req struct {
		Users []userID `json:"users"`
	}
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	users := make([]string, len(req.Users))
	for i, u := range req.Users {
		users[i] = string(u)
	}
	invited, err := h.svc.InviteToGroup(c.Request.Context(), me(c), c.Param("gid"), users)
	if err != nil {
		h.fail(c, err)
		return
	}
	if invited == nil {
		invited = []string{}
	}
	ok(c, gin.H{"invited": invited})
}

func (h *handler) leaveGroup(c *gin.Context) {
	h.answerNull(c, h.svc.LeaveGroup(c.Request.Context(), me(c), c.Param("gid")))
}

// transferGroup answers POST /groups/{gid}/owner {"userId"}: the owner
// hands the group to a member; the answer is the group.
func (h *handler) transferGroup(c *gin.Context) {
	var req struct {
		UserID userID `json:"userId"` // an id or a name
	}
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	g, err := h.svc.TransferGroup(c.Request.Context(), me(c), c.Param("gid"), string(req.UserID))
	h.answerGroup(c, g, err)
}

func (h *handler) kickFromGroup(c *gin.Context) {
	var req struct {
		UserID userID `json:"userId"` // an id or a name
	}
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	h.answerNull(c, h.svc.KickFromGroup(c.Request.Context(), me(c), c.Param("gid"), string(req.UserID)))
}

func (h *handler) renameGroup(c *gin.Context) {
	var req struct {
		Name string `json:"name"`
	}
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	g, err := h.svc.RenameGroup(c.Request.Context(), me(c), c.Param("gid"), req.Name)
	h.answerGroup(c, g, err)
}

func (h *handler) dissolveGroup(c *gin.Context) {
	h.answerNull(c, h.svc.DissolveGroup(c.Request.Context(), me(c), c.Param("gid")))
}

// groupReceipts answers the counts of the bearer's own group messages:
// msgIds is comma-separated (and may be repeated).
func (h *handler) groupReceipts(c *gin.Context) {
	var ids []string
	for _, v := range c.QueryArray("msgIds") {
		for id := range strings.SplitSeq(v, ",") {
			if id = strings.TrimSpace(id); id != "" {
				ids = append(ids, id)
			}
		}
	}
	counts, err := h.svc.GroupReceipts(c.Request.Context(), me(c), ids)
	if err != nil {
		h.fail(c, err)
		return
	}
	out := make(map[string]receiptCountJSON, len(counts))
	for id, n := range counts {
		out[id] = receiptCountJSON{Delivered: n.Delivered, Read: n.Read}
	}
	ok(c, out)
}
