package client

import (
	"context"
	"net/http"
	"time"
)

// Delayed is a message the route keeps and sends later (POST /delay).
type Delayed struct {
	ID    string    // the route's id of the delayed message
	DueAt time.Time // when the route sends it
}

// Delay asks the route to send text to user (id or name) after d, as the
// latest login's user (its access token). The route keeps the message, so it
// is sent even if this client has quit by then; like /p2pRoute it goes into
// the recipient's inbox (pushed at once when online). d is whole seconds,
// from 1 s to 7 days; the route bounds how many a user may have pending.
func (a *API) Delay(ctx context.Context, to, text string, d time.Duration) (Delayed, error) {
	var out struct {
		DelayID string `json:"delayId"`
		DueAt   int64  `json:"dueAt"` // unix ms
	}
	in := map[string]any{"to": to, "msg": text, "delaySeconds": int64(d / time.Second)}
	if err := a.call(ctx, http.MethodPost, "/delay", in, &out, a.authorize); err != nil {
		return Delayed{}, err
	}
	return Delayed{ID: out.DelayID, DueAt: time.UnixMilli(out.DueAt)}, nil
}
