package auth

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// HTTPConfig configures the HTTP-callback authenticator.
type HTTPConfig struct {
	URL     string        // POST target
	Secret  string        // sent as X-CIM-Auth when not empty
	Timeout time.Duration // per call (default 3s)
	Client  *http.Client  // nil: a private client
}

// HTTP asks an application's endpoint (see docs/ARCHITECTURE.md).
type HTTP struct{ cfg HTTPConfig }

// NewHTTP checks cfg and returns the authenticator.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) { return &HTTP{cfg: cfg}, nil }

// Name implements Authenticator.
func (h *HTTP) Name() string { return "http" }

// Authenticate implements Authenticator.
func (h *HTTP) Authenticate(ctx context.Context, name, password string) (Identity, error) {
	return Identity{}, errors.New("auth: http: not implemented")
}
