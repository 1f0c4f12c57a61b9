package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
)

// cors lets pages from the allowed origins call the API: answers carry
// Access-Control-Allow-Origin for them, and their preflights (OPTIONS with
// Access-Control-Request-Method) are answered here. Credentials are
// tokens in headers, never cookies, so no Allow-Credentials.
func cors(origins []string) gin.HandlerFunc {
	allowed := make([]string, 0, len(origins))
	for _, o := range origins {
		allowed = append(allowed, strings.ToLower(strings.TrimSuffix(o, "/")))
	}
	any := slices.Contains(allowed, "*")
	return func(c *gin.Context) {
		origin := c.GetHeader("Origin")
		if origin == "" {
			c.Next()
			return
		}
		h := c.Writer.Header()
		h.Add("Vary", "Origin")
		if !any && !slices.Contains(allowed, strings.ToLower(origin)) {
			c.Next() // no CORS headers: the browser keeps the answer from the page
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", "Retry-After")
		if c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, "+APIKeyHeader)
			h.Set("Access-Control-Max-Age", "600")
			c.AbortWithStatus(http.StatusNoContent)
			return
		}
		c.Next()
	}
}
