package api

import (
	"context"

	"github.com/gin-gonic/gin"

	"github.com/gocim/gocim/cim-route/internal/router"
)

// Blocks are the users a user blocked (/blocks).
type Blocks interface {
	Block(ctx context.Context, uid, user string) (router.User, error)
	Unblock(ctx context.Context, uid, user string) (router.User, error)
	Blocked(ctx context.Context, uid string) ([]router.User, error)
}

// blocks answers GET /blocks (bearer): {"users":[{"userId","userName"}]},
// whom the caller blocked, by id.
func (h *handler) blocks(c *gin.Context) {
	users, err := h.svc.Blocked(c.Request.Context(), me(c))
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, gin.H{"users": usersJSON(users)})
}

// block is POST /blocks {"user": id or name} (bearer): the answer names
// the blocked user.
func (h *handler) block(c *gin.Context) {
	var req struct {
		User userID `json:"user"`
	}
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	h.answerUser(c, h.svc.Block)(string(req.User))
}

// unblock is DELETE /blocks/{user} (bearer).
func (h *handler) unblock(c *gin.Context) {
	h.answerUser(c, h.svc.Unblock)(c.Param("user"))
}

func (h *handler) answerUser(c *gin.Context, do func(ctx context.Context, uid, user string) (router.User, error)) func(string) {
	return func(user string) {
		u, err := do(c.Request.Context(), me(c), user)
		if err != nil {
			h.fail(c, err)
			return
		}
		ok(c, userJSON(u))
	}
}
