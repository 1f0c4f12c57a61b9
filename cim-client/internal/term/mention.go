package term

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/proto/cimpb"
)

// Mentions: in a group message (:g, a :reply in a group) each word "@name"
// mentions that user; the text goes as typed, the names ride along
// (Msg.Mentions) and the route keeps those of members, as ids. A line or
// history line of a group message mentioning the user ends with "(mentions
// you)"; what the user sent, from here or another device, never does.

// mentionsYou ends the line of a group message that mentions the user.
const mentionsYou = " (mentions you)"

// trailing is the punctuation cut off the end of an "@name" word: "lunch
// @bob?" mentions bob.
const trailing = ",.!?:;)"

// Mentions returns the names a text mentions: each word "@name", trailing
// punctuation (, . ! ? : ; and ")") cut off, whose name is one the route
// allows for a user (a letter, then 1 to 31 letters, digits, "_", "." or
// "-"), once each in the order they first come; nil for none. An id
// ("@42") or an e-mail address ("bob@example.com") is no mention.
func Mentions(text string) []string {
	var names []string
	for _, w := range strings.Fields(text) {
		name, ok := strings.CutPrefix(w, "@")
		if !ok {
			continue
		}
		if name = strings.TrimRight(name, trailing); isUserName(name) && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// isUserName reports whether s is a user name as the route allows it:
// [A-Za-z][A-Za-z0-9_.-]{1,31}.
func isUserName(s string) bool {
	if len(s) < 2 || len(s) > 32 || !isASCIILetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isASCIILetter(c) && (c < '0' || c > '9') && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// tooManyMentions says why a group message with n mentions is not sent.
func tooManyMentions(n int) string {
	return fmt.Sprintf("too many mentions: %d names (at most %d a message); nothing sent", n, client.MaxMentions)
}

// TooManyMentions: "! too many mentions: 51 names (at most 50 a message);
// nothing sent".
func TooManyMentions(n int) string { return Problem(tooManyMentions(n)) }

// MentionsYou is the end of the line of message m for user me: "
// (mentions you)" for a group message from someone else whose mentions
// hold me's id, else "".
func MentionsYou(m *cimpb.Msg, me string) string {
	if me == "" || m.GetGroup() == "" || m.GetFrom() == me || !slices.Contains(m.GetMentions(), me) {
		return ""
	}
	return mentionsYou
}

// mentionsYou is MentionsYou for the logged-in user.
func (p *Printer) mentionsYou(m *cimpb.Msg) string {
	if len(m.GetMentions()) == 0 {
		return ""
	}
	return MentionsYou(m, p.info().UserID)
}
