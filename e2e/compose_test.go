package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/internal/contract"
)

// composeService is what the tests read of a docker-compose service.
type composeService struct {
	Image       string                       `yaml:"image"`
	Command     []string                     `yaml:"command"`
	Ports       []string                     `yaml:"ports"`
	NetworkMode string                       `yaml:"network_mode"`
	Environment map[string]string            `yaml:"environment"`
	Volumes     []string                     `yaml:"volumes"`
	ExtraHosts  []string                     `yaml:"extra_hosts"`
	DependsOn   map[string]map[string]string `yaml:"depends_on"`
	Restart     string                       `yaml:"restart"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Build struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Configs []struct {
		Source string `yaml:"source"`
		Target string `yaml:"target"`
	} `yaml:"configs"`
}

// composeFile is what the tests read of docker-compose.yml.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Configs  map[string]struct {
		Content string `yaml:"content"`
	} `yaml:"configs"`
}

// replicaArgs returns the cim-route flags of the route replica inside the
// gateway service gw: the content of the config it mounts where its
// CIM_ROUTE_REPLICA points, split as cim-server reads that file
// (whitespace-separated, # comments), or nil when it runs none.
func (f composeFile) replicaArgs(t *testing.T, gw string) []string {
	t.Helper()
	svc := f.Services[gw]
	path := svc.Environment["CIM_ROUTE_REPLICA"]
	if path == "" {
		return nil
	}
	for _, c := range svc.Configs {
		if c.Target != path {
			continue
		}
		cfg, ok := f.Configs[c.Source]
		if !ok {
			t.Fatalf("%s mounts config %q, which the file does not define", gw, c.Source)
		}
		var args []string
		for line := range strings.Lines(cfg.Content) {
			line, _, _ = strings.Cut(line, "#")
			args = append(args, strings.Fields(line)...)
		}
		return args
	}
	t.Fatalf("%s: CIM_ROUTE_REPLICA %s is none of its configs' targets", gw, path)
	return nil
}

// flagValue is the value of --name in args ("" when absent).
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// binary is the gocim binary a built service runs ("" for an image).
func (s composeService) binary() string {
	if s.Image != "" {
		return ""
	}
	return strings.TrimPrefix(filepath.Base(s.Build.Dockerfile), "Dockerfile.")
}

func readCompose(t *testing.T) map[string]composeService {
	t.Helper()
	return readComposeFile(t).Services
}

func readComposeFile(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "docker", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose composeFile
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	return compose
}

// servicesOf returns the names of the services whose name matches re, sorted.
func servicesOf(services map[string]composeService, re string) []string {
	var names []string
	for name := range services {
		if regexp.MustCompile(re).MatchString(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// TestComposeFile checks docker/docker-compose.yml is the production shape
// (a three-server ZooKeeper ensemble, a six-node Redis Cluster and its
// one-shot init, two routes, two gateways, Prometheus, Grafana), that the
// pieces point at each other, that health checks probe readiness, and that
// the built services set only CIM_* variables the binaries really read.
func TestComposeFile(t *testing.T) {
	root := harness.RepoRoot()
	file := readComposeFile(t)
	services := file.Services
	zks, redises := servicesOf(services, `^zk\d+$`), servicesOf(services, `^redis\d+$`)
	routes, gateways := servicesOf(services, `^route\d+$`), servicesOf(services, `^gw\d+$`)
	if len(zks) != 3 || len(redises) != 6 || len(routes) < 2 || len(gateways) < 2 {
		t.Fatalf("services: zookeeper %v, redis %v, routes %v, gateways %v: want 3, 6, 2+, 2+", zks, redises, routes, gateways)
	}
	for _, want := range []string{"redis-cluster-init", "prometheus", "grafana"} {
		if _, ok := services[want]; !ok {
			t.Errorf("service %q missing", want)
		}
	}
	for name, svc := range services {
		if svc.NetworkMode != "host" || len(svc.Ports) != 0 {
			t.Errorf("%s: network %q, ports %v: every service uses the host's network", name, svc.NetworkMode, svc.Ports)
		}
	}

	// The ZooKeeper ensemble: the same three server lines everywhere, each
	// with a loopback client address, distinct ids and ports.
	servers := services[zks[0]].Environment["ZOO_SERVERS"]
	line := regexp.MustCompile(`^server\.(\d)=127\.0\.0\.1:(\d+):(\d+);127\.0\.0\.1:(\d+)$`)
	var zkAddrs []string
	ports := map[string]bool{}
	for _, s := range strings.Fields(servers) {
		m := line.FindStringSubmatch(s)
		if m == nil {
			t.Errorf("ZOO_SERVERS entry %q: want server.N=127.0.0.1:peer:election;127.0.0.1:client", s)
			continue
		}
		for _, p := range m[2:] {
			if ports[p] {
				t.Errorf("ZOO_SERVERS: port %s used twice", p)
			}
			ports[p] = true
		}
		zkAddrs = append(zkAddrs, "127.0.0.1:"+m[4])
	}
	if len(zkAddrs) != 3 {
		t.Errorf("ZOO_SERVERS %q: want three servers", servers)
	}
	ids := map[string]bool{}
	for _, name := range zks {
		env := services[name].Environment
		if env["ZOO_SERVERS"] != servers {
			t.Errorf("%s: ZOO_SERVERS %q differs from %s's %q", name, env["ZOO_SERVERS"], zks[0], servers)
		}
		if !regexp.MustCompile(`^[123]$`).MatchString(env["ZOO_MY_ID"]) || ids[env["ZOO_MY_ID"]] {
			t.Errorf("%s: ZOO_MY_ID %q: want a distinct id of the three", name, env["ZOO_MY_ID"])
		}
		ids[env["ZOO_MY_ID"]] = true
		// Issue 12: under host networking the admin server takes port 8080.
		if env["ZOO_ADMINSERVER_ENABLED"] != "false" {
			t.Errorf("%s: the admin server is on: under host networking it takes port 8080 from the route", name)
		}
	}

	// The Redis Cluster: six cluster-enabled nodes with bounded output
	// buffers (issue 11), joined by the init service.
	var redisAddrs []string
	for _, name := range redises {
		cmd := strings.Join(services[name].Command, " ")
		if !strings.Contains(cmd, "--cluster-enabled yes") || !strings.Contains(cmd, "--client-output-buffer-limit normal ") ||
			!strings.Contains(cmd, "--bind 127.0.0.1") || !strings.Contains(cmd, "--appendonly yes") {
			t.Errorf("%s: command %q: want cluster mode, AOF, loopback and a client-output-buffer-limit for normal clients", name, cmd)
		}
		m := regexp.MustCompile(`--port (\d+)`).FindStringSubmatch(cmd)
		if m == nil {
			t.Errorf("%s: no --port", name)
			continue
		}
		redisAddrs = append(redisAddrs, "127.0.0.1:"+m[1])
	}
	init := services["redis-cluster-init"]
	initCmd := strings.Join(init.Command, " ")
	for _, want := range append([]string{"--cluster create", "--cluster-replicas 1", "--cluster-yes", "cluster_known_nodes"}, redisAddrs...) {
		if !strings.Contains(initCmd, want) {
			t.Errorf("redis-cluster-init: command does not contain %q", want)
		}
	}
	for _, name := range redises {
		if init.DependsOn[name]["condition"] != "service_healthy" {
			t.Errorf("redis-cluster-init does not wait for %s", name)
		}
	}

	// Routes: every ZooKeeper server and Redis node, distinct listeners.
	sameSet := func(list string, want []string) bool {
		got := strings.Split(list, ",")
		return len(got) == len(want) && !slices.ContainsFunc(want, func(w string) bool { return !slices.Contains(got, w) })
	}
	var routeInternal, replicas []string
	listeners := map[string]string{}
	claim := func(svc, addr string) {
		port := addr[strings.LastIndex(addr, ":")+1:]
		if other, ok := listeners[port]; ok {
			t.Errorf("%s and %s both listen on port %s", other, svc, port)
		}
		listeners[port] = svc
	}
	for _, name := range routes {
		svc := services[name]
		env := svc.Environment
		if !sameSet(env["CIM_ZK"], zkAddrs) || !sameSet(env["CIM_REDIS"], redisAddrs) {
			t.Errorf("%s: CIM_ZK %q, CIM_REDIS %q: want every ZooKeeper server %v and every Redis node %v", name, env["CIM_ZK"], env["CIM_REDIS"], zkAddrs, redisAddrs)
		}
		for _, k := range []string{"CIM_TOKEN_SECRET", "CIM_INTERNAL_SECRET", "CIM_API_KEYS"} {
			if _, ok := env[k]; !ok {
				t.Errorf("%s: %s is not set (or passed through)", name, k)
			}
		}
		// Uploads must be shared by the routes: in Redis, or on one volume.
		if env["CIM_UPLOAD_STORE"] != "redis" {
			dir := env["CIM_UPLOAD_DIR"]
			if dir == "" || !slices.ContainsFunc(svc.Volumes, func(v string) bool { return strings.HasSuffix(v, ":"+dir) }) {
				t.Errorf("%s: uploads in %q, volumes %v: want --upload-store redis or the upload directory on a shared volume", name, dir, svc.Volumes)
			}
			if df, _ := os.ReadFile(filepath.Join(root, "docker", "Dockerfile.cim-route")); !strings.Contains(string(df), "--chown=65532:65532") {
				t.Error("Dockerfile.cim-route: the upload directory is not owned by the image's user: a fresh volume would not be writable")
			}
		}
		if svc.DependsOn["redis-cluster-init"]["condition"] != "service_completed_successfully" {
			t.Errorf("%s does not wait for the Redis Cluster to be created", name)
		}
		claim(name, env["CIM_LISTEN"])
		claim(name, env["CIM_INTERNAL_LISTEN"])
		routeInternal = append(routeInternal, "http://"+env["CIM_INTERNAL_LISTEN"])
	}
	for _, name := range gateways {
		env := services[name].Environment
		if env["CIM_ZK_AUTH"] == "" {
			t.Errorf("%s: no CIM_ZK_AUTH: its ZooKeeper node would be world-writable", name)
		}
		if !sameSet(env["CIM_ZK"], zkAddrs) || !sameSet(env["CIM_ROUTE"], routeInternal) {
			t.Errorf("%s: CIM_ZK %q, CIM_ROUTE %q: want every ZooKeeper server %v and every route %v", name, env["CIM_ZK"], env["CIM_ROUTE"], zkAddrs, routeInternal)
		}
		for _, k := range []string{"CIM_LISTEN", "CIM_WS_LISTEN", "CIM_HTTP_LISTEN"} {
			claim(name, env[k])
		}
		// The route replica inside: listeners of its own, the routes'
		// Redis nodes and upload store.
		args := file.replicaArgs(t, name)
		if args == nil {
			t.Errorf("%s runs no route replica (CIM_ROUTE_REPLICA): its messages would cross to a route process", name)
			continue
		}
		claim(name+"'s replica", flagValue(args, "listen"))
		claim(name+"'s replica", flagValue(args, "internal-listen"))
		if !sameSet(flagValue(args, "redis"), redisAddrs) || flagValue(args, "upload-store") != "redis" {
			t.Errorf("%s's replica: --redis %q, --upload-store %q: want every Redis node %v and uploads in Redis, as the routes", name, flagValue(args, "redis"), flagValue(args, "upload-store"), redisAddrs)
		}
		replicas = append(replicas, name)
	}

	// Health checks: every long-running service has one; the gocim
	// binaries probe their own readiness on one of their listeners (the
	// images have no shell).
	for name, svc := range services {
		if svc.Restart == "no" {
			continue // one-shot
		}
		test := strings.Join(svc.Healthcheck.Test, " ")
		if test == "" {
			t.Errorf("service %s has no healthcheck", name)
			continue
		}
		if b := svc.binary(); b != "" {
			m := regexp.MustCompile(`^CMD /usr/local/bin/` + b + ` healthcheck http://[^ /]+:(\d+)` + regexp.QuoteMeta(contract.PathReady) + `$`).FindStringSubmatch(test)
			if m == nil || listeners[m[1]] != name {
				t.Errorf("service %s: healthcheck %q, want its binary's healthcheck subcommand on %s at one of its own listeners", name, test, contract.PathReady)
			}
		}
	}
	// A route is ready only with a gateway to hand out, a gateway only
	// with a route reachable: waiting for each other's health would never
	// start.
	for _, gw := range gateways {
		for _, r := range routes {
			if c := services[gw].DependsOn[r]["condition"]; c != "service_started" {
				t.Errorf("%s waits for %s with %q, want service_started (the route is ready only once a gateway is)", gw, r, c)
			}
		}
	}

	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatalf(".dockerignore: %v (the build context would carry run/ with its secrets)", err)
	}
	for _, want := range []string{"run/", ".git"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
	readme, _ := os.ReadFile(filepath.Join(root, "README.md"))
	for _, k := range []string{"CIM_TOKEN_SECRET", "CIM_INTERNAL_SECRET", "CIM_ZK_AUTH"} {
		if !strings.Contains(string(readme), "docker compose") || !regexp.MustCompile("docker compose[^\n]*"+k).Match(readme) {
			t.Errorf("README's compose line does not name %s, which compose requires", k)
		}
	}

	// Every CIM_* variable and --flag given to a binary is one it reads.
	bin := harness.Binaries(t)
	help := map[string]string{}
	for _, b := range []string{"cim-server", "cim-route"} {
		out, _ := exec.Command(filepath.Join(bin, b), "--help").CombinedOutput()
		help[b] = string(out)
	}
	envVar := regexp.MustCompile(`^CIM_[A-Z_]+$`)
	for name, svc := range services {
		binary := svc.binary()
		if binary == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "docker", filepath.Base(svc.Build.Dockerfile))); err != nil {
			t.Errorf("service %s: Dockerfile %s: %v", name, svc.Build.Dockerfile, err)
		}
		for k := range svc.Environment {
			if envVar.MatchString(k) && !strings.Contains(help[binary], "(env "+k+")") {
				t.Errorf("service %s sets %s, which %s --help does not list", name, k, binary)
			}
		}
		checkFlags(t, "service "+name, svc.Command, binary, help[binary])
	}
	for _, gw := range replicas {
		checkFlags(t, gw+"'s route replica", file.replicaArgs(t, gw), "cim-route", help["cim-route"])
	}
}

