package router

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gocim/gocim/cim-route/internal/errs"
)

// newMsgID returns a cluster-unique, time-ordered message id: 48 bits of
// milliseconds then 80 random bits, as 32 hex digits. Route replicas need no
// coordination: a collision needs two ids in the same millisecond drawing the
// same 80 bits. math/rand/v2's global source is ChaCha8, seeded per process
// from the OS, and cheap enough for the hot path.
//
// Within one millisecond a process's ids increase in the order they are
// made (an id that would sort below the previous one takes the previous
// one's random bits plus one): the messages of one batch keep their order
// in history, and of two edits of a message made in one millisecond the
// later one wins (revise.go).
func newMsgID(now time.Time) string {
	ms := uint64(now.UnixMilli())
	hi, lo := mrand.Uint64(), uint16(mrand.Uint32())
	lastMsgID.Lock()
	if l := &lastMsgID; ms == l.ms && (hi < l.hi || (hi == l.hi && lo <= l.lo)) {
		hi, lo = l.hi, l.lo+1
		if lo == 0 {
			hi++
		}
	}
	lastMsgID.ms, lastMsgID.hi, lastMsgID.lo = ms, hi, lo
	lastMsgID.Unlock()
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], ms<<16) // the top 48 bits of ms
	binary.BigEndian.PutUint64(b[6:14], hi)
	binary.BigEndian.PutUint16(b[14:16], lo)
	return hex.EncodeToString(b[:])
}

// lastMsgID is the millisecond and random bits of the last id newMsgID
// made.
var lastMsgID struct {
	sync.Mutex
	ms, hi uint64
	lo     uint16
}

// newSessionID returns 128 random bits as hex; it is a capability (whoever
// knows it can log the session off), so it comes from crypto/rand.
func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// isID reports whether s looks like a user id: decimal digits.
func isID(s string) bool {
	if len(s) == 0 || len(s) > 19 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isName reports whether s is a valid user name: [A-Za-z][A-Za-z0-9_.-]{1,31}.
// Starting with a letter is what tells a name from an id.
func isName(s string) bool {
	if len(s) < 2 || len(s) > 32 || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && (c < '0' || c > '9') && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: userName is required", errs.ErrBadArgument)
	}
	if !isName(name) {
		return fmt.Errorf("%w: userName must be 2-32 characters [A-Za-z][A-Za-z0-9_.-]*", errs.ErrBadArgument)
	}
	return nil
}

// reservedName reports whether name is kept from accounts: the system
// sender's name, so that no user can pose as the system.
func reservedName(name string) bool { return strings.EqualFold(name, SystemUserName) }

// checkText checks the text of a message sent over HTTP.
func checkText(text string) error {
	if text == "" {
		return fmt.Errorf("%w: msg is required", errs.ErrBadArgument)
	}
	if len(text) > MaxText || !utf8.ValidString(text) {
		return fmt.Errorf("%w: msg must be valid UTF-8 of at most %d bytes", errs.ErrBadArgument, MaxText)
	}
	return nil
}

func checkPassword(pw string) error {
	if n := utf8.RuneCountInString(pw); n < 6 || n > 128 {
		return fmt.Errorf("%w: password must be 6-128 characters", errs.ErrBadArgument)
	}
	return nil
}

func checkUserID(field, id string) error {
	if id == "" {
		return fmt.Errorf("%w: %s is required", errs.ErrBadArgument, field)
	}
	if !isID(id) {
		return fmt.Errorf("%w: %s must be a decimal user id", errs.ErrBadArgument, field)
	}
	return nil
}

// isMsgID reports whether id has the form newMsgID gives: 32 lowercase hex
// digits.
func isMsgID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
