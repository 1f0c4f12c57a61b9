package term

import (
	"strings"
	"testing"

	"github.com/gocim/gocim/cim-client/client"
)

func TestEmojify(t *testing.T) {
	for in, want := range map[string]string{
		"hi :smile:":                 "hi 😄",
		":thumbsup::tada: done":      "👍🎉 done",
		"ratio 3:2 at 10:30":         "ratio 3:2 at 10:30",
		":nosuch: and :fire:":        ":nosuch: and 🔥",
		"::":                         "::",
		"half :smile":                "half :smile",
		"time 10:smile: and :smile:": "time 10😄 and 😄",
	} {
		if got := Emojify(in); got != want {
			t.Errorf("Emojify(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEmojiList(t *testing.T) {
	first := EmojiList(1)
	if len(first) != emojiPage+1 || !strings.Contains(first[0], "😄") || !strings.Contains(first[0], ":smile:") ||
		!strings.Contains(first[len(first)-1], ":emoji 2") {
		t.Fatalf("page 1: %q", first)
	}
	pages := (len(emoji) + emojiPage - 1) / emojiPage
	last := EmojiList(pages)
	if strings.Contains(last[len(last)-1], "for more") {
		t.Fatalf("last page offers more: %q", last)
	}
	if got := EmojiList(pages + 1); len(got) != 1 || !strings.HasPrefix(got[0], "!") {
		t.Fatalf("page past the end: %q", got)
	}
	for _, e := range emoji { // every code round-trips through Emojify
		if Emojify(":"+e.code+":") != e.char {
			t.Errorf("code %s does not become %s", e.code, e.char)
		}
	}
}

func TestOnlineWithPrefix(t *testing.T) {
	users := []client.User{{UserID: "1", UserName: "alice"}, {UserID: "2", UserName: "Albert"}, {UserID: "3", UserName: "bob"}}
	if got := OnlineWithPrefix(users, "al"); got != `* online, name starting with "al": alice(1), Albert(2)` {
		t.Fatalf("got %q", got)
	}
	if got := OnlineWithPrefix(users, "zed"); got != `* online, name starting with "zed": nobody` {
		t.Fatalf("got %q", got)
	}
}
