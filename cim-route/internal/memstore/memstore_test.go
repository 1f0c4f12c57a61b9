package memstore_test

import (
	"github.com/gocim/gocim/cim-route/internal/memstore"
	"github.com/gocim/gocim/cim-route/internal/router"
)

var _ router.Store = (*memstore.Store)(nil)
