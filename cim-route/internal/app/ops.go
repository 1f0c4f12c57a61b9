package app

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-route/internal/metrics"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/codes"
)

// What an operator sees of the route besides its API, served in front of
// the API handlers (which know nothing of them):
//
//	GET /livez    both listeners: 200 {"status":"ok"} while the process serves
//	GET /readyz   both listeners: 200 {"status":"ready"} when Redis answers a
//	              PING, the ZooKeeper session is up and at least one gateway
//	              can be handed out; else 503 {"status":"not ready",
//	              "reason":..., "failing":[...]} naming the failed checks
//	GET /metrics  internal listener only, without the secret: the
//	              Prometheus exposition of package metrics
//
// /healthz stays the API's. The checks' details never carry error texts
// (addresses of Redis or ZooKeeper): /readyz is open on the public listener.

// readyPing bounds the Redis PING of one /readyz; a PING's answer serves
// every /readyz for readyPingFresh after it. /readyz is open on the public
// listener: requests at any rate cost Redis at most a few PINGs a second.
const (
	readyPing      = time.Second
	readyPingFresh = 500 * time.Millisecond
)

// redisPing is the last readiness PING and its outcome.
type redisPing struct {
	mu   sync.Mutex // held while a PING runs: others wait for its answer
	at   time.Time
	fail bool
}

// failed PINGs Redis unless a PING answered within readyPingFresh, and
// reports whether it failed.
func (p *redisPing) failed(ctx context.Context, rdb redis.UniversalClient) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.at) < readyPingFresh {
		return p.fail
	}
	pctx, cancel := context.WithTimeout(ctx, readyPing)
	defer cancel()
	p.fail = rdb.Ping(pctx).Err() != nil
	p.at = time.Now()
	return p.fail
}

// Readiness checks, the names in /readyz's "failing".
const (
	checkRedis     = "redis"
	checkZooKeeper = "zookeeper"
	checkGateways  = "gateways"
	checkShutdown  = "shutdown"
)

// Readiness is the JSON body of /readyz.
type Readiness struct {
	Status string `json:"status"` // "ready" or "not ready"
	// Reason says why not, one clause per failed check.
	Reason string `json:"reason,omitempty"`
	// Failing names the failed checks: redis, zookeeper, gateways,
	// shutdown.
	Failing []string `json:"failing,omitempty"`
	// Gateways is how many gateways logins may be sent to.
	Gateways int `json:"gateways"`
}

// Readiness statuses.
const (
	StatusReady    = "ready"
	StatusNotReady = "not ready"
)

// Readiness runs the checks of /readyz: Redis answers a PING within
// readyPing, the ZooKeeper session is connected, at least one gateway can
// be handed out, and Shutdown has not begun. Every check runs, so the
// answer names all that fail.
func (a *App) Readiness(ctx context.Context) Readiness {
	r := Readiness{Gateways: a.bal.Count()}
	fail := func(check, why string) {
		r.Failing = append(r.Failing, check)
		if r.Reason != "" {
			r.Reason += "; "
		}
		r.Reason += why
	}
	a.mu.Lock()
	stopping := a.stopping
	a.mu.Unlock()
	if stopping {
		fail(checkShutdown, "shutting down")
	}
	if a.ping.failed(ctx, a.rdb) {
		fail(checkRedis, "redis does not answer PING within "+readyPing.String())
	}
	if !a.disc.Connected() {
		fail(checkZooKeeper, "no ZooKeeper session")
	}
	if r.Gateways == 0 {
		fail(checkGateways, "no live gateway to hand out")
	}
	r.Status = StatusReady
	if len(r.Failing) > 0 {
		r.Status = StatusNotReady
	}
	return r
}

// opsHandler serves /livez, /readyz and, with metrics, /metrics, and
// passes every other request to next. It compares paths itself instead of
// using an http.ServeMux, which would clean and redirect the paths of the
// API's requests before they reach it.
func (a *App) opsHandler(next http.Handler, metricsHandler http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var h http.HandlerFunc
		switch r.URL.Path {
		case contract.PathLive:
			h = func(w http.ResponseWriter, _ *http.Request) {
				writeJSON(w, http.StatusOK, contract.Health{Status: contract.HealthOK})
			}
		case contract.PathReady:
			h = func(w http.ResponseWriter, r *http.Request) {
				rd := a.Readiness(r.Context())
				status := http.StatusOK
				if rd.Status != StatusReady {
					status = http.StatusServiceUnavailable
				}
				writeJSON(w, status, rd)
			}
		case contract.PathMetrics:
			if metricsHandler != nil {
				h = metricsHandler.ServeHTTP
			}
		}
		if h == nil {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// countLogins counts the outcomes of POST /login in m, read from the
// answer's result code (the API's contract: one code per failure), so that
// refusals at the HTTP edge (rate limits, bad JSON) count too.
func countLogins(next http.Handler, m *metrics.Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/login" || r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		lw := &loginWriter{ResponseWriter: w}
		next.ServeHTTP(lw, r)
		code, ok := lw.code()
		switch {
		case ok && code == codes.OK:
			m.LoggedIn()
		case ok:
			m.LoginFailed(loginReason(code))
		case lw.status/100 == 4:
			m.LoginFailed(metrics.BadRequest)
		default:
			m.LoginFailed(metrics.Internal)
		}
	})
}

// loginReason maps a /login answer's result code to its failure reason.
func loginReason(c codes.Code) metrics.Reason {
	switch c {
	case codes.BadArgument, codes.TooLarge:
		return metrics.BadRequest
	case codes.BadAccount:
		return metrics.BadCredentials
	case codes.Unauthorized: // only a resume token gets it at /login
		return metrics.ResumeRefused
	case codes.RateLimited:
		return metrics.RateLimited
	case codes.Forbidden:
		return metrics.Banned
	case codes.RepeatLogin:
		return metrics.PolicyReject
	case codes.NoServer:
		return metrics.NoGateway
	case codes.Busy:
		return metrics.Busy
	case codes.Unavailable:
		return metrics.Unavailable
	}
	return metrics.Internal
}

// loginWriter keeps an answer's status and the start of its body, where
// the JSON envelope has its code ({"code":9000,...}).
type loginWriter struct {
	http.ResponseWriter
	status int
	head   []byte
}

// headLen is enough of the body for the code.
const headLen = 32

func (w *loginWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *loginWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if n := headLen - len(w.head); n > 0 {
		w.head = append(w.head, p[:min(n, len(p))]...)
	}
	return w.ResponseWriter.Write(p)
}

func (w *loginWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// code reads the result code at the start of the body.
func (w *loginWriter) code() (codes.Code, bool) {
	rest, ok := bytes.CutPrefix(w.head, []byte(`{"code":`))
	if !ok {
		return 0, false
	}
	end := bytes.IndexAny(rest, ",}")
	if end < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(rest[:end]))
	if err != nil {
		return 0, false
	}
	return codes.Code(n), true
}
