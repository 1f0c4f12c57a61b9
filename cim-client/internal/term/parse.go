// Package term is the terminal chat's user interface without the terminal:
// the line syntax people type (Parse) and the one-line output formats the
// program prints (the format functions and Printer). The formats are stable;
// end-to-end tests parse them.
//
// Parse and the format functions are pure; a Printer is safe for concurrent
// use.
package term

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gocim/gocim/cim-client/client"
)

// Op is what a typed line asks for.
type Op int

const (
	OpNone      Op = iota // empty line: nothing to do
	OpPrivate             // private message: To, Text
	OpBroadcast           // message to everybody online: Text
	OpOnline              // :olu
	OpInfo                // :info
	OpHelp                // :all, :help
	OpQuit                // :q
	OpInvalid             // a mistake; Text says what is wrong
	OpStatus              // :status
	OpHistory             // :his: To is the peer ("" for everyone), Text the keyword; :ghis: Group
	OpFile                // :file: To, Text is the path
	OpSave                // :save: N, Text is the path ("" for the file's name here)

	OpGroupSend     // :g: Group, Text (its "@name" words mention members: Mentions)
	OpGroups        // :groups
	OpGroupMembers  // :members: Group
	OpGroupCreate   // :gcreate: Text is the name, Open
	OpGroupJoin     // :gjoin: Group
	OpGroupInvite   // :ginvite: Group, Text the users separated by one space (Users)
	OpGroupLeave    // :gleave: Group
	OpGroupKick     // :gkick: Group, To
	OpGroupRename   // :grename: Group, Text is the new name
	OpGroupDissolve // :gdissolve: Group
	OpGroupOwner    // :gowner: Group, To the new owner

	OpPrefix // :pu: Text is the name prefix
	OpEmoji  // :emoji: N is the page (from 1)
	OpDelay  // :delay: N seconds, To, Text

	OpWatch  // :watch: Text is the users and g:<gid> groups separated by one space (Users)
	OpTyping // :typing: To (a user) or Group, Open when stopped (:typing- ...)

	OpRecall // :recall: N is which of my sent messages, 1 the last
	OpEdit   // :edit: Text is the new text of my last sent message
	OpDelete // :del: N is the line of the last :his / :ghis listing

	OpLogout // :logout

	OpBlock   // :block: To
	OpUnblock // :unblock: To
	OpBlocks  // :blocks

	OpReply // :reply: N is which incoming message, 1 the last; Text the answer

	OpReact // :react: N is which incoming message, 1 the last; Text the emoji ("" for :unreact: take mine back)

	OpMute   // :mute: To (a user) or Group, For (0: until :unmute)
	OpUnmute // :unmute: To or Group
	OpMutes  // :mutes
)

// MaxDelay is the longest :delay, in seconds (the route's bound: 7 days).
const MaxDelay = 7 * 24 * 3600

// Command is one parsed input line.
type Command struct {
	Op    Op
	To    string
	Text  string
	N     int
	Group string        // a group id
	Open  bool          // :gcreate of an open group
	For   time.Duration // :mute: how long (0: until :unmute)
}

// Users are the users of a :ginvite, and those of a :watch.
func (c Command) Users() []string {
	var out []string
	for _, w := range strings.Fields(c.Text) {
		if !strings.HasPrefix(w, "g:") {
			out = append(out, w)
		}
	}
	return out
}

// Groups are the g:<gid> groups of a :watch.
func (c Command) Groups() []string {
	var out []string
	for _, w := range strings.Fields(c.Text) {
		if gid, ok := strings.CutPrefix(w, "g:"); ok {
			out = append(out, gid)
		}
	}
	return out
}

