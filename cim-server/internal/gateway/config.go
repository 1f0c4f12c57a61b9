package gateway

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/cim-server/internal/registry"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/envflag"
	"github.com/gocim/gocim/internal/logging"
	"github.com/gocim/gocim/proto/codec"
	"github.com/gocim/gocim/proto/token"
)

// Config is everything cim-server is configured with. The zero value is not
// useful; start from DefaultConfig or RegisterFlags.
type Config struct {
	Listen        string // client TCP address
	AdvertiseHost string // host clients and the route use; default: the host of Listen
	HTTPListen    string // internal HTTP address (/push, /healthz)
	// WSListen is the WebSocket address (browsers; TLS like Listen); empty:
	// no WebSocket listener.
	WSListen string
	// WSOrigins are the pages (scheme://host[:port], comma-separated) that
	// may open a WebSocket; "*": any; empty: pages from the gateway's own
	// host name only. Clients that send no Origin (not browsers) always may.
	WSOrigins string
	// WSPublicURL is the WebSocket URL the route hands out, when clients
	// reach the listener through a proxy; default ws[s]://<advertise-host>:<port>/ws.
	WSPublicURL      string
	ZK               string        // comma-separated ZooKeeper servers; empty disables registration
	ZKRoot           string        // ZooKeeper root; the node goes under <root>/servers
	ZKSessionTimeout time.Duration // ZooKeeper session timeout
	Route            string        // comma-separated route internal base URLs (the route's --internal-listen)
	TokenSecret      string        // comma-separated token keys, current first
	InternalSecret   string        // comma-separated internal secrets (X-CIM-Internal), current first
	TLSCert, TLSKey  string        // PEM files; both set: the client port speaks TLS 1.2+
	MaxFrame         int           // largest frame payload in bytes
	MaxText          int           // longest KIND_TEXT (or KIND_BINARY) message body in bytes
	MsgRate          float64       // MSG frames per second per connection; 0: no rate limiting
	MsgBurst         int           // MSG frames a connection may send at once
	ReadTimeout      time.Duration // close connections silent for this long
	IdleBuffers      time.Duration // a TCP or WebSocket client silent this long holds no read buffer until its next byte; an MQTT device none while silent (0: never)
	LoginTimeout     time.Duration // time allowed for the TLS handshake and the LOGIN frame
	WriteQueue       int           // frames queued per connection before it is a slow consumer
	// WriteQueueBytes bounds the bytes queued per connection and not yet
	// written; over it, the client is a slow consumer too.
	WriteQueueBytes int
	// UplinkShards is the number of uplink batches in flight to the route
	// at once; 0: the batcher's default.
	UplinkShards int
	// UplinkLinger is the least time between two uplink batches of a
	// shard: a frame to a shard that sent nothing for that long goes at
	// once, a later one waits out the rest of it with the frames after it.
	UplinkLinger time.Duration
	// UplinkLingerMin: a shard lingers only while its recent rate would
	// gather at least this many uplinks in an UplinkLinger (0: always).
	// Below that a batch would wait about half the linger to share its
	// round trip with one or two others: at the default 3 and 2 ms, under
	// 1,500 uplinks a second a shard sends as soon as it can.
	UplinkLingerMin float64
	Drain           time.Duration // spread client closes over this long on shutdown
	RouteRetry      time.Duration // how long calls to the route are retried
	// RouteAttempt bounds one call to one route before the next route
	// (of --route's list) is tried: what a frozen route costs a call.
	RouteAttempt time.Duration
	LogLevel     string // debug, info, warn, error
	LogFormat    string // text or json
	// RouteReplica is a file of cim-route flags: the gateway runs a route
	// replica with them in its own process and sends its uplinks to it,
	// without a network hop ("" : none; cim-server's main starts it).
	RouteReplica string
	// GCPercent is the Go GC target (GOGC) the gateway runs with: a gateway
	// is memory-bound (mostly idle connections), and the garbage each login
	// leaves costs RSS until the next GC, which an idle gateway rarely runs.
	// -1 keeps Go's default (100); a GOGC environment variable wins.
	GCPercent int
	// GCFloorMiB is the least heap growth (MiB) between two collections
	// while the gateway allocates at least that much a second (package
	// gctune); 0: none.
	GCFloorMiB int
	// Pprof serves Go's profiles at /debug/pprof/ on --http-listen, behind
	// the internal secret.
	Pprof bool

	// Abuse limits (issue 11): connections and SYNC work per connection.

	// MaxConns caps all client connections, so that the process never runs
	// out of open files (EMFILE) for its own sockets; 0: RLIMIT_NOFILE at
	// start minus a reserve (connLimits).
	MaxConns int
	// MaxUnauth caps connections that have not logged in yet, well below
	// MaxConns so that logged-in users keep their room; 0: a quarter of
	// the connection cap.
	MaxUnauth int
	// MaxUnauthPerAddr caps the connections one client address (IPv4
	// address, IPv6 /64) holds before they log in; 0: no per-address cap.
	// Logged-in connections are not capped per address.
	MaxUnauthPerAddr int
	// SyncRate is SYNC frames per second forwarded per connection, SyncBurst
	// how many at once; more wait their turn. 0: unpaced.
	SyncRate  float64
	SyncBurst int

	// ZooKeeper access control (issue 11, point 7): digest credentials
	// the registry authenticates with; its nodes are then writable by
	// their holders only. At most one of the two may be set.
	ZKAuth     string // "user:password" (shows in ps: prefer ZKAuthFile or CIM_ZK_AUTH)
	ZKAuthFile string // file holding "user:password"

	// Devices (issue 16): the MQTT listener.

	// MQTTListen is the MQTT address for devices (3.1.1 and 5; TLS like
	// Listen); empty: no MQTT listener.
	MQTTListen string
	// MQTTLoginParallel bounds the device logins (CONNECT) this gateway has
	// at the route at once; MQTTLoginQueue how many more wait for a turn,
	// first come first served (bounded by --login-timeout too). A CONNECT
	// beyond the queue is answered "server busy" at once.
	MQTTLoginParallel int
	MQTTLoginQueue    int
	// MQTTMaxUnauthPerAddr caps the MQTT connections one address holds
	// before their CONNECT is accepted; 0: no per-address cap (a fleet of
	// devices behind one NAT reconnects at once). They count towards
	// --max-unauth and --max-conns like any connection.
	MQTTMaxUnauthPerAddr int
}

