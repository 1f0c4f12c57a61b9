package term

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/proto/cimpb"
)

// Reactions: a user's emoji on a message of the conversation (a MSG with
// MSG_OP_REACT naming it in RefMsgId, the emoji as body, none to take it
// back). It is no chat line: the Printer prints a status line quoting the
// message when it showed it, :reply and :react never count it, and history
// lines end with the counts the route keeps. :react answers one of the
// messages received lately, as :reply does.

// reactUsage and unreactUsage are the syntax of :react and :unreact.
const (
	reactUsage   = "usage: :react [N] <emoji> (N: my N-th most recent incoming message, 1 the last; emoji: 👍 or :thumbsup:)"
	unreactUsage = "usage: :unreact [N] (N: my N-th most recent incoming message, 1 the last)"
)

// parseReact reads ":react [N] <emoji>" and ":unreact [N]": a first word
// of digits is N. The emoji is one word, a known ":code:" (or
// several) turned into its emoji; an unknown one is refused rather than
// sent as typed.
func parseReact(word, rest string) Command {
	first, more := cutSpace(rest)
	n, err := strconv.Atoi(first)
	switch {
	case err != nil || !isGroupID(first): // digits only: "+1" is an emoji
		n, more = 1, rest
	case n < 1:
		return Command{Op: OpInvalid, Text: map[string]string{":react": reactUsage, ":unreact": unreactUsage}[word]}
	}
	if word == ":unreact" {
		if more != "" {
			return Command{Op: OpInvalid, Text: unreactUsage}
		}
		return Command{Op: OpReact, N: n}
	}
	if more == "" || strings.ContainsFunc(more, unicode.IsSpace) {
		return Command{Op: OpInvalid, Text: reactUsage}
	}
	emoji := Emojify(more)
	if emoji == more && len(more) > 2 && strings.HasPrefix(more, ":") && strings.HasSuffix(more, ":") {
		return Command{Op: OpInvalid, Text: "unknown emoji " + more + " (:emoji lists the codes)"}
	}
	return Command{Op: OpReact, N: n, Text: emoji}
}

// Reacted formats an incoming reaction, or its take-back (no emoji); group
// is the group's label for a group message ("" otherwise), what the
// reacted message's text when known (cut to 40 characters), recalled
// whether its sender took it back:
//
//   - bob reacted 👍 to: are you there?
//   - bob@team reacted ❤️ to: lunch?
//   - bob reacted 👍 to a message           a message this terminal did not show
//   - bob took back a reaction to: are you there?
func Reacted(m *cimpb.Msg, group, what string, known, recalled bool) string {
	who := oneLine(firstOf(m.GetFromName(), m.GetFrom(), "?"))
	if m.GetGroup() != "" {
		who += "@" + oneLine(firstOf(group, GroupLabel(m.GetGroup(), "")))
	}
	return "* " + who + " " + reactedTo(string(m.GetBody()), what, known, recalled)
}

// OwnReacted formats the user's reaction made on another device; to and
// group as for OutgoingMessage, the rest as for Reacted:
//
//   - me → bob: reacted 👍 to: are you there? (from another device)
//   - me@team: took back a reaction to a message (from another device)
func OwnReacted(m *cimpb.Msg, to, group, what string, known, recalled bool) string {
	return "* " + ownWhere(m, to, group) + ": " + reactedTo(string(m.GetBody()), what, known, recalled) + fromElsewhere
}

// reactedTo is what a reaction line says happened: "reacted 👍 to: <the
// message>", or "took back a reaction to…" for no emoji.
func reactedTo(emoji, what string, known, recalled bool) string {
	verb := "took back a reaction to"
	if emoji != "" {
		verb = "reacted " + oneLine(emoji) + " to"
	}
	switch {
	case !known:
		return verb + " a message"
	case recalled:
		return verb + " a recalled message"
	}
	return verb + ": " + shorten(oneLine(what), maxEcho)
}

// ReactionSent confirms that the route stored one of our reactions (or its
// take-back, no emoji); to names whose message and where ("bob",
// "bob@team"), what is its text (cut to 40 characters), "" when unknown:
//
//   - ✓ reacted 👍 to bob: are you there?
//   - ✓ took back your reaction to bob@team: lunch?
func ReactionSent(emoji, to, what string) string {
	line := "* ✓ took back your reaction to " + oneLine(to)
	if emoji != "" {
		line = "* ✓ reacted " + oneLine(emoji) + " to " + oneLine(to)
	}
	if what != "" {
		line += ": " + shorten(oneLine(what), maxEcho)
	}
	return line
}

// NothingToReact: "! no message received to react to" (:react), or "! no
// message 3 received to react to (the terminal keeps the last 100)".
func NothingToReact(n int) string {
	if n <= 1 {
		return "! no message received to react to"
	}
	return fmt.Sprintf("! no message %d received to react to (the terminal keeps the last %d)", n, maxReceived)
}

// BadReaction: `! not an emoji: "a\x07b" (one emoji or :code:, at most 32
// bytes; :emoji lists the codes)`, for an emoji the SDK refuses.
func BadReaction(emoji string) string {
	return fmt.Sprintf("! not an emoji: %q (one emoji or :code:, at most %d bytes; :emoji lists the codes)",
		shorten(emoji, maxEcho), client.MaxReactionLen)
}

// ReactionCounts is the end of a history line of a message with
// reactions: each emoji and how many reacted with it, in the route's
// order, "*" after the count of my own; "" for none:
//
//	[👍 2* ❤️ 1]
func ReactionCounts(rs []client.Reaction) string {
	if len(rs) == 0 {
		return ""
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = oneLine(r.Emoji) + " " + strconv.Itoa(r.Count)
		if r.Mine {
			parts[i] += "*"
		}
	}
	return " [" + strings.Join(parts, " ") + "]"
}

// reaction is the line of an incoming reaction (outgoing: the user's own,
// from another device), quoting the message it names as far as the
// Printer remembers it.
func (p *Printer) reaction(m *cimpb.Msg, outgoing bool) string {
	to, group := "", ""
	if gid := m.GetGroup(); gid != "" {
		group = p.GroupName(gid)
	} else if outgoing {
		to = p.userName(m.GetTo())
	}
	p.mu.Lock()
	orig, known := p.shown[m.GetRefMsgId()]
	p.mu.Unlock()
	if outgoing {
		return OwnReacted(m, to, group, orig.what, known, orig.recalled)
	}
	return Reacted(m, group, orig.what, known, orig.recalled)
}

// SendingReaction is Sending for our reaction (emoji; "" takes it back) to
// the received message target: its ✓ line names the message's sender
// (and group) and quotes it, its errors name the sender or the group.
func (p *Printer) SendingReaction(clientMsgID string, target Received, emoji string) {
	s := sending{to: target.Name, op: cimpb.MsgOp_MSG_OP_REACT, emoji: emoji}
	if gid := target.Group; gid != "" {
		s.group = gid
		s.to += "@" + p.GroupName(gid)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if orig, ok := p.shown[target.MsgID]; ok && !orig.recalled {
		s.what = orig.what
	}
	p.sendingLocked(clientMsgID, s)
}
