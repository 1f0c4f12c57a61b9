package client

import (
	"context"
	"errors"
	"net/http"

	"github.com/gocim/gocim/proto/cimpb"
)

// ErrNoMessage means a recall, an edit, a deletion or a reply that names
// no message.
var ErrNoMessage = errors.New("client: no message id")

// Recall takes back one of this user's messages sent to user to (an id or
// a name), named by the route's msgId (SentMessage.MsgID). It is a MSG
// with MSG_OP_RECALL sent like any message: kept and resent with the same
// client_msg_id until the route answers, stored in the recipient's inbox
// and delivered in order after the message, to every device, now or when
// it comes online; history then shows the message as recalled. The route
// refuses (EventError, codes.BadArgument) a message older than its
// --edit-window (15 minutes by default; 0 turns recall and edit off). It
// returns the client_msg_id.
func (c *Client) Recall(ctx context.Context, to, msgID string) (string, error) {
	if to == "" {
		return "", ErrNoRecipient
	}
	return c.revise(ctx, &cimpb.Msg{To: to}, cimpb.MsgOp_MSG_OP_RECALL, msgID, "")
}

// RecallInGroup is Recall for a message to group gid.
func (c *Client) RecallInGroup(ctx context.Context, gid, msgID string) (string, error) {
	if gid == "" {
		return "", ErrNoGroup
	}
	return c.revise(ctx, &cimpb.Msg{Group: gid}, cimpb.MsgOp_MSG_OP_RECALL, msgID, "")
}

// Edit replaces the text of one of this user's text messages to user to:
// a MSG with MSG_OP_EDIT and the new text, sent, stored and delivered like
// Recall's, within the same window; history then shows the latest text. A
// recalled message cannot be edited (codes.BadArgument). It returns the
// client_msg_id.
func (c *Client) Edit(ctx context.Context, to, msgID, text string) (string, error) {
	if to == "" {
		return "", ErrNoRecipient
	}
	return c.revise(ctx, &cimpb.Msg{To: to}, cimpb.MsgOp_MSG_OP_EDIT, msgID, text)
}

// EditInGroup is Edit for a message to group gid.
func (c *Client) EditInGroup(ctx context.Context, gid, msgID, text string) (string, error) {
	if gid == "" {
		return "", ErrNoGroup
	}
	return c.revise(ctx, &cimpb.Msg{Group: gid}, cimpb.MsgOp_MSG_OP_EDIT, msgID, text)
}

func (c *Client) revise(ctx context.Context, m *cimpb.Msg, op cimpb.MsgOp, msgID, text string) (string, error) {
	if msgID == "" {
		return "", ErrNoMessage
	}
	m.Op, m.RefMsgId, m.Kind, m.Body = op, msgID, cimpb.Kind_KIND_TEXT, []byte(text)
	err := c.SendMsg(ctx, m)
	return m.GetClientMsgId(), err
}

// MaxHistoryDelete is the most msgIds one DeleteHistory call takes.
const MaxHistoryDelete = 100

// DeleteHistory removes messages from this user's own history (POST
// /history/delete), as the latest login: History leaves them out from now
// on; nobody else's history changes, and no device is told. At most
// MaxHistoryDelete ids per call (more are sent in several); ids of
// messages not in the history are harmless. Calls count against the
// route's /history rate.
func (c *Client) DeleteHistory(ctx context.Context, msgIDs ...string) error {
	return c.api.DeleteHistory(ctx, msgIDs...)
}

// DeleteHistory is Client.DeleteHistory for the API's access token.
func (a *API) DeleteHistory(ctx context.Context, msgIDs ...string) error {
	if len(msgIDs) == 0 {
		return ErrNoMessage
	}
	for len(msgIDs) > 0 {
		n := min(len(msgIDs), MaxHistoryDelete)
		in := map[string]any{"msgIds": msgIDs[:n]}
		if err := a.call(ctx, http.MethodPost, "/history/delete", in, nil, a.authorize); err != nil {
			return err
		}
		msgIDs = msgIDs[n:]
	}
	return nil
}
