// Package harness starts a whole gocim cluster for tests and benchmarks: a
// real ZooKeeper and a real Redis (through internal/testenv), one cim-route
// and any number of cim-server gateways, each a separate process built from
// this repository, on free loopback ports with throwaway data directories.
//
// Binaries are built once per test process with the race detector, into a
// temporary directory, unless CIM_BIN_DIR names a directory that already
// holds them. A data race reported by any child process fails the test.
package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/internal/testenv"
)

// Secrets and keys every harness cluster is configured with.
const (
	// Secret signs tokens (--token-secret).
	Secret = "e2e-secret-0123456789abcdef"
	// InternalSecret authenticates gateway <-> route calls (--internal-secret).
	InternalSecret = "e2e-internal-0123456789abcdef"
	// AdminKey is an API key with the push and admin scopes.
	AdminKey = "e2e-admin-key-0123456789"
	// PushKey is an API key with only the push scope.
	PushKey = "e2e-push-key-0123456789"
	// ListKey is an API key with only the admin scope.
	ListKey = "e2e-list-key-0123456789"
	// ZKAuth is the gateways' ZooKeeper digest credentials (user:password),
	// passed in a file (--zk-auth-file) as make run does.
	ZKAuth = "cim:e2e-zk-password-0123456789"
)

// Options shapes a cluster.
type Options struct {
	Gateways    int      // how many gateways to start (default 2)
	RouteArgs   []string // extra cim-route flags
	GatewayArgs []string // extra cim-server flags for every gateway
	// TLS makes the route's API and the gateways' client ports speak TLS
	// with a throwaway CA (Cluster.TLS); Connect and Terminal trust it.
	TLS bool
	// MQTT gives every gateway an MQTT listener (Gateway.MQTTAddr).
	MQTT bool
	// RouteReplica runs a route replica inside every gateway
	// (--route-replica, Gateway.ReplicaURL): the route's flags on ports of
	// its own. Each gateway's uplinks go to its replica; the standalone
	// route still serves logins and the API.
	RouteReplica bool
	// ReplicaArgs are extra cim-route flags for those replicas, after the
	// route's (a later flag wins). With them the harness does not wait for
	// the replicas to hand out the gateways: they may be meant to fail.
	ReplicaArgs []string
	// ZooKeeper and Redis, when set, start the coordination service and
	// the store the cluster uses instead of one standalone server each (a
	// ZooKeeper ensemble, a Redis Cluster) and return the addresses the
	// route and the gateways are given (--zk, --redis: comma-separated).
	// Cluster.ZK or Cluster.Redis is then nil.
	ZooKeeper func(t TB) string
	Redis     func(t TB) string
}

// TB is what the harness needs of a test: testing.TB satisfies it, and so
// can a program (bench/) that runs a cluster outside `go test`.
type TB interface {
	testenv.TB
	Errorf(format string, args ...any)
}

var _ TB = (testing.TB)(nil)

// Cluster is a running gocim cluster.
type Cluster struct {
	t     TB
	Bin   string             // directory holding the binaries
	Dir   string             // scratch directory for logs
	ZK    *testenv.ZooKeeper // nil with Options.ZooKeeper
	Redis *testenv.Redis     // nil with Options.Redis
	// RedisCluster is the Redis Cluster the test runs on when
	// GOCIM_E2E_REDIS=cluster is set (three masters, a replica each).
	RedisCluster *testenv.RedisCluster
	// ZKAddr and RedisAddr are what the route and gateways are given
	// (--zk, --redis).
	ZKAddr, RedisAddr string
	Route             *Route
	Gateways          []*Gateway
	TLS               *testenv.TLS // set with Options.TLS
	// ZKAuthFile holds ZKAuth; every gateway gets --zk-auth-file with it.
	ZKAuthFile string
	opts       Options
	procs      []*testenv.Process
	mu         sync.Mutex
}

