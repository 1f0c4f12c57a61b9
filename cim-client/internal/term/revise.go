package term

import (
	"fmt"
	"time"

	"github.com/gocim/gocim/proto/cimpb"
)

// Recall and edit (issue 15): an incoming change of an earlier message is
// a MSG whose Op is not MSG_OP_NEW, naming that message in RefMsgId; the
// Printer shows what changed, using what it remembers of the messages it
// showed lately.

// maxShown bounds the messages the Printer remembers for the edits and
// recalls of them that come later.
const maxShown = 1000

// shownMsg is a message the Printer showed.
type shownMsg struct {
	from     string
	name     string // the sender's name (else its id), for the quotes of replies
	what     string // What(m), after the latest edit
	file     int    // its :save number, 0 for none
	recalled bool
}

// Edited formats an incoming edit; group is the group's label for a group
// message ("" otherwise), was the text it replaces when known (cut to 40
// characters):
//
//	[15:04:05] alice (edited): new text
//	[15:04:05] alice@team (edited): new text (was: old text)
func Edited(m *cimpb.Msg, group, was string, loc *time.Location, fallback time.Time) string {
	who := oneLine(firstOf(m.GetFromName(), m.GetFrom(), "?"))
	if m.GetGroup() != "" {
		who += "@" + oneLine(firstOf(group, GroupLabel(m.GetGroup(), "")))
	}
	line := fmt.Sprintf("[%s] %s (edited): %s", clock(m, loc, fallback), who, What(m))
	if was != "" {
		line += " (was: " + shorten(oneLine(was), maxEcho) + ")"
	}
	return line
}

// Recalled formats an incoming recall; group as for Edited, what the
// recalled message's text when known (cut to 40 characters):
//
//   - alice recalled a message
//   - alice recalled a message: hello
//   - alice recalled a message in team: hello
func Recalled(m *cimpb.Msg, group, what string) string {
	line := "* " + oneLine(firstOf(m.GetFromName(), m.GetFrom(), "?")) + " recalled a message"
	if m.GetGroup() != "" {
		line += " in " + oneLine(firstOf(group, GroupLabel(m.GetGroup(), "")))
	}
	if what != "" {
		line += ": " + shorten(oneLine(what), maxEcho)
	}
	return line
}

// ChangeSent confirms that the route stored one of our recalls or edits;
// to names the recipient or the group, what is the recalled text or the
// new one (cut to 40 characters):
//
//   - ✓ recalled your message to bob: hello
//   - ✓ edited your message to team: hello again
func ChangeSent(op cimpb.MsgOp, to, what string) string {
	verb := "edited"
	if op == cimpb.MsgOp_MSG_OP_RECALL {
		verb = "recalled"
	}
	line := "* ✓ " + verb + " your message to " + oneLine(firstOf(to, "all"))
	if what != "" {
		line += ": " + shorten(oneLine(what), maxEcho)
	}
	return line
}

// NothingToRecall: "! no message of yours to recall" (:recall 1), or "! no
// message 3 of yours to recall (:status lists them)".
func NothingToRecall(n int) string {
	if n <= 1 {
		return "! no message of yours to recall"
	}
	return fmt.Sprintf("! no message %d of yours to recall (:status lists them)", n)
}

// NothingToEdit: "! no text message of yours to edit".
func NothingToEdit() string { return "! no text message of yours to edit" }

// NoListedLine: "! no line 5 in the last :his or :ghis listing".
func NoListedLine(n int) string {
	return fmt.Sprintf("! no line %d in the last :his or :ghis listing", n)
}

// DeletedLine confirms a :del: "* deleted from your history: [2024-05-06
// 07:08:09] alice: hello".
func DeletedLine(m *cimpb.Msg, loc *time.Location) string {
	return "* deleted from your history: " + HistoryLine(m, loc)
}