// Parse reads one input line:
//
//	bob;;hello          private message to bob (a user id or name), CIM's syntax
//	:p2p bob hello      the same
//	:olu                online users
//	:info               who am I, which gateway
//	:status             my recent messages and how far they got
//	:his [user] [word]  history with user ("*" or nothing: everyone), optionally only lines containing word
//	:q <words>          history with everyone, only lines containing words (CIM's search)
//	:pu <prefix>        online users whose name starts with prefix
//	:emoji [page]       emoji and their :codes: (a message's :codes: become emoji)
//	:delay 60 bob;;hi   private message sent 60 s from now, kept on the server
//	:file bob ./x.png   send a file
//	:save 3 [path]      save received file number 3
//	:g 3 hello @bob     message to group 3; each "@name" mentions that member (at most 50)
//	:groups             my groups
//	:members 3          members of group 3
//	:ghis 3 [word]      history of group 3, optionally only lines containing word
//	:gcreate team [open] create a group; a last word "open" makes it open
//	:gjoin 3            join group 3
//	:ginvite 3 bob 5    invite users (ids or names) to group 3
//	:gleave 3           leave group 3
//	:gkick 3 bob        remove bob from group 3
//	:grename 3 new name rename group 3
//	:gdissolve 3        delete group 3
//	:gowner 3 bob       hand group 3 to bob, a member
//	:watch bob g:3      presence of bob and of group 3's members (replaces the last :watch; none: stop)
//	:typing bob         tell bob I am typing (:typing g:3 in group 3; :typing- stopped)
//	:recall [N]         take back my N-th most recent message (1, the default: the last)
//	:edit new text      replace the text of my last message
//	:del 3              delete line 3 of the last :his / :ghis listing from my history
//	:reply [N] text     answer my N-th most recent incoming message (1, the default: the last), quoting it;
//	                    a first word that is a number is N: ":reply 1 3 apples" answers the last with "3 apples";
//	                    in a group its "@name" words mention members, as :g's do (checked when sent)
//	:react [N] 👍       react to my N-th most recent incoming message (1, the default: the last) with an
//	                    emoji, or a :code: of the :emoji table (:react 2 :thumbsup:); one word
//	:unreact [N]        take my reaction to it back
//	:block bob          get no more messages from bob (a user id or name); writing to bob is refused until :unblock
//	:unblock bob        undo :block bob
//	:blocks             the users I blocked
//	:mute bob [2h]      mute the conversation with bob (:mute g:3 in group 3) for 30m, 2h, 1d… (Go's
//	                    durations, and d for days: 1s to 366d) or, without one, until :unmute
//	:unmute bob         undo :mute bob (:unmute g:3)
//	:mutes              the conversations I muted
//	:all, :help         command list
//	:q                  quit (:q! and :quit too; :q with words searches history)
//	:logout             log off and quit (with --remember, :q keeps the login)
//	anything else       message to everybody online
//
// Group ids are decimal numbers, as the route hands them out; group names
// may contain spaces.
//
// A line that looks like an unknown command (":" and a lower-case word) is
// OpInvalid rather than a broadcast, so a typo is not sent to everyone;
// smileys like ":)" or ":D" are still messages.
func Parse(line string) Command {
	line = strings.TrimSpace(line)
	if line == "" {
		return Command{Op: OpNone}
	}
	if strings.HasPrefix(line, ":") {
		word, rest := cutSpace(line)
		switch word {
		case ":q":
			if rest != "" { // CIM: ":q <keyword>" searches the history
				return Command{Op: OpHistory, Text: rest}
			}
			return Command{Op: OpQuit}
		case ":q!", ":quit":
			return Command{Op: OpQuit}
		case ":logout":
			if rest != "" {
				return Command{Op: OpInvalid, Text: "usage: :logout"}
			}
			return Command{Op: OpLogout}
		case ":pu":
			if rest == "" || strings.ContainsFunc(rest, unicode.IsSpace) {
				return Command{Op: OpInvalid, Text: "usage: :pu <name prefix>"}
			}
			return Command{Op: OpPrefix, Text: rest}
		case ":emoji":
			page := 1
			if rest != "" {
				n, err := strconv.Atoi(rest)
				if err != nil || n <= 0 {
					return Command{Op: OpInvalid, Text: "usage: :emoji [page]"}
				}
				page = n
			}
			return Command{Op: OpEmoji, N: page}
		case ":delay":
			return parseDelay(rest)
		case ":olu":
			return Command{Op: OpOnline}
		case ":info":
			return Command{Op: OpInfo}
		case ":all", ":help":
			return Command{Op: OpHelp}
		case ":status":
			return Command{Op: OpStatus}
		case ":his", ":history":
			peer, kw := cutSpace(rest)
			if peer == "*" {
				peer = ""
			}
			return Command{Op: OpHistory, To: peer, Text: kw}
		case ":file":
			to, path := cutSpace(rest)
			if to == "" || path == "" {
				return Command{Op: OpInvalid, Text: "usage: :file <user> <path>"}
			}
			return Command{Op: OpFile, To: to, Text: path}
		case ":save":
			num, path := cutSpace(rest)
			n, err := strconv.Atoi(num)
			if err != nil || n <= 0 {
				return Command{Op: OpInvalid, Text: "usage: :save <N> [path]"}
			}
			return Command{Op: OpSave, N: n, Text: path}
		case ":p2p":
			to, text := cutSpace(rest)
			if to == "" || text == "" {
				return Command{Op: OpInvalid, Text: "usage: :p2p <user> <text>"}
			}
			return Command{Op: OpPrivate, To: to, Text: text}
		case ":groups":
			return Command{Op: OpGroups}
		case ":recall":
			n := 1
			if rest != "" {
				if n = positive(rest); n == 0 {
					return Command{Op: OpInvalid, Text: "usage: :recall [N] (1: my last message)"}
				}
			}
			return Command{Op: OpRecall, N: n}
		case ":edit":
			if rest == "" {
				return Command{Op: OpInvalid, Text: "usage: :edit <new text> (replaces my last message)"}
			}
			return Command{Op: OpEdit, Text: rest}
		case ":reply":
			return parseReply(rest)
		case ":react", ":unreact":
			return parseReact(word, rest)
		case ":del":
			n := positive(rest)
			if n == 0 {
				return Command{Op: OpInvalid, Text: "usage: :del <N> (line N of the last :his or :ghis)"}
			}
			return Command{Op: OpDelete, N: n}
		case ":block", ":unblock":
			if rest == "" || strings.ContainsFunc(rest, unicode.IsSpace) {
				return Command{Op: OpInvalid, Text: "usage: " + word + " <user>"}
			}
			if word == ":block" {
				return Command{Op: OpBlock, To: rest}
			}
			return Command{Op: OpUnblock, To: rest}
		case ":blocks":
			if rest != "" {
				return Command{Op: OpInvalid, Text: "usage: :blocks"}
			}
			return Command{Op: OpBlocks}
		case ":mute", ":unmute":
			return parseMute(word, rest)
		case ":mutes":
			if rest != "" {
				return Command{Op: OpInvalid, Text: "usage: :mutes"}
			}
			return Command{Op: OpMutes}
		case ":watch":
			return Command{Op: OpWatch, Text: strings.Join(strings.Fields(rest), " ")}
		case ":typing", ":typing-":
			target, more := cutSpace(rest)
			if target == "" || more != "" {
				return Command{Op: OpInvalid, Text: "usage: " + word + " <user>|g:<gid>"}
			}
			c := Command{Op: OpTyping, Open: word == ":typing-"}
			if gid, ok := strings.CutPrefix(target, "g:"); ok {
				if !isGroupID(gid) {
					return Command{Op: OpInvalid, Text: "usage: " + word + " <user>|g:<gid>"}
				}
				c.Group = gid
			} else {
				c.To = target
			}
			return c
		case ":g", ":gcreate", ":gjoin", ":ginvite", ":gleave", ":gkick", ":grename", ":gdissolve", ":gowner", ":members", ":ghis":
			return parseGroup(word, rest)
		}
		if isCommandWord(word[1:]) {
			return Command{Op: OpInvalid, Text: "unknown command " + word + " (try :help)"}
		}
	}
	if to, text, ok := strings.Cut(line, ";;"); ok {
		to, text = strings.TrimSpace(to), strings.TrimSpace(text)
		// A recipient is one word; "see you;;later" is just a message.
		if to != "" && !strings.ContainsFunc(to, unicode.IsSpace) {
			if text == "" {
				return Command{Op: OpInvalid, Text: "usage: <user>;;<text>"}
			}
			return Command{Op: OpPrivate, To: to, Text: text}
		}
	}
	return Command{Op: OpBroadcast, Text: line}
}

