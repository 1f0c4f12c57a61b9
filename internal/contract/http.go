package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gocim/gocim/proto/codes"
)

// Paths the route serves on its internal listener, called by gateways.
const (
	// PathOnline: a JSON Session; the session is connected at GatewayID.
	PathOnline = "/internal/online"
	// PathOffline: a JSON Session; the session left GatewayID.
	PathOffline = "/internal/offline"
	// PathUplink: a protobuf UplinkBatch in, a protobuf PushBatch out.
	PathUplink = "/internal/uplink"
)

// Paths a gateway serves on its HTTP listener, called by the route.
const (
	// PathPush: a protobuf PushBatch in, a protobuf PushResult out.
	PathPush = "/push"
	// PathHealth: GET, answered with a JSON Health; open to anybody.
	PathHealth = "/healthz"
	// PathLive: GET, 200 while the process serves (liveness); open.
	PathLive = "/livez"
	// PathReady: GET, 200 when the binary can do its job (readiness), 503
	// with the reason otherwise; open. Both binaries serve it.
	PathReady = "/readyz"
	// PathMetrics: GET, Prometheus text exposition; open, on internal
	// listeners only.
	PathMetrics = "/metrics"
	// PathDrain: POST with Header, empty body: the gateway leaves
	// ZooKeeper, refuses new clients and moves its clients off over
	// --drain, then stays up reporting not ready until stopped. Answered
	// with a JSON Drain.
	PathDrain = "/drain"
)

// Drain answers PathDrain.
type Drain struct {
	// Connections is how many client connections were open when the
	// drain began (0 when it had begun before).
	Connections int `json:"connections"`
	// Already: a drain (or shutdown) was under way.
	Already bool `json:"already"`
}

// Header carries the internal secret on every internal call.
const Header = "X-CIM-Internal"

// Media types of the internal bodies.
const (
	ProtobufType = "application/x-protobuf"
	JSONType     = "application/json"
)

// Session is the body of PathOnline and PathOffline.
type Session struct {
	UserID    string `json:"userId"`
	SessionID string `json:"sessionId"`
	GatewayID string `json:"gatewayId"`
	// Platform is what the login named (terminal, web, mobile, desktop,
	// device; empty: none), from the gateway token.
	Platform string `json:"platform,omitempty"`
	// Reassert marks a PathOnline for a connection the gateway kept while
	// its ZooKeeper node was gone: the route re-creates the user's route
	// unless another session took it meanwhile.
	Reassert bool `json:"reassert,omitempty"`
}

// Health is a gateway's answer to PathHealth: 200 with Status "ok", 503
// while it shuts down. Asked with a challenge (package gwproof), it also
// carries the gateway's ID and the Proof that it holds the internal secret.
type Health struct {
	Status      string `json:"status"`
	Connections int    `json:"connections"`
	ID          string `json:"id,omitempty"`
	Proof       string `json:"proof,omitempty"`
}

// Health statuses.
const (
	HealthOK           = "ok"
	HealthShuttingDown = "shutting down"
)

// StatusNotCurrent is the HTTP status of the route's refusal of a
// PathOnline (with code codes.Unauthorized) when the session is no longer
// the user's current one. A 401 means the internal secret was refused.
const StatusNotCurrent = http.StatusConflict

// Errors a gateway's calls to the route end with.
var (
	// ErrNotCurrent means the route refused PathOnline because the session
	// is no longer the user's current one.
	ErrNotCurrent = errors.New("route: session is not current")
	// ErrUnavailable means no route answered within the retry window.
	ErrUnavailable = errors.New("route: unavailable")
	// ErrRejected means a route answered with a client error that retrying
	// cannot fix (a gateway/route contract mismatch, a refused secret).
	ErrRejected = errors.New("route: request rejected")
	// ErrSecretRefused means the route answered 401: it does not know this
	// gateway's internal secret. It wraps ErrRejected.
	ErrSecretRefused = fmt.Errorf("%w: the route refused the internal secret", ErrRejected)
)

// answer is the JSON envelope of the route's answers.
type answer struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// SessionAnswer reads the route's answer to a PathOnline or PathOffline
// call (its HTTP status and body; 5xx answers are the caller's to retry):
// nil when the route took it, else ErrSecretRefused (401), ErrNotCurrent
// (StatusNotCurrent, or any answer with code codes.Unauthorized) or
// ErrRejected, wrapped with what the route said.
func SessionAnswer(path string, status int, body []byte) error {
	var a answer
	jsonErr := json.Unmarshal(body, &a)
	switch {
	case status == http.StatusUnauthorized:
		return fmt.Errorf("%s answered HTTP 401: %w", path, ErrSecretRefused)
	case status == StatusNotCurrent || (jsonErr == nil && a.Code == int(codes.Unauthorized)):
		return fmt.Errorf("%w: %s", ErrNotCurrent, a.Message)
	case status/100 == 2 && (jsonErr != nil || a.Code == 0 || a.Code == int(codes.OK)):
		return nil
	default:
		return fmt.Errorf("%w: %s answered HTTP %d: %s", ErrRejected, path, status, Snippet(body))
	}
}

// Snippet is the start of an answer body, for an error message.
func Snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		b = b[:n]
	}
	return strings.TrimSpace(string(b))
}
