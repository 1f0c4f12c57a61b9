package term

import (
	"fmt"
	"strings"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/proto/codes"
)

// The terminal rings no bell and notifies nothing, so a muted
// conversation's lines print as any other's: :mute is for the user's
// other apps, which read the same list.

// Muted answers a :mute; group is the group's label (GroupLabel):
//
//   - muted bob until 14:05
//   - muted bob until 2024-05-07 14:05                   another day
//   - muted group team (id 3) until unmuted
func Muted(m client.Mute, group string, loc *time.Location, now time.Time) string {
	return "* muted " + muteLabel(m, group, false) + " " + muteEnd(m.Until, loc, now)
}

// Unmuted answers an :unmute: "* unmuted bob", "* unmuted group team (id
// 3)".
func Unmuted(m client.Mute, group string) string {
	return "* unmuted " + muteLabel(m, group, false)
}

// MuteList answers :mutes, users first as the route lists them; groups
// names a group id's label (Printer.GroupName):
//
//   - muted: bob(2) until 14:05, group team (id 3) until unmuted
//   - nothing muted
func MuteList(ms []client.Mute, groups func(gid string) string, loc *time.Location, now time.Time) string {
	if len(ms) == 0 {
		return "* nothing muted"
	}
	parts := make([]string, len(ms))
	for i, m := range ms {
		group := ""
		if m.Group != "" {
			group = groups(m.Group)
		}
		parts[i] = muteLabel(m, group, true) + " " + muteEnd(m.Until, loc, now)
	}
	return "* muted: " + strings.Join(parts, ", ")
}

// muteLabel names a mute's conversation: "group team (id 3)", or the user
// ("bob", or with ids as :blocks lists them "bob(2)").
func muteLabel(m client.Mute, group string, ids bool) string {
	switch {
	case m.Group != "":
		return fmt.Sprintf("group %s (id %s)", oneLine(group), oneLine(m.Group))
	case ids && m.UserName != "":
		return fmt.Sprintf("%s(%s)", oneLine(m.UserName), oneLine(m.UserID))
	}
	return userLabel(m.UserName, m.UserID)
}

// muteEnd: "until 14:05" today (in loc), "until 2024-05-07 14:05" another
// day, "until unmuted" without an end.
func muteEnd(until time.Time, loc *time.Location, now time.Time) string {
	if until.IsZero() {
		return "until unmuted"
	}
	return "until " + dayTime(until, loc, now)
}

// MuteProblem formats the route's refusal of a :mute or :unmute:
//
//	! no such user: bob
//	! you cannot mute yourself
//	! not a member of group 3
//	! no such group: 3
//	! too many conversations muted (at most 1000): :unmute some first
//	! <the error>                                        anything else
func MuteProblem(cmd Command, err error) string {
	switch client.CodeOf(err) {
	case codes.BadAccount:
		if cmd.To != "" {
			return "! no such user: " + oneLine(cmd.To)
		}
	case codes.BadArgument:
		if cmd.To != "" {
			return "! you cannot mute yourself"
		}
	case codes.Forbidden:
		if cmd.Group != "" {
			return "! not a member of group " + oneLine(cmd.Group)
		}
	case codes.NoGroup:
		if cmd.Group != "" {
			return "! no such group: " + oneLine(cmd.Group)
		}
	case codes.QuotaExceeded:
		return fmt.Sprintf("! too many conversations muted (at most %d): :unmute some first", client.MaxMuted)
	}
	return Problem(err.Error())
}