// Route is a running cim-route.
type Route struct {
	*testenv.Process
	Addr         string // public API host:port
	URL          string // http://host:port of the public API
	InternalAddr string // host:port gateways call
	InternalURL  string // http://host:port gateways call
	args         []string
}

// Gateway is a running cim-server.
type Gateway struct {
	*testenv.Process
	ID       string // host:tcpPort:httpPort, as registered in ZooKeeper
	TCPAddr  string
	HTTPAddr string
	// WSURL is the gateway's WebSocket endpoint (every harness gateway
	// has one): ws://127.0.0.1:<port>/ws, wss:// with Options.TLS.
	WSURL string
	// MQTTAddr is the gateway's MQTT listener (host:port) with
	// Options.MQTT; empty otherwise.
	MQTTAddr string
	// ReplicaURL is the internal base URL of the route replica inside
	// the gateway, with Options.RouteReplica; empty otherwise.
	ReplicaURL string
	args       []string
}

// Start brings up ZooKeeper, Redis, the route and opts.Gateways gateways and
// waits until each is ready. Everything stops when the test ends.
func Start(t TB, opts Options) *Cluster {
	t.Helper()
	if opts.Gateways == 0 {
		opts.Gateways = 2
	}
	c := &Cluster{t: t, Bin: Binaries(t), Dir: t.TempDir(), opts: opts}
	if opts.ZooKeeper != nil {
		c.ZKAddr = opts.ZooKeeper(t)
	} else {
		c.ZK = testenv.StartZooKeeper(t)
		c.ZKAddr = c.ZK.Addr
	}
	if opts.Redis == nil && os.Getenv("GOCIM_E2E_REDIS") == "cluster" {
		opts.Redis = func(t TB) string {
			c.RedisCluster = testenv.StartRedisCluster(t, 3, 1)
			t.Logf("GOCIM_E2E_REDIS=cluster: on a Redis Cluster at %s", c.RedisCluster.AddrList())
			return c.RedisCluster.AddrList()
		}
	}
	if opts.Redis != nil {
		c.RedisAddr = opts.Redis(t)
	} else {
		c.Redis = testenv.StartRedis(t)
		c.RedisAddr = c.Redis.Addr
	}
	port, internal := testenv.FreePort(t), testenv.FreePort(t)
	c.Route = &Route{Addr: "127.0.0.1:" + strconv.Itoa(port), InternalAddr: "127.0.0.1:" + strconv.Itoa(internal)}
	c.Route.URL = "http://" + c.Route.Addr
	c.Route.InternalURL = "http://" + c.Route.InternalAddr
	var tlsArgs []string
	if opts.TLS {
		c.TLS = testenv.NewTLS(t)
		c.Route.URL = "https://" + c.Route.Addr
		tlsArgs = []string{"--tls-cert", c.TLS.CertFile, "--tls-key", c.TLS.KeyFile}
		opts.GatewayArgs = append(append([]string(nil), tlsArgs...), opts.GatewayArgs...)
		c.opts = opts
	}
	// Limits are generous by default (tests log in and send fast from one
	// address); tests of the limits pass their own values after these.
	c.Route.args = append([]string{
		"--listen", c.Route.Addr,
		"--internal-listen", c.Route.InternalAddr,
		"--zk", c.ZKAddr,
		"--redis", c.RedisAddr,
		"--bcrypt-cost", "4",
		"--health-interval", "500ms",
		"--login-rate", "10000",
		"--login-burst", "10000",
		"--register-rate", "10000",
		"--register-burst", "10000",
		"--history-rate", "10000",
		"--history-burst", "10000",
		"--upload-rate", "10000",
		"--upload-burst", "10000",
		"--invites-per-hour", "1000000",
		"--api-keys", "e2e-admin:" + AdminKey + ":push+admin,e2e-push:" + PushKey + ":push,e2e-list:" + ListKey + ":admin",
		"--log-level", "debug",
	}, append(tlsArgs, opts.RouteArgs...)...)
	c.ZKAuthFile = filepath.Join(c.Dir, "zk-auth")
	if err := os.WriteFile(c.ZKAuthFile, []byte(ZKAuth+"\n"), 0o600); err != nil {
		t.Fatalf("zk-auth file: %v", err)
	}
	c.StartRoute()
	for i := 0; i < opts.Gateways; i++ {
		c.AddGateway()
	}
	t.Cleanup(c.checkRaces)
	return c
}

