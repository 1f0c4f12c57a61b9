// Package openapi holds the OpenAPI 3.1 document of the route's HTTP API —
// the public listener's endpoints, the internal listener's (tag
// "internal"), the chat page's static files and the webhooks the route
// sends to app back-ends — and serves it at /openapi.json.
//
// openapi.json is written by hand and is the source of truth; tests keep it
// honest: every route the api package registers must have an operation and
// every operation a route, real answers are validated against it, and the
// webhook payloads are compared with package event's types.
//
// Everything here is read-only: safe for concurrent use.
package openapi

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// Path is where Mount serves the document.
const Path = "/openapi.json"

//go:embed openapi.json
var document []byte

// etag names this build's document: it changes only with the binary, so a
// client revalidates cheaply (304) instead of fetching it again.
var etag = func() string {
	sum := sha256.Sum256(document)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}()

// JSON returns a copy of the document.
func JSON() []byte { return bytes.Clone(document) }

// Mount registers GET Path on e. The document is public: it holds no
// secret and describes what any caller may already try.
func Mount(e *gin.Engine) {
	e.GET(Path, serve)
}

func serve(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	// Caches may keep it but ask again (by ETag) before using it, so a new
	// route version's document is seen at once.
	h.Set("Cache-Control", "public, no-cache")
	h.Set("ETag", etag)
	http.ServeContent(c.Writer, c.Request, "", time.Time{}, bytes.NewReader(document))
}
