// Package e2e drives the real binaries against real ZooKeeper and Redis.
package e2e

import (
	"os"
	"testing"

	"github.com/gocim/gocim/e2e/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.Cleanup()
	os.Exit(code)
}
