package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-route/internal/store"
	"github.com/gocim/gocim/cim-route/internal/storetest"
	"github.com/gocim/gocim/internal/testenv"
)

// TestDeleteUserLeavesNoKey: after DeleteUser no key tagged with the
// user's id is left in Redis but those of a group that happens to have the
// same number, and the other user's keys stay.
func TestDeleteUserLeavesNoKey(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := store.NewClient(store.ClientConfig{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { rdb.Close() })
	s := store.New(rdb, "cim:", store.WithDeviceSlots())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	alice, err := s.CreateUser(ctx, "alice", "h")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := s.CreateUser(ctx, "bob", "h")
	if err != nil {
		t.Fatal(err)
	}
	storetest.FillUser(t, ctx, s, alice, bob)
	storetest.FillUser(t, ctx, s, bob, alice)
	// FillUser(alice) made bob's group 1, numbered like alice: its keys
	// are not alice's.
	if n, _ := rdb.Exists(ctx, "cim:group:{"+alice+"}").Result(); n != 1 {
		t.Fatalf("no group numbered like alice (%s)", alice)
	}
	tagged := func(uid string) []string {
		t.Helper()
		keys, err := rdb.Keys(ctx, "*{"+uid+"}*").Result()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range keys {
			if !strings.HasPrefix(k, "cim:group:") && !strings.HasPrefix(k, "cim:gmembers:") && !strings.HasPrefix(k, "cim:ginvited:") {
				out = append(out, k)
			}
		}
		return out
	}
	before := tagged(alice)
	for _, fam := range []string{"user", "route", "seq", "inbox", "ack", "dedup", "udelay", "upquota", "rev", "hdel", "gdedup", "grd", "ban"} {
		if !hasFamily(before, fam) {
			t.Errorf("FillUser made no %s key for alice (keys %v)", fam, before)
		}
	}
	bobBefore := len(tagged(bob))
	for _, g := range must(s.UserGroups(ctx, alice))(t) {
		if err := s.DissolveGroup(ctx, g.ID, alice); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if left := tagged(alice); len(left) != 0 {
		t.Fatalf("keys of the deleted user left: %v", left)
	}
	if n, _ := rdb.Exists(ctx, "cim:group:{"+alice+"}").Result(); n != 1 {
		t.Fatal("the group numbered like the deleted user went too")
	}
	if n := len(tagged(bob)); n != bobBefore {
		t.Fatalf("bob had %d keys, has %d after alice's delete", bobBefore, n)
	}
	if m, _ := rdb.SIsMember(ctx, "cim:login-status", alice).Result(); m {
		t.Fatal("alice still in login-status")
	}
	if n, _ := rdb.ZCard(ctx, "cim:delayq").Result(); n != 1 {
		t.Fatalf("delayq holds %d, want bob's 1", n)
	}
}

func hasFamily(keys []string, fam string) bool {
	for _, k := range keys {
		if strings.HasPrefix(k, "cim:"+fam+":{") {
			return true
		}
	}
	return false
}

func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
