package term

import (
	"fmt"
	"time"

	"github.com/gocim/gocim/proto/cimpb"
)

// Several devices (route --login-policy platform): what the user sends from
// another device comes here too (client.Event.Outgoing) and is shown as
// the user's own line; what it reads there needs no line (this terminal
// marks everything it shows read, so it keeps no unread state).

// maxNames bounds the user names remembered for the lines about the
// user's own messages from other devices; past it the cache starts over.
const maxNames = 4096

// fromElsewhere ends the line of a message the user sent from another
// device.
const fromElsewhere = " (from another device)"

// OutgoingMessage formats a message the user sent from another device; to
// is its recipient's label (its name when known, else its id), group the
// group's label for a group message:
//
//	[15:04:05] me → bob: hello (from another device)
//	[15:04:05] me@team: hello (from another device)
func OutgoingMessage(m *cimpb.Msg, to, group string, loc *time.Location, fallback time.Time) string {
	return fmt.Sprintf("[%s] %s: %s%s", clock(m, loc, fallback), ownWhere(m, to, group), What(m), fromElsewhere)
}

// OwnEdited formats the user's edit made on another device; to and group
// as for OutgoingMessage, was the text it replaces when known (cut to 40
// characters):
//
//	[15:04:05] me → bob (edited on another device): new text
//	[15:04:05] me@team (edited on another device): new text (was: old text)
func OwnEdited(m *cimpb.Msg, to, group, was string, loc *time.Location, fallback time.Time) string {
	line := fmt.Sprintf("[%s] %s (edited on another device): %s", clock(m, loc, fallback), ownWhere(m, to, group), What(m))
	if was != "" {
		line += " (was: " + shorten(oneLine(was), maxEcho) + ")"
	}
	return line
}

// OwnRecalled formats the user's recall made on another device; to and
// group as for OutgoingMessage, what the recalled text when known (cut to
// 40 characters):
//
//   - you recalled a message to bob on another device
//   - you recalled a message in team on another device: hello
func OwnRecalled(m *cimpb.Msg, to, group, what string) string {
	line := "* you recalled a message "
	if m.GetGroup() != "" {
		line += "in " + oneLine(firstOf(group, GroupLabel(m.GetGroup(), "")))
	} else {
		line += "to " + oneLine(firstOf(to, m.GetTo(), "?"))
	}
	line += " on another device"
	if what != "" {
		line += ": " + shorten(oneLine(what), maxEcho)
	}
	return line
}

// ownWhere is "me → bob" for a private message, "me@team" for a group's.
func ownWhere(m *cimpb.Msg, to, group string) string {
	if m.GetGroup() != "" {
		return "me@" + oneLine(firstOf(group, GroupLabel(m.GetGroup(), "")))
	}
	return "me → " + oneLine(firstOf(to, m.GetTo(), "?"))
}

// learnName remembers the name of user id, from the lines about it.
func (p *Printer) learnName(id, name string) {
	if id == "" || name == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.names == nil || len(p.names) >= maxNames {
		p.names = map[string]string{}
	}
	p.names[id] = name
}

// userName is the name of user id when a line told it, else id.
func (p *Printer) userName(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return firstOf(p.names[id], id)
}

// outgoing is the line of a message the user sent from another device.
func (p *Printer) outgoing(m *cimpb.Msg, at time.Time) string {
	to, group := p.labels(m)
	return OutgoingMessage(m, to, group, p.loc, at)
}

// labels are the recipient's and the group's labels of the user's own
// message m.
func (p *Printer) labels(m *cimpb.Msg) (to, group string) {
	if gid := m.GetGroup(); gid != "" {
		return "", p.GroupName(gid)
	}
	return p.userName(m.GetTo()), ""
}