// waitHandedOut waits until the route hands out every running gateway: it
// does only once a gateway proved it holds the internal secret, a moment
// after the gateway registered.
func (c *Cluster) waitHandedOut() {
	c.t.Helper()
	running := 0
	for _, g := range c.Gateways {
		if g.Process != nil && !g.Exited() {
			running++
		}
	}
	if running == 0 {
		return
	}
	Eventually(c.t, 60*time.Second, func() error {
		// The internal listener: plain HTTP even with Options.TLS.
		routes := []string{c.Route.InternalURL}
		for _, g := range c.Gateways {
			if g.ReplicaURL != "" && len(c.opts.ReplicaArgs) == 0 && g.Process != nil && !g.Exited() {
				routes = append(routes, g.ReplicaURL)
			}
		}
		for _, url := range routes {
			n, err := liveGatewaysAt(url)
			if err != nil {
				return err
			}
			if n < running {
				return fmt.Errorf("route %s hands out %d of the %d running gateways", url, n, running)
			}
		}
		return nil
	})
}

func (c *Cluster) env() []string {
	return []string{"CIM_TOKEN_SECRET=" + Secret, "CIM_INTERNAL_SECRET=" + InternalSecret, "GORACE=halt_on_error=0"}
}

func (c *Cluster) track(p *testenv.Process) {
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
}

// StartRoute starts the route (again, after KillRoute) on its address and
// waits for it to be ready.
func (c *Cluster) StartRoute() {
	c.t.Helper()
	c.Route.Process = testenv.Start(c.t, c.Dir, filepath.Join(c.Bin, "cim-route"), c.env(), c.Route.args...)
	c.track(c.Route.Process)
	c.wait(c.Route.Process, "route ready")
	c.waitHandedOut() // after a restart: the gateways still running
}

// AddGateway starts one more gateway and waits until it is registered.
func (c *Cluster) AddGateway(extra ...string) *Gateway {
	c.t.Helper()
	tcp, httpPort, wsPort := testenv.FreePort(c.t), testenv.FreePort(c.t), testenv.FreePort(c.t)
	scheme := "ws"
	if c.opts.TLS {
		scheme = "wss"
	}
	g := &Gateway{
		ID:       fmt.Sprintf("127.0.0.1:%d:%d", tcp, httpPort),
		TCPAddr:  "127.0.0.1:" + strconv.Itoa(tcp),
		HTTPAddr: "127.0.0.1:" + strconv.Itoa(httpPort),
		WSURL:    fmt.Sprintf("%s://127.0.0.1:%d/ws", scheme, wsPort),
	}
	args := []string{
		"--listen", g.TCPAddr,
		"--http-listen", g.HTTPAddr,
		"--ws-listen", "127.0.0.1:" + strconv.Itoa(wsPort),
		"--zk", c.ZKAddr,
		"--zk-session-timeout", "2s",
		"--route", c.Route.InternalURL,
		"--drain", "200ms",
		"--msg-rate", "0",
		"--log-level", "debug",
		"--zk-auth-file", c.ZKAuthFile,
	}
	if c.opts.MQTT {
		g.MQTTAddr = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(c.t))
		args = append(args, "--mqtt-listen", g.MQTTAddr)
	}
	if c.opts.RouteReplica {
		g.ReplicaURL, args = c.replicaFlags(g, args)
	}
	args = append(args, c.opts.GatewayArgs...)
	g.args = append(args, extra...)
	c.startGateway(g)
	c.Gateways = append(c.Gateways, g)
	c.waitHandedOut()
	return g
}

