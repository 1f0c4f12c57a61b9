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
	storetest.Run(t, func(t *testing.T, lim model.InboxLimits) router.Store {
		return memstore.New(memstore.WithInbox(lim))
	})
}
