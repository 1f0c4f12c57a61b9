package client

import (
	"context"
	"errors"

	"github.com/gocim/gocim/proto/cimpb"
)

// ErrBadReplyTo means a reply whose replyTo is not a message id: the
// route's msgIds are 32 lowercase hex characters.
var ErrBadReplyTo = errors.New("client: reply_to is not a message id (32 lowercase hex characters)")

// msgIDLen is the length of the route's msgIds.
const msgIDLen = 32

// Reply sends text to one user (id or name) as an answer to the earlier
// message replyTo (its msgId: Msg.MsgId of a message received, or
// SentMessage.MsgID of one sent), of the same conversation. It is Send with
// Msg.ReplyTo set, kept and resent like any message; every recipient's
// copy (and those for the sender's other devices) carries ReplyTo, and so
// does History. The route checks only the form of replyTo (ERROR
// codes.BadArgument for a msgId from the future), not that the message
// exists: a client quotes it when it has it. It returns the client_msg_id;
// ErrNoMessage for an empty replyTo, ErrBadReplyTo for one that is not a
// msgId, both before anything is sent.
func (c *Client) Reply(ctx context.Context, to, replyTo, text string) (string, error) {
	if to == "" {
		return "", ErrNoRecipient
	}
	if err := checkReplyTo(replyTo); err != nil {
		return "", err
	}
	return c.sendText(ctx, to, false, replyTo, text)
}

// ReplyInGroup is Reply for a message to group gid: SendGroup with
// Msg.ReplyTo set.
func (c *Client) ReplyInGroup(ctx context.Context, gid, replyTo, text string) (string, error) {
	if gid == "" {
		return "", ErrNoGroup
	}
	if err := checkReplyTo(replyTo); err != nil {
		return "", err
	}
	m := &cimpb.Msg{Group: gid, Body: []byte(text), Kind: cimpb.Kind_KIND_TEXT, ReplyTo: replyTo}
	err := c.SendMsg(ctx, m)
	return m.GetClientMsgId(), err
}

// checkReplyTo refuses a replyTo that cannot be a msgId.
func checkReplyTo(id string) error {
	if id == "" {
		return ErrNoMessage
	}
	if !isMsgID(id) {
		return ErrBadReplyTo
	}
	return nil
}

// isMsgID reports whether id has the form of the route's msgIds: 32
// lowercase hex characters.
func isMsgID(id string) bool {
	if len(id) != msgIDLen {
		return false
	}
	for i := range len(id) {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