// parseDelay reads ":delay <seconds> <user>;;<text>".
func parseDelay(rest string) Command {
	const usage = "usage: :delay <seconds> <user>;;<text>"
	secs, msg := cutSpace(rest)
	n, err := strconv.Atoi(secs)
	if err != nil || n < 1 || n > MaxDelay {
		return Command{Op: OpInvalid, Text: fmt.Sprintf("%s (seconds: 1 to %d)", usage, MaxDelay)}
	}
	to, text, ok := strings.Cut(msg, ";;")
	to, text = strings.TrimSpace(to), strings.TrimSpace(text)
	if !ok || to == "" || text == "" || strings.ContainsFunc(to, unicode.IsSpace) {
		return Command{Op: OpInvalid, Text: usage}
	}
	return Command{Op: OpDelay, N: n, To: to, Text: text}
}

// muteUsage is the syntax of :mute and :unmute.
var muteUsage = map[string]string{
	":mute":   "usage: :mute <user>|g:<gid> [duration] (30m, 2h, 1d: 1s to 366d; none: until :unmute)",
	":unmute": "usage: :unmute <user>|g:<gid>",
}

// parseMute reads ":mute <user>|g:<gid> [duration]" and ":unmute
// <user>|g:<gid>".
func parseMute(word, rest string) Command {
	bad := Command{Op: OpInvalid, Text: muteUsage[word]}
	target, more := cutSpace(rest)
	if target == "" || strings.ContainsFunc(more, unicode.IsSpace) || (more != "" && word == ":unmute") {
		return bad
	}
	c := Command{Op: OpUnmute}
	if word == ":mute" {
		c.Op = OpMute
		if more != "" {
			d, ok := ParseMuteFor(more)
			if !ok {
				return bad
			}
			c.For = d
		}
	}
	if gid, ok := strings.CutPrefix(target, "g:"); ok {
		if !isGroupID(gid) {
			return bad
		}
		c.Group = gid
	} else {
		c.To = target
	}
	return c
}