// checkFlags: every --flag in args is one binary lists in its --help.
func checkFlags(t *testing.T, who string, args []string, binary, help string) {
	t.Helper()
	for _, arg := range args {
		if f, ok := strings.CutPrefix(arg, "--"); ok {
			f, _, _ = strings.Cut(f, "=")
			if !strings.Contains(help, "\n  -"+f+" ") && !strings.Contains(help, "\n  -"+f+"\n") {
				t.Errorf("%s passes --%s, which %s --help does not list", who, f, binary)
			}
		}
	}
}

// TestPrometheusAndGrafanaConfig: docker/prometheus.yml is valid (promtool,
// when installed) and scrapes /metrics on exactly the listeners the
// compose file gives the routes (internal) and gateways (HTTP); Grafana's
// provisioning points at that Prometheus and loads the dashboard, whose
// queries name only the agreed metrics and cover every one of them.
func TestPrometheusAndGrafanaConfig(t *testing.T) {
	root := harness.RepoRoot()
	file := readComposeFile(t)
	services := file.Services
	promFile := filepath.Join(root, "docker", "prometheus.yml")
	if _, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command("promtool", "check", "config", promFile).CombinedOutput(); err != nil {
			t.Errorf("promtool check config: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") == "true" {
		t.Errorf("promtool is not installed and CI=true: %s", testenvHint)
	} else {
		t.Logf("promtool not installed: docker/prometheus.yml is parsed here but not validated by Prometheus (%s)", testenvHint)
	}

	raw, err := os.ReadFile(promFile)
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &prom); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	p := services["prometheus"]
	// Target hosts are names Prometheus's extra_hosts map to what the
	// compose file writes in the listen addresses.
	hosts := map[string]string{}
	for _, h := range p.ExtraHosts {
		name, addr, _ := strings.Cut(h, ":")
		hosts[name] = addr
	}
	var targets []string
	for _, sc := range prom.ScrapeConfigs {
		if sc.MetricsPath != contract.PathMetrics {
			t.Errorf("job %s: metrics_path %q, want %q", sc.JobName, sc.MetricsPath, contract.PathMetrics)
		}
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				host, port, _ := strings.Cut(tg, ":")
				if h, ok := hosts[host]; ok {
					host = h
				}
				targets = append(targets, host+":"+port)
			}
		}
	}
	var want []string
	for _, name := range servicesOf(services, `^route\d+$`) {
		want = append(want, services[name].Environment["CIM_INTERNAL_LISTEN"])
	}
	for _, name := range servicesOf(services, `^gw\d+$`) {
		want = append(want, services[name].Environment["CIM_HTTP_LISTEN"])
		if args := file.replicaArgs(t, name); args != nil {
			want = append(want, flagValue(args, "internal-listen"))
		}
	}
	slices.Sort(targets)
	slices.Sort(want)
	if !slices.Equal(targets, want) {
		t.Errorf("prometheus scrapes %v, want the routes' (and the replicas') internal and the gateways' HTTP listeners %v", targets, want)
	}
	if !slices.Contains(p.Volumes, "./prometheus.yml:/etc/prometheus/prometheus.yml:ro") ||
		!slices.Contains(p.Command, "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus: volumes %v, command %v: want docker/prometheus.yml as its config", p.Volumes, p.Command)
	}
	var promListen string
	for _, a := range p.Command {
		if v, ok := strings.CutPrefix(a, "--web.listen-address="); ok {
			promListen = v
		}
	}

	// Grafana: the data source is that Prometheus, the dashboards folder
	// is mounted where the provider reads.
	g := services["grafana"]
	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(root, "docker", "grafana", "provisioning", "datasources", "prometheus.yml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://"+promListen {
		t.Errorf("grafana data sources %+v, want one: prometheus at http://%s", ds.Datasources, promListen)
	}
	var providers struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(root, "docker", "grafana", "provisioning", "dashboards", "gocim.yml"), &providers)
	if len(providers.Providers) != 1 || !slices.Contains(g.Volumes, "./grafana/dashboards:"+providers.Providers[0].Options.Path+":ro") ||
		!slices.Contains(g.Volumes, "./grafana/provisioning:/etc/grafana/provisioning:ro") {
		t.Errorf("grafana: providers %+v, volumes %v: want docker/grafana/provisioning and the dashboards where the provider reads", providers, g.Volumes)
	}

	exprs := dashboardExprs(t, ds.Datasources[0].UID)
	used := map[string]bool{}
	for _, e := range exprs {
		names := metricNames(e)
		if len(names) == 0 {
			t.Errorf("dashboard query %q names no gocim metric", e)
		}
		for _, n := range names {
			if !slices.Contains(agreedMetrics, baseMetric(n)) {
				t.Errorf("dashboard query %q names %s, which is not an agreed metric", e, n)
			}
			used[baseMetric(n)] = true
		}
	}
	for _, m := range agreedMetrics {
		if !used[m] {
			t.Errorf("no dashboard panel shows %s", m)
		}
	}
}

