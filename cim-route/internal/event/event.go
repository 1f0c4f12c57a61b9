// Package event defines what the route tells an app's back-end through
// webhooks (package webhook): one Event per thing that happened, with a
// unique id the receiver uses to recognize a repeat (delivery is at least
// once). The payloads are part of the route's API (served in /openapi.json).
package event

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Type names an event. Receivers must ignore types they do not know.
type Type string

const (
	// UserOnline: a session's connection is up at a gateway. Data: Presence.
	UserOnline Type = "user.online"
	// UserOffline: a session's connection is gone (closed, logged off,
	// replaced on the same platform, its gateway died). Data: Presence.
	UserOffline Type = "user.offline"
	// UserKicked: the route closed a session (a newer login, a log-off by an
	// admin). Data: Presence, with Reason.
	UserKicked Type = "user.kicked"
	// MessageApp: a message to one of the accounts named by
	// --webhook-app-users (a device or user talking to the back-end).
	// Data: Message.
	MessageApp Type = "message.app"
	// MessageOffline: a message was stored for a recipient who is not
	// connected (the hook for mobile push). Data: Message.
	MessageOffline Type = "message.offline"
	// DeviceData: a device (or any user) sent a message to the app
	// back-end itself (an uplink MSG with to_app), stored in no inbox. It
	// is queued before the sender hears RECEIPT_SENT (Queue), so it is
	// delivered at least once. Data: AppMessage.
	DeviceData Type = "device.data"
	// Group changes. Data: Group.
	GroupCreated   Type = "group.created"
	GroupJoined    Type = "group.joined"  // Users joined by themselves (open group) or were invited
	GroupLeft      Type = "group.left"    // Users left
	GroupKicked    Type = "group.kicked"  // Users were removed by the owner
	GroupRenamed   Type = "group.renamed" // Name is the new name
	GroupOwner     Type = "group.owner"   // Users holds the new owner; By the old
	GroupDissolved Type = "group.dissolved"
)

// Types lists every event type, in the order of the constants.
var Types = []Type{UserOnline, UserOffline, UserKicked, MessageApp, MessageOffline, DeviceData,
	GroupCreated, GroupJoined, GroupLeft, GroupKicked, GroupRenamed, GroupOwner, GroupDissolved}

// Event is one webhook body.
type Event struct {
	// ID is unique per event and stays the same on every retry: the
	// idempotency key (also sent as the Idempotency-Key header).
	ID     string `json:"id"`
	Type   Type   `json:"type"`
	TimeMs int64  `json:"timeMs"` // when it happened, Unix milliseconds
	Data   any    `json:"data"`   // Presence, Message, AppMessage or Group
}

// New returns an event of typ with a fresh id, stamped now.
func New(typ Type, now time.Time, data any) Event {
	var b [12]byte
	rand.Read(b[:])
	return Event{ID: "ev_" + hex.EncodeToString(b[:]), Type: typ, TimeMs: now.UnixMilli(), Data: data}
}

// Presence is the data of user.online, user.offline and user.kicked.
type Presence struct {
	UserID    string `json:"userId"`
	UserName  string `json:"userName,omitempty"`
	Platform  string `json:"platform,omitempty"`
	SessionID string `json:"sessionId,omitempty"`
	Gateway   string `json:"gateway,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// Message is the data of message.app and message.offline.
type Message struct {
	MsgID       string `json:"msgId"`
	From        string `json:"from"`
	FromName    string `json:"fromName,omitempty"`
	To          string `json:"to"`              // the recipient's user id
	Group       string `json:"group,omitempty"` // set for a group message
	Kind        string `json:"kind"`            // "text", "file" or "binary"
	Text        string `json:"text,omitempty"`  // the body when it is UTF-8 text (never for binary)
	Body        []byte `json:"body,omitempty"`  // the body otherwise (base64 in JSON)
	FileName    string `json:"fileName,omitempty"`
	TimestampMs int64  `json:"timestampMs"`
	Seq         uint64 `json:"seq,omitempty"` // the entry's seq in the recipient's inbox
	// GroupSeq is a large group's message's seq in the group's timeline
	// (stored once for all members, so it has no Seq).
	GroupSeq uint64 `json:"groupSeq,omitempty"`
	// Recipients, instead of To, are the members a large group's message
	// (GroupSeq) was stored for while they were offline (message.offline;
	// at most 1,000 per event).
	Recipients []string `json:"recipients,omitempty"`
	// Muted (message.offline): the recipient To muted this conversation
	// (the sender, or the group): notify quietly, or not at all.
	Muted bool `json:"muted,omitempty"`
	// MutedRecipients (message.offline of a timeline message): those of
	// Recipients who muted the group.
	MutedRecipients []string `json:"mutedRecipients,omitempty"`
	// Op is "recall" or "edit" for a change of the sender's message
	// RefMsgID (Text is an edit's new text), "react" for the sender's
	// reaction to message RefMsgID of the conversation (Text is the emoji,
	// empty when taken back); empty for a new message.
	Op       string `json:"op,omitempty"`
	RefMsgID string `json:"refMsgId,omitempty"`
	// ReplyTo is the msgId of the message this one answers, if any.
	ReplyTo string `json:"replyTo,omitempty"`
	// Mentions are the ids of the members a group message mentions: the
	// ones to notify even where the app would not for the group.
	Mentions []string `json:"mentions,omitempty"`
}

// AppMessage is the data of device.data: a message its sender addressed
// to the app back-end.
type AppMessage struct {
	MsgID       string `json:"msgId"`
	From        string `json:"from"` // the sender's user id
	FromName    string `json:"fromName,omitempty"`
	TimestampMs int64  `json:"timestampMs"`
	Kind        string `json:"kind"`           // "text" or "binary"
	Text        string `json:"text,omitempty"` // a text message's body
	Body        []byte `json:"body,omitempty"` // a binary message's body (base64 in JSON)
	// ClientMsgID is the sender's id of the message: a sender that got no
	// answer sends it again with the same one (a new MsgID, a new event).
	ClientMsgID string `json:"clientMsgId,omitempty"`
}

// Group is the data of the group.* events.
type Group struct {
	GroupID string   `json:"groupId"`
	Name    string   `json:"name,omitempty"`
	By      string   `json:"by,omitempty"`    // the user id who did it
	Users   []string `json:"users,omitempty"` // the users it happened to
}

// Sink takes events. Emit must not block or fail the caller: the message
// path calls it.
type Sink interface {
	Emit(ev Event)
}

// Queue is a Sink that also takes events synchronously, for the events
// whose loss the sender must hear of (device.data).
type Queue interface {
	Sink
	// Enqueue returns nil once every destination's durable queue holds
	// evs; otherwise an error (a destination's queue is full, or cannot
	// be reached), and some destinations may hold them anyway: a caller
	// that tries again may deliver them twice.
	Enqueue(ctx context.Context, evs []Event) error
}

// Discard is the Sink of a route without webhooks.
type Discard struct{}

// Emit does nothing.
func (Discard) Emit(Event) {}