// sentWhat is what a status line says one of our messages carried: its
// text or file, or for a change "(recall)" / "(edit) <new text>" /
// "(reaction 👍)" / "(reaction taken back)".
func sentWhat(op cimpb.MsgOp, kind cimpb.Kind, text string, file *cimpb.FileInfo) string {
	switch {
	case op == cimpb.MsgOp_MSG_OP_REACT && text == "":
		return "(reaction taken back)"
	case op == cimpb.MsgOp_MSG_OP_REACT:
		return "(reaction " + text + ")"
	case op == cimpb.MsgOp_MSG_OP_RECALL:
		return "(recall)"
	case op == cimpb.MsgOp_MSG_OP_EDIT:
		return "(edit) " + text
	case kind == cimpb.Kind_KIND_FILE:
		return FileWhat(file)
	}
	return text
}

// remember notes a message the Printer showed (n: its :save number), live
// or in a history listing (where it may be recalled already).
func (p *Printer) remember(m *cimpb.Msg, n int) {
	id := m.GetMsgId()
	if id == "" || m.GetBroadcast() {
		return
	}
	p.rememberShown(id, shownMsg{from: m.GetFrom(), name: firstOf(m.GetFromName(), m.GetFrom()), what: What(m), file: n,
		recalled: m.GetOp() == cimpb.MsgOp_MSG_OP_RECALL})
}

// rememberShown notes what the Printer showed as message id, forgetting
// the oldest beyond maxShown.
func (p *Printer) rememberShown(id string, s shownMsg) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown == nil {
		p.shown = map[string]shownMsg{}
	}
	if _, ok := p.shown[id]; !ok {
		p.shownOrder = append(p.shownOrder, id)
	}
	p.shown[id] = s
	for len(p.shownOrder) > maxShown {
		delete(p.shown, p.shownOrder[0])
		p.shownOrder = p.shownOrder[1:]
	}
}

// change is the line for an incoming recall or edit ("" for none): it
// applies only to a remembered message with the same sender, and nothing
// changes a message already recalled. A recalled file can no longer be
// saved. outgoing: the user made the change on another device.
func (p *Printer) change(m *cimpb.Msg, at time.Time, outgoing bool) string {
	to, group := "", ""
	if gid := m.GetGroup(); gid != "" {
		group = p.GroupName(gid)
	} else if outgoing {
		to = p.userName(m.GetTo())
	}
	p.mu.Lock()
	orig, known := p.shown[m.GetRefMsgId()]
	known = known && orig.from == m.GetFrom()
	if known && orig.recalled {
		p.mu.Unlock()
		return ""
	}
	was := ""
	if known {
		was = orig.what
		if m.GetOp() == cimpb.MsgOp_MSG_OP_RECALL {
			orig.recalled = true
			delete(p.files, orig.file)
		} else {
			orig.what = What(m)
		}
		p.shown[m.GetRefMsgId()] = orig
	}
	p.mu.Unlock()
	switch {
	case outgoing && m.GetOp() == cimpb.MsgOp_MSG_OP_RECALL:
		return OwnRecalled(m, to, group, was)
	case outgoing:
		return OwnEdited(m, to, group, was, p.loc, at)
	case m.GetOp() == cimpb.MsgOp_MSG_OP_RECALL:
		return Recalled(m, group, was)
	}
	return Edited(m, group, was, p.loc, at)
}

// SendingChange is Sending for one of our recalls or edits (op) of a
// message to "to" or, with gid set, to a group: its ✓ line says what it
// did; what is the recalled text or the new one.
func (p *Printer) SendingChange(clientMsgID, to, gid string, op cimpb.MsgOp, what string) {
	s := sending{to: to, what: what, op: op}
	if gid != "" {
		s.to, s.group = p.GroupName(gid), gid
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sendingLocked(clientMsgID, s)
}

// Listed returns the message on line n (from 1) of the last history
// listing.
func (p *Printer) Listed(n int) (*cimpb.Msg, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n < 1 || n > len(p.listed) {
		return nil, false
	}
	return p.listed[n-1], true
}

// Deleted prints the DeletedLine of m.
func (p *Printer) Deleted(m *cimpb.Msg) { p.Line(DeletedLine(m, p.loc)) }
