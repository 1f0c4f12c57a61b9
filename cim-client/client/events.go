package client

import (
	"time"

	"github.com/gocim/gocim/proto/cimpb"
)

// EventKind says what an Event reports.
type EventKind int

const (
	// EventMessage: a MSG arrived (Msg set). Messages stored in the inbox
	// (Msg.Seq > 0) come exactly once and in seq order, whether pushed live
	// or fetched by SYNC; broadcasts (seq 0) as they arrive. Group messages
	// have Msg.Group set. A msgId among the last 4096 shown is not shown
	// again, even under a new seq.
	//
	// Msg.Op other than MSG_OP_NEW is a change of an earlier message,
	// Msg.RefMsgId, by its sender (Recall, Edit): MSG_OP_RECALL hides it,
	// MSG_OP_EDIT replaces its text with Msg.Body. It comes in order after
	// that message, like any message. Apply it only to a message whose
	// From is this Msg's From (the route sets From; anybody may name any
	// msgId), and ignore an edit of a message already recalled (a recall
	// and an edit racing each other can both arrive). A change of a
	// message not shown (older than what the app keeps) needs nothing:
	// History shows messages as they are now.
	//
	// MSG_OP_REACT is not a chat message but Msg.From's reaction to the
	// message Msg.RefMsgId of the conversation (anyone's, the user's own
	// too; React, ReactInGroup): Msg.Body is the emoji, replacing From's
	// earlier reaction on it, or empty when From took it back. Apply it to
	// that message when the app has it; never show it as a message, count
	// it unread or notify for it (MarkRead skips it). It is acknowledged
	// like any message.
	//
	// A new message with Msg.ReplyTo set answers the message with that
	// msgId (Reply, ReplyInGroup), of the same conversation: quote it when
	// the app has it (shown, or from History); the route does not check
	// that it exists.
	//
	// Event.Outgoing marks a message this user sent, but not this Client:
	// with the route's --login-policy platform every device of a user gets
	// a copy of what another one sent (Msg.From is the user's own id; Msg.To
	// the recipient of a private message, Msg.Group a group's). Show it as
	// sent, in the conversation with Msg.To or in the group; it needs no
	// READ (MarkRead skips it). A recall or an edit of the user's own
	// message, and the user's reaction, come the same way, from the same
	// From. The copy of what this
	// Client sent itself is not shown (its seq is still acknowledged). A
	// message a user sends to itself is an incoming message like any other.
	// Under the other login policies Outgoing is rare: a large group's
	// timeline, read by SYNC, holds the user's own messages too.
	EventMessage EventKind = iota + 1
	// EventReceipt: a RECEIPT arrived (Receipt set): RECEIPT_SENT answering
	// one of our sends, or a RECEIPT_DELIVERED / RECEIPT_READ from our
	// inbox. For a message this Client sent it comes once per status (the
	// cluster may repeat receipts); for older ones, every time one arrives.
	// Status tells the best status of a message so far. Receipts for group
	// messages carry Receipt.Group and Receipt.Count (members that got that
	// far so far; with SENT, members it went to) and are live only; a
	// DELIVERED or READ one comes again each time its count rises.
	EventReceipt
	// EventError: an ERROR (Err set). With Err.ClientMsgId it is the final
	// answer to one of our sends (e.g. codes.BadAccount); codes.Unavailable
	// and codes.RateLimited come only after the last try (Config.ResendMax),
	// Unavailable also made up by the client itself when no answer came at
	// all. Without ClientMsgId the gateway usually closes the link next, and
	// EventDisconnected follows.
	EventError
	// EventConnected: logged in to a gateway, on the first connect and on
	// every reconnect (Gateway set).
	EventConnected
	// EventDisconnected: the link was lost and the client is reconnecting
	// (Reason and Gateway set).
	EventDisconnected
	// EventKicked: the client stopped for good and will not reconnect: a
	// KICK frame (logged in elsewhere, logged off) or a login the cluster
	// refused permanently (Reason set; Err set when an ERROR frame said so).
	EventKicked
	// EventClosed: Close finished; the channel is closed right after.
	EventClosed
	// EventRetrying: one of our sends was answered with an ERROR that is
	// not final (Err set, with ClientMsgId): codes.RateLimited, the
	// gateway's limit on messages per connection. The client keeps the
	// message and sends it again when its resend timeout passes
	// (Config.ResendTimeout, doubling per try); its final answer
	// (EventReceipt or EventError) comes later. At most once per message.
	EventRetrying
	// EventPresence: presence states arrived (Presence set): the snapshot
	// answering a Subscribe (Presence.Snapshot; also after every reconnect,
	// as the client subscribes again), or changes of watched users. A
	// state older than one already reported for its user is not reported.
	EventPresence
	// EventTyping: a user is typing to us or in one of our groups (Typing
	// set; Typing.Stopped when they stopped). Live only: show it for a few
	// seconds.
	EventTyping
	// EventReadElsewhere: this user read messages on another of its
	// devices (route --login-policy platform): Receipt set, a RECEIPT_READ
	// stored in the user's own inbox, By the user's own id, with
	// Receipt.Peer the user whose private messages were read or
	// Receipt.Group the group whose messages were read, and Receipt.Items
	// the messages (msgIds; the client lists a single one there too). Clear
	// the unread state of that conversation. It comes once, in order with
	// the messages, and is not about messages this user sent.
	EventReadElsewhere
)

func (k EventKind) String() string {
	switch k {
	case EventMessage:
		return "message"
	case EventReceipt:
		return "receipt"
	case EventError:
		return "error"
	case EventConnected:
		return "connected"
	case EventDisconnected:
		return "disconnected"
	case EventKicked:
		return "kicked"
	case EventClosed:
		return "closed"
	case EventRetrying:
		return "retrying"
	case EventPresence:
		return "presence"
	case EventTyping:
		return "typing"
	case EventReadElsewhere:
		return "read elsewhere"
	}
	return "unknown"
}

// Event is one thing that happened to a Client. Frames the application must
// not modify are shared, not copied.
type Event struct {
	Kind     EventKind
	Msg      *cimpb.Msg
	Receipt  *cimpb.Receipt
	Err      *cimpb.Error
	Presence *cimpb.Presence
	Typing   *cimpb.Typing
	Gateway  string
	Reason   string
	At       time.Time // when the client produced the event
	// Outgoing: with EventMessage, Msg was sent by this user from another
	// device (see EventMessage).
	Outgoing bool
}