// DefaultConfig returns the documented defaults (TokenSecret and
// InternalSecret are required and have none).
func DefaultConfig() Config {
	return Config{
		Listen:           "0.0.0.0:9000",
		HTTPListen:       "127.0.0.1:9100",
		ZK:               "127.0.0.1:2181",
		ZKRoot:           "/cim",
		ZKSessionTimeout: 6 * time.Second,
		Route:            "http://127.0.0.1:8090",
		MaxFrame:         codec.DefaultMaxFrame,
		MaxText:          4096,
		MsgRate:          20,
		MsgBurst:         100,
		ReadTimeout:      180 * time.Second,
		IdleBuffers:      5 * time.Second,
		LoginTimeout:     10 * time.Second,
		WriteQueue:       1024,
		WriteQueueBytes:  conn.DefaultWriteQueueBytes,
		UplinkShards:     1,
		UplinkLinger:     2 * time.Millisecond,
		UplinkLingerMin:  3,
		Drain:            3 * time.Second,
		RouteRetry:       15 * time.Second,
		RouteAttempt:     10 * time.Second,
		LogLevel:         "info",
		LogFormat:        "text",
		GCPercent:        25,
		GCFloorMiB:       16,
		MaxUnauthPerAddr: 64,
		SyncRate:         10,
		SyncBurst:        20,

		MQTTLoginParallel: 32,
		MQTTLoginQueue:    4096,
	}
}

