package web

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	gin.SetMode(gin.TestMode)
	e := gin.New()
	Mount(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func checkSecurityHeaders(t *testing.T, path string, h http.Header) {
	t.Helper()
	want := map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"X-Frame-Options":        "DENY",
		"Cache-Control":          "no-cache",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", path, k, got, v)
		}
	}
	csp := h.Get("Content-Security-Policy")
	for _, part := range []string{"default-src 'self'", "connect-src 'self' ws: wss: http: https:", "img-src 'self' data: blob:", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, part) {
			t.Errorf("%s: Content-Security-Policy %q lacks %q", path, csp, part)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("%s: Content-Security-Policy %q allows inline code", path, csp)
	}
}

// The page and each of its files are served with their type and the
// security headers.
func TestServesPageAndFiles(t *testing.T) {
	srv := newServer(t)
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script type="module" src="/web/app.js"></script>`},
		{"/web/index.html", "text/html; charset=utf-8", "<title>gocim chat</title>"},
		{"/web/gocim.js", "text/javascript; charset=utf-8", "export class Client"},
		{"/web/gocim.d.ts", "application/typescript; charset=utf-8", "export declare class Client"},
		{"/web/app.js", "text/javascript; charset=utf-8", "from './gocim.js'"},
		{"/web/style.css", "text/css; charset=utf-8", ".conn-state"},
	} {
		resp, body := get(t, srv.URL+tc.path, nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: HTTP %d", tc.path, resp.StatusCode)
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != tc.contentType {
			t.Errorf("%s: Content-Type %q, want %q", tc.path, got, tc.contentType)
		}
		if !strings.Contains(body, tc.contains) {
			t.Errorf("%s: body lacks %q", tc.path, tc.contains)
		}
		if resp.Header.Get("ETag") == "" {
			t.Errorf("%s: no ETag", tc.path)
		}
		checkSecurityHeaders(t, tc.path, resp.Header)

		// A browser revalidating gets 304 while the file is unchanged.
		again, _ := get(t, srv.URL+tc.path, map[string]string{"If-None-Match": resp.Header.Get("ETag")})
		if again.StatusCode != http.StatusNotModified {
			t.Errorf("%s with If-None-Match: HTTP %d, want 304", tc.path, again.StatusCode)
		}
	}

	req, _ := http.NewRequest(http.MethodHead, srv.URL+"/web/gocim.js", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("HEAD /web/gocim.js: HTTP %d, %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestUnknownFilesAreNotFound(t *testing.T) {
	srv := newServer(t)
	for _, p := range []string{"/web/nope.js", "/web/", "/web/static/gocim.js", "/web/GOCIM.JS", "/web/gocim.js/", "/web/app.js.map"} {
		resp, body := get(t, srv.URL+p, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: HTTP %d, want 404", p, resp.StatusCode)
		}
		if strings.Contains(body, "export") || strings.Contains(body, "<html") {
			t.Errorf("%s: served a file: %.60q", p, body)
		}
		checkSecurityHeaders(t, p, resp.Header)
	}
}

// rawGet sends the request line exactly as given (no client-side
// cleaning or escaping) and returns the status and body.
func rawGet(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, addr); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// No path, however spelled, serves anything outside static/.
func TestPathTraversal(t *testing.T) {
	srv := newServer(t)
	addr := strings.TrimPrefix(srv.URL, "http://")
	source, err := os.ReadFile("web.go")
	if err != nil {
		t.Fatal(err)
	}
	secret := string(source[:40]) // the start of web.go
	for _, target := range []string{
		"/web/../web.go",
		"/web/../../go.mod",
		"/web/%2e%2e/web.go",
		"/web/%2E%2E/web.go",
		"/web/..%2fweb.go",
		"/web/..%2Fweb.go",
		"/web/%2e%2e%2fweb.go",
		"/web/..%5cweb.go",
		"/web/..\\web.go",
		"/web/%252e%252e/web.go",
		"/web/....//web.go",
		"/web/./../web.go",
		"/web//web.go",
		"/web/static/../../web.go",
		"/web/%00../web.go",
		"/web/..;/web.go",
		"/web/..%c0%afweb.go",
		"/web/../static/../web.go",
		"/web/..",
		"/web/.",
		"/web//etc/passwd",
		"/web/%2fetc%2fpasswd",
		"/../web.go",
	} {
		status, body := rawGet(t, addr, target)
		if status == http.StatusOK {
			t.Errorf("%s: HTTP 200, want an error", target)
		}
		if strings.Contains(body, secret) || strings.Contains(body, "package web") || strings.Contains(body, "root:") || strings.Contains(body, "module github.com") {
			t.Errorf("%s: served something outside static/: %.80q", target, body)
		}
	}
}

// The page must work under its own Content-Security-Policy: no inline
// scripts, event-handler attributes or style attributes.
func TestPageHasNoInlineCode(t *testing.T) {
	page := string(files["index.html"].body)
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`), // a script with a body
		regexp.MustCompile(`\son[a-z]+\s*=`),                // onclick=…
		regexp.MustCompile(`\sstyle\s*=`),
		regexp.MustCompile(`<style`),
		regexp.MustCompile(`javascript:`),
	} {
		if loc := bad.FindStringIndex(page); loc != nil {
			t.Errorf("index.html: %q matches %s", page[loc[0]:min(loc[1]+20, len(page))], bad)
		}
	}
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, " src=") {
			t.Errorf("index.html: %s has no src", tag)
		}
	}
	for _, ref := range regexp.MustCompile(`(?:src|href)="(/web/[^"]+)"`).FindAllStringSubmatch(page, -1) {
		if _, ok := files[strings.TrimPrefix(ref[1], Prefix)]; !ok {
			t.Errorf("index.html names %s, which is not served", ref[1])
		}
	}
}

// Mount sits next to the route's API on its engine (catch-all 404s and
// 405s in JSON, parameters under other prefixes) without conflicts.
func TestMountBesideTheAPI(t *testing.T) {
	gin.SetMode(gin.TestMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.NoRoute(func(c *gin.Context) { c.JSON(http.StatusNotFound, gin.H{"code": 3000}) })
	ok := func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"code": 9000}) }
	e.POST("/login", ok)
	e.GET("/healthz", ok)
	e.GET("/files/:ref", ok)
	g := e.Group("/groups")
	g.GET("", ok)
	g.GET("/:gid/members", ok)
	Mount(e)
	srv := httptest.NewServer(e)
	defer srv.Close()
	for path, want := range map[string]int{"/": 200, "/web/app.js": 200, "/healthz": 200, "/files/abc": 200, "/groups/1/members": 200, "/nothing": 404} {
		if resp, _ := get(t, srv.URL+path, nil); resp.StatusCode != want {
			t.Errorf("GET %s: HTTP %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp, err := http.Post(srv.URL+"/web/app.js", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /web/app.js: HTTP %d, want 405", resp.StatusCode)
	}
}

// The JavaScript parses, and its tests pass (with Node; skipped without).
func TestJavaScript(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	for _, f := range []string{"static/gocim.js", "static/app.js"} {
		if out, err := exec.Command(node, "--check", f).CombinedOutput(); err != nil {
			t.Errorf("node --check %s: %v\n%s", f, err, out)
		}
	}
	tests, _ := filepath.Glob("testdata/*.test.mjs")
	if len(tests) == 0 {
		return
	}
	cmd := exec.Command(node, append([]string{"--test"}, tests...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	t.Logf("node --test:\n%s", out)
}
