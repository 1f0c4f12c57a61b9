package term

import (
	"fmt"

	"github.com/gocim/gocim/proto/cimpb"
)

// Replies: a message may name the msgId of an earlier one it answers
// (Msg.ReplyTo). Its line ends with a quote of that message when the
// Printer showed it (live, in a history listing, or as one of our own
// sends the route stored), from what it remembers of the messages shown
// lately (revise.go); :reply answers one of the messages received lately.

// maxReceived bounds the incoming messages :reply can answer.
const maxReceived = 100

// Received is an incoming message :reply can answer.
type Received struct {
	MsgID string
	From  string // the sender's user id
	Name  string // the sender's name, else its id
	Group string // the group id of a group message, "" for a private one
}

// Quote is the end of the line of a reply: the quoted message's sender
// and text (cut to 40 characters) when known, "(recalled)" for a message
// its sender took back:
//
//	(↪ bob: are you there?)
//	(↪ bob (recalled))
//	(↪ a message)                    a message this terminal did not show
func Quote(who, what string, known, recalled bool) string {
	switch {
	case !known:
		return " (↪ a message)"
	case recalled:
		return " (↪ " + oneLine(who) + " (recalled))"
	}
	return " (↪ " + oneLine(who) + ": " + shorten(oneLine(what), maxEcho) + ")"
}

// NothingToReply: "! no message received to reply to" (:reply), or "! no
// message 3 received to reply to (the terminal keeps the last 100)".
func NothingToReply(n int) string {
	if n <= 1 {
		return "! no message received to reply to"
	}
	return fmt.Sprintf("! no message %d received to reply to (the terminal keeps the last %d)", n, maxReceived)
}

// quote is the Quote of the message a reply names; "" for a message that
// is not a reply.
func (p *Printer) quote(m *cimpb.Msg) string {
	id := m.GetReplyTo()
	if id == "" {
		return ""
	}
	p.mu.Lock()
	orig, known := p.shown[id]
	p.mu.Unlock()
	return Quote(orig.name, orig.what, known, orig.recalled)
}

// received notes an incoming message :reply can answer: stored (it has a
// msgId), private or group, not a change of an earlier one.
func (p *Printer) received(m *cimpb.Msg) {
	if m.GetMsgId() == "" || m.GetBroadcast() || m.GetOp() != cimpb.MsgOp_MSG_OP_NEW {
		return
	}
	r := Received{MsgID: m.GetMsgId(), From: m.GetFrom(), Name: firstOf(m.GetFromName(), m.GetFrom()), Group: m.GetGroup()}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recv = append(p.recv, r)
	if len(p.recv) > maxReceived {
		p.recv = p.recv[len(p.recv)-maxReceived:]
	}
}

// Received returns the n-th most recent incoming message (1: the last)
// among those the Printer showed lately (at most 100), leaving out those
// their sender recalled.
func (p *Printer) Received(n int) (Received, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.recv) - 1; i >= 0 && n >= 1; i-- {
		r := p.recv[i]
		if p.shown[r.MsgID].recalled {
			continue
		}
		if n--; n == 0 {
			return r, true
		}
	}
	return Received{}, false
}

// rememberSent notes one of our messages the route stored as msgID, for
// the replies that quote it; s is what Sending recorded. Broadcasts are
// not stored, so nothing can answer them.
func (p *Printer) rememberSent(msgID string, s sending) {
	if msgID == "" || (s.to == "" && s.group == "") {
		return
	}
	me := p.info()
	p.rememberShown(msgID, shownMsg{from: me.UserID, name: firstOf(me.UserName, "me"), what: s.what})
}
