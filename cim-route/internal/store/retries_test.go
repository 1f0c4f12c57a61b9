package store

import (
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/errs"
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