// RegisterFlags defines one flag per field on fs, with the defaults from
// DefaultConfig. Parse fs with envflag.Parse so CIM_* variables apply.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.Listen, "listen", d.Listen, "client TCP listen address")
	fs.StringVar(&c.AdvertiseHost, "advertise-host", d.AdvertiseHost, "host clients and the route use to reach this gateway (default: the host of --listen; required when --listen is unspecified)")
	fs.StringVar(&c.HTTPListen, "http-listen", d.HTTPListen, "internal HTTP listen address (/push, /healthz)")
	fs.StringVar(&c.WSListen, "ws-listen", d.WSListen, "WebSocket listen address for browsers, path /ws (TLS with --tls-cert, like --listen; empty: no WebSocket)")
	fs.StringVar(&c.WSOrigins, "ws-origins", d.WSOrigins, "origins (scheme://host[:port], comma-separated) whose pages may open a WebSocket; * for any; empty: pages from this gateway's own host name only")
	fs.StringVar(&c.WSPublicURL, "ws-public-url", d.WSPublicURL, "WebSocket URL the route hands to clients, when they reach --ws-listen through a proxy (default ws[s]://<advertise-host>:<port>/ws)")
	fs.StringVar(&c.MQTTListen, "mqtt-listen", d.MQTTListen, "MQTT (3.1.1 and 5) listen address for devices (TLS with --tls-cert, like --listen; empty: no MQTT)")
	fs.IntVar(&c.MQTTLoginParallel, "mqtt-login-parallel", d.MQTTLoginParallel, "device logins (MQTT CONNECT) this gateway has at the route at once")
	fs.IntVar(&c.MQTTLoginQueue, "mqtt-login-queue", d.MQTTLoginQueue, "device logins waiting for a turn, first come first served, within --login-timeout; a CONNECT beyond them is answered server busy at once (0: none wait)")
	fs.IntVar(&c.MQTTMaxUnauthPerAddr, "mqtt-max-unauth-per-addr", d.MQTTMaxUnauthPerAddr, "most MQTT connections one address (IPv4, IPv6 /64) holds before their CONNECT is accepted (0: no per-address cap, for fleets behind one NAT; --max-unauth still holds)")
	fs.StringVar(&c.ZK, "zk", d.ZK, "ZooKeeper servers, comma-separated (empty: do not register)")
	fs.StringVar(&c.ZKRoot, "zk-root", d.ZKRoot, "ZooKeeper root path")
	fs.DurationVar(&c.ZKSessionTimeout, "zk-session-timeout", d.ZKSessionTimeout, "ZooKeeper session timeout")
	fs.StringVar(&c.Route, "route", d.Route, "route internal base URLs (the route's --internal-listen), comma-separated")
	fs.StringVar(&c.RouteReplica, "route-replica", d.RouteReplica, "file of cim-route flags (whitespace-separated, # comments): run a route replica with them inside this gateway; its uplinks go to it first, without a network hop, and to --route when it fails")
	fs.StringVar(&c.TokenSecret, "token-secret", d.TokenSecret, "login token secrets, comma-separated, current first, each at least 16 bytes (required)")
	fs.StringVar(&c.InternalSecret, "internal-secret", d.InternalSecret, "secrets shared with the route for internal calls (header X-CIM-Internal), comma-separated, current first (sent; all accepted), each at least 16 bytes (required)")
	fs.StringVar(&c.TLSCert, "tls-cert", d.TLSCert, "PEM certificate (chain) file: the client port speaks TLS 1.2+ (needs --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", d.TLSKey, "PEM private key file for --tls-cert")
	fs.IntVar(&c.MaxFrame, "max-frame", d.MaxFrame, "largest client frame in bytes")
	fs.IntVar(&c.MaxText, "max-text", d.MaxText, "longest text (or device binary) message body in bytes; longer, or text that is not UTF-8, is refused with ERROR 3000")
	fs.Float64Var(&c.MsgRate, "msg-rate", d.MsgRate, "MSG frames per second allowed per client connection (ACK/READ/SYNC: 10x); 0 turns rate limiting off")
	fs.IntVar(&c.MsgBurst, "msg-burst", d.MsgBurst, "MSG frames a client connection may send at once (ACK/READ/SYNC: 10x); more than this many refused frames in a row close the connection")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", d.ReadTimeout, "close client connections that sent nothing for this long")
	fs.DurationVar(&c.IdleBuffers, "idle-buffers", d.IdleBuffers, "a TCP or WebSocket client that sent nothing for this long gives its read buffers back until its next byte; an MQTT device gives them back whenever it is silent (0: every client keeps them)")
	fs.DurationVar(&c.LoginTimeout, "login-timeout", d.LoginTimeout, "time a new connection has to finish the TLS handshake (with --tls-cert) and send LOGIN")
	fs.IntVar(&c.WriteQueue, "write-queue", d.WriteQueue, "frames queued per connection before it is dropped as a slow consumer")
	fs.IntVar(&c.UplinkShards, "uplink-shards", d.UplinkShards, "uplink batches in flight to the route at once (a user's frames always share one); fewer make larger batches, which cost less (0: max(4, CPUs))")
	fs.Float64Var(&c.UplinkLingerMin, "uplink-linger-min", d.UplinkLingerMin, "a shard lingers only while its recent rate would gather at least this many uplinks in a linger (0: always): a quiet gateway sends each frame as soon as it can")
	fs.DurationVar(&c.UplinkLinger, "uplink-linger", d.UplinkLinger, "the least time between two uplink batches of a shard: a frame to a shard idle that long goes at once, later ones wait out the rest together (0: no wait): fewer round trips under load, no wait when idle")
	fs.IntVar(&c.WriteQueueBytes, "write-queue-bytes", d.WriteQueueBytes, "bytes queued per connection and not yet written before it is dropped as a slow consumer (a larger frame alone still goes)")
	fs.DurationVar(&c.Drain, "drain", d.Drain, "on shutdown, spread closing client connections over this long")
	fs.DurationVar(&c.RouteRetry, "route-retry", d.RouteRetry, "how long calls to the route are retried before giving up")
	fs.DurationVar(&c.RouteAttempt, "route-attempt-timeout", d.RouteAttempt, "one call to one route, before the next of --route is tried: what a frozen route costs a call (not longer than --route-retry)")
	fs.StringVar(&c.LogLevel, "log-level", d.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", d.LogFormat, "log format: text or json")
	fs.BoolVar(&c.Pprof, "pprof", d.Pprof, "serve Go profiles at /debug/pprof/ on --http-listen (X-CIM-Internal required)")
	fs.IntVar(&c.GCPercent, "gc-percent", d.GCPercent, "Go GC target percent (like GOGC; low keeps idle-connection memory down; -1: Go's default; a GOGC variable wins)")
	fs.IntVar(&c.GCFloorMiB, "gc-floor", d.GCFloorMiB, "MiB the heap may grow by between two GCs at least, whatever --gc-percent says, while the gateway allocates that much a second (0: no floor): a busy gateway collects less often (its p99 latency and CPU drop); an idle one keeps --gc-percent and its memory; a GOGC variable turns it off")

	// Abuse limits.
	fs.IntVar(&c.MaxConns, "max-conns", d.MaxConns, "most client connections held at once; more are refused with ERROR 4292 (0: the open-file limit at start minus a reserve)")
	fs.IntVar(&c.MaxUnauth, "max-unauth", d.MaxUnauth, "most client connections that have not logged in yet (0: a quarter of --max-conns)")
	fs.IntVar(&c.MaxUnauthPerAddr, "max-unauth-per-addr", d.MaxUnauthPerAddr, "most client connections one address (IPv4, IPv6 /64) holds before they log in (0: no per-address cap)")
	fs.Float64Var(&c.SyncRate, "sync-rate", d.SyncRate, "SYNC frames per second forwarded per client connection; more wait their turn (0: unpaced)")
	fs.IntVar(&c.SyncBurst, "sync-burst", d.SyncBurst, "SYNC frames a client connection may have forwarded at once")

	// ZooKeeper access control.
	fs.StringVar(&c.ZKAuthFile, "zk-auth-file", d.ZKAuthFile, "file holding user:password for ZooKeeper digest auth: the gateway nodes become writable by these credentials only (empty: world-writable, with a warning)")
	fs.StringVar(&c.ZKAuth, "zk-auth", d.ZKAuth, "user:password for ZooKeeper digest auth, like --zk-auth-file (visible in ps: prefer the file or the environment variable)")
}

