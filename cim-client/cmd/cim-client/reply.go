package main

import (
	"context"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/cim-client/internal/term"
	"github.com/gocim/gocim/proto/cimpb"
)

// reply runs :reply [N] <text>: an answer to the N-th most recent message
// received (the Printer remembers the last ones) naming it in ReplyTo, to
// its sender for a private message, in its group for a group message (whose
// "@name" words mention members, as :g's do): what client.Client.Reply and
// ReplyInGroup send, made here like every send so that the Printer knows
// its client_msg_id first. Its ✓ line or error the Printer prints when the
// route answers.
func reply(ctx context.Context, c *client.Client, p *term.Printer, cmd term.Command) {
	target, ok := p.Received(cmd.N)
	if !ok {
		p.Line(term.NothingToReply(cmd.N))
		return
	}
	m := &cimpb.Msg{Body: []byte(term.Emojify(cmd.Text)), Kind: cimpb.Kind_KIND_TEXT, ReplyTo: target.MsgID}
	if target.Group != "" {
		m.Group, m.Mentions = target.Group, term.Mentions(cmd.Text)
		if n := len(m.Mentions); n > client.MaxMentions {
			p.Line(term.TooManyMentions(n))
			return
		}
		send(ctx, c, p, m)
		return
	}
	m.To = target.From
	sendTo(ctx, c, p, m, target.Name)
}
