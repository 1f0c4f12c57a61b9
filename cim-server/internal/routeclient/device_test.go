package routeclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocim/gocim/internal/contract"
)

// TestDeviceLogin: the request carries the device's credential, the
// gateway id and the internal secret; the route's answers map to a token,
// ErrBadCredentials, ErrBusy or a rejection, and a busy answer is not
// retried.
func TestDeviceLogin(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   error // nil: a token
	}{
		{"ok", 200, `{"code":9000,"message":"ok","data":{"userId":"7","userName":"meter","sessionId":"device.1","token":"tok","sessionPresent":true}}`, nil},
		{"bad account", 401, `{"code":9100,"message":"bad account"}`, ErrBadCredentials},
		{"bad account 200", 200, `{"code":9100,"message":"bad account"}`, ErrBadCredentials},
		{"401 with another code", 401, `{"code":4030,"message":"revoked"}`, ErrBadCredentials},
		{"secret refused", 401, `{"code":4010,"message":"unauthorized"}`, contract.ErrSecretRefused},
		{"busy", 503, `{"code":5032,"message":"server busy"}`, ErrBusy},
		{"unavailable", 503, `{"code":5030,"message":"service unavailable"}`, ErrBusy},
		{"proxy 502", 502, `bad gateway`, ErrBusy},
		{"no token", 200, `{"code":9000,"data":{"userId":"7"}}`, contract.ErrRejected},
		{"bad request", 400, `{"code":3000,"message":"bad argument"}`, contract.ErrRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			var got contract.DeviceLogin
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				if r.URL.Path != contract.PathDeviceLogin || r.Header.Get(contract.Header) != testSecret {
					t.Errorf("unexpected request %s with secret %q", r.URL.Path, r.Header.Get(contract.Header))
				}
				_ = json.NewDecoder(r.Body).Decode(&got)
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := newClient(t, 5*time.Second, srv.URL)
			tok, err := c.DeviceLogin(context.Background(), contract.DeviceLogin{Device: "meter", Secret: "s3cret", Clean: true})
			if got != (contract.DeviceLogin{Device: "meter", Secret: "s3cret", GatewayID: "gw1", Clean: true}) {
				t.Fatalf("request body %+v", got)
			}
			if n := calls.Load(); n != 1 {
				t.Fatalf("%d calls, want 1 (no retry)", n)
			}
			if tc.want == nil {
				if err != nil || tok != (contract.DeviceToken{UserID: "7", UserName: "meter", SessionID: "device.1", Token: "tok", SessionPresent: true}) {
					t.Fatalf("got %+v, %v", tok, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestDeviceLoginRouteDown: with no route reachable the call gives up when
// its context ends and the device is told the route is busy.
func TestDeviceLoginRouteDown(t *testing.T) {
	c := newClient(t, time.Minute, deadURL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.DeviceLogin(ctx, contract.DeviceLogin{Device: "meter", Secret: "x"}); !errors.Is(err, ErrBusy) {
		t.Fatalf("got %v, want ErrBusy", err)
	}
}
