package model

// Reactions (docs/ARCHITECTURE.md, "Reactions"): each user has at most one
// reaction, an emoji, on each message of a conversation. They are kept per
// conversation, so a reaction can only ever show in the conversation it was
// made in: a user who names a message of somebody else's conversation
// reacts to it in a conversation of its own, which nobody else reads.

// ReactionShare bounds the messages one user has a reaction on in one
// conversation: a newer one drops the user's reaction on its oldest
// message. It bounds what one user makes the store keep per conversation.
const ReactionShare = 1000

// ReactionKinds bounds the different emoji on one message.
const ReactionKinds = 20

// PairConversation names the private conversation of users a and b (in
// either order).
func PairConversation(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return "p" + a + ":" + b
}

// GroupConversation names group gid's conversation (the hash tag of its
// timeline, so that its keys share a Redis Cluster slot).
func GroupConversation(gid string) string { return "#" + gid }

// Reaction is User's reaction to message MsgID of conversation Conv: the
// emoji, or "" when the user takes its reaction back. RevID is the msgId of
// the reaction's own message: of a user's reactions to one message the one
// with the largest RevID wins (a resend of an older one changes nothing).
type Reaction struct {
	Conv, MsgID, User, Emoji, RevID string
}

// ReactionRef names a message of a conversation.
type ReactionRef struct {
	Conv, MsgID string
}

// EmojiCount is how many users reacted to a message with Emoji.
type EmojiCount struct {
	Emoji string
	Count int
}

// Reactions are a message's reactions: each emoji with its count, in the
// order the emoji first came, and the viewer's own emoji ("" for none).
type Reactions struct {
	Counts []EmojiCount
	Mine   string
}
