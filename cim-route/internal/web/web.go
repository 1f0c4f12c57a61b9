// Package web serves the browser chat: the page at / and its files under
// /web/ — gocim.js (the JavaScript client: login through the route, the
// gateway over WebSocket with the "gocim.json" subprotocol), its
// TypeScript types gocim.d.ts, and the page's app.js and style.css. The
// files are embedded in the binary, so a route serves the page that
// matches its API.
//
// Every answer carries a Content-Security-Policy that allows scripts and
// styles from the route only (no inline script), connections to the route
// and to gateways (ws:, wss:, http:, https:), and no framing; plus
// nosniff, no referrer and Cache-Control: no-cache (a browser revalidates
// by ETag, so a new route version is picked up at once).
//
// Mount is safe to call once per engine; the handlers are safe for
// concurrent use.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

//go:embed static
var static embed.FS

// Prefix is where the page's files are served.
const Prefix = "/web/"

// ContentSecurityPolicy is sent with every answer of this package.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self' ws: wss: http: https:; img-src 'self' data: blob:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// types are the content types of the files we ship. .ts is set here,
// not left to the system's MIME table, which names MPEG transport streams.
var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".ts":   "application/typescript; charset=utf-8",
	".json": "application/json",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".txt":  "text/plain; charset=utf-8",
}

// file is one embedded file, read once.
type file struct {
	body        []byte
	contentType string
	etag        string
}

// files holds every file under static/, by its name there ("gocim.js").
var files = load()

func load() map[string]file {
	out := map[string]file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		ct, ok := types[path.Ext(p)]
		if !ok {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		out[strings.TrimPrefix(p, "static/")] = file{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic("web: reading the embedded files: " + err.Error()) // the build embedded them: cannot happen
	}
	return out
}

// Mount registers GET (and HEAD) / for the chat page and /web/*file for
// its files on e.
func Mount(e *gin.Engine) {
	index := func(c *gin.Context) { serve(c, "index.html") }
	e.GET("/", index)
	e.HEAD("/", index)
	files := func(c *gin.Context) { serve(c, c.Param("file")) }
	e.GET(Prefix+"*file", files)
	e.HEAD(Prefix+"*file", files)
}

// serve answers the embedded file name, or 404 for anything else. Only
// names of files in static/ are ever looked up (a map, not a file system),
// so no path, encoded or not, reaches outside it.
func serve(c *gin.Context, name string) {
	h := c.Writer.Header()
	secure(h)
	f, ok := files[clean(name)]
	if !ok {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		c.String(http.StatusNotFound, "404 page not found\n")
		c.Abort()
		return
	}
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	http.ServeContent(c.Writer, c.Request, "", time.Time{}, bytes.NewReader(f.body))
}

// clean turns the wildcard of /web/*file into a name in static/, or ""
// for anything that is not a plain relative path of a file.
func clean(name string) string {
	name = strings.TrimPrefix(name, "/")
	if name == "" || strings.ContainsAny(name, "\\\x00") || !fs.ValidPath(name) {
		return ""
	}
	return name
}

// secure sets the headers every answer of this package carries.
func secure(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-cache")
}