// Validate checks the configuration and returns every problem found.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("--listen %q: %v", c.Listen, err)
	} else if _, err := c.advertiseHost(); err != nil {
		errs = append(errs, err)
	}
	if strings.ContainsAny(c.AdvertiseHost, ":/ ") && net.ParseIP(c.AdvertiseHost) == nil {
		bad("--advertise-host %q: want a host name or IP address without port", c.AdvertiseHost)
	}
	if _, _, err := net.SplitHostPort(c.HTTPListen); err != nil {
		bad("--http-listen %q: %v", c.HTTPListen, err)
	}
	for _, s := range c.ZKServers() {
		if _, _, err := net.SplitHostPort(s); err != nil {
			bad("--zk server %q: %v", s, err)
		}
	}
	if len(c.ZKServers()) > 0 {
		if !strings.HasPrefix(c.ZKRoot, "/") || (len(c.ZKRoot) > 1 && strings.HasSuffix(c.ZKRoot, "/")) || strings.Contains(c.ZKRoot, "//") {
			bad("--zk-root %q: want an absolute ZooKeeper path such as /cim", c.ZKRoot)
		}
		if c.ZKSessionTimeout < time.Second {
			bad("--zk-session-timeout %v: want at least 1s", c.ZKSessionTimeout)
		}
	}
	urls := c.RouteURLs()
	if len(urls) == 0 {
		bad("--route: at least one route URL is required")
	}
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("--route %q: want an http(s) URL such as http://127.0.0.1:8090", s)
		}
	}
	keys := c.TokenKeys()
	if len(keys) == 0 {
		bad("--token-secret is required")
	}
	for i, k := range keys {
		if len(k) < token.MinKeyLen {
			bad("--token-secret: secret #%d is %d bytes, want at least %d", i+1, len(k), token.MinKeyLen)
		}
	}
	internal := c.InternalSecrets()
	if len(internal) == 0 {
		bad("--internal-secret is required (the same value as the route's)")
	}
	for i, s := range internal {
		if len(s) < contract.MinSecretLen {
			bad("--internal-secret: secret #%d is %d bytes, want at least %d", i+1, len(s), contract.MinSecretLen)
		}
	}
	if c.WSListen != "" {
		if _, _, err := net.SplitHostPort(c.WSListen); err != nil {
			bad("--ws-listen %q: %v", c.WSListen, err)
		}
	}
	if c.WSPublicURL != "" {
		if _, err := contract.ParseGatewayInfo(contract.GatewayInfo{WSURL: c.WSPublicURL}.Marshal()); err != nil {
			bad("--ws-public-url %q: want ws://host[:port]/path or wss://…", c.WSPublicURL)
		}
	}
	if c.MQTTListen != "" {
		if _, _, err := net.SplitHostPort(c.MQTTListen); err != nil {
			bad("--mqtt-listen %q: %v", c.MQTTListen, err)
		}
	}
	if c.MQTTLoginParallel < 1 || c.MQTTLoginParallel > maxMQTTLogins {
		bad("--mqtt-login-parallel %d: want between 1 and %d", c.MQTTLoginParallel, maxMQTTLogins)
	}
	if c.MQTTLoginQueue < 0 || c.MQTTLoginQueue > maxMQTTLogins {
		bad("--mqtt-login-queue %d: want between 0 and %d", c.MQTTLoginQueue, maxMQTTLogins)
	}
	if c.MQTTMaxUnauthPerAddr < 0 {
		bad("--mqtt-max-unauth-per-addr %d: want 0 (no cap) or a positive number of connections", c.MQTTMaxUnauthPerAddr)
	}
	for _, o := range c.wsOrigins() {
		if o == "*" {
			continue
		}
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad("--ws-origins: %q is not an origin (want scheme://host[:port], or *)", o)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("--tls-cert and --tls-key: give both or neither")
	}
	if c.MaxFrame < 64 || c.MaxFrame > 16<<20 {
		bad("--max-frame %d: want between 64 and %d bytes", c.MaxFrame, 16<<20)
	}
	if c.MaxText < 1 {
		bad("--max-text %d: want at least 1 byte", c.MaxText)
	}
	if !(c.MsgRate >= 0) || math.IsInf(c.MsgRate, 0) {
		bad("--msg-rate %v: want zero (off) or a positive number of frames per second", c.MsgRate)
	}
	if c.MsgBurst < 1 || c.MsgBurst > maxMsgBurst {
		bad("--msg-burst %d: want between 1 and %d", c.MsgBurst, maxMsgBurst)
	}
	positive := []struct {
		name string
		d    time.Duration
	}{{"--read-timeout", c.ReadTimeout}, {"--login-timeout", c.LoginTimeout}, {"--route-retry", c.RouteRetry}, {"--route-attempt-timeout", c.RouteAttempt}}
	for _, p := range positive {
		if p.d <= 0 {
			bad("%s %v: want a positive duration", p.name, p.d)
		}
	}
	if c.IdleBuffers < 0 {
		bad("--idle-buffers %v: want 0 (off) or a positive duration", c.IdleBuffers)
	}
	if c.GCFloorMiB < 0 || c.GCFloorMiB > 1<<14 {
		bad("--gc-floor %d: want 0 to 16384 MiB", c.GCFloorMiB)
	}
	if c.GCPercent < -1 {
		bad("--gc-percent %d: want -1 (Go's default) or a percentage >= 0", c.GCPercent)
	}
	if c.Drain < 0 {
		bad("--drain %v: want zero or more", c.Drain)
	}
	if c.WriteQueue < 1 {
		bad("--write-queue %d: want at least 1", c.WriteQueue)
	}
	if c.UplinkShards < 0 {
		bad("--uplink-shards %d: want 0 (max(4, CPUs)) or more", c.UplinkShards)
	}
	if c.UplinkLinger < 0 || c.UplinkLinger > time.Second {
		bad("--uplink-linger %v: want 0 to 1s", c.UplinkLinger)
	}
	if c.UplinkLingerMin < 0 || c.UplinkLingerMin > 1e6 || math.IsNaN(c.UplinkLingerMin) {
		bad("--uplink-linger-min %v: want 0 to 1000000", c.UplinkLingerMin)
	}
	if c.WriteQueueBytes < 1 {
		bad("--write-queue-bytes %d: want at least 1", c.WriteQueueBytes)
	}
	errs = append(errs, c.validateAbuseLimits()...)
	if _, err := logging.ParseLevel(c.LogLevel); err != nil {
		bad("--log-level %v", err)
	}
	if err := logging.CheckFormat(c.LogFormat); err != nil {
		bad("--log-format %v", err)
	}
	if _, err := c.ZKCredentials(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validateAbuseLimits checks the connection caps and the SYNC pace.
func (c *Config) validateAbuseLimits() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, v := range []struct {
		name string
		n    int
	}{{"--max-conns", c.MaxConns}, {"--max-unauth", c.MaxUnauth}, {"--max-unauth-per-addr", c.MaxUnauthPerAddr}} {
		if v.n < 0 {
			bad("%s %d: want 0 (the default) or a positive number of connections", v.name, v.n)
		}
	}
	if c.MaxConns > 0 && c.MaxUnauth >= c.MaxConns {
		bad("--max-unauth %d: want below --max-conns %d, so that logged-in users keep room", c.MaxUnauth, c.MaxConns)
	}
	if c.MaxUnauth > 0 && c.MaxUnauthPerAddr > c.MaxUnauth {
		bad("--max-unauth-per-addr %d: want at most --max-unauth %d", c.MaxUnauthPerAddr, c.MaxUnauth)
	}
	if !(c.SyncRate >= 0) || math.IsInf(c.SyncRate, 0) {
		bad("--sync-rate %v: want zero (unpaced) or a positive number of SYNCs per second", c.SyncRate)
	}
	if c.SyncBurst < 1 || c.SyncBurst > maxMsgBurst {
		bad("--sync-burst %d: want between 1 and %d", c.SyncBurst, maxMsgBurst)
	}
	return errs
}

