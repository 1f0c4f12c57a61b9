package memstore_test

import (
	"testing"

	"github.com/gocim/gocim/cim-route/internal/memstore"
	"github.com/gocim/gocim/cim-route/internal/model"
	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/cim-route/internal/storetest"
)

var _ router.Store = (*memstore.Store)(nil)

func TestConformance(t *testing.T) {
	newStore := func(t *testing.T, lim model.InboxLimits) router.Store {
		return memstore.New(memstore.WithInbox(lim))
	}
	storetest.Run(t, newStore)
	// The memory store always reads every device slot.
	t.Run("DeviceSlots", func(t *testing.T) { storetest.DeviceSlots(t, newStore) })
}
