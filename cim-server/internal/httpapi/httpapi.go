// Package httpapi is the gateway's internal HTTP API, called by the route
// and by health checks:
//
//	POST /push     protobuf PushBatch → protobuf PushResult; needs the
//	               internal secret in contract.Header, else 401. With
//	               "Upgrade: cim-stream/1" the route opens a long-lived
//	               stream here instead (package stream), carrying its
//	               pushes and this gateway's uplinks; 426 when the
//	               gateway serves no streams
//	GET  /healthz  200 {"status":"ok","connections":N}, 503 while shutting down
//	               (open: load balancers and the route probe it). With
//	               ?challenge=<hex> (package gwproof) the answer, 200 or 503,
//	               also carries "id" (this gateway's id) and "proof", the
//	               HMAC of the challenge and the id under the current
//	               internal secret: the route hands out only gateways that
//	               prove they hold the secret. The secret itself never leaves.
//	GET  /livez    200 {"status":"ok"} while the process serves HTTP (open)
//	GET  /readyz   200 {"status":"ready"} when Ops.Ready says so, else 503
//	               {"status":"not ready","reason":"..."} (open)
//	GET  /metrics  Ops.Metrics: the Prometheus exposition (open: it holds
//	               no secrets, and the listener is internal)
//	POST /drain    needs the internal secret like /push: Ops.Drain starts
//	               a drain and its JSON contract.Drain is the answer
//
// It is served on its own listener, apart from the client port. The handler
// is safe for concurrent use.
package httpapi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"
	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/gwproof"
	"github.com/gocim/gocim/internal/stream"
	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

// MaxPushBody caps a /push body; a PushBatch for every user of a full
// gateway stays far below it.
const MaxPushBody = 64 << 20

var (
	// ErrBadBody means the body is not a valid PushBatch.
	ErrBadBody = errors.New("body is not a valid protobuf PushBatch")
	// ErrBodyTooLarge means the body is over MaxPushBody.
	ErrBodyTooLarge = errors.New("body too large")
	// ErrUnreadableBody means the body could not be read.
	ErrUnreadableBody = errors.New("body could not be read")
	// ErrUnauthorized means the call lacks the right internal secret.
	ErrUnauthorized = errors.New("missing or wrong " + contract.Header + " header")
	// ErrBadChallenge means /healthz got a malformed challenge.
	ErrBadChallenge = gwproof.ErrBadChallenge
)

// errorTable maps the sentinel errors to their HTTP status and API code.
var errorTable = []struct {
	err    error
	status int
	code   codes.Code
}{
	{ErrBadBody, http.StatusBadRequest, codes.BadArgument},
	{ErrBodyTooLarge, http.StatusRequestEntityTooLarge, codes.BadArgument},
	{ErrUnreadableBody, http.StatusBadRequest, codes.BadArgument},
	{ErrUnauthorized, http.StatusUnauthorized, codes.Unauthorized},
	{ErrBadChallenge, http.StatusBadRequest, codes.BadArgument},
}

// Pusher delivers frames to this gateway's connections, given a
// PushBatch's bytes; an error means they are no PushBatch.
type Pusher interface {
	PushWire(body []byte) (*cimpb.PushResult, error)
}

// Health reports the gateway's state for /healthz.
type Health interface {
	Connections() int
	ShuttingDown() bool
	// ID is the gateway id the route knows it by (its ZooKeeper node
	// name); proofs are bound to it.
	ID() string
}

// Streams runs a stream a route opened on /push; it owns the connection.
type Streams interface {
	ServeStream(nc net.Conn, br *bufio.Reader)
}

// Ops are the operators' endpoints besides /healthz. A nil field's
// endpoint is not served (/readyz then answers like /livez).
type Ops struct {
	// Ready returns nil when the gateway can take clients, else why not
	// (the reason in /readyz's 503).
	Ready func() error
	// Metrics serves /metrics.
	Metrics http.Handler
	// Drain starts a drain asked for from remote (the caller's address)
	// and says whether one was already under way.
	Drain func(remote string) contract.Drain
}

// Readiness is the JSON body of /readyz.
type Readiness struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// Readiness statuses.
const (
	StatusReady    = "ready"
	StatusNotReady = "not ready"
)

// New returns the HTTP handler. /push and /drain accept only calls
// carrying one of secrets; with nil secrets they accept none. Streams may
// be nil: upgrade requests are then refused.
func New(p Pusher, h Health, s Streams, secrets *contract.Secrets, logger *slog.Logger, ops Ops) http.Handler {
	return newHandler(p, h, s, secrets, logger, MaxPushBody, ops)
}

