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
//	[15:04:05] alice@#7: hello               group message (GroupMessage names the group)
//	[15:04:05] alice: [file a.pdf, 1200 bytes]
//
// (the Printer appends SaveHint to a file line).
//
// The time is the message's timestamp_ms in loc, or fallback when unset.
func Message(m *cimpb.Msg, loc *time.Location, fallback time.Time) string {
	if gid := m.GetGroup(); gid != "" {
		return GroupMessage(m, GroupLabel(gid, ""), loc, fallback)
	}
	who := oneLine(firstOf(m.GetFromName(), m.GetFrom(), "?"))
	if m.GetBroadcast() {
		who += " (all)"
	}
	return fmt.Sprintf("[%s] %s: %s", clock(m, loc, fallback), who, What(m))
}

// GroupMessage formats an incoming group message; group is the group's
// label (GroupLabel):
//
//	[15:04:05] alice@team: hello
//
// (the Printer appends " (mentions you)" when it mentions the user:
// MentionsYou).
func GroupMessage(m *cimpb.Msg, group string, loc *time.Location, fallback time.Time) string {
	who := oneLine(firstOf(m.GetFromName(), m.GetFrom(), "?"))
	return fmt.Sprintf("[%s] %s@%s: %s", clock(m, loc, fallback), who, oneLine(group), What(m))
}

// clock is a message's time of day: its timestamp_ms in loc, or fallback
// when unset.
func clock(m *cimpb.Msg, loc *time.Location, fallback time.Time) string {
	at := fallback
	if ms := m.GetTimestampMs(); ms != 0 {
		at = time.UnixMilli(ms)
	}
	return at.In(loc).Format("15:04:05")
}

// dayTime is at to the minute, in loc: "14:05" on now's day,
// "2024-05-07 14:05" on another.
func dayTime(at time.Time, loc *time.Location, now time.Time) string {
	at, today := at.In(loc), now.In(loc)
	if y, m, d := at.Date(); y == today.Year() && m == today.Month() && d == today.Day() {
		return at.Format("15:04")
	}
	return at.Format("2006-01-02 15:04")
}

