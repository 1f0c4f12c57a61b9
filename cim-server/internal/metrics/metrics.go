// Package metrics holds the gateway's Prometheus collectors, on a registry
// of its own (with the Go runtime and process collectors) that the internal
// HTTP listener serves at contract.PathMetrics.
//
// Every label value is fixed in advance — transports, login failure
// reasons, frame types — and every labelled child is looked up once, in
// New: counting a frame is an atomic add, with no allocation and no map
// lookup. A nil *Gateway and a nil *Transport count nothing, so components
// built without metrics (unit tests) need no special case.
//
// All methods are safe for concurrent use.
package metrics

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gocim/gocim/proto/cimpb"
)

const namespace, subsystem = "gocim", "gateway"

// Transport names, the values of the transport label.
const (
	TCP  = "tcp"
	WS   = "ws"
	MQTT = "mqtt"
)

var transports = [...]string{TCP, WS, MQTT}

// Reason is why a connection did not log in: the reason label of
// login_failures_total.
type Reason uint8

// Login failure reasons.
const (
	// BadToken: the LOGIN token did not verify (malformed, bad signature,
	// expired).
	BadToken Reason = iota
	// WrongGateway: the token was issued for another gateway.
	WrongGateway
	// NotCurrent: the route refused the session as no longer current.
	NotCurrent
	// RouteUnavailable: the route could not be reached, or refused the
	// call (its secret, a contract mismatch).
	RouteUnavailable
	// Refused: an MQTT CONNECT was refused (bad credentials, busy, an
	// unsupported protocol level or feature).
	Refused
	// Timeout: no LOGIN (or CONNECT) within --login-timeout.
	Timeout
	// TLSHandshake: the TLS handshake failed.
	TLSHandshake
	// BadFrame: the first frame was not a LOGIN, or did not parse.
	BadFrame
	// Closed: the client hung up, or the gateway closed the connection
	// (shutdown, drain), before the login completed.
	Closed
	// Limit: a connection cap refused the connection at accept.
	Limit
	numReasons
)

