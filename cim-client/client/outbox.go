package client

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// DefaultSentKept is Config.SentKept's default: how many sent messages a
// client remembers for Status and Recent; the oldest answered ones are
// forgotten first.
const DefaultSentKept = 1000

// maxBackoffSteps caps the doubling of the resend timeout: a try waits at
// most 16 × ResendTimeout (80 s with the defaults, so only a large
// ResendMax meets the cap).
const maxBackoffSteps = 4

// SendStatus is how far one of this client's messages got. Later statuses
// are better; a message's status only rises (sending a failed message again
// makes it pending again).
type SendStatus int

const (
	// StatusPending: taken by SendMsg, no answer from the route yet.
	StatusPending SendStatus = iota + 1
	// StatusFailed: a final ERROR, or no answer after the last try.
	StatusFailed
	// StatusSent: RECEIPT_SENT, the route stored it.
	StatusSent
	// StatusDelivered: RECEIPT_DELIVERED, a recipient's client showed it.
	StatusDelivered
	// StatusRead: RECEIPT_READ, the recipient marked it read.
	StatusRead
)

func (s SendStatus) String() string {
	switch s {
	case StatusPending:
		return "pending"
	case StatusFailed:
		return "failed"
	case StatusSent:
		return "sent"
	case StatusDelivered:
		return "delivered"
	case StatusRead:
		return "read"
	}
	return "unknown"
}

func statusOf(s cimpb.ReceiptStatus) SendStatus {
	switch s {
	case cimpb.ReceiptStatus_RECEIPT_SENT:
		return StatusSent
	case cimpb.ReceiptStatus_RECEIPT_DELIVERED:
		return StatusDelivered
	case cimpb.ReceiptStatus_RECEIPT_READ:
		return StatusRead
	}
	return 0
}

// SentMessage is what the client knows about one message it sent.
//
// The small fields sit together (Kind, Op, Broadcast): the client keeps a
// thousand of these, and a busy process many clients.
type SentMessage struct {
	ClientMsgID string
	MsgID       string          // the route's id, from RECEIPT_SENT
	To          string          // the recipient as given to SendMsg; "" for a broadcast or a group message
	Group       string          // the group id of a group message
	Text        string          // the body of a KIND_TEXT message (an edit's new text, a reaction's emoji)
	RefMsgID    string          // the message a recall, an edit or a reaction changes
	Kind        cimpb.Kind      // KIND_TEXT, KIND_FILE…
	Op          cimpb.MsgOp     // MSG_OP_RECALL, MSG_OP_EDIT or MSG_OP_REACT for a Recall, an Edit or a React (of RefMsgID)
	Broadcast   bool            // sent to everybody online (Broadcast)
	File        *cimpb.FileInfo // a KIND_FILE message's file (shared: do not modify)
	Status      SendStatus      // the best status so far (DELIVERED / READ: by at least one member, for a group)
	Tries       int             // tries started: 1 for the first write, +1 per resend after a timeout
	Err         *cimpb.Error    // why it failed, when Status is StatusFailed
	At          time.Time       // when SendMsg took it

	// Recipients, Delivered and Read count members for a group message:
	// those it went to (from RECEIPT_SENT), and those that received and
	// read it so far (the highest count live receipts or GroupReceipts
	// reported).
	Recipients int
	Delivered  int
	Read       int
}

// sendRec is one message in the outbox. Its flags sit together at the end,
// so that a record fits 256 bytes (TestSendRecSize).
type sendRec struct {
	SentMessage
	frame []byte // the encoded MSG, written again as it is
	// deadline is when the current try times out; zero until that try is
	// written.
	deadline time.Time
	unavail  int  // ERROR Unavailable answers so far
	pending  bool // waiting for RECEIPT_SENT or a final ERROR
	once     bool // a broadcast: the route cannot deduplicate it, never resent
	written  bool // written at least once: a new link replays it
	unsent   bool // a new try is due but not written yet (no usable link)
	// limited: the current try was answered ERROR RateLimited, so the
	// gateway did not forward it; even a broadcast may be sent again.
	limited bool
	slowed  bool  // the application was told it is retried after a rate limit
	seen    uint8 // statuses told to the application, one bit each
}

// resend is a frame to write again for rec.
type resend struct {
	rec   *sendRec
	frame []byte
}

