package term

import (
	"context"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/proto/cimpb"
)

// maxPending bounds the remembered recipients of sends not yet answered; a
// route that never answers must not grow it forever.
const maxPending = 4096

// maxFiles bounds the received files :save can still reach.
const maxFiles = 1000

// maxGroups bounds the group names remembered (and the ids whose lookup
// failed); past it the cache starts over.
const maxGroups = 4096

// groupLookupTimeout bounds the one lookup of an unknown group's name.
const groupLookupTimeout = 3 * time.Second

// GroupLookup asks the route about a group, as client.Client.Group does.
type GroupLookup func(ctx context.Context, gid string) (client.Group, error)

// sending is what the ✓ line and error lines say about one of our sends.
type sending struct {
	to, what string
	group    string      // the group id of a group message
	slowed   bool        // "slow down" was printed for it
	op       cimpb.MsgOp // a recall or an edit (SendingChange), a reaction (SendingReaction)
	emoji    string      // a reaction's emoji, "" for a take-back
}

// Printer writes chat output, one line per Write so that lines from the
// event stream and from commands never interleave.
type Printer struct {
	mu        sync.Mutex
	w         io.Writer
	loc       *time.Location
	info      func() client.Info
	connected bool // a first EventConnected was printed

	// pending maps client_msg_id → recipient ("" for a broadcast) and text
	// for sends not yet answered, so that RECEIPT_SENT prints a ✓ line, an
	// ERROR can name who was offline, and quitting can wait for the answers.
	// order is their FIFO for eviction.
	pending map[string]sending
	order   []string
	// answered is closed and replaced whenever a pending send is answered.
	answered chan struct{}

	// files are the file messages shown, by their :save number.
	files    map[int]*cimpb.Msg
	lastFile int

	// groups caches group names by id; looked holds the ids whose lookup
	// failed, so that each is asked once.
	groups map[string]string
	looked map[string]bool
	lookup GroupLookup

	// shown remembers the messages shown lately (at most maxShown, FIFO
	// in shownOrder) for the recalls and edits of them (revise.go);
	// listed are the messages of the last history listing, in the order
	// printed (:del).
	shown      map[string]shownMsg
	shownOrder []string
	listed     []*cimpb.Msg
	// recv are the incoming messages shown lately, oldest first (at most
	// maxReceived), for :reply (reply.go).
	recv []Received

	// names caches user names by id, learned from the lines about users,
	// for the lines of the user's own messages from other devices
	// (devices.go).
	names map[string]string
}

// NewPrinter prints to w with times in loc; info supplies the identity for
// the login line.
func NewPrinter(w io.Writer, loc *time.Location, info func() client.Info) *Printer {
	return &Printer{w: w, loc: loc, info: info, pending: map[string]sending{}, answered: make(chan struct{}), files: map[int]*cimpb.Msg{},
		groups: map[string]string{}, looked: map[string]bool{}}
}

// SetGroupLookup makes GroupName ask f, once, for the name of a group id
// it has not seen (nil: never ask).
func (p *Printer) SetGroupLookup(f GroupLookup) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lookup = f
}

// RememberGroup caches g's name for the lines about it (from :groups,
// :gcreate, :gjoin, :grename, a lookup).
func (p *Printer) RememberGroup(g client.Group) {
	if g.ID == "" || g.Name == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.groups) >= maxGroups {
		clear(p.groups)
	}
	p.groups[g.ID] = g.Name
	delete(p.looked, g.ID)
}

// GroupName returns the label of group gid (GroupLabel): its cached name;
// for an id not seen before, what the lookup answers (asked once, bounded
// by a few seconds); else "#<gid>".
func (p *Printer) GroupName(gid string) string {
	p.mu.Lock()
	name, known := p.groups[gid]
	lookup := p.lookup
	ask := !known && lookup != nil && !p.looked[gid]
	if ask {
		if len(p.looked) >= maxGroups {
			clear(p.looked)
		}
		p.looked[gid] = true
	}
	p.mu.Unlock()
	if ask {
		ctx, cancel := context.WithTimeout(context.Background(), groupLookupTimeout)
		g, err := lookup(ctx, gid)
		cancel()
		if err == nil && g.Name != "" {
			g.ID = gid
			p.RememberGroup(g)
			name = g.Name
		}
	}
	return GroupLabel(gid, name)
}

