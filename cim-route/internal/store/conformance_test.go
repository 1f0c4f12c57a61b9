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
	storetest.Run(t, redisStore())
}

// TestConformanceDeviceSlots runs the suite again on a store that reads
// every device slot (--login-policy platform).
func TestConformanceDeviceSlots(t *testing.T) {
	newStore := redisStore(store.WithDeviceSlots())
	storetest.Run(t, newStore)
	t.Run("DeviceSlots", func(t *testing.T) { storetest.DeviceSlots(t, newStore) })
}

func redisStore(opts ...store.Option) storetest.NewStore {
	return func(t *testing.T, lim store.InboxLimits) router.Store {
		srv := testenv.StartRedis(t)
		rdb := store.NewClient(store.ClientConfig{Addrs: []string{srv.Addr}})
		t.Cleanup(func() { rdb.Close() })
		return store.New(rdb, "cim:", append(opts, store.WithInbox(lim))...)
	}
}
