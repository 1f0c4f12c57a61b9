// Package model holds the types of the route service's shared state —
// users, routes, inbox entries and ranges, groups, delayed messages — that
// router.Store speaks in. They belong to no implementation: package store
// (Redis) and package memstore (memory) both use them.
package model

import (
	"cmp"
	"strings"
	"time"
)

// Inbox defaults (docs/ARCHITECTURE.md, "Reliable delivery").
const (
	DefaultInboxMaxLen = 10000
	DefaultInboxTTL    = 7 * 24 * time.Hour
	DefaultDedupWindow = 24 * time.Hour
)

// DefaultRangeBytes bounds the entries of one range: a SYNC over an inbox
// of large entries answers fewer of them rather than megabytes at once.
const DefaultRangeBytes = 256 << 10

// FoldName is the form of a user name in the name index: names that differ
// only by case are one name.
func FoldName(name string) string { return strings.ToLower(name) }

// Route states.
const (
	StatePending = "pending" // handed out by /login, not confirmed by a gateway yet
	StateOnline  = "online"  // the gateway holds the connection
)

// Dedup states of a group message.
const (
	GroupPending = "pending" // claimed; the fan-out may not have finished
	GroupDone    = "done"    // stored for every member
)

// Exists reports whether r is a route at all (not the zero value).
func (r Route) Exists() bool { return r.Session != "" }

// Online reports whether a gateway confirmed r.
func (r Route) Online() bool { return r.State == StateOnline }

// User is an account.
type User struct {
	ID           string
	Name         string
	PasswordHash string
	Created      int64 // unix ms
	// Device: the account is an IoT device's (model.Device), which logs in
	// with its credential at a gateway only, never with a password or an
	// external authenticator.
	Device bool
}

// DelayedMsg is a message to send later.
type DelayedMsg struct {
	ID   string
	From string // sender user id
	To   string // recipient user id
	Text string
	Due  time.Time
}

// Group is a group's record.
type Group struct {
	ID      string
	Name    string
	Owner   string // user id; always a member
	Open    bool   // anyone may join; otherwise only invited users
	Created int64  // unix ms
	Members int
}

// GroupClaim is what became of a group message's dedup key.
type GroupClaim struct {
	Claimed bool   // the key was free and now names this attempt
	MsgID   string // when not claimed: the earlier attempt's msgId
	State   string // when not claimed: GroupPending or GroupDone
}

// GroupDedup names one group message for deduplication.
type GroupDedup struct {
	Sender      string
	ClientMsgID string
	MsgID       string
}

// GroupReceipt adds members to one message's delivered or read set.
type GroupReceipt struct {
	Sender  string // the message's sender: the sets live in its slot
	MsgID   string
	Read    bool // grr instead of grd
	Members []string
}

// ReceiptCount is how many members received and read a group message.
type ReceiptCount struct {
	Delivered int
	Read      int
}

// MemberRef asks whether a user is a member of a group.
type MemberRef struct {
	Group string
	User  string
}

// InboxLimits bound every user's inbox.
type InboxLimits struct {
	// MaxLen is how many entries an inbox keeps; older ones are trimmed.
	MaxLen int
	// TTL: entries older than this are trimmed, and an inbox nobody wrote
	// to for this long expires as a whole. The seq counter never expires.
	TTL time.Duration
	// DedupWindow is how long a (sender, clientMsgId) pair is remembered.
	DedupWindow time.Duration
	// PerSender is each sender's share of an inbox (0: none): once the
	// inbox holds PerSender unread entries (seq above the user's ack), an
	// Append with a Sender may add PerSender more of that sender's until the
	// user reads on (its ack moves); beyond, it is refused
	// (Appended.Refused). One user cannot push everybody else's unread
	// messages out of an absent user's inbox alone.
	PerSender int
}

