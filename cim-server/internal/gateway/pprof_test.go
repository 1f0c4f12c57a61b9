package gateway

import (
	"net/http"
	"testing"

	"github.com/gocim/gocim/internal/contract"
)

// TestPprofBehindTheSecret: --pprof serves Go's profiles on the internal
// HTTP address to callers with the internal secret only; /push and /healthz
// are still served; without --pprof there are no profiles.
func TestPprofBehindTheSecret(t *testing.T) {
	route := newFakeRoute(t)
	get := func(g *Gateway, path, secret string) int {
		req, err := http.NewRequest("GET", "http://"+g.HTTPAddr().String()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if secret != "" {
			req.Header.Set(contract.Header, secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	on := startGateway(t, route.srv.URL, func(c *Config) { c.Pprof = true })
	if code := get(on, "/debug/pprof/goroutine?debug=1", internalSecret); code != 200 {
		t.Fatalf("with the secret: HTTP %d, want 200", code)
	}
	for _, s := range []string{"", "wrong-secret-0123456789"} {
		if code := get(on, "/debug/pprof/goroutine?debug=1", s); code != 401 {
			t.Fatalf("secret %q: HTTP %d, want 401", s, code)
		}
	}
	if code := get(on, "/healthz", ""); code != 200 {
		t.Fatalf("/healthz next to the profiles: HTTP %d", code)
	}
	off := startGateway(t, route.srv.URL, nil)
	if code := get(off, "/debug/pprof/goroutine?debug=1", internalSecret); code != 404 {
		t.Fatalf("without --pprof: HTTP %d, want 404", code)
	}
}
