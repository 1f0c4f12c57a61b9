package store

import (
	"errors"
	"testing"

	"github.com/gocim/gocim/cim-route/internal/errs"
)

// TestNamesIgnoreCase: a name differing only by case is taken, and every
// spelling finds the account, which keeps its own spelling.
func TestNamesIgnoreCase(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := ctxT(t)
	id, err := s.CreateUser(ctx, "Alice", "h")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"alice", "ALICE", "Alice"} {
		if _, err := s.CreateUser(ctx, n, "h"); !errors.Is(err, errs.ErrNameTaken) {
			t.Fatalf("register %s after Alice: %v, want ErrNameTaken", n, err)
		}
		u, err := s.UserByName(ctx, n)
		if err != nil || u.ID != id || u.Name != "Alice" {
			t.Fatalf("UserByName(%s) = %+v, %v; want id %s named Alice", n, u, err, id)
		}
	}
	_, ids, err := s.Lookup(ctx, nil, []string{"aLiCe", "nobody"})
	if err != nil || ids["aLiCe"] != id || len(ids) != 1 {
		t.Fatalf("Lookup = %v, %v", ids, err)
	}
}

// TestLegacyNames: accounts an older version indexed under their exact
// spelling keep working, two of them differing by case stay apart, and
// FoldNames (once) makes their other spellings taken.
func TestLegacyNames(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := ctxT(t)
	legacy := func(id, name string) {
		if err := rdb.HSet(ctx, s.k.user(id), "name", name, "pw", "h").Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.HSet(ctx, s.k.names(), name, id).Err(); err != nil {
			t.Fatal(err)
		}
	}
	legacy("901", "Bob")
	legacy("902", "bob")
	legacy("903", "Carol")
	if err := rdb.Set(ctx, s.k.seq(), 1000, 0).Err(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"Bob": "901", "bob": "902", "Carol": "903", "carol": "", "CAROL": ""} {
		u, err := s.UserByName(ctx, name)
		if want == "" {
			continue // before FoldNames only the exact spelling is certain
		}
		if err != nil || u.ID != want {
			t.Fatalf("UserByName(%s) = %+v, %v; want %s", name, u, err, want)
		}
	}
	n, err := s.FoldNames(ctx)
	if err != nil || n != 1 { // carol; bob was taken by the other account
		t.Fatalf("FoldNames = %d, %v; want 1", n, err)
	}
	if n, err := s.FoldNames(ctx); err != nil || n != 0 {
		t.Fatalf("second FoldNames = %d, %v; want 0 (done once)", n, err)
	}
	for name, want := range map[string]string{"Bob": "901", "bob": "902", "BOB": "902", "carol": "903", "CAROL": "903"} {
		if u, err := s.UserByName(ctx, name); err != nil || u.ID != want {
			t.Fatalf("after FoldNames: UserByName(%s) = %+v, %v; want %s", name, u, err, want)
		}
	}
	if _, err := s.CreateUser(ctx, "cAROL", "h"); !errors.Is(err, errs.ErrNameTaken) {
		t.Fatalf("register cAROL: %v, want ErrNameTaken", err)
	}
}
