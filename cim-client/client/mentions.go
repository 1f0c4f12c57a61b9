package client

import (
	"context"
	"errors"
	"slices"

	"github.com/gocim/gocim/proto/cimpb"
)

// Mentions: a new group message may name members (Msg.Mentions, user ids
// or names; its text holds "@bob" only for display). The route keeps those
// that are members of the group, as ids, once each, and drops the rest;
// every member's copy, SYNC and History carry the kept ids. The outbox
// keeps a message's mentions inside its encoded frame, which every resend
// writes again as it is: SentMessage has no room left for them.

var (
	// ErrBadMentions means mentions the route would refuse: on anything
	// but a new group message (a private message, a broadcast, a message
	// to the app, a recall, an edit, a reaction), or an empty one.
	ErrBadMentions = errors.New("client: bad mentions: only a new group message mentions members, each by a user id or name")
	// ErrTooManyMentions means a message mentioning more than MaxMentions
	// members.
	ErrTooManyMentions = errors.New("client: too many mentions: at most 50 a message")
)

// MaxMentions is how many mentions one message may carry (the route's
// bound, duplicates included).
const MaxMentions = 50

// SendGroupMentions is SendGroup for a text that mentions members of group
// gid: each of mentions is a user id or name, as given (the route resolves
// names, keeps the group's members and drops the others without failing the
// message). It is kept and resent like any message, mentions included. It
// returns the client_msg_id; ErrNoGroup, ErrTooManyMentions for more than
// MaxMentions, ErrBadMentions for an empty one, all before anything is
// sent.
func (c *Client) SendGroupMentions(ctx context.Context, gid, text string, mentions ...string) (string, error) {
	if gid == "" {
		return "", ErrNoGroup
	}
	m := &cimpb.Msg{Group: gid, Body: []byte(text), Kind: cimpb.Kind_KIND_TEXT, Mentions: mentions}
	err := c.SendMsg(ctx, m)
	return m.GetClientMsgId(), err
}

// MentionsMe reports whether m mentions this client's user: its Mentions
// (user ids, as the route delivers and History lists them) hold the
// logged-in user's id. False before the first login.
func (c *Client) MentionsMe(m *cimpb.Msg) bool {
	uid := c.Info().UserID
	return uid != "" && slices.Contains(m.GetMentions(), uid)
}

// checkMentions refuses mentions the route would: on anything but a new
// group message, more than MaxMentions, an empty one.
func checkMentions(m *cimpb.Msg) error {
	ms := m.GetMentions()
	switch {
	case len(ms) == 0:
		return nil
	case m.GetGroup() == "" || m.GetBroadcast() || m.GetToApp() || m.GetOp() != cimpb.MsgOp_MSG_OP_NEW:
		return ErrBadMentions
	case len(ms) > MaxMentions:
		return ErrTooManyMentions
	case slices.Contains(ms, ""):
		return ErrBadMentions
	}
	return nil
}