// connLimits are the connection caps in force.
type connLimits struct {
	total, unauth, unauthPerAddr int
}

// Reserve of open files kept for everything but client connections (the
// listeners, route and ZooKeeper connections, internal HTTP calls, logs).
const (
	minFileReserve = 32
	maxFileReserve = 256
)

// connLimits resolves the caps: the flags where set, otherwise derived
// from nofile, the process's open-file limit (0: unknown, no derived cap).
func (c *Config) connLimits(nofile uint64) connLimits {
	l := connLimits{total: c.MaxConns, unauth: c.MaxUnauth, unauthPerAddr: c.MaxUnauthPerAddr}
	if l.total == 0 && nofile > 0 {
		reserve := min(max(nofile/10, minFileReserve), maxFileReserve)
		l.total = int(min(nofile-min(reserve, nofile-1), 1<<30))
	}
	if l.unauth == 0 && l.total > 0 {
		l.unauth = max(l.total/4, 1)
	}
	if l.total > 0 && l.unauth >= l.total {
		// Only when --max-conns was derived from a small open-file limit.
		l.unauth = max(l.total/2, 1)
	}
	if l.unauth > 0 && l.unauthPerAddr > l.unauth {
		l.unauthPerAddr = l.unauth
	}
	return l
}

// ZKCredentials returns the ZooKeeper digest credentials ("user:password")
// from --zk-auth or the file --zk-auth-file names (surrounding whitespace
// trimmed), or "" when neither is set.
func (c *Config) ZKCredentials() (string, error) {
	auth, from := c.ZKAuth, "--zk-auth"
	switch {
	case c.ZKAuth != "" && c.ZKAuthFile != "":
		return "", errors.New("--zk-auth and --zk-auth-file: give one, not both")
	case c.ZKAuthFile != "":
		b, err := os.ReadFile(c.ZKAuthFile)
		if err != nil {
			return "", fmt.Errorf("--zk-auth-file: %w", err)
		}
		auth, from = strings.TrimSpace(string(b)), "--zk-auth-file "+c.ZKAuthFile
	case c.ZKAuth == "":
		return "", nil
	}
	if _, _, err := registry.SplitAuth(auth); err != nil {
		return "", fmt.Errorf("%s: want user:password with a non-empty user and password on one line", from)
	}
	return auth, nil
}

