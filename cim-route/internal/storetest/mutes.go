package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
)

// Mutes: a mute until a time or for good, replaced, undone; expired ones
// dropped when a new one needs room; at most max; read per user and per
// (user, target), a group's from its members' mutes.
func Mutes(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	now := time.Now().UnixMilli()
	set := func(uid, target string, until int64, max int) error {
		t.Helper()
		return s.SetMute(ctx, uid, target, until, now, max)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	read := func(refs ...model.MuteRef) []int64 {
		t.Helper()
		got, err := s.MutedUntil(ctx, refs)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	bob, team := model.MutePeer("2"), model.MuteGroup("7")
	must(set("1", bob, 0, 3))
	must(set("1", team, now+60_000, 3))
	must(set("3", team, 0, 3))
	if got := read(model.MuteRef{User: "1", Target: bob}, model.MuteRef{User: "2", Target: model.MutePeer("1")},
		model.MuteRef{User: "1", Target: team}, model.MuteRef{User: "3", Target: team}, model.MuteRef{User: "4", Target: team},
		model.MuteRef{User: "1", Target: model.MuteGroup("8")}); !slices.Equal(got, []int64{0, -1, now + 60_000, 0, -1, -1}) {
		t.Fatalf("muted until %v", got)
	}
	all, err := s.Mutes(ctx, "1")
	if err != nil || len(all) != 2 || all[bob] != 0 || all[team] != now+60_000 {
		t.Fatalf("user 1's mutes %v, %v", all, err)
	}

	// Full: a third goes, a fourth not; one expired makes room.
	must(set("1", model.MutePeer("5"), now-1, 3)) // already over
	if err := set("1", model.MutePeer("6"), 0, 3); err != nil {
		t.Fatalf("a mute with an expired one in the way: %v", err)
	}
	must(set("1", model.MutePeer("7"), 0, 4))
	if err := set("1", model.MutePeer("8"), 0, 4); !errors.Is(err, errs.ErrQuotaExceeded) {
		t.Fatalf("a fifth of four: %v", err)
	}
	must(set("1", bob, now+1000, 4)) // a known one is replaced, full or not
	if got := read(model.MuteRef{User: "1", Target: bob}); got[0] != now+1000 {
		t.Fatalf("replaced: %v", got)
	}
	// Unmuting, a group's too.
	must(set("1", team, -1, 4))
	must(set("1", model.MutePeer("9"), -1, 4)) // never muted
	if got := read(model.MuteRef{User: "1", Target: team}, model.MuteRef{User: "3", Target: team}); !slices.Equal(got, []int64{-1, 0}) {
		t.Fatalf("after unmuting the group: %v", got)
	}
	all, err = s.Mutes(ctx, "1")
	if _, ok := all[team]; err != nil || ok || len(all) != 3 { // bob, 6, 7: 5 expired
		t.Fatalf("user 1's mutes after unmuting %v, %v", all, err)
	}
}