// TestDashboardMetricsExposed scrapes a running cluster's route (internal
// listener) and gateway (HTTP listener) at contract.PathMetrics: every
// series the dashboard queries is exposed under that exact name.
func TestDashboardMetricsExposed(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 1})
	alice := c.Connect(t, "metricsalice")
	c.Connect(t, "metricsbob")
	if _, err := alice.Send(ctxT(t), "metricsbob", "for the metrics"); err != nil {
		t.Fatal(err)
	}
	exposed := map[string]bool{}
	for _, base := range []string{c.Route.InternalURL, "http://" + c.Gateways[0].HTTPAddr} {
		resp, err := http.Get(base + contract.PathMetrics)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s%s: %s", base, contract.PathMetrics, resp.Status)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			name, _, _ := strings.Cut(line, "{")
			name, _, _ = strings.Cut(name, " ")
			exposed[name] = true
		}
	}
	for _, e := range dashboardExprs(t, "") {
		for _, n := range metricNames(e) {
			if !exposed[n] {
				t.Errorf("dashboard query %q names %s, which neither the route nor the gateway exposes", e, n)
			}
		}
	}
}

// testenvHint says how to get the tools these tests use.
const testenvHint = "install it with scripts/deps.sh (apt-get install -y prometheus)"

// agreedMetrics are the metric families the project agreed on (issue 17):
// the dashboard shows each and names no other.
var agreedMetrics = []string{
	"gocim_gateway_connections",
	"gocim_gateway_logins_total",
	"gocim_gateway_login_failures_total",
	"gocim_gateway_frames_received_total",
	"gocim_gateway_frames_sent_total",
	"gocim_gateway_uplink_batch_messages",
	"gocim_gateway_uplink_duration_seconds",
	"gocim_gateway_push_batch_frames",
	"gocim_gateway_push_duration_seconds",
	"gocim_gateway_slow_consumer_closes_total",
	"gocim_gateway_route_errors_total",
	"gocim_gateway_zookeeper_errors_total",
	"gocim_gateway_zookeeper_registered",
	"gocim_gateway_draining",
	"gocim_route_logins_total",
	"gocim_route_login_failures_total",
	"gocim_route_resumed_logins_total",
	"gocim_route_uplink_batch_messages",
	"gocim_route_uplink_duration_seconds",
	"gocim_route_push_batch_frames",
	"gocim_route_push_duration_seconds",
	"gocim_route_push_errors_total",
	"gocim_route_inbox_append_duration_seconds",
	"gocim_route_sync_messages",
	"gocim_route_fanout_recipients",
	"gocim_route_webhook_queue_depth",
	"gocim_route_redis_errors_total",
	"gocim_route_zookeeper_errors_total",
	"gocim_route_live_gateways",
}

