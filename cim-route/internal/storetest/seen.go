package storetest

import (
	"slices"
	"testing"

	"github.com/gocim/gocim/cim-route/internal/model"
)

// LastSeen: an account's last seen only moves forward, ids without an
// account get none (and are not brought back), and a deleted account's
// goes with it.
func LastSeen(t *testing.T, newStore NewStore) {
	s, ctx := newStore(t, model.InboxLimits{}), ctxT(t)
	alice := must(s.CreateUser(ctx, "alice", "h"))(t)
	bob := must(s.CreateUser(ctx, "bob", "h"))(t)
	if got := must(s.LastSeen(ctx, []string{alice, bob}))(t); !slices.Equal(got, []int64{0, 0}) {
		t.Fatalf("last seen before any session ended = %v", got)
	}
	if err := s.UsersSeen(ctx, map[string]int64{alice: 2000, "999": 2000, bob: 2000}); err != nil {
		t.Fatal(err)
	}
	if err := s.UsersSeen(ctx, map[string]int64{alice: 1000}); err != nil { // older: no change
		t.Fatal(err)
	}
	if err := s.UsersSeen(ctx, map[string]int64{bob: 3000}); err != nil {
		t.Fatal(err)
	}
	if got := must(s.LastSeen(ctx, []string{bob, "999", alice}))(t); !slices.Equal(got, []int64{3000, 0, 2000}) {
		t.Fatalf("last seen = %v, want [3000 0 2000]", got)
	}
	if _, err := s.UserByID(ctx, "999"); err == nil {
		t.Fatal("recording a last seen made an account")
	}
	if err := s.DeleteUser(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if err := s.UsersSeen(ctx, map[string]int64{bob: 4000}); err != nil {
		t.Fatal(err)
	}
	if got := must(s.LastSeen(ctx, []string{bob}))(t); got[0] != 0 {
		t.Fatalf("a deleted account's last seen = %d", got[0])
	}
}
