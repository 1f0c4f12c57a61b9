// Package term is the terminal chat's user interface without the terminal:
// the line syntax people type (Parse) and the one-line output formats the
// program prints (the format functions and Printer). The formats are stable;
// end-to-end tests parse them.
//
// Parse and the format functions are pure; a Printer is safe for concurrent
// use.
package term

import (
	"strconv"
	"strings"
	"unicode"
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
	OpHistory             // :his: To is the peer ("" for everyone), Text the keyword
	OpFile                // :file: To, Text is the path
	OpSave                // :save: N, Text is the path ("" for the file's name here)
)

// Command is one parsed input line.
type Command struct {
	Op   Op
	To   string
	Text string
	N    int
}

// Parse reads one input line:
//
//	bob;;hello          private message to bob (a user id or name), CIM's syntax
//	:p2p bob hello      the same
//	:olu                online users
//	:info               who am I, which gateway
//	:status             my recent messages and how far they got
//	:his [user] [word]  history with user ("*" or nothing: everyone), optionally only lines containing word
//	:file bob ./x.png   send a file
//	:save 3 [path]      save received file number 3
//	:all, :help         command list
//	:q                  quit (:q! and :quit too)
//	anything else       message to everybody online
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
		case ":q", ":q!", ":quit":
			return Command{Op: OpQuit}
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
