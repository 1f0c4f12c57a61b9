// Package routeclient is the gateway's HTTP client for the route's internal
// API (/internal/online, /internal/offline, /internal/uplink,
// /internal/device-login), served on the route's --internal-listen address.
// Every call carries the internal secret in contract.Header; the paths,
// bodies and errors are package contract's.
//
// Every call is retried on connection errors and 5xx answers with jittered
// exponential backoff for up to Config.RetryFor, rotating among the
// configured route URLs, so a route restart or the loss of one route replica
// delays calls instead of failing them (a device login does not retry 5xx
// answers: see DeviceLogin). A Client is safe for concurrent use.
package routeclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/internal/backoff"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

const (
	// maxResponse caps how much of an answer is read; a PushBatch for one
	// uplink batch is far smaller.
	maxResponse = 64 << 20

	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// Config configures a Client.
type Config struct {
	// URLs are the route's internal base URLs, e.g. "http://127.0.0.1:8090".
	URLs []string
	// GatewayID is sent with every call.
	GatewayID string
	// Secret is the current internal secret, sent in contract.Header.
	Secret string
	// RetryFor bounds how long one call keeps retrying (default 15s).
	RetryFor time.Duration
	// AttemptTimeout bounds one HTTP attempt (default 10s, never more than
	// what is left of RetryFor).
	AttemptTimeout time.Duration
	Logger         *slog.Logger
}

// Client calls the route.
type Client struct {
	urls    []string
	gw      string
	secret  string
	retry   time.Duration
	attempt time.Duration
	http    *http.Client
	next    atomic.Uint32 // index of the URL to use
	log     *slog.Logger

	secretLogged atomic.Int64 // unix ns of the last "secret refused" log line
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = 15 * time.Second
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	urls := make([]string, 0, len(cfg.URLs))
	for _, u := range cfg.URLs {
		urls = append(urls, strings.TrimRight(u, "/"))
	}
	tr := &http.Transport{
		Proxy:               nil, // internal traffic never goes through a proxy
		DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Client{
		urls:    urls,
		gw:      cfg.GatewayID,
		secret:  cfg.Secret,
		retry:   cfg.RetryFor,
		attempt: cfg.AttemptTimeout,
		http:    &http.Client{Transport: tr},
		log:     cfg.Logger.With("component", "routeclient"),
	}
}

// Close releases idle keep-alive connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Online tells the route that the session is connected here. It returns
// contract.ErrNotCurrent when the route says the session is not the user's
// current one, and contract.ErrUnavailable (wrapped) when no route answered
// in time.
func (c *Client) Online(ctx context.Context, userID, sessionID, platform string) error {
	return c.session(ctx, contract.PathOnline, userID, sessionID, platform, false)
}

// Reassert confirms a session whose connection this gateway kept while its
// ZooKeeper node was gone: the route may have cleared the gateway's users
// meanwhile and re-creates the route unless another session took it
// (contract.ErrNotCurrent).
func (c *Client) Reassert(ctx context.Context, userID, sessionID, platform string) error {
	return c.session(ctx, contract.PathOnline, userID, sessionID, platform, true)
}

// Offline tells the route that the session disconnected from here.
func (c *Client) Offline(ctx context.Context, userID, sessionID, platform string) error {
	return c.session(ctx, contract.PathOffline, userID, sessionID, platform, false)
}

func (c *Client) session(ctx context.Context, path, userID, sessionID, platform string, reassert bool) error {
	body, err := json.Marshal(contract.Session{UserID: userID, SessionID: sessionID, GatewayID: c.gw, Platform: platform, Reassert: reassert})
	if err != nil {
		return err
	}
	status, resp, err := c.post(ctx, path, contract.JSONType, body, true)
	if err != nil {
		return err
	}
	err = contract.SessionAnswer(path, status, resp)
	if errors.Is(err, contract.ErrSecretRefused) {
		c.logSecretRefused(path)
	}
	return err
}

// Uplink posts one batch of client frames and returns the frames the route
// wants delivered to the senders.
func (c *Client) Uplink(ctx context.Context, b *cimpb.UplinkBatch) (*cimpb.PushBatch, error) {
	if b.GatewayId == "" {
		b.GatewayId = c.gw
	}
	body, err := proto.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode uplink batch: %w", err)
	}
	const path = contract.PathUplink
	status, resp, err := c.post(ctx, path, contract.ProtobufType, body, true)
	if err != nil {
		return nil, err
	}
	if status == http.StatusUnauthorized {
		c.logSecretRefused(path)
		return nil, fmt.Errorf("%s answered HTTP 401: %w", path, contract.ErrSecretRefused)
	}
	if status/100 != 2 {
		return nil, fmt.Errorf("%w: %s answered HTTP %d: %s", contract.ErrRejected, path, status, contract.Snippet(resp))
	}
	out := &cimpb.PushBatch{}
	if err := proto.Unmarshal(resp, out); err != nil {
		return nil, fmt.Errorf("%w: %s answer is not a PushBatch: %v", contract.ErrRejected, path, err)
	}
	return out, nil
}

// Errors of DeviceLogin, besides contract.ErrRejected.
var (
	// ErrBadCredentials means the route does not take the device's
	// credential: an unknown device, a wrong or revoked secret.
	ErrBadCredentials = errors.New("routeclient: device credential refused")
	// ErrBusy means the route is busy with other devices or cannot reach
	// its storage, or no route answered in time: come back later.
	ErrBusy = errors.New("routeclient: route busy")
)

// DeviceLogin trades a device's credential for a gateway token
// (contract.PathDeviceLogin; GatewayID defaults to this gateway's). It
// answers ErrBadCredentials, ErrBusy or contract.ErrRejected (wrapped).
// Connection errors are retried on the other route URLs while ctx lasts,
// but a 5xx answer is not: a route that says it is busy means it, and the
// device is told at once rather than held while the route is asked again.
func (c *Client) DeviceLogin(ctx context.Context, req contract.DeviceLogin) (contract.DeviceToken, error) {
	if req.GatewayID == "" {
		req.GatewayID = c.gw
	}
	body, err := json.Marshal(req)
	if err != nil {
		return contract.DeviceToken{}, err
	}
	const path = contract.PathDeviceLogin
	status, resp, err := c.post(ctx, path, contract.JSONType, body, false)
	if err != nil {
		if errors.Is(err, contract.ErrUnavailable) {
			return contract.DeviceToken{}, fmt.Errorf("%w: %v", ErrBusy, err)
		}
		return contract.DeviceToken{}, err
	}
	var env struct {
		Code    codes.Code      `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	jsonErr := json.Unmarshal(resp, &env)
	switch {
	case status == http.StatusOK && jsonErr == nil && (env.Code == codes.OK || env.Code == 0):
		var tok contract.DeviceToken
		if err := json.Unmarshal(env.Data, &tok); err != nil || tok.Token == "" || tok.UserID == "" {
			return contract.DeviceToken{}, fmt.Errorf("%w: %s answered %s", contract.ErrRejected, path, contract.Snippet(resp))
		}
		return tok, nil
	case jsonErr == nil && env.Code == codes.BadAccount:
		return contract.DeviceToken{}, fmt.Errorf("%w: %s", ErrBadCredentials, env.Message)
	case status == http.StatusUnauthorized && (jsonErr != nil || env.Code == codes.Unauthorized || env.Code == 0):
		c.logSecretRefused(path)
		return contract.DeviceToken{}, fmt.Errorf("%s answered HTTP 401: %w", path, contract.ErrSecretRefused)
	case status == http.StatusUnauthorized:
		return contract.DeviceToken{}, fmt.Errorf("%w: %s (code %d)", ErrBadCredentials, env.Message, env.Code)
	case status/100 == 5 || (jsonErr == nil && (env.Code == codes.Busy || env.Code == codes.Unavailable)):
		return contract.DeviceToken{}, fmt.Errorf("%w: %s answered HTTP %d: %s", ErrBusy, path, status, contract.Snippet(resp))
	}
	return contract.DeviceToken{}, fmt.Errorf("%w: %s answered HTTP %d: %s", contract.ErrRejected, path, status, contract.Snippet(resp))
}

// Probe asks each route URL in turn for contract.PathLive, once, within
// ctx, and returns nil as soon as one answers below 500 (any such answer
// shows a route that takes calls). A 401 is ErrSecretRefused: that route
// takes none of this gateway's calls. Without a route answering it returns
// contract.ErrUnavailable (wrapped).
func (c *Client) Probe(ctx context.Context) error {
	if len(c.urls) == 0 {
		return fmt.Errorf("%w: no route URL configured", contract.ErrUnavailable)
	}
	var errs []error
	for _, base := range c.urls {
		err := c.probe(ctx, base+contract.PathLive)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	if errors.Is(errs[0], contract.ErrSecretRefused) {
		return errs[0]
	}
	return fmt.Errorf("%w: %w", contract.ErrUnavailable, errors.Join(errs...))
}

func (c *Client) probe(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set(contract.Header, c.secret)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		c.logSecretRefused(contract.PathLive)
		return fmt.Errorf("%s answered HTTP 401: %w", url, contract.ErrSecretRefused)
	case resp.StatusCode >= 500:
		return fmt.Errorf("%s answered HTTP %d", url, resp.StatusCode)
	}
	return nil
}

// post sends body to path on the current route URL, retrying connection
// errors (and 5xx answers with retry5xx) on the next URL with backoff until
// the retry window ends. It returns the first answer it does not retry.
func (c *Client) post(ctx context.Context, path, contentType string, body []byte, retry5xx bool) (int, []byte, error) {
	if len(c.urls) == 0 {
		return 0, nil, fmt.Errorf("%w: no route URL configured", contract.ErrUnavailable)
	}
	deadline := time.Now().Add(c.retry)
	bo := backoff.New(minBackoff, maxBackoff, backoff.Equal)
	var lastErr error
	for attempt := 1; ; attempt++ {
		idx := c.next.Load()
		base := c.urls[int(idx)%len(c.urls)]
		status, resp, err := c.once(ctx, base+path, contentType, body, deadline)
		if err == nil && (status < 500 || !retry5xx) {
			return status, resp, nil
		}
		if err == nil {
			err = fmt.Errorf("HTTP %d: %s", status, contract.Snippet(resp))
		}
		lastErr = fmt.Errorf("%s%s: %w", base, path, err)
		if ctx.Err() != nil {
			return 0, nil, fmt.Errorf("%w: %v", contract.ErrUnavailable, lastErr)
		}
		// Move every caller on to the next route, unless another caller
		// already did.
		c.next.CompareAndSwap(idx, idx+1)
		left := time.Until(deadline)
		if left <= 0 {
			return 0, nil, fmt.Errorf("%w after %d attempts: %v", contract.ErrUnavailable, attempt, lastErr)
		}
		// The last attempt is made at the end of the window.
		sleep := min(bo.Next(), left)
		if attempt == 1 || attempt%10 == 0 {
			c.log.Warn("route call failed, retrying", "path", path, "attempt", attempt, "err", err)
		}
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, nil, fmt.Errorf("%w: %v (%v)", contract.ErrUnavailable, ctx.Err(), lastErr)
		case <-t.C:
		}
	}
}

func (c *Client) once(ctx context.Context, url, contentType string, body []byte, deadline time.Time) (int, []byte, error) {
	timeout := min(c.attempt, time.Until(deadline))
	if timeout <= 0 {
		timeout = minBackoff
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set(contract.Header, c.secret)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return 0, nil, fmt.Errorf("read answer: %w", err)
	}
	return resp.StatusCode, b, nil
}

// secretLogEvery spaces out the log lines about a refused internal secret.
const secretLogEvery = 10 * time.Second

// logSecretRefused logs a 401 from the route, a configuration mismatch
// that retrying cannot fix and an operator has to (at most every
// secretLogEvery).
func (c *Client) logSecretRefused(path string) {
	now := time.Now().UnixNano()
	if last := c.secretLogged.Load(); now-last >= int64(secretLogEvery) && c.secretLogged.CompareAndSwap(last, now) {
		c.log.Error("the route refused this gateway's internal secret; --internal-secret must match the route's", "path", path)
	}
}
