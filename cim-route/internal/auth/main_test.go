package auth

import (
	"testing"

	"go.uber.org/goleak"
)

// No test leaves a goroutine behind; TestLDAPAuthenticate also checks while
// slapd still runs, since its exit would end any connection left open.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