// GroupLabel is how lines name group gid: its name, or "#<gid>" when the
// name is not known.
func GroupLabel(gid, name string) string {
	if name != "" {
		return oneLine(name)
	}
	return "#" + oneLine(gid)
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
// listing (the Printer appends a reply's Quote and the ReactionCounts):
//
//	[2024-05-06 07:08:09] alice: hello
//	[2024-05-06 07:08:09] bob: [file x.png, 1234 bytes]
//
// and a message its sender changed (the route's history says which):
//
//	[2024-05-06 07:08:09] alice (edited): hello again
//	[2024-05-06 07:08:09] alice (recalled)
func HistoryLine(m *cimpb.Msg, loc *time.Location) string {
	who := oneLine(firstOf(m.GetFromName(), m.GetFrom(), "?"))
	at := time.UnixMilli(m.GetTimestampMs()).In(loc).Format("2006-01-02 15:04:05")
	switch m.GetOp() {
	case cimpb.MsgOp_MSG_OP_RECALL:
		return fmt.Sprintf("[%s] %s (recalled)", at, who)
	case cimpb.MsgOp_MSG_OP_EDIT:
		who += " (edited)"
	}
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
// A group message is a GroupStatusLine naming the group "#<gid>".
func StatusLine(s client.SentMessage, loc *time.Location) string {
	if s.Group != "" {
		return GroupStatusLine(s, GroupLabel(s.Group, ""), loc)
	}
	to := s.To
	if s.Broadcast {
		to = "all"
	}
	what := sentWhat(s.Op, s.Kind, s.Text, s.File)
	return fmt.Sprintf("* [%s] to %s: %s %s", s.At.In(loc).Format("15:04:05"), oneLine(to), shorten(oneLine(what), maxEcho), Mark(s.Status))
}

// GroupStatusLine is one of our recent group messages; group is the
// group's label (GroupLabel). Once the route stored it, it counts the
// members that received and read it:
//
//   - [15:04:05] to team: hello ✓ delivered 2, read 1
//
// and otherwise ends in "…" (pending) or "failed" like StatusLine.
func GroupStatusLine(s client.SentMessage, group string, loc *time.Location) string {
	what := sentWhat(s.Op, s.Kind, s.Text, s.File)
	line := fmt.Sprintf("* [%s] to %s: %s ", s.At.In(loc).Format("15:04:05"), oneLine(group), shorten(oneLine(what), maxEcho))
	if s.Status < client.StatusSent {
		return line + Mark(s.Status)
	}
	return line + fmt.Sprintf("✓ delivered %d, read %d", s.Delivered, s.Read)
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

// GroupErrorLine formats an ERROR answering one of our messages to group
// gid:
//
//	! not a member of group 3
//	! no such group: 3
//	! too many messages: message to group 3 not sent
//	! <the gateway's text>
func GroupErrorLine(e *cimpb.Error, gid string) string {
	gid = oneLine(gid)
	switch codes.Code(e.GetCode()) {
	case codes.Forbidden:
		return "! not a member of group " + gid
	case codes.NoGroup:
		return "! no such group: " + gid
	case codes.RateLimited:
		return "! too many messages: message to group " + gid + " not sent"
	}
	return ErrorLine(e, "")
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

// Watching answers a :watch (a snapshot's states): "* watching: alice
// online (web), bob offline (last seen 14:02), carol offline", or
// "* watching nobody". An offline state's at_ms is when the user was last
// seen (0: never, or hidden from us), shown in loc as dayTime does with
// now.
func Watching(states []*cimpb.PresenceState, loc *time.Location, now time.Time) string {
	if len(states) == 0 {
		return "* watching nobody"
	}
	parts := make([]string, len(states))
	for i, s := range states {
		parts[i] = userLabel(s.GetUserName(), s.GetUserId()) + " " + presenceWord(s)
		if ms := s.GetAtMs(); !s.GetOnline() && ms > 0 {
			parts[i] += " (last seen " + dayTime(time.UnixMilli(ms), loc, now) + ")"
		}
	}
	return "* watching: " + strings.Join(parts, ", ")
}

// PresenceLine is a watched user's change: "* alice is online (web)",
// "* alice is offline" (a change is news: no last seen, unlike Watching).
func PresenceLine(s *cimpb.PresenceState) string {
	return "* " + userLabel(s.GetUserName(), s.GetUserId()) + " is " + presenceWord(s)
}

func presenceWord(s *cimpb.PresenceState) string {
	if !s.GetOnline() {
		return "offline"
	}
	if p := s.GetPlatform(); p != "" {
		return "online (" + oneLine(p) + ")"
	}
	return "online"
}

func userLabel(name, id string) string {
	if name != "" {
		return oneLine(name)
	}
	return oneLine(id)
}

// TypingLine: "* alice is typing…", "* alice is typing in team…", "* alice
// stopped typing".
func TypingLine(t *cimpb.Typing, group string) string {
	who := userLabel(t.GetFromName(), t.GetFrom())
	where := ""
	if t.GetGroup() != "" {
		where = " in " + group
	}
	if t.GetStopped() {
		return "* " + who + " stopped typing" + where
	}
	return "* " + who + " is typing" + where + "…"
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
		"*   :g <gid> <text>      message to a group (ids: see :groups); each @name in the text mentions that",
		"*                        member, at most 50 (a group line that mentions me ends in \"(mentions you)\")",
		"*   :file <user> <path>  send a file",
		"*   :save <N> [path]     save received file N (default: its name, here)",
		"*   :his [user|*] [word] history with user (* or nothing: everyone), oldest first;",
		"*                        a line ends in its reactions, emoji and count, * on mine: [👍 2* ❤️ 1]",
		"*   :q <words>           search the history with everyone for words",
		"*   :status              my recent messages: ✓ sent, ✓✓ delivered, read; groups: delivered N, read M",
		"*   :olu                 online users",
		"*   :pu <prefix>         online users whose name starts with prefix",
		"*   :emoji [page]        emoji; :smile: and the like in a message become emoji",
		"*   :delay <s> <user>;;<text> private message sent s seconds from now (kept on the server)",
		"*   :info                who am I, which gateway",
		"*   :groups              my groups",
		"*   :members <gid>       members of a group",
		"*   :ghis <gid> [word]   history of a group, oldest first",
		"*   :gcreate <name> [open] create a group (open: anyone may join, else by invitation)",
		"*   :gjoin <gid>         join an open group, or one I was invited to",
		"*   :ginvite <gid> <user>... invite users to a group (owner; any member of an open group)",
		"*   :gleave <gid>        leave a group",
		"*   :gkick <gid> <user>  remove a member from a group (owner)",
		"*   :grename <gid> <name> rename a group (owner)",
		"*   :gdissolve <gid>     delete a group (owner)",
		"*   :gowner <gid> <user> hand a group to a member (owner)",
		"*   :watch [user...] [g:<gid>...] presence of users and of groups' members (nothing: stop)",
		"*   :typing <user>|g:<gid> tell a user or a group I am typing (:typing- I stopped)",
		"*   :recall [N]          take back my N-th most recent message (1, the default: the last)",
		"*   :edit <text>         replace the text of my last message",
		"*   :del <N>             delete line N of the last :his / :ghis listing from my history",
		"*   :reply [N] <text>    answer my N-th most recent incoming message (1: the last), quoting it; a first number is N: :reply 1 3 apples",
		"*   :react [N] <emoji>   react to my N-th most recent incoming message (1: the last) with an emoji or its :code: (:react 2 :thumbsup:)",
		"*   :unreact [N]         take my reaction to it back",
		"*   :block <user>        get no more messages from a user, nor write to them",
		"*   :unblock <user>      undo :block",
		"*   :blocks              the users I blocked",
		"*   :mute <user>|g:<gid> [duration] mute a conversation for 30m, 2h, 1d… (none: until :unmute):",
		"*                        my apps do not notify for it, except when I am mentioned; lines here are unchanged",
		"*   :unmute <user>|g:<gid> undo :mute",
		"*   :mutes               the conversations I muted",
		"*   :all, :help          this list",
		"*   :q, :q!, :quit       quit (so does end of input)",
		"*   :logout              log off and quit (with --remember, :q keeps the login)",
		"*   anything else        message to everybody online",
	}
}

// GroupCreated: "* created group team (id 3)", with ", open" for an
// open group.
func GroupCreated(g client.Group) string {
	return fmt.Sprintf("* created group %s (id %s%s)", GroupLabel(g.ID, g.Name), oneLine(g.ID), openMark(g))
}

// GroupJoined: "* joined group team (id 3, 4 members)".
func GroupJoined(g client.Group) string {
	return fmt.Sprintf("* joined group %s (id %s, %s)", GroupLabel(g.ID, g.Name), oneLine(g.ID), members(g.Members))
}

// Groups lists my groups on one line, marking those I own and the open
// ones:
//
//   - groups: team (id 3, owner, 4 members), dev (id 5, open, 2 members)
//   - groups: none
func Groups(gs []client.Group, me string) string {
	if len(gs) == 0 {
		return "* groups: none"
	}
	parts := make([]string, len(gs))
	for i, g := range gs {
		owner := ""
		if me != "" && g.Owner == me {
			owner = ", owner"
		}
		parts[i] = fmt.Sprintf("%s (id %s%s%s, %s)", GroupLabel(g.ID, g.Name), oneLine(g.ID), owner, openMark(g), members(g.Members))
	}
	return "* groups: " + strings.Join(parts, ", ")
}

// Members: "* members of team: alice(1), bob(2)"; group is its label.
func Members(group string, users []client.User) string {
	if len(users) == 0 {
		return "* members of " + oneLine(group) + ": nobody"
	}
	parts := make([]string, len(users))
	for i, u := range users {
		parts[i] = fmt.Sprintf("%s(%s)", oneLine(u.UserName), oneLine(u.UserID))
	}
	return "* members of " + oneLine(group) + ": " + strings.Join(parts, ", ")
}

// Invited says whom :ginvite invited; asked are the users as typed,
// invited the ids the route invited:
//
//   - invited bob, carol to team
//   - invited 1 of 2 to team (ids 5); the others are members already
//   - nobody new to invite to team
func Invited(group string, asked, invited []string) string {
	group = oneLine(group)
	switch {
	case len(invited) == 0:
		return "* nobody new to invite to " + group
	case len(invited) == len(asked):
		return "* invited " + oneLine(strings.Join(asked, ", ")) + " to " + group
	}
	return fmt.Sprintf("* invited %d of %d to %s (ids %s); the others are members already",
		len(invited), len(asked), group, oneLine(strings.Join(invited, ", ")))
}

// GroupLeft: "* left group team (id 3)".
func GroupLeft(group, gid string) string {
	return fmt.Sprintf("* left group %s (id %s)", oneLine(group), oneLine(gid))
}

// GroupKicked: "* removed bob from team".
func GroupKicked(group, user string) string {
	return "* removed " + oneLine(user) + " from " + oneLine(group)
}

// GroupRenamed: "* renamed group 3 to new name".
func GroupRenamed(g client.Group) string {
	return "* renamed group " + oneLine(g.ID) + " to " + oneLine(g.Name)
}

// GroupDissolved: "* dissolved group team (id 3)".
func GroupDissolved(group, gid string) string {
	return fmt.Sprintf("* dissolved group %s (id %s)", oneLine(group), oneLine(gid))
}

// GroupOwned: "* bob owns group team (3) now", the answer to :gowner; group
// is the group's label, user the new owner as typed.
func GroupOwned(group, gid, user string) string {
	return fmt.Sprintf("* %s owns group %s (%s) now", oneLine(user), oneLine(group), oneLine(gid))
}

// NotGroupMember: "! bob is not a member of group 3", the answer to the
// owner's :gowner naming someone outside the group.
func NotGroupMember(gid, user string) string {
	return "! " + oneLine(user) + " is not a member of group " + oneLine(gid)
}

// LeaveOwner: "! you own group 3: :gowner 3 <user> hands it to a member,
// :gdissolve 3 deletes it", the answer to the owner's :gleave.
func LeaveOwner(gid string) string {
	gid = oneLine(gid)
	return "! you own group " + gid + ": :gowner " + gid + " <user> hands it to a member, :gdissolve " + gid + " deletes it"
}

// GroupProblem explains why a group command failed:
//
//	! no such group: 3
//	! group 3 is full
//	! not a member of group 3                            :members, :g, :gleave…
//	! group 3 is closed: you need an invitation          :gjoin
//	! only the owner of group 3 may do that              :gkick, :grename, :gdissolve, :gowner
//	! not allowed to invite to group 3 (owner only, or members of an open group)
//	! no such user: bob                                  :gkick, :gowner, :ginvite of one user
//	! bad group name: use 1-64 printable characters      :gcreate, :grename
//	! <the error>                                        anything else
func GroupProblem(cmd Command, err error) string {
	gid := oneLine(cmd.Group)
	switch client.CodeOf(err) {
	case codes.NoGroup:
		return "! no such group: " + gid
	case codes.GroupFull:
		return "! group " + gid + " is full"
	case codes.Forbidden:
		switch cmd.Op {
		case OpGroupJoin:
			return "! group " + gid + " is closed: you need an invitation"
		case OpGroupKick, OpGroupRename, OpGroupDissolve, OpGroupOwner:
			return "! only the owner of group " + gid + " may do that"
		case OpGroupInvite:
			return "! not allowed to invite to group " + gid + " (owner only, or members of an open group)"
		}
		return "! not a member of group " + gid
	case codes.BadAccount:
		switch users := cmd.Users(); {
		case cmd.Op == OpGroupKick || cmd.Op == OpGroupOwner:
			return "! no such user: " + oneLine(cmd.To)
		case cmd.Op == OpGroupInvite && len(users) == 1:
			return "! no such user: " + oneLine(users[0])
		}
	case codes.BadArgument:
		if cmd.Op == OpGroupCreate || cmd.Op == OpGroupRename {
			return "! bad group name: use 1-64 printable characters"
		}
	}
	return Problem(err.Error())
}

func openMark(g client.Group) string {
	if g.Open {
		return ", open"
	}
	return ""
}

func members(n int) string {
	if n == 1 {
		return "1 member"
	}
	return fmt.Sprintf("%d members", n)
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
