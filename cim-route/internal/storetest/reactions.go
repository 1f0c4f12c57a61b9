package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/model"
)

// Reactions: one reaction per user and message, replaced or taken back;
// counts in the order the emoji first came; the viewer's own; kept per
// conversation; bounded per message (kinds) and per user and
// conversation (share, oldest message first).
func Reactions(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{TTL: time.Hour}), ctxT(t)
	now := time.Now().UnixMilli()
	m1, m2 := msgID(now-2000, 1), msgID(now-1000, 2)
	p := model.PairConversation("1", "2")
	if p != model.PairConversation("2", "1") {
		t.Fatalf("a pair's conversation depends on the order: %q, %q", p, model.PairConversation("2", "1"))
	}
	g := model.GroupConversation("7")
	revs := 0
	// react records rs, each without a RevID as the newest reaction yet.
	react := func(rs ...model.Reaction) []bool {
		t.Helper()
		for i := range rs {
			if rs[i].RevID == "" {
				revs++
				rs[i].RevID = msgID(now, 10000+revs)
			}
		}
		ok, err := s.React(ctx, rs)
		if err != nil {
			t.Fatal(err)
		}
		if len(ok) != len(rs) {
			t.Fatalf("React answered %d for %d reactions", len(ok), len(rs))
		}
		return ok
	}
	read := func(viewer string, refs ...model.ReactionRef) []string {
		t.Helper()
		got, err := s.ReactionsOf(ctx, viewer, refs)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(refs) {
			t.Fatalf("ReactionsOf answered %d for %d refs", len(got), len(refs))
		}
		out := make([]string, len(got))
		for i, r := range got {
			for _, c := range r.Counts {
				out[i] += fmt.Sprintf("%s%d ", c.Emoji, c.Count)
			}
			out[i] += "mine:" + r.Mine
		}
		return out
	}
	want := func(got []string, w ...string) {
		t.Helper()
		if !slices.Equal(got, w) {
			t.Fatalf("reactions %q, want %q", got, w)
		}
	}

	want(read("1", model.ReactionRef{Conv: p, MsgID: m1}), "mine:")
	react(model.Reaction{Conv: p, MsgID: m1, User: "1", Emoji: "👍"}, model.Reaction{Conv: p, MsgID: m1, User: "2", Emoji: "❤️"})
	first := msgID(now, 10000+revs)
	react(model.Reaction{Conv: p, MsgID: m1, User: "2", Emoji: "❤️", RevID: first}) // a resend: no change
	want(read("1", model.ReactionRef{Conv: p, MsgID: m1}, model.ReactionRef{Conv: p, MsgID: m2}, model.ReactionRef{Conv: g, MsgID: m1}),
		"👍1 ❤️1 mine:👍", "mine:", "mine:")
	want(read("2", model.ReactionRef{Conv: p, MsgID: m1}), "👍1 ❤️1 mine:❤️")
	want(read("", model.ReactionRef{Conv: p, MsgID: m1}), "👍1 ❤️1 mine:")

	// A user's new reaction replaces its old one; an empty one takes it
	// back; the emoji keep the order they first came in.
	react(model.Reaction{Conv: p, MsgID: m1, User: "1", Emoji: "❤️"})
	want(read("1", model.ReactionRef{Conv: p, MsgID: m1}), "❤️2 mine:❤️")
	react(model.Reaction{Conv: p, MsgID: m1, User: "2", Emoji: ""}, model.Reaction{Conv: p, MsgID: m1, User: "2", Emoji: "😂"},
		model.Reaction{Conv: p, MsgID: m1, User: "1", Emoji: ""})
	want(read("2", model.ReactionRef{Conv: p, MsgID: m1}), "😂1 mine:😂")
	// A resend of an older reaction (its first attempt's RevID) changes
	// nothing, taken back or not.
	react(model.Reaction{Conv: p, MsgID: m1, User: "2", Emoji: "❤️", RevID: first}, model.Reaction{Conv: p, MsgID: m1, User: "1", Emoji: "👍", RevID: msgID(now, 9999)})
	want(read("2", model.ReactionRef{Conv: p, MsgID: m1}), "😂1 mine:😂")
	react(model.Reaction{Conv: p, MsgID: m1, User: "1", Emoji: ""}) // nothing to take back
	want(read("1", model.ReactionRef{Conv: p, MsgID: m1}), "😂1 mine:")

	// Another conversation's reactions to the same id stay there.
	react(model.Reaction{Conv: g, MsgID: m1, User: "3", Emoji: "🙏"})
	want(read("3", model.ReactionRef{Conv: p, MsgID: m1}, model.ReactionRef{Conv: g, MsgID: m1}), "😂1 mine:", "🙏1 mine:🙏")

	// Kinds: a new emoji beyond model.ReactionKinds is refused; a known
	// one is not.
	var rs []model.Reaction
	for i := range model.ReactionKinds - 1 {
		rs = append(rs, model.Reaction{Conv: g, MsgID: m2, User: fmt.Sprint(100 + i), Emoji: fmt.Sprintf("e%d", i)})
	}
	rs = append(rs, model.Reaction{Conv: g, MsgID: m2, User: "3", Emoji: "🙏"})
	if ok := react(rs...); slices.Contains(ok, false) {
		t.Fatalf("%d kinds refused: %v", len(rs), ok)
	}
	if ok := react(model.Reaction{Conv: g, MsgID: m2, User: "4", Emoji: "new"}, model.Reaction{Conv: g, MsgID: m2, User: "5", Emoji: "🙏"}); !slices.Equal(ok, []bool{false, true}) {
		t.Fatalf("a kind beyond %d, then a known one: %v, want [false true]", model.ReactionKinds, ok)
	}
	got := read("5", model.ReactionRef{Conv: g, MsgID: m2})[0]
	if want := "🙏2 mine:🙏"; got[len(got)-len(want):] != want {
		t.Fatalf("reactions %q, want them to end %q", got, want)
	}

	// Share: a user's reaction to one message more than model.ReactionShare
	// drops its reaction to its oldest message there, and only its own.
	rs = rs[:0]
	ids := make([]string, model.ReactionShare+1)
	for i := range ids {
		ids[i] = msgID(now-500, 1000+i)
		rs = append(rs, model.Reaction{Conv: p, MsgID: ids[i], User: "1", Emoji: "👍"})
	}
	react(model.Reaction{Conv: p, MsgID: ids[0], User: "2", Emoji: "👍"})
	react(rs[:model.ReactionShare]...)
	want(read("1", model.ReactionRef{Conv: p, MsgID: ids[0]}), "👍2 mine:👍")
	react(rs[model.ReactionShare])
	want(read("1", model.ReactionRef{Conv: p, MsgID: ids[0]}, model.ReactionRef{Conv: p, MsgID: ids[1]}, model.ReactionRef{Conv: p, MsgID: ids[model.ReactionShare]}),
		"👍1 mine:", "👍1 mine:👍", "👍1 mine:👍")
	want(read("2", model.ReactionRef{Conv: p, MsgID: ids[0]}, model.ReactionRef{Conv: p, MsgID: m1}), "👍1 mine:👍", "😂1 mine:😂")
}
