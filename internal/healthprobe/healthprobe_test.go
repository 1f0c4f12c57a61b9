package healthprobe

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	if code := Run(nil, srv.URL+"/healthz", io.Discard); code != 0 {
		t.Errorf("healthy default URL: exit %d, want 0", code)
	}
	if code := Run([]string{srv.URL + "/other"}, srv.URL+"/healthz", io.Discard); code != 1 {
		t.Errorf("URL argument answering 404: exit %d, want 1 (the argument wins)", code)
	}
	status = http.StatusServiceUnavailable // draining
	var out strings.Builder
	if code := Run(nil, srv.URL+"/healthz", &out); code != 1 || !strings.Contains(out.String(), "503") {
		t.Errorf("draining: exit %d, %q; want 1 naming 503", code, out.String())
	}
	srv.Close()
	if code := Run(nil, srv.URL+"/healthz", io.Discard); code != 1 {
		t.Errorf("nothing listening: exit %d, want 1", code)
	}
	if code := Run([]string{"a", "b"}, "", io.Discard); code != 2 {
		t.Errorf("two arguments: exit %d, want 2", code)
	}
}