// outbox keeps every MSG until the route answers it: RECEIPT_SENT, or an
// ERROR that is final. A try unanswered within its timeout (ResendTimeout,
// doubling per try) is sent again with the same client_msg_id, and every
// written one is sent again on a new link (the route deduplicates by sender
// and client_msg_id, so a resend never makes a second copy). ERROR
// Unavailable is not final until every try got it; ERROR RateLimited (the
// gateway dropped that try) is not final until the last try got it: the
// timer sends the next try, so the backoff also paces a sender that is too
// fast. It also remembers the best status of recent messages for Status and
// Recent.
//
// Pure bookkeeping: callers pass the time and do the writing. Safe for
// concurrent use.
type outbox struct {
	timeout time.Duration
	tries   int
	kept    int // records remembered (Config.SentKept); pending ones even beyond it

	mu      sync.Mutex
	recs    map[string]*sendRec // by client_msg_id
	byMsgID map[string]*sendRec
	order   []*sendRec // every record, oldest first
	queue   []*sendRec // pending ones in the order SendMsg took them; settled ones linger until expire compacts
	armed   time.Time  // the earliest deadline the control loop waits for
}

func newOutbox(timeout time.Duration, tries int) *outbox {
	return &outbox{timeout: timeout, tries: tries, kept: DefaultSentKept, recs: map[string]*sendRec{}, byMsgID: map[string]*sendRec{}}
}

// keep sets how many records o remembers (at least one); pending ones are
// kept beyond it.
func (o *outbox) keep(n int) *outbox {
	o.kept = max(n, 1)
	return o
}

// tryTimeout is how long try k (from 1) waits for an answer.
func (o *outbox) tryTimeout(k int) time.Duration {
	return o.timeout << min(max(k-1, 0), maxBackoffSteps)
}

// limit is how many tries r may have. A broadcast gets one, as the route
// cannot deduplicate it, plus one more each time the gateway says it
// dropped the try unforwarded (RateLimited).
func (o *outbox) limit(r *sendRec) int {
	if r.once && !r.limited {
		return 1
	}
	return o.tries
}

// add records m (encoded as frame; text is its body if it is KIND_TEXT) as
// pending. Adding the client_msg_id of a message again makes it pending
// again (a caller's own resend).
func (o *outbox) add(m *cimpb.Msg, text string, frame []byte, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	id := m.GetClientMsgId()
	r := o.recs[id]
	if r == nil {
		r = &sendRec{SentMessage: SentMessage{
			ClientMsgID: id,
			To:          m.GetTo(),
			Broadcast:   m.GetBroadcast(),
			Group:       m.GetGroup(),
			Kind:        m.GetKind(),
			File:        m.GetFile(),
			Op:          m.GetOp(),
			RefMsgID:    m.GetRefMsgId(),
			At:          now,
		}}
		if m.GetKind() == cimpb.Kind_KIND_TEXT {
			r.Text = text
		}
		o.recs[id] = r
		o.order = append(o.order, r)
	}
	r.frame, r.once = frame, m.GetBroadcast()
	if !r.pending {
		r.pending = true
		r.Err, r.Tries, r.unavail, r.written, r.unsent, r.deadline = nil, 1, 0, false, false, time.Time{}
		r.limited, r.slowed = false, false
		if r.Status < StatusSent {
			r.Status = StatusPending
		}
		if !slices.Contains(o.queue, r) { // a settled record lingers until expire compacts
			o.queue = append(o.queue, r)
		}
	}
	// Only once r is pending: evicting before would pick r itself whenever
	// every older record is still pending, and a record missing from recs is
	// never marked written, so never replayed nor resent.
	o.evictLocked()
}

// evictLocked forgets the oldest answered records beyond o.kept.
func (o *outbox) evictLocked() {
	for len(o.order) > o.kept {
		i := slices.IndexFunc(o.order, func(r *sendRec) bool { return !r.pending })
		if i < 0 {
			return
		}
		r := o.order[i]
		o.order = slices.Delete(o.order, i, i+1)
		delete(o.recs, r.ClientMsgID)
		if r.MsgID != "" && o.byMsgID[r.MsgID] == r {
			delete(o.byMsgID, r.MsgID)
		}
	}
}

// cancel forgets a message SendMsg gave up on before writing it once.
func (o *outbox) cancel(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.recs[id]
	if r == nil || !r.pending || r.written {
		return
	}
	r.pending = false
	delete(o.recs, id)
	if r.MsgID != "" && o.byMsgID[r.MsgID] == r {
		delete(o.byMsgID, r.MsgID)
	}
	if i := slices.Index(o.order, r); i >= 0 {
		o.order = slices.Delete(o.order, i, i+1)
	}
}

