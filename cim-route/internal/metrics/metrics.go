// Package metrics holds the route's Prometheus collectors, on a registry of
// its own (with the Go runtime and process collectors) that the internal
// listener serves at contract.PathMetrics.
//
// Every label value is fixed in advance (the login failure reasons) and
// every labelled child is looked up once, in New: recording on the hot path
// is an atomic add or a histogram observation, with no allocation and no
// map lookup. A nil *Route records nothing, so components built without
// metrics (unit tests) need no special case.
//
// The components record through small interfaces of their own
// (router.Observer, fanout.Observer, discovery's OnError); *Route
// implements them all. All methods are safe for concurrent use.
package metrics

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace, subsystem = "gocim", "route"

// Reason is why a /login failed: the reason label of login_failures_total.
// The set is closed; nothing a client sends becomes a label value.
type Reason uint8

// Login failure reasons.
const (
	// BadRequest: the request did not parse, or lacked a field.
	BadRequest Reason = iota
	// BadCredentials: unknown user or wrong password.
	BadCredentials
	// RateLimited: too many attempts from the address or for the account.
	RateLimited
	// Banned: the account is banned (or otherwise forbidden to log in).
	Banned
	// PolicyReject: the user is online and --login-policy is reject.
	PolicyReject
	// NoGateway: no live, healthy gateway to hand out.
	NoGateway
	// Busy: the password hashing slots and their queue were full.
	Busy
	// Unavailable: Redis or the external authenticator could not be asked.
	Unavailable
	// Internal: anything else (a bug; the route logged it).
	Internal
	// ResumeRefused: a resume token used, revoked or expired (the SDKs
	// then log in with the password): routine after a log-off or a login
	// elsewhere, unlike BadCredentials, which password guessing raises.
	ResumeRefused
	numReasons
)

var reasonNames = [numReasons]string{
	BadRequest:     "bad_request",
	BadCredentials: "bad_credentials",
	RateLimited:    "rate_limited",
	Banned:         "banned",
	PolicyReject:   "policy_reject",
	NoGateway:      "no_gateway",
	Busy:           "busy",
	Unavailable:    "unavailable",
	Internal:       "internal",
	ResumeRefused:  "resume_refused",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// depthTimeout bounds the Redis calls one scrape makes to read the webhook
// queues' depth.
const depthTimeout = time.Second

// Sources are what the gauges read at each scrape.
type Sources struct {
	// LiveGateways is how many gateways logins may be sent to (live in
	// ZooKeeper, healthy, proven); nil: 0.
	LiveGateways func() int
	// WebhookDepth is how many webhook events wait for delivery; nil: 0
	// (no webhooks). An error leaves the sample out of that scrape.
	WebhookDepth func(ctx context.Context) (int64, error)
}

// Route is the route's set of collectors. Its methods do nothing on a nil
// *Route.
type Route struct {
	reg     *prometheus.Registry
	sources atomic.Pointer[Sources]

	logins, resumed prometheus.Counter
	failures        [numReasons]prometheus.Counter

	uplinkBatch, uplinkDuration prometheus.Observer
	pushBatch, pushDuration     prometheus.Observer
	pushErrors, pushLocal       prometheus.Counter
	inboxAppend                 prometheus.Observer
	syncMessages                prometheus.Observer
	fanoutRecipients            prometheus.Observer
	redisErrors, zkErrors       prometheus.Counter
}

// New returns the collectors, registered on a new registry together with
// the Go runtime and process collectors. The gauges read nothing until
// SetSources.
func New() *Route {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Route{reg: reg}
	m.sources.Store(&Sources{})
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}
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

	m.logins = counter("logins_total", "Logins (POST /login) that handed out a gateway.")
	m.resumed = counter("resumed_logins_total", "Logins (POST /login) that handed out a gateway for a resume token, without the password: counted in logins_total too.")
	failures := prometheus.NewCounterVec(prometheus.CounterOpts(opts("login_failures_total",
		"Logins (POST /login) refused, by reason.")), []string{"reason"})
	reg.MustRegister(failures)
	for r := range numReasons {
		m.failures[r] = failures.WithLabelValues(r.String())
	}
	m.uplinkBatch = histogram("uplink_batch_messages", "Client frames in one uplink batch from a gateway (HTTP or stream).",
		prometheus.ExponentialBuckets(1, 2, 10)) // 1 … 512 (gateways batch at most 256)
	m.uplinkDuration = histogram("uplink_duration_seconds",
		"Time to handle one uplink batch: from its arrival to its answer (the pushes it causes run after).",
		prometheus.ExponentialBuckets(0.0005, 2, 16)) // 0.5ms … 16s
	m.pushBatch = histogram("push_batch_frames", "Frames (one per target) in one push request to a gateway.",
		prometheus.ExponentialBuckets(1, 4, 9)) // 1 … 65536
	m.pushDuration = histogram("push_duration_seconds",
		"Duration of one push request to a gateway (stream or HTTP), until its answer or failure.",
		prometheus.ExponentialBuckets(0.0001, 2, 16)) // 0.1ms … 3.3s (the push timeout is 3s by default)
	m.pushErrors = counter("push_errors_total",
		"Push requests to a gateway that failed as a whole (unreachable, timed out, refused).")
	m.pushLocal = counter("push_local_frames_total",
		"Frames pushed to the gateway this replica runs in (cim-server --route-replica), as function calls: no stream, no encoding.")
	m.inboxAppend = histogram("inbox_append_duration_seconds",
		"Duration of one inbox write to Redis: a batch's appends, acks and route reads, in one pipeline.",
		prometheus.ExponentialBuckets(0.0001, 2, 16)) // 0.1ms … 3.3s
	m.syncMessages = histogram("sync_messages", "Messages and receipts in one SYNC answer.",
		append([]float64{0}, prometheus.ExponentialBuckets(1, 2, 10)...)) // 0, 1 … 512 (--sync-limit is 200 by default)
	m.fanoutRecipients = histogram("fanout_recipients", "Recipients (members but the sender) of one group message.",
		prometheus.ExponentialBuckets(1, 4, 9)) // 1 … 65536
	m.redisErrors = counter("redis_errors_total",
		"Redis commands and pipelines that failed (a missing key is no failure).")
	m.zkErrors = counter("zookeeper_errors_total",
		"ZooKeeper failures: listings and node reads that failed, lost connections, expired sessions.")

	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("live_gateways",
		"Gateways logins may be sent to: live in ZooKeeper, passing health checks, proven to hold the internal secret.")),
		func() float64 {
			if f := m.sources.Load().LiveGateways; f != nil {
				return float64(f())
			}
			return 0
		}))
	reg.MustRegister(&webhookDepth{m: m, desc: prometheus.NewDesc(
		prometheus.BuildFQName(namespace, subsystem, "webhook_queue_depth"),
		"Webhook events waiting for delivery: this replica's memory buffer plus every URL's queue in Redis (shared by the replicas).",
		nil, nil)})
	return m
}