// baseMetric strips a histogram series suffix.
func baseMetric(n string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(n, s); ok && slices.Contains(agreedMetrics, b) {
			return b
		}
	}
	return n
}

var metricName = regexp.MustCompile(`\bgocim_[a-z0-9_]+`)

// metricNames returns the gocim metric names a PromQL expression names.
func metricNames(expr string) []string { return metricName.FindAllString(expr, -1) }

// dashboardExprs parses docker/grafana/dashboards/gocim.json and returns
// every panel query; with uid, every panel and query must use that data
// source.
func dashboardExprs(t *testing.T, uid string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "docker", "grafana", "dashboards", "gocim.json"))
	if err != nil {
		t.Fatal(err)
	}
	type source struct {
		UID string `json:"uid"`
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title      string `json:"title"`
			Datasource source `json:"datasource"`
			Targets    []struct {
				Expr       string `json:"expr"`
				Datasource source `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("gocim.json does not parse: %v", err)
	}
	if dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("gocim.json: uid %q, %d panels", dash.UID, len(dash.Panels))
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if uid != "" && (p.Datasource.UID != uid || tg.Datasource.UID != uid) {
				t.Errorf("panel %q: data source %q/%q, want the provisioned %q", p.Title, p.Datasource.UID, tg.Datasource.UID, uid)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