// Append is one entry for a user's inbox.
type Append struct {
	UserID string // whose inbox
	Frame  []byte // a marshalled MSG or RECEIPT frame, without seq
	TS     int64  // unix ms, kept in the entry (age trimming, history)
	// MsgID is remembered under Dedup, so a resend learns the first id.
	MsgID string
	// Dedup, when set, is "<senderId>:<clientMsgId>": a second append with
	// the same key within the dedup window stores nothing and reports the
	// first one.
	Dedup string
	// Droppable entries (receipts) are stored only while the inbox is
	// below its max length: they never push a message out. A dropped one
	// answers Seq 0, and the caller delivers it live only.
	Droppable bool
	// Sender, when set, is the user whose share of the inbox the entry
	// counts against (InboxLimits.PerSender): a user's private message,
	// or its group message's copy for a member.
	Sender string
	// Once: a group message's copy that an earlier attempt may have
	// stored (its fan-out died half-way): not stored again when one of the
	// inbox's last 64 entries holds MsgID (a resend: that entry's Seq, no
	// Stored).
	Once bool
	// From, when set, is a private message's sender: the entry is not
	// stored when the user blocked From or From the user
	// (Appended.Blocked). When Sender is set too, they are the same.
	From string
}

// Blocked is what stopped an Append with a From.
type Blocked uint8

const (
	NotBlocked Blocked = iota
	// BlockedByRecipient: the inbox's user blocked the sender. Nothing is
	// stored; the sender is not told.
	BlockedByRecipient
	// BlockedBySender: the sender blocked the inbox's user, and may not
	// write to them until it unblocks them.
	BlockedBySender
)

// Appended is what became of one Append.
type Appended struct {
	Seq    uint64
	MsgID  string // the Append's, or the first one's for a resend
	Resend bool
	// Stored is, for a resend, the first entry as stored (zero Seq once it
	// was trimmed).
	Stored Entry
	// Refused: nothing was stored (Seq 0), the Sender's share of the inbox
	// is used up (InboxLimits.PerSender).
	Refused bool
	// Blocked: nothing was stored (Seq 0), one of the two blocked the other.
	Blocked Blocked
}

// Entry is one stored inbox entry.
type Entry struct {
	Seq   uint64
	TS    int64  // unix ms
	Frame []byte // as appended: without seq
}

// RangeQuery asks for part of one inbox.
type RangeQuery struct {
	UserID string
	After  uint64 // entries with a larger seq
	// FromAcked starts after the user's acknowledged seq when it is larger
	// than After.
	FromAcked bool
	Upto      uint64 // the largest seq wanted; 0: no bound
	Limit     int    // at most this many entries (>= 1)
	// MaxBytes bounds the entries' bytes (0: DefaultRangeBytes); the first
	// entry is returned however large, so a range always moves on.
	MaxBytes int
	// AfterTS asks for the timestamp of the entry at the seq the range
	// follows (Range.AfterTS): a SYNC answer carries it, so that a client
	// can tell when that seq now holds another entry.
	AfterTS bool
}

// Range is one answered RangeQuery: a consistent snapshot of the inbox.
type Range struct {
	After   uint64 // the seq the entries follow (After, or the ack)
	Head    uint64 // the newest seq ever assigned (0: none yet)
	First   uint64 // the oldest seq retained; Head+1 when the inbox is empty
	Acked   uint64 // the user's acknowledged seq
	Entries []Entry
	// AfterTS is the timestamp (unix ms) of the entry at After, when asked
	// for and still retained; 0 otherwise.
	AfterTS int64
}

// Ack raises one user's acknowledged seq.
type Ack struct {
	UserID string
	Seq    uint64
}

// Write is one batch's writes and the reads that follow them, sent as one
// pipeline (a round trip per thousand commands), in this order: the
// appends, then the acks (raised only after the receipts the acks produced
// are stored), then the routes (read after everything else).
type Write struct {
	Appends []Append
	Acks    []Ack
	Routes  []string // user ids whose routes to read
}

// Written is what a Write did and read.
type Written struct {
	Appended []Appended // aligned with Write.Appends
	Routes   map[string]Route
}

// ReadQuery asks for the reader's inbox entries a READ names: the entry
// at Seqs[i] for MsgIDs[i].
type ReadQuery struct {
	UserID string // the reader, whose inbox is looked up
	Seqs   []uint64
	MsgIDs []string
}

// Route is where a user is: the one truth for delivery.
//
// With --login-policy platform a user holds one session per device slot
// (contract.Slots): a user's Route is then its first online session (or
// its first pending one), and Others are its other sessions, in slot
// order. Sessions lists them all.
type Route struct {
	Gateway string
	Session string
	State   string // StatePending or StateOnline
	Since   int64  // unix ms of the online confirmation; 0 while pending
	// Platform is what the session's login named ("" for none; a route
	// re-created by a re-assert forgets it).
	Platform string
	// Others are the user's sessions in other device slots (each without
	// Others of its own).
	Others []Route
}

