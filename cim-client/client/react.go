package client

import (
	"bytes"
	"context"
	"errors"
	"unicode"
	"unicode/utf8"

	"github.com/gocim/gocim/proto/cimpb"
)

var (
	// ErrBadReaction means a reaction whose emoji the route would refuse:
	// longer than MaxReactionLen bytes, not valid UTF-8, or holding white
	// space or a control character.
	ErrBadReaction = errors.New("client: bad reaction: an emoji is at most 32 bytes of UTF-8, without spaces or control characters")
	// ErrBadRefMsgID means a reaction naming its message by something that
	// is not a msgId (32 lowercase hex characters).
	ErrBadRefMsgID = errors.New("client: ref_msg_id is not a message id (32 lowercase hex characters)")
)

// MaxReactionLen is the longest emoji a reaction carries, in bytes.
const MaxReactionLen = 32

// Reaction is one emoji on a message (HistoryPage.Reactions): how many
// users reacted with it, and whether one of them is the viewer.
type Reaction struct {
	Emoji string `json:"emoji"`
	Count int    `json:"count"`
	Mine  bool   `json:"mine"` // the viewer's own reaction (at most one per message)
}

// React sets this user's reaction to message msgID (its msgId: Msg.MsgId
// of a message received, or SentMessage.MsgID of one sent) of the private
// conversation with user to (an id or a name): emoji, or "" to take the
// reaction back. One reaction per user and message: a later one replaces
// it. It is a MSG with MSG_OP_REACT, RefMsgId and the emoji as its body,
// sent like Edit's: kept and resent with the same client_msg_id until the
// route answers, final on a refusal (EventError, codes.BadArgument: a
// message with 20 different emoji already).
// The peer and this user's other devices get it in order with the
// messages (EventMessage). It returns the client_msg_id; ErrNoRecipient,
// ErrNoMessage for an empty msgID, ErrBadRefMsgID for one that is not a
// msgId, ErrBadReaction for an emoji the route would refuse, all before
// anything is sent.
func (c *Client) React(ctx context.Context, to, msgID, emoji string) (string, error) {
	if to == "" {
		return "", ErrNoRecipient
	}
	return c.react(ctx, &cimpb.Msg{To: to}, msgID, emoji)
}

// ReactInGroup is React for a message of group gid: every other member
// gets it.
func (c *Client) ReactInGroup(ctx context.Context, gid, msgID, emoji string) (string, error) {
	if gid == "" {
		return "", ErrNoGroup
	}
	return c.react(ctx, &cimpb.Msg{Group: gid}, msgID, emoji)
}

// react sends m as a reaction; sendMsg checks msgID and emoji.
func (c *Client) react(ctx context.Context, m *cimpb.Msg, msgID, emoji string) (string, error) {
	m.Op, m.RefMsgId, m.Kind, m.Body = cimpb.MsgOp_MSG_OP_REACT, msgID, cimpb.Kind_KIND_TEXT, []byte(emoji)
	err := c.SendMsg(ctx, m)
	return m.GetClientMsgId(), err
}

// checkReaction refuses a reaction the route would: its message not named
// by a msgId, or an emoji that cannot be one. An empty emoji takes the
// reaction back.
func checkReaction(msgID string, emoji []byte) error {
	switch {
	case msgID == "":
		return ErrNoMessage
	case !isMsgID(msgID):
		return ErrBadRefMsgID
	case len(emoji) > MaxReactionLen || !utf8.Valid(emoji):
		return ErrBadReaction
	}
	if bytes.ContainsFunc(emoji, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return ErrBadReaction
	}
	return nil
}

// historyReaction is one entry of a /history message's "reactions".
type historyReaction struct {
	Emoji string  `json:"emoji"`
	Count flexInt `json:"count"`
	Mine  bool    `json:"mine"`
}

// reactions converts a /history message's reactions; nil for none.
func reactions(rs []historyReaction) []Reaction {
	if len(rs) == 0 {
		return nil
	}
	out := make([]Reaction, len(rs))
	for i, r := range rs {
		out[i] = Reaction{Emoji: r.Emoji, Count: int(r.Count), Mine: r.Mine}
	}
	return out
}
