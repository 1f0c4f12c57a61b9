package term

import (
	"fmt"
	"strings"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/proto/codes"
)

// Blocked answers a :block: "* blocked bob: you will not get their
// messages".
func Blocked(u client.User) string {
	return "* blocked " + userLabel(u.UserName, u.UserID) + ": you will not get their messages"
}

// Unblocked answers an :unblock: "* unblocked bob".
func Unblocked(u client.User) string {
	return "* unblocked " + userLabel(u.UserName, u.UserID)
}

// BlockList answers :blocks: "* blocked: bob(2), carol(3)", or "* nobody
// blocked".
func BlockList(users []client.User) string {
	if len(users) == 0 {
		return "* nobody blocked"
	}
	parts := make([]string, len(users))
	for i, u := range users {
		parts[i] = fmt.Sprintf("%s(%s)", oneLine(u.UserName), oneLine(u.UserID))
	}
	return "* blocked: " + strings.Join(parts, ", ")
}

// BlockProblem formats the route's refusal of a :block or :unblock:
//
//	! no such user: bob
//	! you cannot block yourself
//	! too many users blocked (at most 1000): :unblock some first
//	! <the error>                                        anything else
func BlockProblem(cmd Command, err error) string {
	switch client.CodeOf(err) {
	case codes.BadAccount:
		return "! no such user: " + oneLine(cmd.To)
	case codes.BadArgument:
		if cmd.Op == OpBlock {
			return "! you cannot block yourself"
		}
	case codes.QuotaExceeded:
		return fmt.Sprintf("! too many users blocked (at most %d): :unblock some first", client.MaxBlocked)
	}
	return Problem(err.Error())
}