func newHandler(p Pusher, h Health, s Streams, secrets *contract.Secrets, logger *slog.Logger, maxBody int, ops Ops) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	// Nothing proxies the internal API: log the peer's own address, never
	// one a caller claims in X-Forwarded-For.
	_ = e.SetTrustedProxies(nil)
	e.Use(gin.Recovery())
	a := &api{p: p, h: h, streams: s, secrets: secrets, maxBody: maxBody, ops: ops, log: logger.With("component", "httpapi")}
	e.POST(contract.PathPush, a.internalOnly, a.push)
	e.GET(contract.PathHealth, a.healthz)
	e.GET(contract.PathLive, a.livez)
	e.GET(contract.PathReady, a.readyz)
	if ops.Metrics != nil {
		e.GET(contract.PathMetrics, gin.WrapH(ops.Metrics))
	}
	if ops.Drain != nil {
		e.POST(contract.PathDrain, a.internalOnly, a.drain)
	}
	return e
}

type api struct {
	p       Pusher
	h       Health
	streams Streams
	secrets *contract.Secrets
	maxBody int
	ops     Ops
	log     *slog.Logger
}

// internalOnly refuses calls without a valid contract.Header before
// the body is read.
func (a *api) internalOnly(c *gin.Context) {
	if a.secrets.Valid(c.GetHeader(contract.Header)) {
		c.Next()
		return
	}
	a.fail(c, ErrUnauthorized)
	c.Abort()
}

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func (a *api) push(c *gin.Context) {
	if stream.IsUpgrade(c.Request) {
		a.upgrade(c)
		return
	}
	bp := bodyPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 1<<20 {
			*bp = (*bp)[:0]
			bodyPool.Put(bp)
		}
	}()
	body, err := readBody(c.Request, (*bp)[:0], a.maxBody)
	*bp = body
	if err != nil {
		a.fail(c, err)
		return
	}
	res, err := a.p.PushWire(body)
	if err != nil {
		a.fail(c, fmt.Errorf("%w: %v", ErrBadBody, err))
		return
	}
	out, err := proto.Marshal(res)
	if err != nil { // cannot happen for a PushResult; answer anyway
		c.JSON(http.StatusInternalServerError, gin.H{"code": codes.Internal, "message": err.Error(), "data": nil})
		return
	}
	c.Data(http.StatusOK, contract.ProtobufType, out)
}

// upgrade hands the connection to Streams (the secret was checked).
func (a *api) upgrade(c *gin.Context) {
	if a.streams == nil || a.h.ShuttingDown() {
		c.JSON(http.StatusUpgradeRequired, gin.H{"code": codes.Unavailable, "message": "no streams here: use plain /push", "data": nil})
		return
	}
	nc, br, err := stream.Hijack(c.Writer, c.Request)
	if err != nil {
		a.log.Warn("stream upgrade failed", "remote", c.ClientIP(), "err", err)
		return
	}
	a.streams.ServeStream(nc, br)
}

func readBody(r *http.Request, buf []byte, limit int) ([]byte, error) {
	lr := io.LimitReader(r.Body, int64(limit)+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return buf, ErrBodyTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, fmt.Errorf("%w: %v", ErrUnreadableBody, err)
		}
	}
}

func (a *api) healthz(c *gin.Context) {
	status, body := http.StatusOK, contract.Health{Status: contract.HealthOK, Connections: a.h.Connections()}
	if a.h.ShuttingDown() {
		status, body.Status = http.StatusServiceUnavailable, contract.HealthShuttingDown
	}
	if challenge, asked := c.GetQuery(gwproof.Param); asked {
		if err := gwproof.CheckChallenge(challenge); err != nil {
			a.fail(c, err)
			return
		}
		// Even while shutting down: the route must tell a draining
		// gateway (verified, not handed out) from an impostor.
		body.ID = a.h.ID()
		if a.secrets != nil {
			body.Proof = gwproof.Sign(a.secrets.Current(), challenge, body.ID)
		}
	}
	c.JSON(status, body)
}

func (a *api) livez(c *gin.Context) {
	c.JSON(http.StatusOK, contract.Health{Status: contract.HealthOK, Connections: a.h.Connections()})
}

func (a *api) readyz(c *gin.Context) {
	var err error
	if a.ops.Ready != nil {
		err = a.ops.Ready()
	}
	if err != nil {
		c.JSON(http.StatusServiceUnavailable, Readiness{Status: StatusNotReady, Reason: err.Error()})
		return
	}
	c.JSON(http.StatusOK, Readiness{Status: StatusReady})
}

// drain starts a drain (the secret was checked). The body, if any, is
// ignored.
func (a *api) drain(c *gin.Context) {
	c.JSON(http.StatusOK, a.ops.Drain(c.Request.RemoteAddr))
}

// fail answers err using errorTable, JSON in the route's API shape.
func (a *api) fail(c *gin.Context, err error) {
	status, code := http.StatusInternalServerError, codes.Internal
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			status, code = e.status, e.code
			break
		}
	}
	a.log.Warn("bad request", "path", c.FullPath(), "remote", c.ClientIP(), "status", status, "err", err)
	c.JSON(status, gin.H{"code": code, "message": err.Error(), "data": nil})
}
