package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/internal/testenv"
)

// TestMakeRun runs the script behind `make run` / `make stop` on free ports
// with a scratch directory: it must bring up ZooKeeper, Redis, a route and two
// gateways, each with a route replica inside that handles its uplinks (the
// shape the benchmarks measure), that carry a chat, print how to open
// clients, and stop it all.
func TestMakeRun(t *testing.T) {
	if testenv.ZooKeeperClasspath() == "" {
		testenv.Missing(t, "ZooKeeper")
	}
	bin := harness.Binaries(t)
	run := t.TempDir()
	route := testenv.FreePort(t)
	zkPort, redisPort, wsPort, mqttPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	routeInternal := testenv.FreePort(t)
	replicaInternal := []int{testenv.FreePort(t), testenv.FreePort(t)}
	env := append(os.Environ(),
		"CIM_RUN_DIR="+run,
		"CIM_BIN_DIR="+bin,
		fmt.Sprintf("CIM_ZK_PORT=%d", zkPort),
		fmt.Sprintf("CIM_REDIS_PORT=%d", redisPort),
		fmt.Sprintf("CIM_ROUTE_PORT=%d", route),
		fmt.Sprintf("CIM_ROUTE_INTERNAL_PORT=%d", routeInternal),
		fmt.Sprintf("CIM_GATEWAYS=%d:%d:%d:%d:%d:%d %d:%d:%d:%d:%d:%d",
			testenv.FreePort(t), testenv.FreePort(t), wsPort, mqttPort, testenv.FreePort(t), replicaInternal[0],
			testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), replicaInternal[1]),
	)
	script := filepath.Join(harness.RepoRoot(), "scripts", "cluster.sh")
	cluster := func(arg string) string {
		cmd := exec.Command(script, arg)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cluster.sh %s: %v\n%s", arg, err, out)
		}
		return string(out)
	}
	t.Cleanup(func() { cluster("stop") })

	out := cluster("start")
	if !strings.Contains(out, "cim-client --route http://127.0.0.1:") {
		t.Fatalf("start did not say how to open clients:\n%s", out)
	}
	if page := fmt.Sprintf("Chat in a browser: http://127.0.0.1:%d/", route); !strings.Contains(out, page) {
		t.Fatalf("start did not print the chat page's URL (%q):\n%s", page, out)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", route)
	harness.Eventually(t, wait, func() error {
		var h struct {
			Gateways int `json:"gateways"`
			Data     struct {
				Gateways int `json:"gateways"`
			} `json:"data"`
		}
		if err := harness.GetJSON(url+"/healthz", &h); err != nil {
			return err
		}
		if h.Gateways+h.Data.Gateways != 2 {
			return fmt.Errorf("route sees %d gateways, want 2", h.Gateways+h.Data.Gateways)
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	api := client.NewAPI(url, nil)
	var users []*client.Client
	var recs []*harness.Recorder[client.Event]
	for _, name := range []string{"alice", "bob"} {
		if _, err := api.Register(ctx, name, "secret"); err != nil {
			t.Fatal(err)
		}
		cl, err := client.New(client.Config{RouteURL: url, UserName: name, Password: "secret"})
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer cl.Close(context.Background())
		users = append(users, cl)
		recs = append(recs, harness.Record(cl.Events()))
	}
	if users[0].Info().Gateway == users[1].Info().Gateway {
		t.Fatalf("round-robin put both users on %s", users[0].Info().Gateway)
	}
	if _, err := users[0].Send(ctx, "bob", "via make run"); err != nil {
		t.Fatal(err)
	}
	recs[1].WaitFor(t, 0, wait, "message", harness.IsMessage("via make run"))

	// Each gateway's uplinks (its client's login SYNC, alice's message)
	// went to the route replica inside it, none to the standalone route.
	if n := metric(t, fmt.Sprintf("http://127.0.0.1:%d", routeInternal), uplinkBatches); n != 0 {
		t.Errorf("the standalone route handled %v uplink batches; want none (the replicas in the gateways take them)", n)
	}
	for i, port := range replicaInternal {
		if n := metric(t, fmt.Sprintf("http://127.0.0.1:%d", port), uplinkBatches); n == 0 {
			t.Errorf("the route replica in gw%d handled no uplink batch", i+1)
		}
	}
	if !strings.Contains(out, "with a route replica inside") {
		t.Fatalf("start did not say the gateways run route replicas:\n%s", out)
	}
	for _, port := range replicaInternal {
		if u := fmt.Sprintf("http://127.0.0.1:%d/metrics", port); !strings.Contains(out, u) {
			t.Errorf("start did not name a replica's metrics at %s, where the messages are counted:\n%s", u, out)
		}
	}

	// The generated API key pushes as an app back-end would.
	key, err := os.ReadFile(filepath.Join(run, "api-key"))
	if err != nil {
		t.Fatal(err)
	}
	checkSecretsOffCommandLines(t, run, strings.TrimSpace(string(key)))
	var answer harness.Envelope
	status, err := harness.Call("POST", url+"/api/push", harness.APIKey(strings.TrimSpace(string(key))),
		map[string]any{"to": []string{"alice"}, "msg": "from the app"}, &answer)
	if err != nil || status != 200 {
		t.Fatalf("/api/push with run/api-key: HTTP %d %v %+v", status, err, answer)
	}
	recs[0].WaitFor(t, 0, wait, "app push", harness.IsMessage("from the app"))

	// The device quick start it prints: a device from the admin API, then
	// mosquitto_sub and mosquitto_pub on the first gateway's MQTT port.
	if !strings.Contains(out, fmt.Sprintf("mosquitto_sub -h 127.0.0.1 -p %d ", mqttPort)) {
		t.Fatalf("start did not say how to connect a device on port %d:\n%s", mqttPort, out)
	}
	status, err = harness.Call("POST", url+"/devices", harness.APIKey(strings.TrimSpace(string(key))), map[string]string{"name": "sensor-1"}, &answer)
	var dev device
	if err != nil || status != 200 || json.Unmarshal(answer.Data, &dev) != nil {
		t.Fatalf("POST /devices with run/api-key: HTTP %d %v %+v", status, err, answer)
	}
	sub := mosquittoSub(t, fmt.Sprintf("127.0.0.1:%d", mqttPort), dev, "mqttv311")
	harness.Eventually(t, wait, func() error {
		var info struct {
			Online bool `json:"online"`
		}
		var env harness.Envelope
		if _, err := harness.Call("GET", url+"/devices/"+dev.DeviceID, harness.APIKey(strings.TrimSpace(string(key))), nil, &env); err != nil {
			return err
		}
		if json.Unmarshal(env.Data, &info) != nil || !info.Online {
			return fmt.Errorf("sensor-1 not online yet: %s", env.Data)
		}
		return nil
	})
	if status, err := harness.Call("POST", url+"/api/push", harness.APIKey(strings.TrimSpace(string(key))),
		map[string]any{"to": []string{"sensor-1"}, "msg": "open valve"}, &answer); err != nil || status != 200 {
		t.Fatalf("/api/push to the device: HTTP %d %v %+v", status, err, answer)
	}
	sub.WaitFor(t, 0, wait, "the command", func(s string) bool { return s == "open valve" })
	mosquittoPub(t, fmt.Sprintf("127.0.0.1:%d", mqttPort), dev, "mqttv311", dev.up("alice"), "temp=21")
	recs[0].WaitFor(t, 0, wait, "the device's data", harness.IsMessage("temp=21"))

	// The operator's line it prints: cimctl with run/api-key lists both
	// gateways; the route's metrics are where it says.
	if !strings.Contains(out, "cimctl gateways") {
		t.Fatalf("start did not say how to operate the cluster:\n%s", out)
	}
	ctl := exec.Command(filepath.Join(bin, "cimctl"), "gateways")
	ctl.Env = append(os.Environ(), "CIM_ROUTE="+url, "CIM_API_KEY="+strings.TrimSpace(string(key)))
	if ctlOut, err := ctl.CombinedOutput(); err != nil || strings.Count(string(ctlOut), "127.0.0.1:") < 2 {
		t.Fatalf("cimctl gateways: %v\n%s", err, ctlOut)
	}
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", routeInternal)
	if !strings.Contains(out, metricsURL) {
		t.Fatalf("start did not name the route's metrics at %s:\n%s", metricsURL, out)
	}
	if text := getText(t, metricsURL); !strings.Contains(text, "gocim_route_logins_total") {
		t.Fatalf("%s has no gocim_route_logins_total:\n%.500s", metricsURL, text)
	}

	// make run starts Redis with AOF on (docs/DURABILITY.md).
	if _, err := os.Stat(filepath.Join(run, "redis", "appendonlydir")); err != nil {
		t.Fatalf("Redis under make run has no append-only file: %v", err)
	}
	checkMakeRunLockdown(t, run, zkPort, redisPort)

	if out := cluster("stop"); !strings.Contains(out, "stopped zookeeper") {
		t.Fatalf("stop output:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(run, "route.pid")); !os.IsNotExist(err) {
		t.Fatalf("route.pid left behind after stop")
	}
	if err := harness.GetJSON(url+"/healthz", &struct{}{}); err == nil {
		t.Fatal("route still answering after stop")
	}
}

// checkSecretsOffCommandLines: no process make run started carries the API
// key or a secret in its command line, which every local user can read
// (ps, /proc/PID/cmdline).
func checkSecretsOffCommandLines(t *testing.T, run, apiKey string) {
	t.Helper()
	secrets := map[string]string{"the API key": apiKey}
	for _, f := range []string{"secret", "internal-secret", "zk-auth"} {
		b, err := os.ReadFile(filepath.Join(run, f))
		if err != nil {
			t.Fatal(err)
		}
		secrets["run/"+f] = strings.TrimSpace(string(b))
	}
	pids, _ := filepath.Glob(filepath.Join(run, "*.pid"))
	if len(pids) < 5 {
		t.Fatalf("pid files %v: want ZooKeeper, Redis, the route and two gateways", pids)
	}
	for _, p := range pids {
		pid, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		cmdline, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/cmdline")
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(p), err)
		}
		for what, secret := range secrets {
			if secret != "" && strings.Contains(string(cmdline), secret) {
				t.Errorf("%s's command line carries %s: %q", strings.TrimSuffix(filepath.Base(p), ".pid"), what, strings.ReplaceAll(string(cmdline), "\x00", " "))
			}
		}
	}
}

// checkMakeRunLockdown: under make run, Redis bounds every normal client's
// output buffer (issue 11: SYNC answers grew Redis to the OOM killer);
// ZooKeeper listens on 127.0.0.1 only, and the gateway nodes are writable
// with the generated credentials only.
func checkMakeRunLockdown(t *testing.T, run string, zkPort, redisPort int) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", redisPort)})
	defer rdb.Close()
	limits, err := rdb.ConfigGet(context.Background(), "client-output-buffer-limit").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got := limits["client-output-buffer-limit"]; !strings.Contains(got, "normal 67108864 33554432 10") {
		t.Fatalf("Redis client-output-buffer-limit = %q, want normal 64mb 32mb 10", got)
	}

	// 127.0.0.2 is loopback too: a server on the wildcard address answers
	// there, one bound to 127.0.0.1 does not.
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", zkPort)); err != nil {
		t.Fatalf("ZooKeeper not on 127.0.0.1: %v", err)
	} else {
		c.Close()
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.2:%d", zkPort)); err == nil {
		c.Close()
		t.Fatal("ZooKeeper under make run listens beyond 127.0.0.1")
	}

	fi, err := os.Stat(filepath.Join(run, "zk-auth"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("run/zk-auth: %v %v, want a 0600 file", fi, err)
	}
	z, _, err := zk.Connect([]string{fmt.Sprintf("127.0.0.1:%d", zkPort)}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkQuiet{}))
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	if kids, _, err := z.Children("/cim/servers"); err != nil || len(kids) != 2 {
		t.Fatalf("gateway nodes: %v %v, want the 2 gateways", kids, err)
	}
	if _, err := z.Create("/cim/servers/127.0.0.1:1:2", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("anonymous gateway node under make run: %v, want %v", err, zk.ErrNoAuth)
	}
}

// getText GETs url and returns the body of a 200 answer.
func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d %v", url, resp.StatusCode, err)
	}
	return string(body)
}
