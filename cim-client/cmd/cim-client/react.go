package main

import (
	"context"
	"errors"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/cim-client/internal/term"
	"github.com/gocim/gocim/proto/cimpb"
)

// react runs :react [N] <emoji> and :unreact [N] (no emoji): my reaction
// to the N-th most recent message received (the messages :reply answers),
// to its sender for a private message, in its group for a group message:
// what client.Client.React and ReactInGroup send, made here like every
// send so that the Printer knows its client_msg_id first. Its ✓ line or
// error the Printer prints when the route answers.
func react(ctx context.Context, c *client.Client, p *term.Printer, cmd term.Command) {
	target, ok := p.Received(cmd.N)
	if !ok {
		p.Line(term.NothingToReact(cmd.N))
		return
	}
	m := &cimpb.Msg{Kind: cimpb.Kind_KIND_TEXT, Op: cimpb.MsgOp_MSG_OP_REACT, RefMsgId: target.MsgID, Body: []byte(cmd.Text)}
	if target.Group != "" {
		m.Group = target.Group
	} else {
		m.To = target.From
	}
	m.ClientMsgId = c.NewMsgID()
	p.SendingReaction(m.ClientMsgId, target, cmd.Text)
	if err := c.SendMsg(ctx, m); err != nil {
		p.Forget(m.ClientMsgId)
		switch {
		case errors.Is(err, client.ErrBadReaction):
			p.Line(term.BadReaction(cmd.Text))
		case ctx.Err() == nil:
			p.Line(term.Problem(err.Error()))
		}
	}
}
