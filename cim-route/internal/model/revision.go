package model

import "fmt"

// Revision is the latest change a sender made to one of its messages
// (docs/ARCHITECTURE.md, "Recall, edit and delete"): a recall, which is
// final, or an edit to Text. Of two edits the one with the larger RevID
// wins (a msgId starts with its time, so that is the later one).
type Revision struct {
	Sender string // the changed message's sender: its records live in its slot
	MsgID  string // the changed message
	RevID  string // the msgId of the recall or edit message; "" for none
	Recall bool
	Text   []byte // an edit's text
}

// Exists reports whether r is a revision at all (not the zero value).
func (r Revision) Exists() bool { return r.RevID != "" }

// Supersedes reports whether r replaces old as the message's revision:
// nothing replaces a recall, a recall replaces any edit, and an edit an
// older edit.
func (r Revision) Supersedes(old Revision) bool {
	switch {
	case !old.Exists():
		return r.Exists()
	case old.Recall:
		return false
	case r.Recall:
		return true
	}
	return r.RevID > old.RevID
}

// MsgRef names one message of one sender.
type MsgRef struct {
	Sender string
	MsgID  string
}

// MsgIDPrefix is the first 12 hex digits of the msgIds made at unix ms:
// a msgId starts with 48 bits of its milliseconds, so the ids of messages
// older than ms sort below this prefix (Redis trims by it with
// ZREMRANGEBYLEX).
func MsgIDPrefix(ms int64) string {
	return fmt.Sprintf("%012x", uint64(max(ms, 0))&(1<<48-1))
}
