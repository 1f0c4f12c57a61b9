package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// msgID is a msgId of the route's form made at ms, told apart by n.
func msgID(ms int64, n int) string { return fmt.Sprintf("%012x%020x", ms, n) }

// Revisions: a recall is final, the latest edit wins, each sender's
// revisions are its own, and they are bounded by the inbox limits.
func Revisions(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{MaxLen: 3, TTL: time.Hour}), ctxT(t)
	now := time.Now().UnixMilli()
	m1, m2 := msgID(now-2000, 1), msgID(now-1000, 2)
	edit := func(sender, id string, rev int, text string) model.Revision {
		return model.Revision{Sender: sender, MsgID: id, RevID: msgID(now, rev), Text: []byte(text)}
	}
	recall := func(sender, id string, rev int) model.Revision {
		return model.Revision{Sender: sender, MsgID: id, RevID: msgID(now, rev), Recall: true}
	}
	read := func(refs ...model.MsgRef) []model.Revision {
		t.Helper()
		revs, deleted, err := s.RevisionsOf(ctx, "", refs)
		if err != nil {
			t.Fatal(err)
		}
		if len(revs) != len(refs) || deleted != nil {
			t.Fatalf("RevisionsOf answered %d revisions for %d refs, deleted %v", len(revs), len(refs), deleted)
		}
		return revs
	}
	revise := func(rs ...model.Revision) {
		t.Helper()
		if err := s.Revise(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}

	if got := read(model.MsgRef{Sender: "1", MsgID: m1}); got[0].Exists() {
		t.Fatalf("a revision before any: %+v", got[0])
	}
	// Edits in one call and in two: the largest RevID wins, in any order.
	revise(edit("1", m1, 11, "second"), edit("1", m1, 10, "first"))
	revise(edit("1", m1, 9, "older"))
	got := read(model.MsgRef{Sender: "1", MsgID: m1}, model.MsgRef{Sender: "2", MsgID: m1})
	if r := got[0]; r.Recall || string(r.Text) != "second" || r.RevID != msgID(now, 11) || r.Sender != "1" || r.MsgID != m1 {
		t.Fatalf("after edits: %+v", r)
	}
	if got[1].Exists() {
		t.Fatalf("another sender's message with the same id was revised: %+v", got[1])
	}
	// A recall replaces the edit; nothing replaces the recall.
	revise(recall("1", m1, 12))
	revise(edit("1", m1, 13, "after the recall"), recall("1", m1, 14))
	if r := read(model.MsgRef{Sender: "1", MsgID: m1})[0]; !r.Recall || len(r.Text) != 0 || r.RevID != msgID(now, 12) {
		t.Fatalf("after the recall: %+v", r)
	}
	// Text is kept byte for byte, separators included.
	revise(edit("2", m2, 20, "a|b|c\x00d"))
	if r := read(model.MsgRef{Sender: "2", MsgID: m2})[0]; string(r.Text) != "a|b|c\x00d" {
		t.Fatalf("edit text = %q", r.Text)
	}

	// At most MaxLen (3) per sender: the oldest messages' revisions go.
	ids := []string{msgID(now-500, 3), msgID(now-400, 4), msgID(now-300, 5)}
	for i, id := range ids {
		revise(edit("1", id, 30+i, "x"))
	}
	refs := []model.MsgRef{{Sender: "1", MsgID: m1}}
	for _, id := range ids {
		refs = append(refs, model.MsgRef{Sender: "1", MsgID: id})
	}
	got = read(refs...)
	if got[0].Exists() || !got[1].Exists() || !got[2].Exists() || !got[3].Exists() {
		t.Fatalf("over the bound, kept %v, want the three newest", exist(got))
	}
	if r := read(model.MsgRef{Sender: "2", MsgID: m2})[0]; !r.Exists() {
		t.Fatal("one sender's bound trimmed another's revisions")
	}
	// A message older than the inbox TTL keeps no revision.
	old := msgID(now-2*time.Hour.Milliseconds(), 6)
	revise(edit("3", old, 40, "too old"))
	if r := read(model.MsgRef{Sender: "3", MsgID: old})[0]; r.Exists() {
		t.Fatalf("a revision of a message older than the inbox TTL: %+v", r)
	}
}

func exist(rs []model.Revision) []bool {
	out := make([]bool, len(rs))
	for i, r := range rs {
		out[i] = r.Exists()
	}
	return out
}

// DeletedFromHistory: deletions are the deleter's own, idempotent, and
// bounded by the inbox length (all or nothing); ids older than the inbox
// TTL are not kept.
func DeletedFromHistory(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{MaxLen: 3, TTL: time.Hour}), ctxT(t)
	now := time.Now().UnixMilli()
	a, b, c, d := msgID(now, 1), msgID(now, 2), msgID(now, 3), msgID(now, 4)
	old := msgID(now-2*time.Hour.Milliseconds(), 5)
	deleted := func(viewer string, ids ...string) []bool {
		t.Helper()
		refs := make([]model.MsgRef, len(ids))
		for i, id := range ids {
			refs[i] = model.MsgRef{Sender: "9", MsgID: id}
		}
		revs, del, err := s.RevisionsOf(ctx, viewer, refs)
		if err != nil {
			t.Fatal(err)
		}
		if len(revs) != len(ids) || len(del) != len(ids) {
			t.Fatalf("RevisionsOf answered %d revisions, %d deletions for %d refs", len(revs), len(del), len(ids))
		}
		return del
	}
	if err := s.DeleteFromHistory(ctx, "1", []string{a, b, a, old}); err != nil {
		t.Fatal(err)
	}
	if got := deleted("1", a, b, c, old); !slices.Equal(got, []bool{true, true, false, false}) {
		t.Fatalf("deleted for the deleter = %v", got)
	}
	if got := deleted("2", a, b); !slices.Equal(got, []bool{false, false}) {
		t.Fatalf("deleted for another user = %v", got)
	}
	// Again: nothing new, no error; one more fits, two more do not.
	if err := s.DeleteFromHistory(ctx, "1", []string{b, a}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteFromHistory(ctx, "1", []string{c, d}); !errors.Is(err, errs.ErrQuotaExceeded) {
		t.Fatalf("deleting past the bound: %v", err)
	}
	if got := deleted("1", c, d); !slices.Equal(got, []bool{false, false}) {
		t.Fatalf("a refused deletion kept %v", got)
	}
	if err := s.DeleteFromHistory(ctx, "1", []string{c}); err != nil {
		t.Fatal(err)
	}
	if got := deleted("1", a, b, c); !slices.Equal(got, []bool{true, true, true}) {
		t.Fatalf("deleted = %v", got)
	}
}
