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
	body := oneLine(string(m.GetBody()))
	if m.GetKind() == cimpb.Kind_KIND_FILE {
		body = fmt.Sprintf("[file %s, %d bytes]", oneLine(m.GetFile().GetName()), m.GetFile().GetSize())
	}
	return fmt.Sprintf("[%s] %s: %s", at.In(loc).Format("15:04:05"), who, body)
}

// ErrorLine formats an ERROR frame; to is the recipient of the message it
// answers, when known:
//
//	! bob is offline
//	! no such user: bob
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
	}
	text := e.GetText()
	if text == "" {
		text = codes.Code(e.GetCode()).Text()
	}
	return Problem(text)
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
