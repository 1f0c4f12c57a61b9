package term

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// Output formats, one line each. Status lines start with "* ", problems
// with "! ", chat lines with "[HH:MM:SS] ".

// Message formats an incoming chat message:
//
//	[15:04:05] alice: hello
//	[15:04:05] alice (all): hello            broadcast
//	[15:04:05] alice (group g1): hello       group message
//	[15:04:05] alice: [file a.pdf, 1200 bytes]
//
// (the Printer appends SaveHint to a file line).
//
// The time is the message's timestamp_ms in loc, or fallback when unset.
func Message(m *cimpb.Msg, loc *time.Location, fallback time.Time) string {
	at := fallback
	if ms := m.GetTimestampMs(); ms != 0 {
		at = time.UnixMilli(ms)
	}
	who := oneLine(firstOf(m.GetFromName(), m.GetFrom(), "?"))
	switch {
	case m.GetBroadcast():
		who += " (all)"
	case m.GetGroup() != "":
		who += " (group " + oneLine(m.GetGroup()) + ")"
	}
	return fmt.Sprintf("[%s] %s: %s", at.In(loc).Format("15:04:05"), who, What(m))
}

// What is a message's body on one line: the text, or for a file
// "[file a.pdf, 1200 bytes]".
func What(m *cimpb.Msg) string {
	if m.GetKind() == cimpb.Kind_KIND_FILE {
		return FileWhat(m.GetFile())
	}
	return oneLine(string(m.GetBody()))
}

// FileWhat: "[file a.pdf, 1200 bytes]".
func FileWhat(f *cimpb.FileInfo) string {
	return fmt.Sprintf("[file %s, %d bytes]", oneLine(f.GetName()), f.GetSize())
}

// SaveHint is appended to a line showing file number n: " (:save 3)".
func SaveHint(n int) string { return fmt.Sprintf(" (:save %d)", n) }

// HistoryLine formats a stored message with its date, oldest first in a
// listing:
//
//	[2024-05-06 07:08:09] alice: hello
//	[2024-05-06 07:08:09] bob: [file x.png, 1234 bytes]
func HistoryLine(m *cimpb.Msg, loc *time.Location) string {
	who := oneLine(firstOf(m.GetFromName(), m.GetFrom(), "?"))
	at := time.UnixMilli(m.GetTimestampMs()).In(loc).Format("2006-01-02 15:04:05")
	return fmt.Sprintf("[%s] %s: %s", at, who, What(m))
}

// NoHistory: "* no history".
func NoHistory() string { return "* no history" }

// maxEcho bounds how much of our own text a status line repeats.
const maxEcho = 40

// Sent confirms that the route stored one of our messages (RECEIPT_SENT):
//
//   - ✓ sent to bob: hello
//   - ✓ sent to all: hello everyone        broadcast
//
// what is cut to 40 characters.
func Sent(to, what string) string {
	if to == "" {
		to = "all"
	}
	return "* ✓ sent to " + oneLine(to) + ": " + shorten(oneLine(what), maxEcho)
}

// StatusLine is one of our recent messages and how far it got:
//
//   - [15:04:05] to bob: hello ✓✓
//
// with "…" while pending, "✓" sent, "✓✓" delivered, "read", or "failed".
func StatusLine(s client.SentMessage, loc *time.Location) string {
	to := s.To
	if s.Broadcast {
		to = "all"
	}
	what := s.Text
	if s.Kind == cimpb.Kind_KIND_FILE {
		what = FileWhat(s.File)
	}
	return fmt.Sprintf("* [%s] to %s: %s %s", s.At.In(loc).Format("15:04:05"), oneLine(to), shorten(oneLine(what), maxEcho), Mark(s.Status))
}

// Mark is the short form of a status: "…", "✓", "✓✓", "read", "failed".
func Mark(s client.SendStatus) string {
	switch s {
	case client.StatusSent:
		return "✓"
	case client.StatusDelivered:
		return "✓✓"
	case client.StatusRead:
		return "read"
	case client.StatusFailed:
		return "failed"
	}
	return "…"
}

// NoStatus: "* no messages sent yet".
func NoStatus() string { return "* no messages sent yet" }