// Sending remembers that clientMsgID carries what (text, or FileWhat) to
// "to" ("" for a broadcast). Call it before sending, so a fast answer finds
// it.
func (p *Printer) Sending(clientMsgID, to, what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sendingLocked(clientMsgID, sending{to: to, what: what})
}

// SendingGroup is Sending for a message to group gid: its ✓ line names
// the group (GroupName, which may ask the route), its errors the id.
func (p *Printer) SendingGroup(clientMsgID, gid, what string) {
	label := p.GroupName(gid)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sendingLocked(clientMsgID, sending{to: label, what: what, group: gid})
}

func (p *Printer) sendingLocked(clientMsgID string, s sending) {
	p.pending[clientMsgID] = s
	p.order = append(p.order, clientMsgID)
	for len(p.order) > maxPending {
		delete(p.pending, p.order[0])
		p.order = p.order[1:]
	}
}

// Event prints what ev means to a person: a message (a file with its :save
// number; a group message as "alice@team", GroupName naming the group; a
// reply with the Quote of the message it answers, one mentioning the user
// with " (mentions you)" after it), a reaction as a status
// line (Reacted), "✓ sent" for the route's first answer to one of our
// sends, an error, "slow down" (once per message) for a send the gateway
// rate-limited and the client will send again, a connection change. A
// message the user sent from another device is its own line ("me → bob: …
// (from another device)"). Heartbeats, DELIVERED and READ receipts,
// private or group (see :status), READs made on another device, and the
// final close print nothing.
func (p *Printer) Event(ev client.Event) {
	switch ev.Kind {
	case client.EventMessage:
		if !ev.Outgoing {
			p.learnName(ev.Msg.GetFrom(), ev.Msg.GetFromName())
		}
		if ev.Msg.GetOp() == cimpb.MsgOp_MSG_OP_REACT {
			p.Line(p.reaction(ev.Msg, ev.Outgoing))
			break
		}
		if ev.Msg.GetOp() != cimpb.MsgOp_MSG_OP_NEW {
			if line := p.change(ev.Msg, ev.At, ev.Outgoing); line != "" {
				p.Line(line)
			}
			break
		}
		var line string
		switch gid := ev.Msg.GetGroup(); {
		case ev.Outgoing:
			line = p.outgoing(ev.Msg, ev.At)
		case gid != "":
			line = GroupMessage(ev.Msg, p.GroupName(gid), p.loc, ev.At)
		default:
			line = Message(ev.Msg, p.loc, ev.At)
		}
		line += p.quote(ev.Msg)
		if !ev.Outgoing {
			line += p.mentionsYou(ev.Msg)
		}
		n := p.keepFile(ev.Msg)
		if n > 0 {
			line += SaveHint(n)
		}
		p.remember(ev.Msg, n)
		if !ev.Outgoing {
			p.received(ev.Msg)
		}
		p.Line(line)
	case client.EventReceipt:
		s, ok := p.forget(ev.Receipt.GetClientMsgId())
		switch {
		case !ok:
		case s.op == cimpb.MsgOp_MSG_OP_REACT:
			p.Line(ReactionSent(s.emoji, s.to, s.what))
		case s.op != cimpb.MsgOp_MSG_OP_NEW:
			p.Line(ChangeSent(s.op, s.to, s.what))
		default:
			p.rememberSent(ev.Receipt.GetMsgId(), s)
			p.Line(Sent(s.to, s.what))
		}
	case client.EventError:
		s, _ := p.forget(ev.Err.GetClientMsgId())
		if s.group != "" {
			p.Line(GroupErrorLine(ev.Err, s.group))
			break
		}
		p.Line(ErrorLine(ev.Err, s.to))
	case client.EventRetrying:
		if s, known, first := p.slowed(ev.Err.GetClientMsgId()); first {
			p.Line(SlowDown(s.to, known))
		}
	case client.EventConnected:
		p.mu.Lock()
		first := !p.connected
		p.connected = true
		p.mu.Unlock()
		if first {
			p.Line(LoggedIn(p.info(), ev.Gateway))
		} else {
			p.Line(Reconnected(ev.Gateway))
		}
	case client.EventDisconnected:
		p.Line(ConnectionLost(ev.Reason))
	case client.EventKicked:
		p.Line(Kicked(ev.Reason))
	case client.EventPresence:
		for _, s := range ev.Presence.GetStates() {
			p.learnName(s.GetUserId(), s.GetUserName())
		}
		if ev.Presence.GetSnapshot() {
			now := ev.At // "today" for the last seen times
			if now.IsZero() {
				now = time.Now()
			}
			p.Line(Watching(ev.Presence.States, p.loc, now))
			break
		}
		for _, s := range ev.Presence.GetStates() {
			p.Line(PresenceLine(s))
		}
	case client.EventTyping:
		p.learnName(ev.Typing.GetFrom(), ev.Typing.GetFromName())
		group := ""
		if gid := ev.Typing.GetGroup(); gid != "" {
			group = p.GroupName(gid)
		}
		p.Line(TypingLine(ev.Typing, group))
	}
}

