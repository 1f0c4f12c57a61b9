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

// sending is what the ✓ line and error lines say about one of our sends.
type sending struct {
	to, what string
	slowed   bool // "slow down" was printed for it
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
}

// NewPrinter prints to w with times in loc; info supplies the identity for
// the login line.
func NewPrinter(w io.Writer, loc *time.Location, info func() client.Info) *Printer {
	return &Printer{w: w, loc: loc, info: info, pending: map[string]sending{}, answered: make(chan struct{}), files: map[int]*cimpb.Msg{}}
}

// Sending remembers that clientMsgID carries what (text, or FileWhat) to
// "to" ("" for a broadcast). Call it before sending, so a fast answer finds
// it.
func (p *Printer) Sending(clientMsgID, to, what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending[clientMsgID] = sending{to: to, what: what}
	p.order = append(p.order, clientMsgID)
	for len(p.order) > maxPending {
		delete(p.pending, p.order[0])
		p.order = p.order[1:]
	}
}

// Event prints what ev means to a person: a message (a file with its :save
// number), "✓ sent" for the route's first answer to one of our sends, an
// error, "slow down" (once per message) for a send the gateway rate-limited
// and the client will send again, a connection change. Heartbeats, DELIVERED and READ receipts (see
// :status) and the final close print nothing.
func (p *Printer) Event(ev client.Event) {
	switch ev.Kind {
	case client.EventMessage:
		line := Message(ev.Msg, p.loc, ev.At)
		if n := p.keepFile(ev.Msg); n > 0 {
			line += SaveHint(n)
		}
		p.Line(line)
	case client.EventReceipt:
		if s, ok := p.forget(ev.Receipt.GetClientMsgId()); ok {
			p.Line(Sent(s.to, s.what))
		}
	case client.EventError:
		s, _ := p.forget(ev.Err.GetClientMsgId())
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
// oldest first, files with their :save number; "* no history" when empty.
func (p *Printer) History(msgs []*cimpb.Msg) {
	if len(msgs) == 0 {
		p.Line(NoHistory())
		return
	}
	for _, m := range slices.Backward(msgs) {
		line := HistoryLine(m, p.loc)
		if n := p.keepFile(m); n > 0 {
			line += SaveHint(n)
		}
		p.Line(line)
	}
}

// Status prints our recent messages, oldest first.
func (p *Printer) Status(recent []client.SentMessage) {
	if len(recent) == 0 {
		p.Line(NoStatus())
		return
	}
	for _, s := range recent {
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