func (c *Cluster) startGateway(g *Gateway) {
	c.t.Helper()
	g.Process = testenv.Start(c.t, c.Dir, filepath.Join(c.Bin, "cim-server"), c.env(), g.args...)
	c.track(g.Process)
	c.wait(g.Process, "gateway ready id="+g.ID)
}

// RestartGateway starts a stopped gateway again on the same ports.
func (c *Cluster) RestartGateway(g *Gateway) {
	c.t.Helper()
	c.startGateway(g)
	c.waitHandedOut()
}

func (c *Cluster) wait(p *testenv.Process, text string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := testenv.WaitLog(ctx, p, text); err != nil {
		c.t.Fatalf("%v", err)
	}
}

// Gateway returns the running gateway with id, or nil.
func (c *Cluster) Gateway(id string) *Gateway {
	for _, g := range c.Gateways {
		if g.ID == id {
			return g
		}
	}
	return nil
}

// LiveGateways asks the route's /healthz how many gateways it hands out.
func (c *Cluster) LiveGateways() (int, error) { return liveGatewaysAt(c.Route.URL) }

// liveGatewaysAt reads the gateway count of the route /healthz at base.
func liveGatewaysAt(base string) (int, error) {
	var body struct {
		Data struct {
			Gateways int `json:"gateways"`
		} `json:"data"`
		Gateways *int `json:"gateways"`
	}
	if err := GetJSON(base+"/healthz", &body); err != nil {
		return 0, err
	}
	if body.Gateways != nil {
		return *body.Gateways, nil
	}
	return body.Data.Gateways, nil
}

// Eventually polls cond every 20 ms until it returns nil or timeout passes,
// then fails the test with cond's last error. It is for conditions that no
// event announces (state in another process).
func Eventually(t TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Within polls cond like Eventually but reports instead of failing.
func Within(timeout time.Duration, cond func() error) bool {
	deadline := time.Now().Add(timeout)
	for cond() != nil {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// checkRaces fails the test if any child process reported a data race.
func (c *Cluster) checkRaces() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		p.Kill()
		if b, err := os.ReadFile(p.Log); err == nil && strings.Contains(string(b), "WARNING: DATA RACE") {
			c.t.Errorf("%s reported a data race; log %s:\n%s", p.Name, p.Log, p.Tail(60))
		}
	}
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binaries returns a directory with cim-server, cim-route and cim-client,
// building them (with -race) on first use unless CIM_BIN_DIR is set.
func Binaries(t TB) string {
	t.Helper()
	if dir := os.Getenv("CIM_BIN_DIR"); dir != "" {
		return dir
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "gocim-bin-")
		if buildErr != nil {
			return
		}
		root := RepoRoot()
		args := []string{"build", "-race", "-o", buildDir + "/"}
		for _, b := range []string{"cim-server", "cim-route", "cim-client"} {
			args = append(args, "./"+b+"/cmd/"+b)
		}
		args = append(args, "./cim-route/cmd/cimctl")
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("%v", buildErr)
	}
	return buildDir
}

// Cleanup removes the binaries Binaries built; call it from TestMain.
func Cleanup() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// replicaFlags writes the file of g's route replica (the route's flags on
// ports of its own) and returns the replica's internal URL and args with
// --route-replica added.
func (c *Cluster) replicaFlags(g *Gateway, args []string) (string, []string) {
	c.t.Helper()
	public := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(c.t))
	internal := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(c.t))
	flags := append(c.routeArgsOn(public, internal), c.opts.ReplicaArgs...)
	file := filepath.Join(c.Dir, "route-replica-"+strings.ReplaceAll(g.TCPAddr, ":", "-"))
	if err := os.WriteFile(file, []byte(strings.Join(flags, "\n")+"\n"), 0o600); err != nil {
		c.t.Fatalf("route replica flags: %v", err)
	}
	return "http://" + internal, append(args, "--route-replica", file)
}
