package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// HTTPConfig configures the HTTP-callback authenticator.
type HTTPConfig struct {
	URL     string        // POST target
	Secret  string        // sent as X-CIM-Auth when not empty
	Timeout time.Duration // per call (default 3s)
	Client  *http.Client  // nil: a private client
}

const (
	// defaultHTTPTimeout bounds one call when HTTPConfig.Timeout is not set.
	defaultHTTPTimeout = 3 * time.Second
	// maxHTTPAnswer bounds the answer body read from the user system.
	maxHTTPAnswer = 64 << 10
)

// HTTP asks an application's endpoint (see docs/ARCHITECTURE.md). It is safe
// for concurrent use.
type HTTP struct{ cfg HTTPConfig }

// NewHTTP checks cfg and returns the authenticator.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("auth: http: bad URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("auth: http: URL %q: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("auth: http: URL %q has no host", u.Redacted())
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultHTTPTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{
			// A redirect would turn the POST into a GET without the
			// body; an auth endpoint that redirects is misconfigured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &HTTP{cfg: cfg}, nil
}

// Name implements Authenticator.
func (h *HTTP) Name() string { return "http" }

// httpCredentials is the request body; httpAnswer the optional 200 body.
type httpCredentials struct {
	UserName string `json:"userName"`
	Password string `json:"password"`
}

type httpAnswer struct {
	UserName string `json:"userName"`
}

// Authenticate implements Authenticator: 200 accepts (with the answer's
// userName as the canonical name when given), 401/403 refuse, anything else
// means the user system cannot be asked.
func (h *HTTP) Authenticate(ctx context.Context, name, password string) (Identity, error) {
	if name == "" || password == "" {
		return Identity{}, ErrBadCredentials
	}
	body, err := json.Marshal(httpCredentials{UserName: name, Password: password})
	if err != nil {
		return Identity{}, fmt.Errorf("%w: http: %v", ErrUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return Identity{}, fmt.Errorf("%w: http: %v", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if h.cfg.Secret != "" {
		req.Header.Set("X-CIM-Auth", h.cfg.Secret)
	}
	resp, err := h.cfg.Client.Do(req)
	if err != nil {
		// *url.Error names the (redacted) URL and the cause, e.g. the
		// deadline.
		return Identity{}, fmt.Errorf("%w: http: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	// Read (a bounded part of) every answer so the connection is reused.
	answer, readErr := io.ReadAll(io.LimitReader(resp.Body, maxHTTPAnswer+1))

	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		return Identity{}, ErrBadCredentials
	default:
		return Identity{}, fmt.Errorf("%w: http: %s answered %s", ErrUnavailable, redacted(h.cfg.URL), resp.Status)
	}
	if readErr != nil {
		return Identity{}, fmt.Errorf("%w: http: reading the answer: %v", ErrUnavailable, readErr)
	}
	if len(answer) > maxHTTPAnswer {
		return Identity{}, fmt.Errorf("%w: http: answer larger than %d bytes", ErrUnavailable, maxHTTPAnswer)
	}
	id := Identity{Name: name}
	if len(bytes.TrimSpace(answer)) == 0 {
		return id, nil
	}
	var a httpAnswer
	if err := json.Unmarshal(answer, &a); err != nil {
		return Identity{}, fmt.Errorf("%w: http: bad JSON answer: %v", ErrUnavailable, err)
	}
	if a.UserName != "" {
		id.Name = a.UserName
	}
	return id, nil
}

// redacted is raw with any password in it masked, for error messages.
func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(bad URL)"
	}
	return u.Redacted()
}

var _ Authenticator = (*HTTP)(nil)
