package term

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/gocim/gocim/cim-client/client"
)

// maxPending bounds the remembered recipients of sends not yet answered; a
// route that never answers must not grow it forever.
const maxPending = 4096

// Printer writes chat output, one line per Write so that lines from the
// event stream and from commands never interleave.
type Printer struct {
	mu        sync.Mutex
	w         io.Writer
	loc       *time.Location
	info      func() client.Info
	connected bool // a first EventConnected was printed

	// pending maps client_msg_id → recipient ("" for a broadcast) for sends
	// not yet answered, so an ERROR can name who was offline and quitting can
	// wait for the answers. order is their FIFO for eviction.
	pending map[string]string
	order   []string
	// answered is closed and replaced whenever a pending send is answered.
	answered chan struct{}
}

// NewPrinter prints to w with times in loc; info supplies the identity for
// the login line.
func NewPrinter(w io.Writer, loc *time.Location, info func() client.Info) *Printer {
	return &Printer{w: w, loc: loc, info: info, pending: map[string]string{}, answered: make(chan struct{})}
}

// Sending remembers that clientMsgID goes to "to" ("" for a broadcast).
// Call it before sending, so a fast ERROR finds it.
func (p *Printer) Sending(clientMsgID, to string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending[clientMsgID] = to
	p.order = append(p.order, clientMsgID)
	for len(p.order) > maxPending {
		delete(p.pending, p.order[0])
		p.order = p.order[1:]
	}
}

// Event prints what ev means to a person; heartbeats, receipts and the
// final close print nothing.
func (p *Printer) Event(ev client.Event) {
	switch ev.Kind {
	case client.EventMessage:
		p.Line(Message(ev.Msg, p.loc, ev.At))
	case client.EventReceipt:
		p.forget(ev.Receipt.GetClientMsgId())
	case client.EventError:
		to := p.forget(ev.Err.GetClientMsgId())
		p.Line(ErrorLine(ev.Err, to))
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

// Forget drops a send that will get no answer (it failed locally).
func (p *Printer) Forget(clientMsgID string) { p.forget(clientMsgID) }

// forget drops and returns the recipient of a send that got its answer.
func (p *Printer) forget(clientMsgID string) string {
	if clientMsgID == "" {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	to, ok := p.pending[clientMsgID]
	if ok {
		delete(p.pending, clientMsgID)
		close(p.answered)
		p.answered = make(chan struct{})
	}
	return to
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
