package pprofhttp

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for path, want := range map[string]string{
		Prefix:                       "goroutine",
		Prefix + "goroutine?debug=1": "goroutine profile",
		Prefix + "cmdline":           "pprofhttp",
		Prefix + "profile?seconds=1": "",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		resp.Body.Close()
		if want == "" { // a binary CPU profile
			if resp.StatusCode != 200 || n == 0 {
				t.Errorf("%s: status %d, %d bytes, want a profile", path, resp.StatusCode, n)
			}
			continue
		}
		if resp.StatusCode != 200 || !strings.Contains(b.String(), want) {
			t.Errorf("%s: status %d, body %.80q, want 200 containing %q", path, resp.StatusCode, b.String(), want)
		}
	}
}
