package api

import (
	"fmt"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/router"
)

// delay is POST /delay {"to","msg","delaySeconds"} with the user's bearer
// token: a private message the route keeps and sends after delaySeconds
// (1 s to 7 days), even if the sender's client has quit by then. The answer
// is {"delayId","dueAt"} (unix ms).
func (h *handler) delay(c *gin.Context) {
	var req struct {
		To           userID `json:"to"`
		Msg          string `json:"msg"`
		DelaySeconds int64  `json:"delaySeconds"`
	}
	if err := h.bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	from, err := callerOf(c).speaksFor("")
	if err != nil {
		h.fail(c, err)
		return
	}
	max := int64(router.MaxDelay / time.Second)
	if req.DelaySeconds < 1 || req.DelaySeconds > max {
		h.fail(c, fmt.Errorf("%w: delaySeconds must be 1 to %d", errs.ErrBadArgument, max))
		return
	}
	m, err := h.svc.Delay(c.Request.Context(), from, string(req.To), req.Msg, time.Duration(req.DelaySeconds)*time.Second)
	if err != nil {
		h.fail(c, err)
		return
	}
	ok(c, gin.H{"delayId": m.ID, "dueAt": m.Due.UnixMilli()})
}