// written records SendMsg's first successful write of id (the first try
// counts from add). It reports whether the control loop has to learn of a
// new, earlier deadline.
func (o *outbox) written(id string, now time.Time) (poke bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.recs[id]
	if r == nil || !r.pending || r.written {
		return false
	}
	poke, _ = o.wroteLocked(r, now)
	return poke
}

// wrote records a resend or replay of r and returns its new deadline.
func (o *outbox) wrote(r *sendRec, now time.Time) (poke bool, deadline time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !r.pending {
		return false, time.Time{}
	}
	return o.wroteLocked(r, now)
}

func (o *outbox) wroteLocked(r *sendRec, now time.Time) (bool, time.Time) {
	r.written, r.unsent = true, false
	r.deadline = now.Add(o.tryTimeout(r.Tries))
	if o.armed.IsZero() || r.deadline.Before(o.armed) {
		o.armed = r.deadline
		return true, r.deadline
	}
	return false, r.deadline
}

// receipt applies a RECEIPT and reports whether to tell the application:
// once per status and message; always for a message it does not know.
//
// A DELIVERED or READ receipt also proves the message was stored: when the
// SENT answer itself was lost (its link died, and the later receipt came
// first through a sync), sent is that SENT, to tell the application first so
// every message it knows goes SENT → DELIVERED → READ.
func (o *outbox) receipt(rc *cimpb.Receipt) (emit bool, sent *cimpb.Receipt) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.recs[rc.GetClientMsgId()]
	if r == nil && rc.GetMsgId() != "" {
		r = o.byMsgID[rc.GetMsgId()]
	}
	st := statusOf(rc.GetStatus())
	if r == nil || st == 0 {
		return true, nil
	}
	if st > StatusSent && !fromRecipient(r, rc.GetBy()) {
		return false, nil // a receipt by someone the message did not go to
	}
	if sentBit := uint8(1) << StatusSent; st > StatusSent && r.seen&sentBit == 0 {
		r.seen |= sentBit
		sent = &cimpb.Receipt{Status: cimpb.ReceiptStatus_RECEIPT_SENT, MsgId: rc.GetMsgId(),
			ClientMsgId: r.ClientMsgID, TimestampMs: rc.GetTimestampMs()}
	}
	if id := rc.GetMsgId(); id != "" && r.MsgID == "" {
		r.MsgID = id
		o.byMsgID[id] = r
	}
	// Any receipt means the route stored it: done resending, and the
	// encoded frame is not written again (a send of the same
	// client_msg_id brings its own).
	r.pending, r.frame = false, nil
	if st > r.Status {
		r.Status = st
	}
	bit := uint8(1) << st
	emit = r.seen&bit == 0
	r.seen |= bit
	// A group message's receipts count members: each higher count is news.
	if rc.GetGroup() != "" || r.Group != "" {
		if n := int(rc.GetCount()); o.countLocked(r, st, n) && st > StatusSent {
			emit = true
		}
	}
	return emit, sent
}

// countLocked raises r's member count for status st to n and reports
// whether it rose.
func (o *outbox) countLocked(r *sendRec, st SendStatus, n int) bool {
	var c *int
	switch st {
	case StatusSent:
		c = &r.Recipients
	case StatusDelivered:
		c = &r.Delivered
	case StatusRead:
		c = &r.Read
	default:
		return false
	}
	if n <= *c {
		return false
	}
	*c = n
	return true
}

// groupCounts raises the counts of the group messages it knows by msgId,
// from GroupReceipts.
func (o *outbox) groupCounts(counts map[string]GroupCount) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id, gc := range counts {
		r := o.byMsgID[id]
		if r == nil {
			continue
		}
		o.countLocked(r, StatusDelivered, gc.Delivered)
		o.countLocked(r, StatusRead, gc.Read)
		switch {
		case gc.Read > 0 && r.Status < StatusRead:
			r.Status = StatusRead
		case gc.Delivered > 0 && r.Status < StatusDelivered:
			r.Status = StatusDelivered
		}
	}
}