// Sessions returns every session of the user: r itself, then r.Others.
func (r Route) Sessions() []Route {
	if !r.Exists() {
		return nil
	}
	if len(r.Others) == 0 {
		return []Route{r}
	}
	out := make([]Route, 0, 1+len(r.Others))
	out = append(out, Route{Gateway: r.Gateway, Session: r.Session, State: r.State, Since: r.Since, Platform: r.Platform})
	return append(out, r.Others...)
}

// Find returns the user's session sid, if it has that one.
func (r Route) Find(sid string) (Route, bool) {
	for _, s := range r.Sessions() {
		if s.Session == sid {
			return s, true
		}
	}
	return Route{}, false
}

// Combine makes one user's Route out of its sessions (those that exist),
// given in slot order: the first online one leads, then the first pending.
func Combine(sessions []Route) (Route, bool) {
	lead := -1
	for i, s := range sessions {
		if !s.Exists() {
			continue
		}
		if s.Online() {
			lead = i
			break
		}
		if lead < 0 {
			lead = i
		}
	}
	if lead < 0 {
		return Route{}, false
	}
	r := sessions[lead]
	r.Others = nil
	for i, s := range sessions {
		if i != lead && s.Exists() {
			s.Others = nil
			r.Others = append(r.Others, s)
		}
	}
	return r, true
}

// Claim asks for a new pending session.
type Claim struct {
	Gateway string
	Session string
	TTL     time.Duration // the pending route expires unless confirmed
	// RejectOnline refuses while another session is online (policy reject).
	RejectOnline bool
	// Evict is an online session RejectOnline may replace anyway (one on a
	// dead gateway).
	Evict string
	// Platform is what the login named.
	Platform string
}

// SessionRef names one session of one user.
type SessionRef struct {
	UserID  string
	Session string
}

// TimelineID is the inbox id of group gid's timeline: a large group's
// messages are stored once there (docs/ARCHITECTURE.md, "Group
// timelines"), with the inboxes' seqs, limits and ranges. No user id
// starts with '#'.
func TimelineID(gid string) string { return "#" + gid }

// TimelinePos is a member's place in a group's timeline.
type TimelinePos struct {
	Head uint64 // the newest group_seq ever assigned (0: none yet)
	Pos  uint64 // the member's acknowledged group_seq (its join point at first)
}

// GroupPos raises a member's acknowledged position in a group's timeline.
type GroupPos struct {
	Group string
	User  string
	Seq   uint64
}

// ResumeTakeReq asks to take a resume token's nonce (Resumes). A nonce
// is "<chain>" for the first token after a password login and
// "<chain>.<n>" for each one a resume hands out after it: the chain of
// tokens one password login began.
type ResumeTakeReq struct {
	Nonce string        // the presented token's
	Next  string        // the nonce to hand out when Nonce is the slot's latest
	SID   string        // the session the token handed out goes with
	TTL   time.Duration // how long the slot lives from now (the chain's end)
	Now   time.Time
	// Grace is how long after its take a nonce still logs in, handing out
	// the nonce its take handed out: a client whose answer was lost tries
	// the same token again, and two tabs restored together share one.
	Grace time.Duration
}

// ResumeTake is what taking a resume token's nonce found.
type ResumeTake struct {
	// Taken: the nonce was its slot's latest (or the one before it,
	// within its grace); Nonce is the one to hand out now.
	Taken bool
	Nonce string
	// Reused is set when the nonce was an earlier token of the chain the
	// slot's latest belongs to, past its grace: a token used once came
	// back, so two parties hold the chain and one of them is not the
	// user. The slot was cleared (the chain ends); Reused is the session
	// the latest token was issued with, for the route to end.
	Reused string
}

// ResumeChain is the chain a resume nonce belongs to (see ResumeTake).
func ResumeChain(nonce string) string {
	chain, _, _ := strings.Cut(nonce, ".")
	return chain
}

// CompareIDs orders user ids (decimal numbers) numerically.
func CompareIDs(a, b string) int {
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}
