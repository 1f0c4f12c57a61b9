package router

// Mentions (docs/ARCHITECTURE.md, "Mentions"): a new group message may name
// members (Msg.mentions, ids or names). The route resolves them, keeps those
// that are members of the group, in the order given and once each, and drops
// the rest — a typo, a stray "@", a member who left does not fail the
// message — so
// every member's client, history and the webhooks get the mentioned members'
// ids. The route charges nothing more for them: they ride in the message,
// whose size checkSizes bounds.

import (
	"fmt"
	"slices"

	"github.com/gocim/gocim/proto/cimpb"
)

// MaxMentions bounds the mentions of one message.
const MaxMentions = 50

// mentionsProblem says why m's mentions are refused, "" when they are fine
// (or absent): only a new group message names members, at most
// MaxMentions of them.
func mentionsProblem(m *cimpb.Msg) string {
	ms := m.GetMentions()
	switch {
	case len(ms) == 0:
		return ""
	case m.GetGroup() == "" || m.GetBroadcast() || m.GetToApp():
		return "mentions are for group messages"
	case m.GetOp() != cimpb.MsgOp_MSG_OP_NEW:
		return "mentions are for a new message (an edit keeps the original's)"
	case len(ms) > MaxMentions:
		return fmt.Sprintf("at most %d mentions a message", MaxMentions)
	}
	return ""
}

// mentionable reports whether u can name a user (an id or a name): any
// other mention (a stray "@bob", "bob?") names nobody and is dropped like
// an unknown name.
func mentionable(u string) bool { return isID(u) || isName(u) }

// wantMentions notes it's mentions to resolve.
func (j *job) wantMentions(it *outgoing) {
	for _, u := range it.msg.GetMentions() {
		if mentionable(u) {
			j.want(u)
		}
	}
}

// resolveMentions sets it's mentions to the ids of the users it names that
// exist, once each, in order.
func (j *job) resolveMentions(it *outgoing) {
	for _, u := range it.msg.GetMentions() {
		if !mentionable(u) {
			continue
		}
		if id := j.userID(u); id != "" && !slices.Contains(it.mentions, id) {
			it.mentions = append(it.mentions, id)
		}
	}
}

// keepMembers leaves in it's mentions the members of its group.
func (it *outgoing) keepMembers(members []string) {
	it.mentions = slices.DeleteFunc(it.mentions, func(id string) bool { return !slices.Contains(members, id) })
	if len(it.mentions) == 0 {
		it.mentions = nil
	}
}
