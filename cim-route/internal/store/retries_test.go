package store

import (
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/cim-route/internal/redistest"
	"github.com/gocim/gocim/internal/testenv"
)

// TestChargeCountsOnceAfterTimeouts: an upload charge whose answer timed
// out (Redis frozen) fails, and counts once when Redis runs it later; a
// refund too. go-redis retried each on another connection, and Redis ran
// every attempt when it thawed: 300 bytes charged for 100.
func TestChargeCountsOnceAfterTimeouts(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx := ctxT(t)
	check := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2})
	defer check.Close()
	store := func() (*Store, *redistest.Client) {
		c := redistest.NewClient(t, srv, clientOptions(ClientConfig{}))
		s := New(c, "cim:")
		if _, err := s.ChargeUpload(ctx, "8", 1, 1000); err != nil { // the script loaded, as in a running route
			t.Fatal(err)
		}
		return s, c
	}
	s, c := store()
	key := s.k.upquota("7", s.now().UTC().Format("20060102"))
	c.Frozen(t, func() {
		if _, err := s.ChargeUpload(ctx, "7", 100, 1000); !errors.Is(err, errs.ErrUnavailable) {
			t.Fatalf("charge on a frozen Redis: %v, want ErrUnavailable", err)
		}
	})
	if v, err := check.Get(ctx, key).Int(); err != nil || v != 100 {
		t.Fatalf("charged %d (%v) after one charge, want 100: run more than once", v, err)
	}

	s, c = store()
	refund, err := s.ChargeUpload(ctx, "7", 200, 1000)
	if err != nil {
		t.Fatal(err)
	}
	c.Frozen(t, func() { refund(ctx, 50) })
	if v, err := check.Get(ctx, key).Int(); err != nil || v != 250 {
		t.Fatalf("charged %d (%v) after 100 + 200 - 50, want 250: the refund ran more than once", v, err)
	}
}

// TestResumeTakeAfterFrozenRedis: a resume take whose answer is lost to a
// frozen Redis (SIGSTOP) fails with ErrUnavailable, but Redis runs it once
// it thaws; the client's retry with the same token, within the grace, is
// answered the nonce that lost take handed out, not a reuse that would
// sign the user out.
func TestResumeTakeAfterFrozenRedis(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx := ctxT(t)
	c := redistest.NewClient(t, srv, clientOptions(ClientConfig{}))
	s := New(c, "cim:")
	if err := s.SetResume(ctx, "7", "", "s1", "c1", time.Hour); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	req := func(sid, next string) model.ResumeTakeReq {
		return model.ResumeTakeReq{Nonce: "c1", Next: next, SID: sid, TTL: time.Hour, Now: now, Grace: 30 * time.Second}
	}
	// Loaded first, as in a running route.
	if _, err := s.TakeResume(ctx, "8", "", req("x", "x")); err != nil {
		t.Fatal(err)
	}
	c.Frozen(t, func() {
		if _, err := s.TakeResume(ctx, "7", "", req("s2", "c1.a")); !errors.Is(err, errs.ErrUnavailable) {
			t.Fatalf("take on a frozen Redis: %v, want ErrUnavailable", err)
		}
	})
	// Frozen closed the client once Redis had run what it left.
	s = New(redistest.NewClient(t, srv, clientOptions(ClientConfig{})), "cim:")
	now = now.Add(5 * time.Second)
	got, err := s.TakeResume(ctx, "7", "", req("s3", "c1.b"))
	if err != nil || !got.Taken || got.Nonce != "c1.a" || got.Reused != "" {
		t.Fatalf("the retry after a lost answer: %+v, %v; want taken, handing out c1.a (the lost take's)", got, err)
	}
}

// TestGroupCopiesStoredOnceAfterTimeouts: a group message's copies (no
// dedup key) whose answer timed out on a frozen Redis fail the append,
// and each member's inbox holds one copy once Redis has run what it was
// sent. go-redis replayed the pipeline on other connections, and Redis ran
// every attempt when it thawed: three copies for a member. The route's own
// retry of the message is stored once (Append.Once, TestOnceCopies).
func TestGroupCopiesStoredOnceAfterTimeouts(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx := ctxT(t)
	check := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2})
	defer check.Close()
	frame := []byte("group message frame")
	copies := func(msgID string, users ...string) []Append {
		var a []Append
		for _, u := range users {
			a = append(a, Append{UserID: u, Frame: frame, TS: 1, MsgID: msgID, Sender: "9"})
		}
		return a
	}
	for _, a := range [][]Append{copies("m1", "1", "2", "3"), copies("m1", "4")} {
		c := redistest.NewClient(t, srv, clientOptions(ClientConfig{}))
		s := New(c, "cim:")
		// Loaded first, as in a running route: the shared script (copies
		// to two members) and the append script (a copy to one).
		for _, a := range [][]Append{copies("m0", "5", "6"), copies("m0", "7")} {
			if _, err := s.Append(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		c.Frozen(t, func() {
			if _, err := s.Append(ctx, a); !errors.Is(err, errs.ErrUnavailable) {
				t.Fatalf("append on a frozen Redis: %v, want ErrUnavailable", err)
			}
		})
	}
	s := New(check, "cim:")
	for _, u := range []string{"1", "2", "3", "4"} {
		if n, err := check.LLen(ctx, s.k.inbox(u)).Result(); err != nil || n != 1 {
			t.Errorf("member %s: %d copies (%v), want 1", u, n, err)
		}
	}
}
