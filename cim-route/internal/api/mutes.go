package api

import (
	"context"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gocim/gocim/cim-route/internal/router"
)

// Mutes are the conversations a user muted (/mutes).
type Mutes interface {
	Mute(ctx context.Context, uid, user, gid string, d time.Duration) (router.Mute, error)
	Unmute(ctx context.Context, uid, user, gid string) (router.Mute, error)
	Muted(ctx context.Context, uid string) ([]router.Mute, error)
}

// muteJSON is one muted conversation: userId and userName, or group; untilMs
// 0 until unmuted.
type muteJSON struct {
	UserID   string `json:"userId,omitempty"`
	UserName string `json:"userName,omitempty"`
	Group    string `json:"group,omitempty"`
	UntilMs  int64  `json:"untilMs"`
}

func muteOf(m router.Mute) muteJSON {
	return muteJSON{UserID: m.User.ID, UserName: m.User.Name, Group: m.Group, UntilMs: m.UntilMs}
}

// mutes answers GET /mutes (bearer): {"mutes":[{"userId","userName"} or
// {"group"}, with "untilMs"]}, users first, each in id order.
func (h *handler) mutes(c *gin.Context) {
	ms, err := h.svc.Muted(c.Request.Context(), me(c))
	if err != nil {
		h.fail(c, err)
		return
	}
	out := make([]muteJSON, len(ms))
	for i, m := range ms {
		out[i] = muteOf(m)
	}
	ok(c, gin.H{"mutes": out})
}

// mute is POST /mutes {"user": id or name} or {"group": gid}, with
// "forSeconds" (0 or absent: until unmuted) (bearer): the answer is the
// mute.
func (h *handler) mute(c *gin.Context) {
	var req struct {
		User       userID `json:"user"`
		Group      userID `json:"group"`
		ForSeconds int64  `json:"forSeconds"`
	}
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	d := time.Duration(req.ForSeconds) * time.Second
	if req.ForSeconds > int64(router.MaxMuteFor/time.Second) {
		d = 0
	}
	if req.ForSeconds < 0 {
		d = -1
	}
	m, err := h.svc.Mute(c.Request.Context(), me(c), string(req.User), string(req.Group), d)
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, muteOf(m))
}

// unmute is DELETE /mutes?user=… or ?group=… (bearer).
func (h *handler) unmute(c *gin.Context) {
	m, err := h.svc.Unmute(c.Request.Context(), me(c), c.Query("user"), c.Query("group"))
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, muteOf(m))
}