// ParseMuteFor reads how long a :mute lasts: a Go duration ("30m",
// "1h30m", "90s") with days too ("1d", "1d12h"; a day is 24 hours), from
// 1s to client.MaxMuteFor (366d).
func ParseMuteFor(s string) (time.Duration, bool) {
	var d time.Duration
	if days, more, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || days[0] == '+' || n > int(client.MaxMuteFor/(24*time.Hour)) {
			return 0, false
		}
		d, s = time.Duration(n)*24*time.Hour, more
	}
	if s != "" {
		rest, err := time.ParseDuration(s)
		if err != nil || rest < 0 || s[0] == '+' || s[0] == '-' {
			return 0, false
		}
		d += rest
	}
	if d < time.Second || d > client.MaxMuteFor {
		return 0, false
	}
	return d, true
}

// replyUsage is the syntax of :reply.
const replyUsage = "usage: :reply [N] <text> (N: my N-th most recent incoming message, 1 the last)"

// parseReply reads ":reply [N] <text>": a first word that is an integer is
// N, so "3 apples" to the last message is ":reply 1 3 apples".
func parseReply(rest string) Command {
	first, text := cutSpace(rest)
	n, err := strconv.Atoi(first)
	switch {
	case err != nil:
		n, text = 1, rest
	case n < 1:
		return Command{Op: OpInvalid, Text: replyUsage}
	}
	if text == "" {
		return Command{Op: OpInvalid, Text: replyUsage}
	}
	return Command{Op: OpReply, N: n, Text: text}
}

// groupUsage is the syntax of each group command.
var groupUsage = map[string]string{
	":g":         "usage: :g <gid> <text>",
	":gcreate":   "usage: :gcreate <name> [open]",
	":gjoin":     "usage: :gjoin <gid>",
	":ginvite":   "usage: :ginvite <gid> <user>...",
	":gleave":    "usage: :gleave <gid>",
	":gkick":     "usage: :gkick <gid> <user>",
	":grename":   "usage: :grename <gid> <name>",
	":gdissolve": "usage: :gdissolve <gid>",
	":gowner":    "usage: :gowner <gid> <user>",
	":members":   "usage: :members <gid>",
	":ghis":      "usage: :ghis <gid> [word]",
}

// groupIDOnly are the group commands that take the group id alone.
var groupIDOnly = map[string]Op{":gjoin": OpGroupJoin, ":gleave": OpGroupLeave, ":gdissolve": OpGroupDissolve, ":members": OpGroupMembers}

// parseGroup reads the arguments of a group command word.
func parseGroup(word, rest string) Command {
	bad := Command{Op: OpInvalid, Text: groupUsage[word]}
	if word == ":gcreate" {
		name, open := rest, false
		if i := strings.LastIndexFunc(rest, unicode.IsSpace); i >= 0 && rest[i+1:] == "open" {
			name, open = strings.TrimSpace(rest[:i]), true
		}
		if name == "" {
			return bad
		}
		return Command{Op: OpGroupCreate, Text: name, Open: open}
	}
	gid, arg := cutSpace(rest)
	if !isGroupID(gid) {
		if gid != "" {
			bad.Text += " (a group id is a number: see :groups)"
		}
		return bad
	}
	if word == ":ghis" {
		return Command{Op: OpHistory, Group: gid, Text: arg}
	}
	if op, ok := groupIDOnly[word]; ok {
		if arg != "" {
			return bad
		}
		return Command{Op: op, Group: gid}
	}
	if arg == "" {
		return bad
	}
	switch word {
	case ":g":
		if n := len(Mentions(arg)); n > client.MaxMentions {
			return Command{Op: OpInvalid, Text: tooManyMentions(n)}
		}
		return Command{Op: OpGroupSend, Group: gid, Text: arg}
	case ":ginvite":
		return Command{Op: OpGroupInvite, Group: gid, Text: strings.Join(strings.Fields(arg), " ")}
	case ":gkick", ":gowner":
		if strings.ContainsFunc(arg, unicode.IsSpace) {
			return bad
		}
		if word == ":gowner" {
			return Command{Op: OpGroupOwner, Group: gid, To: arg}
		}
		return Command{Op: OpGroupKick, Group: gid, To: arg}
	}
	return Command{Op: OpGroupRename, Group: gid, Text: arg} // :grename
}

// positive reads a number from 1 up; 0 when s is anything else.
func positive(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0
	}
	return n
}

// isGroupID: group ids are decimal strings.
func isGroupID(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// cutSpace splits s at its first run of white space.
func cutSpace(s string) (head, tail string) {
	i := strings.IndexFunc(s, unicode.IsSpace)
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}

func isCommandWord(w string) bool {
	if w == "" || w[0] < 'a' || w[0] > 'z' {
		return false
	}
	for _, r := range w {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}