// maxMsgBurst keeps the 10× burst of the other uplinks far from overflow.
const maxMsgBurst = 1 << 20

// maxMQTTLogins bounds --mqtt-login-parallel and --mqtt-login-queue.
const maxMQTTLogins = 1 << 20

// wsOrigins returns --ws-origins as a list.
func (c *Config) wsOrigins() []string {
	var out []string
	for _, o := range strings.Split(c.WSOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// advertiseHost returns --advertise-host, or the host of --listen when that
// is a specific address. It never guesses an interface.
func (c *Config) advertiseHost() (string, error) {
	if c.AdvertiseHost != "" {
		return c.AdvertiseHost, nil
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "", fmt.Errorf("--listen %q: %v", c.Listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "", fmt.Errorf("--listen %q listens on every interface: set --advertise-host to the address clients and the route should use", c.Listen)
	}
	return host, nil
}

// ZKServers returns the ZooKeeper servers; none means registration is off.
func (c *Config) ZKServers() []string { return envflag.List(c.ZK) }

// RouteURLs returns the route base URLs.
func (c *Config) RouteURLs() []string { return envflag.List(c.Route) }

// InternalSecrets returns the internal secrets, current first.
func (c *Config) InternalSecrets() []string { return envflag.List(c.InternalSecret) }

// TokenKeys returns the token keys, current first.
func (c *Config) TokenKeys() [][]byte { return token.Keys(envflag.List(c.TokenSecret)) }