// SetSources sets what the live_gateways and webhook_queue_depth gauges
// read; safe to call while the registry is scraped.
func (m *Route) SetSources(s Sources) {
	if m != nil {
		m.sources.Store(&s)
	}
}

// webhookDepth reads the webhook queue depth at scrape time, under a short
// timeout: it asks Redis, so it is not kept up to date on the hot path.
type webhookDepth struct {
	m    *Route
	desc *prometheus.Desc
}

func (w *webhookDepth) Describe(ch chan<- *prometheus.Desc) { ch <- w.desc }

func (w *webhookDepth) Collect(ch chan<- prometheus.Metric) {
	f := w.m.sources.Load().WebhookDepth
	if f == nil {
		ch <- prometheus.MustNewConstMetric(w.desc, prometheus.GaugeValue, 0)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), depthTimeout)
	defer cancel()
	n, err := f(ctx)
	if err != nil {
		return // Redis is away: no sample rather than a wrong one (redis_errors_total counts it)
	}
	ch <- prometheus.MustNewConstMetric(w.desc, prometheus.GaugeValue, float64(n))
}

// LoggedIn counts a login that succeeded.
func (m *Route) LoggedIn() {
	if m != nil {
		m.logins.Inc()
	}
}

// Resumed counts a login made with a resume token.
func (m *Route) Resumed() {
	if m != nil {
		m.resumed.Inc()
	}
}

// LoginFailed counts a login refused for r.
func (m *Route) LoginFailed(r Reason) {
	if m != nil && r < numReasons {
		m.failures[r].Inc()
	}
}

// Uplinked records one uplink batch of n client frames, handled in d.
func (m *Route) Uplinked(n int, d time.Duration) {
	if m != nil {
		m.uplinkBatch.Observe(float64(n))
		m.uplinkDuration.Observe(d.Seconds())
	}
}

// Pushed records one push request to a gateway of n frames that took d;
// local: to the gateway of this process; err is its failure (nil: the
// gateway answered).
func (m *Route) Pushed(n int, d time.Duration, local bool, err error) {
	if m == nil {
		return
	}
	m.pushBatch.Observe(float64(n))
	m.pushDuration.Observe(d.Seconds())
	if local {
		m.pushLocal.Add(float64(n))
	}
	if err != nil {
		m.pushErrors.Inc()
	}
}

// InboxAppended records one inbox write that took d.
func (m *Route) InboxAppended(d time.Duration) {
	if m != nil {
		m.inboxAppend.Observe(d.Seconds())
	}
}

// Synced records one SYNC answer carrying n messages and receipts.
func (m *Route) Synced(n int) {
	if m != nil {
		m.syncMessages.Observe(float64(n))
	}
}

// GroupFanout records a group message going to n recipients.
func (m *Route) GroupFanout(n int) {
	if m != nil {
		m.fanoutRecipients.Observe(float64(n))
	}
}

// RedisError counts a failed Redis call.
func (m *Route) RedisError() {
	if m != nil {
		m.redisErrors.Inc()
	}
}

// ZooKeeperError counts a ZooKeeper failure; err is ignored (the component
// logs it).
func (m *Route) ZooKeeperError(error) {
	if m != nil {
		m.zkErrors.Inc()
	}
}

// Registry is the registry the collectors are on (nil for a nil m).
func (m *Route) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the registry in the Prometheus exposition formats. A
// collector that fails is left out of the answer rather than failing it.
func (m *Route) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
}
