package store_test

import (
	"testing"

	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/cim-route/internal/store"
	"github.com/gocim/gocim/cim-route/internal/storetest"
	"github.com/gocim/gocim/internal/testenv"
)

// TestConformance runs the suite every router.Store passes (package
// memstore runs it too) against real Redis.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, lim store.InboxLimits) router.Store {
		srv := testenv.StartRedis(t)
		rdb := store.NewClient(store.ClientConfig{Addrs: []string{srv.Addr}})
		t.Cleanup(func() { rdb.Close() })
		return store.New(rdb, "cim:", store.WithInbox(lim))
	})
}
