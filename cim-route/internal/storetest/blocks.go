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

// Blocks: a user's list (id order, bounded, idempotent), both directions
// as BlockBetween reads them, and the append of a private message (From)
// refused either way with nothing stored and no seq taken — alone, in a
// run with others, with a dedup key and without a share — while other
// entries, other senders and resends of what was stored before pass.
func Blocks(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{MaxLen: 100, PerSender: 50}), ctxT(t)
	now := time.Now().UnixMilli()

	if err := s.Block(ctx, "1", "10", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Block(ctx, "1", "9", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Block(ctx, "1", "9", 2); err != nil {
		t.Fatalf("blocking again at the bound: %v", err)
	}
	if err := s.Block(ctx, "1", "11", 2); !errors.Is(err, errs.ErrQuotaExceeded) {
		t.Fatalf("a third block with a bound of 2: %v, want ErrQuotaExceeded", err)
	}
	if ids := must(s.BlockedUsers(ctx, "1"))(t); !slices.Equal(ids, []string{"9", "10"}) {
		t.Fatalf("BlockedUsers = %v, want [9 10]", ids)
	}
	between := func(uid, peer string, want model.Blocked) {
		t.Helper()
		if got := must(s.BlockBetween(ctx, uid, peer))(t); got != want {
			t.Fatalf("BlockBetween(%s, %s) = %v, want %v", uid, peer, got, want)
		}
	}
	between("1", "9", model.BlockedByRecipient)
	between("9", "1", model.BlockedBySender)
	between("1", "11", model.NotBlocked)
	between("9", "10", model.NotBlocked)
	if by := must(s.BlockedBy(ctx, "9", []string{"1", "10", "11"}))(t); !slices.Equal(by, []bool{true, false, false}) {
		t.Fatalf("BlockedBy(9) = %v, want only 1", by)
	}
	if by := must(s.BlockedBy(ctx, "1", []string{"9"}))(t); !slices.Equal(by, []bool{false}) {
		t.Fatalf("BlockedBy(1) = %v: 9 blocks nobody", by)
	}

	n := 0
	msg := func(to, from string, dedup, shared bool) model.Append {
		n++
		a := model.Append{UserID: to, Frame: frame(fmt.Sprint("m", n)), TS: now, MsgID: fmt.Sprint("id", n), From: from}
		if dedup {
			a.Dedup = fmt.Sprint(from, ":c", n)
		}
		if shared {
			a.Sender = from
		}
		return a
	}
	// 9 -> 1 (1 blocks 9): dropped; 1 -> 9 (1 blocks 9): refused; alone and
	// in runs with a stored message from 11 between them.
	got := write(t, s, msg("1", "9", true, true))
	got = append(got, write(t, s, msg("9", "1", false, true))...)
	got = append(got, write(t, s, msg("1", "9", false, false), msg("1", "11", true, true), msg("1", "9", true, false))...)
	got = append(got, write(t, s, msg("9", "1", true, false), msg("9", "11", false, true))...)
	want := []struct {
		seq uint64
		bl  model.Blocked
	}{
		{0, model.BlockedByRecipient}, {0, model.BlockedBySender},
		{0, model.BlockedByRecipient}, {1, model.NotBlocked}, {0, model.BlockedByRecipient},
		{0, model.BlockedBySender}, {1, model.NotBlocked},
	}
	for i, w := range want {
		if got[i].Seq != w.seq || got[i].Blocked != w.bl || got[i].Resend || got[i].MsgID != fmt.Sprint("id", i+1) {
			t.Fatalf("append %d = %+v, want seq %d blocked %v", i+1, got[i], w.seq, w.bl)
		}
	}
	// Entries without From (a receipt, a group copy) pass.
	if a := write(t, s, model.Append{UserID: "1", Frame: frame("g"), TS: now, MsgID: "g", Sender: "9"})[0]; a.Seq != 2 || a.Blocked != model.NotBlocked {
		t.Fatalf("a group copy from a blocked sender = %+v", a)
	}
	rs := must(s.Ranges(ctx, []model.RangeQuery{{UserID: "1", Limit: 10}, {UserID: "9", Limit: 10}}))(t)
	if rs[0].Head != 2 || string(rs[0].Entries[0].Frame) != "m4" || rs[1].Head != 1 {
		t.Fatalf("inboxes = %+v / %+v, want only 11's message and the copy, and 11's", rs[0], rs[1])
	}

	// Unblocked, both ways pass; what was dropped was not remembered as
	// sent (its client message id stores now).
	if err := s.Unblock(ctx, "1", "9"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unblock(ctx, "1", "9"); err != nil {
		t.Fatalf("second unblock: %v", err)
	}
	between("1", "9", model.NotBlocked)
	between("9", "1", model.NotBlocked)
	if ids := must(s.BlockedUsers(ctx, "1"))(t); !slices.Equal(ids, []string{"10"}) {
		t.Fatalf("BlockedUsers after unblock = %v, want [10]", ids)
	}
	again := model.Append{UserID: "1", Frame: frame("m1"), TS: now, MsgID: "again", From: "9", Sender: "9", Dedup: "9:c1"}
	if a := write(t, s, again, msg("9", "1", false, true)); a[0].Seq != 3 || a[0].Resend || a[1].Seq != 2 {
		t.Fatalf("after unblock: %+v", a)
	}
	// A block made after a message was stored leaves the resend answered.
	if err := s.Block(ctx, "1", "9", 2); err != nil {
		t.Fatal(err)
	}
	if a := write(t, s, again)[0]; !a.Resend || a.Seq != 3 || a.MsgID != "again" {
		t.Fatalf("resend after a block = %+v", a)
	}
	// Both block each other: each is the recipient who blocked.
	if err := s.Block(ctx, "9", "1", 2); err != nil {
		t.Fatal(err)
	}
	between("1", "9", model.BlockedByRecipient)
	between("9", "1", model.BlockedByRecipient)
	if err := s.Unblock(ctx, "9", "1"); err != nil {
		t.Fatal(err)
	}
	between("9", "1", model.BlockedBySender)
}

// OnceCopies: a copy marked Once is not stored again when one of the
// inbox's newest 64 entries holds its msgId (answered as a resend with
// that entry's seq), alone or in a run with others; otherwise, or further
// back, it is stored.
func OnceCopies(t *testing.T, newStore NewStore) {
	s := newStore(t, model.InboxLimits{MaxLen: 1000})
	now := time.Now().UnixMilli()
	copyOf := func(id string, once bool) model.Append {
		return model.Append{UserID: "u", Frame: frame("group copy " + id), TS: now, MsgID: id, Sender: "s", Once: once}
	}
	id := func(n int) string { return fmt.Sprintf("%032d", n) }
	write(t, s, copyOf(id(1), false), copyOf(id(2), false))
	got := write(t, s, copyOf(id(1), true))
	got = append(got, write(t, s, copyOf(id(3), true), copyOf(id(2), true), copyOf(id(4), false))...)
	want := []model.Appended{
		{Seq: 1, MsgID: id(1), Resend: true},
		{Seq: 3, MsgID: id(3)}, {Seq: 2, MsgID: id(2), Resend: true}, {Seq: 4, MsgID: id(4)},
	}
	for i, w := range want {
		if got[i].Seq != w.Seq || got[i].MsgID != w.MsgID || got[i].Resend != w.Resend {
			t.Fatalf("append %d = %+v, want %+v", i, got[i], w)
		}
	}
	for n := range 64 {
		write(t, s, copyOf(id(100+n), false))
	}
	if a := write(t, s, copyOf(id(1), true))[0]; a.Resend || a.Seq != 69 {
		t.Fatalf("a copy older than the newest 64 entries: %+v, want stored at 69", a)
	}
}
