package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gocim/gocim/internal/contract"
)

// TestPprofBehindTheSecret: with Pprof the internal handler serves Go's
// profiles, only to callers with the internal secret; without it, not at all.
func TestPprofBehindTheSecret(t *testing.T) {
	get := func(h http.Handler, secret string) int {
		req := httptest.NewRequest("GET", "/debug/pprof/goroutine?debug=1", nil)
		if secret != "" {
			req.Header.Set(contract.Header, secret)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	cfg := Config{Service: fakeService{}, Logger: quiet, InternalSecrets: []string{internalSecret}, Pprof: true}
	on := NewInternal(cfg)
	if code := get(on, internalSecret); code != 200 {
		t.Fatalf("with the secret: HTTP %d, want 200", code)
	}
	for _, s := range []string{"", "wrong-secret-0123456789"} {
		if code := get(on, s); code != 401 {
			t.Fatalf("secret %q: HTTP %d, want 401", s, code)
		}
	}
	cfg.Pprof = false
	if code := get(NewInternal(cfg), internalSecret); code != 404 {
		t.Fatalf("without --pprof: HTTP %d, want 404", code)
	}
}