// slowed marks a send as told to slow down. first is false when it was
// marked before; known whether it is a send recorded with Sending.
func (p *Printer) slowed(clientMsgID string) (s sending, known, first bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, known = p.pending[clientMsgID]
	if !known {
		return s, false, true // the SDK reports each message once
	}
	if s.slowed {
		return s, true, false
	}
	s.slowed = true
	p.pending[clientMsgID] = s
	return s, true, true
}

// Unanswered is how many sends recorded with Sending wait for their answer.
func (p *Printer) Unanswered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}

// Retrying is how many unanswered sends the gateway rate-limited: the
// client sends them again later.
func (p *Printer) Retrying() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.pending {
		if s.slowed {
			n++
		}
	}
	return n
}

// Forget drops a send that will get no answer (it failed locally).
func (p *Printer) Forget(clientMsgID string) { p.forget(clientMsgID) }

// forget drops and returns a send that got its answer.
func (p *Printer) forget(clientMsgID string) (sending, bool) {
	if clientMsgID == "" {
		return sending{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.pending[clientMsgID]
	if ok {
		delete(p.pending, clientMsgID)
		close(p.answered)
		p.answered = make(chan struct{})
	}
	return s, ok
}

// keepFile numbers a file message for :save; 0 for other messages.
func (p *Printer) keepFile(m *cimpb.Msg) int {
	if m.GetKind() != cimpb.Kind_KIND_FILE || m.GetFile() == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastFile++
	p.files[p.lastFile] = m
	delete(p.files, p.lastFile-maxFiles)
	return p.lastFile
}

// File returns the file message shown with number n.
func (p *Printer) File(n int) (*cimpb.Msg, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.files[n]
	return m, ok
}

// History prints a page of history (newest first, as the route answers)
// oldest first, files with their :save number, replies with the Quote of
// the message they answer, group messages mentioning the user with "
// (mentions you)", messages with reactions with their
// ReactionCounts; "* no history" when empty. It remembers the listing for
// :del (Listed), and its messages for the replies that quote them and the
// changes of them.
func (p *Printer) History(page client.HistoryPage) {
	msgs := page.Messages
	listed := slices.Clone(msgs)
	slices.Reverse(listed)
	p.mu.Lock()
	p.listed = listed
	p.mu.Unlock()
	if len(msgs) == 0 {
		p.Line(NoHistory())
		return
	}
	for _, m := range slices.Backward(msgs) {
		line := HistoryLine(m, p.loc) + p.quote(m) + p.mentionsYou(m) + ReactionCounts(page.Reactions[m.GetMsgId()])
		n := p.keepFile(m)
		if n > 0 {
			line += SaveHint(n)
		}
		p.remember(m, n)
		p.Line(line)
	}
}

// Status prints our recent messages, oldest first; group messages with
// their member counts.
func (p *Printer) Status(recent []client.SentMessage) {
	if len(recent) == 0 {
		p.Line(NoStatus())
		return
	}
	for _, s := range recent {
		if s.Group != "" {
			p.Line(GroupStatusLine(s, p.GroupName(s.Group), p.loc))
			continue
		}
		p.Line(StatusLine(s, p.loc))
	}
}

// WaitAnswered waits until every send recorded with Sending got its RECEIPT
// or ERROR, or ctx ends, and returns how many are still unanswered. Quitting
// right after sending uses it so that logging off cannot overtake the
// messages on their way to the route.
func (p *Printer) WaitAnswered(ctx context.Context) int {
	for {
		p.mu.Lock()
		n, ch := len(p.pending), p.answered
		p.mu.Unlock()
		if n == 0 {
			return 0
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return n
		}
	}
}

// Line writes one line.
func (p *Printer) Line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = io.WriteString(p.w, s+"\n")
}
