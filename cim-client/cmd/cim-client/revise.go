package main

import (
	"context"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/cim-client/internal/term"
	"github.com/gocim/gocim/proto/cimpb"
)

// mine returns my sent messages that a :recall or :edit can name, newest
// first, with the text of their latest edit: stored (the route answered
// with a msgId), new messages rather than changes, not broadcasts (nothing
// stores them) and not recalled already.
func mine(c *client.Client) []client.SentMessage {
	recent := c.Recent(0) // oldest first
	recalled := map[string]bool{}
	edited := map[string]string{}
	for _, s := range recent {
		if s.Status == client.StatusFailed {
			continue
		}
		switch s.Op {
		case cimpb.MsgOp_MSG_OP_RECALL:
			recalled[s.RefMsgID] = true
		case cimpb.MsgOp_MSG_OP_EDIT:
			edited[s.RefMsgID] = s.Text
		}
	}
	var out []client.SentMessage
	for i := len(recent) - 1; i >= 0; i-- {
		s := recent[i]
		if s.MsgID != "" && s.Op == cimpb.MsgOp_MSG_OP_NEW && !s.Broadcast && !recalled[s.MsgID] {
			if text, ok := edited[s.MsgID]; ok {
				s.Text = text
			}
			out = append(out, s)
		}
	}
	return out
}

// change runs :recall N (my N-th most recent message) or :edit <text> (my
// last text message): a MSG with the op, addressed like the message, whose
// ✓ line or error the Printer prints when the route answers.
func change(ctx context.Context, c *client.Client, p *term.Printer, cmd term.Command) {
	msgs := mine(c)
	op, text := cimpb.MsgOp_MSG_OP_RECALL, ""
	var target client.SentMessage
	if cmd.Op == term.OpEdit {
		op, text = cimpb.MsgOp_MSG_OP_EDIT, term.Emojify(cmd.Text)
		if len(msgs) == 0 || msgs[0].Kind != cimpb.Kind_KIND_TEXT {
			p.Line(term.NothingToEdit())
			return
		}
		target = msgs[0]
	} else {
		if cmd.N > len(msgs) {
			p.Line(term.NothingToRecall(cmd.N))
			return
		}
		target = msgs[cmd.N-1]
	}
	what := text
	if op == cimpb.MsgOp_MSG_OP_RECALL {
		what = target.Text
		if target.Kind == cimpb.Kind_KIND_FILE {
			what = term.FileWhat(target.File)
		}
	}
	m := &cimpb.Msg{To: target.To, Group: target.Group, Kind: cimpb.Kind_KIND_TEXT, Op: op, RefMsgId: target.MsgID, Body: []byte(text)}
	m.ClientMsgId = c.NewMsgID()
	p.SendingChange(m.ClientMsgId, target.To, target.Group, op, what)
	if err := c.SendMsg(ctx, m); err != nil {
		p.Forget(m.ClientMsgId)
		if ctx.Err() == nil {
			p.Line(term.Problem(err.Error()))
		}
	}
}

// deleteListed runs :del N: line N of the last :his / :ghis listing leaves
// my history.
func deleteListed(ctx context.Context, c *client.Client, p *term.Printer, n int) {
	m, ok := p.Listed(n)
	if !ok {
		p.Line(term.NoListedLine(n))
		return
	}
	if err := c.DeleteHistory(ctx, m.GetMsgId()); err != nil {
		p.Line(term.Problem(err.Error()))
		return
	}
	p.Deleted(m)
}