// Saved: "* saved x.png (1234 bytes) to /home/alice/x.png".
func Saved(name string, size int64, path string) string {
	return fmt.Sprintf("* saved %s (%d bytes) to %s", oneLine(name), size, oneLine(path))
}

// shorten cuts s to n characters, marking the cut with "…".
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// ErrorLine formats an ERROR frame; to is the recipient of the message it
// answers, when known:
//
//	! bob is offline
//	! no such user: bob
//	! too many messages: message to bob not sent     rate limited to the last try
//	! <the gateway's text>
func ErrorLine(e *cimpb.Error, to string) string {
	to = oneLine(to)
	switch codes.Code(e.GetCode()) {
	case codes.Offline:
		if to != "" {
			return "! " + to + " is offline"
		}
	case codes.BadAccount:
		if to != "" {
			return "! no such user: " + to
		}
	case codes.RateLimited:
		if to != "" {
			return "! too many messages: message to " + to + " not sent"
		}
	}
	text := e.GetText()
	if text == "" {
		text = codes.Code(e.GetCode()).Text()
	}
	return Problem(text)
}

// SlowDown says the gateway rate-limited one of our messages, which the
// client sends again later; to is its recipient ("" for a broadcast) when
// known is true:
//
//	! slow down: message to bob will be retried
//	! slow down: message to all will be retried
//	! slow down: a message will be retried
func SlowDown(to string, known bool) string {
	switch {
	case !known:
		return "! slow down: a message will be retried"
	case to == "":
		to = "all"
	}
	return "! slow down: message to " + oneLine(to) + " will be retried"
}

// Problem formats a local error: "! <text>".
func Problem(text string) string {
	return "! " + oneLine(strings.TrimPrefix(text, "client: "))
}

// LoggedIn: "* logged in as alice (id 3) via 127.0.0.1:9000:9100".
func LoggedIn(info client.Info, gateway string) string {
	return fmt.Sprintf("* logged in as %s (id %s) via %s", info.UserName, info.UserID, gateway)
}

// Reconnected: "* reconnected via 127.0.0.1:9001:9101".
func Reconnected(gateway string) string { return "* reconnected via " + gateway }

// ConnectionLost: "* connection lost: <reason>, reconnecting".
func ConnectionLost(reason string) string {
	return "* connection lost: " + oneLine(reason) + ", reconnecting"
}

// Kicked: "* kicked: <reason>".
func Kicked(reason string) string { return "* kicked: " + oneLine(reason) }

// Registered: "* registered as alice (id 3)".
func Registered(u client.User) string {
	return fmt.Sprintf("* registered as %s (id %s)", u.UserName, u.UserID)
}

// Online: "* online: alice(1), bob(2)", or "* online: nobody".
func Online(users []client.User) string {
	if len(users) == 0 {
		return "* online: nobody"
	}
	parts := make([]string, len(users))
	for i, u := range users {
		parts[i] = fmt.Sprintf("%s(%s)", u.UserName, u.UserID)
	}
	return "* online: " + strings.Join(parts, ", ")
}

// InfoLine: "* alice (id 3) session s1, gateway 127.0.0.1:9000:9100",
// with ", reconnecting" appended while the link is down.
func InfoLine(info client.Info) string {
	line := fmt.Sprintf("* %s (id %s) session %s, gateway %s", info.UserName, info.UserID, info.SessionID, info.Gateway)
	if !info.Connected {
		line += ", reconnecting"
	}
	return line
}

// Help lists the commands, one status line each.
func Help() []string {
	return []string{
		"* commands:",
		"*   <user>;;<text>       private message (user id or name)",
		"*   :p2p <user> <text>   private message",
		"*   :file <user> <path>  send a file",
		"*   :save <N> [path]     save received file N (default: its name, here)",
		"*   :his [user|*] [word] history with user (* or nothing: everyone), oldest first",
		"*   :status              my recent messages: ✓ sent, ✓✓ delivered, read",
		"*   :olu                 online users",
		"*   :info                who am I, which gateway",
		"*   :all, :help          this list",
		"*   :q                   quit (so does end of input)",
		"*   anything else        message to everybody online",
	}
}

// oneLine keeps a peer's text on one output line: control characters become
// spaces and invalid UTF-8 the replacement character.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
