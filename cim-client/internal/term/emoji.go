package term

import (
	"fmt"
	"strings"
	"time"

	"github.com/gocim/gocim/cim-client/client"
)

// emoji are the short codes a message may contain, like CIM's :emoji list:
// ":smile:" in a line typed becomes 😄 in the message sent.
var emoji = []struct{ code, char string }{
	{"smile", "😄"}, {"laughing", "😆"}, {"joy", "😂"}, {"wink", "😉"}, {"blush", "😊"},
	{"heart_eyes", "😍"}, {"kissing_heart", "😘"}, {"thinking", "🤔"}, {"neutral_face", "😐"}, {"sweat_smile", "😅"},
	{"cry", "😢"}, {"sob", "😭"}, {"angry", "😠"}, {"scream", "😱"}, {"sunglasses", "😎"},
	{"sleeping", "😴"}, {"innocent", "😇"}, {"upside_down", "🙃"}, {"rofl", "🤣"}, {"hugs", "🤗"},
	{"thumbsup", "👍"}, {"thumbsdown", "👎"}, {"clap", "👏"}, {"pray", "🙏"}, {"ok_hand", "👌"},
	{"wave", "👋"}, {"muscle", "💪"}, {"eyes", "👀"}, {"raised_hands", "🙌"}, {"point_up", "☝️"},
	{"heart", "❤️"}, {"broken_heart", "💔"}, {"fire", "🔥"}, {"star", "⭐"}, {"sparkles", "✨"},
	{"tada", "🎉"}, {"rocket", "🚀"}, {"coffee", "☕"}, {"beer", "🍺"}, {"cake", "🎂"},
	{"sun", "☀️"}, {"rain", "🌧️"}, {"snowflake", "❄️"}, {"zap", "⚡"}, {"rainbow", "🌈"},
	{"dog", "🐶"}, {"cat", "🐱"}, {"100", "💯"}, {"check", "✅"}, {"x", "❌"},
}

// emojiPage is how many emoji one :emoji page lists.
const emojiPage = 10

var emojiOf = func() map[string]string {
	m := make(map[string]string, len(emoji))
	for _, e := range emoji {
		m[e.code] = e.char
	}
	return m
}()

// Emojify replaces the known ":code:"s in text with their emoji; anything
// else between colons stays as typed.
func Emojify(text string) string {
	if strings.Count(text, ":") < 2 {
		return text
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(text, ':')
		if i < 0 {
			break
		}
		j := strings.IndexByte(text[i+1:], ':')
		if j < 0 {
			break
		}
		if e, ok := emojiOf[text[i+1:i+1+j]]; ok {
			b.WriteString(text[:i])
			b.WriteString(e)
			text = text[i+2+j:]
			continue
		}
		b.WriteString(text[:i+1])
		text = text[i+1:]
	}
	b.WriteString(text)
	return b.String()
}

// EmojiList is page n (from 1) of the emoji table, one line per emoji,
// with a last line saying how to see the next page.
func EmojiList(page int) []string {
	pages := (len(emoji) + emojiPage - 1) / emojiPage
	if page < 1 || page > pages {
		return []string{Problem(fmt.Sprintf("no emoji page %d (1 to %d)", page, pages))}
	}
	var out []string
	for _, e := range emoji[(page-1)*emojiPage : min(page*emojiPage, len(emoji))] {
		out = append(out, fmt.Sprintf("*   %s  :%s:", e.char, e.code))
	}
	more := fmt.Sprintf("* emoji page %d of %d", page, pages)
	if page < pages {
		more += fmt.Sprintf(" (:emoji %d for more)", page+1)
	}
	return append(out, more)
}

// OnlineWithPrefix is :pu's line: the online users whose name starts with
// prefix, ignoring case.
func OnlineWithPrefix(users []client.User, prefix string) string {
	var match []client.User
	for _, u := range users {
		if len(u.UserName) >= len(prefix) && strings.EqualFold(u.UserName[:len(prefix)], prefix) {
			match = append(match, u)
		}
	}
	if len(match) == 0 {
		return fmt.Sprintf("* online, name starting with %q: nobody", prefix)
	}
	return strings.Replace(Online(match), "* online:", fmt.Sprintf("* online, name starting with %q:", prefix), 1)
}

// Delayed: "* message to bob scheduled for 15:04:05 (kept on the server)".
func Delayed(to string, due time.Time) string {
	return fmt.Sprintf("* message to %s scheduled for %s (kept on the server)", oneLine(to), due.Local().Format("2006-01-02 15:04:05"))
}
