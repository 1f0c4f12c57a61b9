package conn

import (
	"errors"
	"fmt"
	"testing"

	"github.com/gocim/gocim/cim-server/internal/metrics"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/token"
)

// Why a login failed maps to a bounded reason, never to what the client
// sent.
func TestLoginFailureReasons(t *testing.T) {
	for _, tc := range []struct {
		cause Cause
		err   error
		want  metrics.Reason
	}{
		{HandshakeFailed, errors.New("tls: bad record"), metrics.TLSHandshake},
		{LoginTimeout, nil, metrics.Timeout},
		{BadFrame, errors.New("first frame must be LOGIN"), metrics.BadFrame},
		{LoginRefused, &tokenError{token.ErrExpired}, metrics.BadToken},
		{LoginRefused, &tokenError{fmt.Errorf("x: %w", token.ErrWrongGateway)}, metrics.WrongGateway},
		{LoginRefused, &routeError{contract.ErrNotCurrent}, metrics.NotCurrent},
		{LoginRefused, &routeError{fmt.Errorf("%w: down", contract.ErrUnavailable)}, metrics.RouteUnavailable},
		{LoginRefused, errors.New("bad credentials"), metrics.Refused}, // an MQTT CONNECT
		{PeerClosed, nil, metrics.Closed},
		{GoingAway, nil, metrics.Closed},
	} {
		if got := loginFailure(tc.cause, tc.err); got != tc.want {
			t.Errorf("%v %v: %v, want %v", tc.cause, tc.err, got, tc.want)
		}
	}
	// The log line keeps its wording.
	if got := (&routeError{contract.ErrNotCurrent}).Error(); got != "route: "+contract.ErrNotCurrent.Error() {
		t.Errorf("route error reads %q", got)
	}
}