var reasonNames = [numReasons]string{
	BadToken:         "bad_token",
	WrongGateway:     "wrong_gateway",
	NotCurrent:       "not_current",
	RouteUnavailable: "route_unavailable",
	Refused:          "refused",
	Timeout:          "timeout",
	TLSHandshake:     "tls_handshake",
	BadFrame:         "bad_frame",
	Closed:           "closed",
	Limit:            "limit",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// numTypes covers every frame type the protocol defines; anything else
// counts as "unknown".
var numTypes = func() int {
	n := 0
	for v := range cimpb.Type_name {
		n = max(n, int(v)+1)
	}
	return n
}()

// frames are the counters of one direction, by frame type.
type frames struct {
	byType  []prometheus.Counter // index: cimpb.Type
	unknown prometheus.Counter
}

func newFrames(vec *prometheus.CounterVec) frames {
	f := frames{byType: make([]prometheus.Counter, numTypes), unknown: vec.WithLabelValues("unknown")}
	for v, name := range cimpb.Type_name {
		f.byType[v] = vec.WithLabelValues(strings.ToLower(name))
	}
	return f
}

func (f *frames) inc(t cimpb.Type) {
	if t >= 0 && int(t) < len(f.byType) {
		f.byType[t].Inc()
		return
	}
	f.unknown.Inc()
}

// Transport holds one transport's children. Its methods do nothing on a
// nil *Transport.
type Transport struct {
	connections prometheus.Gauge
	logins      prometheus.Counter
	failures    [numReasons]prometheus.Counter
	slow        prometheus.Counter
	in, out     *frames
}

// LoggedIn counts a login and one more logged-in connection.
func (t *Transport) LoggedIn() {
	if t == nil {
		return
	}
	t.logins.Inc()
	t.connections.Inc()
}

// LoggedOut counts one logged-in connection less.
func (t *Transport) LoggedOut() {
	if t != nil {
		t.connections.Dec()
	}
}

// LoginFailed counts a connection that ended without logging in.
func (t *Transport) LoginFailed(r Reason) {
	if t != nil && r < numReasons {
		t.failures[r].Inc()
	}
}

// SlowConsumer counts a connection closed as a slow consumer.
func (t *Transport) SlowConsumer() {
	if t != nil {
		t.slow.Inc()
	}
}

// FrameIn counts a frame read from a client.
func (t *Transport) FrameIn(ft cimpb.Type) {
	if t != nil {
		t.in.inc(ft)
	}
}

// FrameOut counts a frame written to a client.
func (t *Transport) FrameOut(ft cimpb.Type) {
	if t != nil {
		t.out.inc(ft)
	}
}

// Gateway is the gateway's set of collectors. Its methods do nothing on a
// nil *Gateway.
type Gateway struct {
	reg        *prometheus.Registry
	transports [len(transports)]*Transport

	uplinkBatch, uplinkDuration prometheus.Observer
	pushBatch, pushDuration     prometheus.Observer
	routeErrors, zkErrors       prometheus.Counter
}

// New returns the collectors, registered on a new registry together with
// the Go runtime and process collectors. registered and draining are read
// at each scrape for the zookeeper_registered and draining gauges (nil:
// always 0).
func New(registered, draining func() bool) *Gateway {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts(opts(name, help)), labels)
		reg.MustRegister(v)
		return v
	}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts(opts(name, help)))
		reg.MustRegister(c)
		return c
	}
	histogram := func(name, help string, buckets []float64) prometheus.Observer {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: subsystem,
			Name: name, Help: help, Buckets: buckets})
		reg.MustRegister(h)
		return h
	}
	flag := func(name, help string, f func() bool) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts(name, help)), func() float64 {
			if f != nil && f() {
				return 1
			}
			return 0
		}))
	}

	connections := prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("connections",
		"Logged-in client connections, by transport.")), []string{"transport"})
	reg.MustRegister(connections)
	logins := counterVec("logins_total", "Client logins that succeeded, by transport.", "transport")
	failures := counterVec("login_failures_total",
		"Client connections that ended without logging in, by transport and reason.", "transport", "reason")
	slow := counterVec("slow_consumer_closes_total",
		"Client connections closed because they did not read fast enough, by transport.", "transport")
	in := newFrames(counterVec("frames_received_total", "Frames read from clients, by frame type.", "type"))
	out := newFrames(counterVec("frames_sent_total", "Frames written to clients, by frame type.", "type"))

	m := &Gateway{reg: reg}
	for i, name := range transports {
		t := &Transport{
			connections: connections.WithLabelValues(name),
			logins:      logins.WithLabelValues(name),
			slow:        slow.WithLabelValues(name),
			in:          &in,
			out:         &out,
		}
		for r := range numReasons {
			t.failures[r] = failures.WithLabelValues(name, r.String())
		}
		m.transports[i] = t
	}
	m.uplinkBatch = histogram("uplink_batch_messages", "Client frames in one uplink call to the route.",
		prometheus.ExponentialBuckets(1, 2, 10)) // 1 … 512 (--uplink batches hold at most 256)
	m.uplinkDuration = histogram("uplink_duration_seconds",
		"Duration of one uplink call to the route, retries included.",
		prometheus.ExponentialBuckets(0.0005, 2, 16)) // 0.5ms … 16s
	m.pushBatch = histogram("push_batch_frames", "Frames (one per target) in one push from the route.",
		prometheus.ExponentialBuckets(1, 4, 9)) // 1 … 65536
	m.pushDuration = histogram("push_duration_seconds",
		"Time to hand one push from the route to the connections' write queues.",
		prometheus.ExponentialBuckets(0.00005, 2, 16)) // 50µs … 1.6s
	m.routeErrors = counter("route_errors_total",
		"Calls to the route that failed (unreachable within --route-retry, or refused).")
	m.zkErrors = counter("zookeeper_errors_total",
		"ZooKeeper failures: registration attempts that failed, lost connections, expired sessions.")
	flag("zookeeper_registered", "1 while this gateway's ZooKeeper node exists under its live session.", registered)
	flag("draining", "1 once the gateway began draining (POST /drain or shutdown).", draining)
	return m
}

// Transport returns the children of one transport (TCP, WS or MQTT); nil
// for a nil m or another name.
func (m *Gateway) Transport(name string) *Transport {
	if m == nil {
		return nil
	}
	for i, n := range transports {
		if n == name {
			return m.transports[i]
		}
	}
	return nil
}

// Uplink records one uplink call to the route of n client frames.
func (m *Gateway) Uplink(n int, d time.Duration) {
	if m != nil {
		m.uplinkBatch.Observe(float64(n))
		m.uplinkDuration.Observe(d.Seconds())
	}
}

// Push records one push from the route of n frames.
func (m *Gateway) Push(n int, d time.Duration) {
	if m != nil {
		m.pushBatch.Observe(float64(n))
		m.pushDuration.Observe(d.Seconds())
	}
}

// RouteError counts a failed call to the route.
func (m *Gateway) RouteError() {
	if m != nil {
		m.routeErrors.Inc()
	}
}

// ZooKeeperError counts a ZooKeeper failure.
func (m *Gateway) ZooKeeperError() {
	if m != nil {
		m.zkErrors.Inc()
	}
}

// Registry is the registry the collectors are on (nil for a nil m).
func (m *Gateway) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *Gateway) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