// fail applies an ERROR answering one of our MSGs. final is the error to
// tell the application the message failed; nil while retrying (or when the
// message was answered already). notice is set, once per message, when the
// message is kept after a RateLimited answer, to tell the application it
// comes later.
func (o *outbox) fail(e *cimpb.Error) (final, notice *cimpb.Error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.recs[e.GetClientMsgId()]
	if r == nil {
		return e, nil
	}
	if !r.pending {
		return nil, nil // SENT already (a later try's error), or failed already
	}
	switch codes.Code(e.GetCode()) {
	case codes.Unavailable:
		r.unavail++
		if lim := o.limit(r); r.Tries < lim || r.unavail < r.Tries {
			return nil, nil // retryable: the timer sends the next try
		}
	case codes.RateLimited:
		if r.Tries < o.tries {
			r.limited = true // the timer sends the next try
			if !r.slowed {
				r.slowed = true
				return nil, e
			}
			return nil, nil
		}
	}
	o.finalLocked(r, e)
	return e, nil
}

func (o *outbox) finalLocked(r *sendRec, e *cimpb.Error) {
	r.pending, r.frame = false, nil
	r.Err = e
	if r.Status < StatusFailed {
		r.Status = StatusFailed
	}
}

// expire handles tries whose timeout passed: it returns the frames to write
// again (each starts a new try, returned again by every call until wrote
// records it written), the final errors of messages out of tries, and the
// next deadline (zero: none).
func (o *outbox) expire(now time.Time) (again []resend, failed []*cimpb.Error, next time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	live := o.queue[:0]
	for _, r := range o.queue {
		if !r.pending {
			continue
		}
		live = append(live, r)
		if r.unsent {
			again = append(again, resend{r, r.frame}) // still due from before
			continue
		}
		if r.deadline.IsZero() {
			continue // SendMsg has not written it yet
		}
		if now.Before(r.deadline) {
			if next.IsZero() || r.deadline.Before(next) {
				next = r.deadline
			}
			continue
		}
		if r.Tries >= o.limit(r) {
			e := &cimpb.Error{Code: int32(codes.Unavailable), ClientMsgId: r.ClientMsgID,
				Text: fmt.Sprintf("%s not sent: no answer after %s", r.describe(), tries(r.Tries))}
			o.finalLocked(r, e)
			live = live[:len(live)-1]
			failed = append(failed, e)
			continue
		}
		r.Tries++
		r.unsent, r.deadline, r.limited = true, time.Time{}, false
		again = append(again, resend{r, r.frame})
	}
	clear(o.queue[len(live):])
	o.queue = live
	o.armed = next
	return again, failed, next
}

func (r *sendRec) describe() string {
	if r.Broadcast {
		return "broadcast"
	}
	if r.Group != "" {
		return "message to group " + r.Group
	}
	return "message to " + r.To
}

func tries(n int) string {
	if n == 1 {
		return "1 try"
	}
	return fmt.Sprintf("%d tries", n)
}

// replay returns, in order, the frames to write again on a new link: every
// pending message written before (but not broadcasts, which the route could
// not deduplicate).
func (o *outbox) replay() []resend {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []resend
	for _, r := range o.queue {
		if r.pending && !r.once && r.written {
			out = append(out, resend{r, r.frame})
		}
	}
	return out
}

// has reports whether id is a message the outbox remembers.
func (o *outbox) has(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.recs[id] != nil
}

// get returns the record of id.
func (o *outbox) get(id string) (SentMessage, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.recs[id]
	if r == nil {
		return SentMessage{}, false
	}
	return r.SentMessage, true
}

// recent returns the n most recent records (all for n <= 0), oldest first.
func (o *outbox) recent(n int) []SentMessage {
	o.mu.Lock()
	defer o.mu.Unlock()
	from := 0
	if n > 0 && len(o.order) > n {
		from = len(o.order) - n
	}
	out := make([]SentMessage, 0, len(o.order)-from)
	for _, r := range o.order[from:] {
		out = append(out, r.SentMessage)
	}
	return out
}

// pendingCount is how many messages wait for an answer.
func (o *outbox) pendingCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, r := range o.queue {
		if r.pending {
			n++
		}
	}
	return n
}

// fromRecipient reports whether a DELIVERED or READ receipt by user id by
// can be about r: for a private message sent to a user id, only that user's
// receipts count. (The route only ever produces receipts from the entries
// a reader really received; a message addressed by name is left to it.)
func fromRecipient(r *sendRec, by string) bool {
	if r.Group != "" || r.Broadcast || by == "" || !isUserID(r.To) {
		return true
	}
	return by == r.To
}
