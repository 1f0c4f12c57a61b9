// Command gocim-bench runs gocim's benchmark workloads against a real
// cluster (ZooKeeper, Redis, route, gateways: built without the race
// detector and started through e2e/harness), prints one markdown table and
// writes the rows as JSON.
//
//	go run ./bench/cmd/gocim-bench            # the full set (make bench)
//	go run ./bench/cmd/gocim-bench --quick    # small sizes, under two minutes
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gocim/gocim/bench/internal/run"
	"github.com/gocim/gocim/e2e/harness"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	quick    bool
	groups   []int
	messages int
	gateways int
	jsonPath string
}

func parse(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("gocim-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{}
	fs.BoolVar(&o.quick, "quick", false, "small sizes: the whole run in under two minutes (CI smoke)")
	groups := fs.String("groups", "", "group sizes for the fan-out workload, comma-separated (default 1000,5000; quick: 200)")
	fs.IntVar(&o.messages, "messages", 0, "group messages per fan-out run (default 20; quick: 5)")
	fs.IntVar(&o.gateways, "gateways", 3, "gateways in the cluster")
	fs.StringVar(&o.jsonPath, "json", "bench/results/latest.json", "where to write the rows as JSON (empty: nowhere)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if *groups == "" {
		*groups = "1000,5000"
		if o.quick {
			*groups = "200"
		}
	}
	for _, s := range strings.Split(*groups, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 || n > 15000 {
			return o, fmt.Errorf("--groups: %q is not a size between 2 and 15000", s)
		}
		o.groups = append(o.groups, n)
	}
	if o.messages == 0 {
		o.messages = 20
		if o.quick {
			o.messages = 5
		}
	}
	return o, nil
}

func realMain(args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	slog.SetDefault(log)
	var rows []fanoutResult
	code := run.Main(log, func(t *run.T) {
		bin := buildBinaries(t)
		os.Setenv("CIM_BIN_DIR", bin)
		quiet := []string{"--log-level", "warn"}
		for _, n := range o.groups {
			fmt.Fprintf(stderr, "group fan-out: %d members over %d gateways, %d messages…\n", n, o.gateways, o.messages)
			c := harness.Start(t, harness.Options{Gateways: o.gateways, RouteArgs: quiet, GatewayArgs: quiet})
			rows = append(rows, groupFanout(t, c, n, o.messages))
			stopCluster(c)
		}
	})
	printTable(stdout, rows)
	if o.jsonPath != "" && len(rows) > 0 {
		if err := writeJSON(o.jsonPath, rows); err != nil {
			fmt.Fprintf(stderr, "write %s: %v\n", o.jsonPath, err)
			return 1
		}
	}
	return code
}

// stopCluster kills a workload's cluster so the next one starts clean.
func stopCluster(c *harness.Cluster) {
	for _, g := range c.Gateways {
		g.Kill()
	}
	c.Route.Kill()
	c.Redis.Kill()
	c.ZK.Kill()
}

// buildBinaries builds the cluster without the race detector (the harness
// default is a race build, right for tests, wrong for speed).
func buildBinaries(t *run.T) string {
	dir := t.TempDir()
	root := harness.RepoRoot()
	args := []string{"build", "-o", dir + "/"}
	for _, b := range []string{"cim-server", "cim-route", "cim-client"} {
		args = append(args, "./"+b+"/cmd/"+b)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

func printTable(w io.Writer, rows []fanoutResult) {
	fmt.Fprintf(w, "\n%s, %d CPUs, %s\n\n", runtime.Version(), runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintln(w, "| workload | members | gateways | messages | deliveries | deliveries/s | p50 ms | p99 ms | max ms | missing | dup | cluster CPU | loadgen CPU |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %.0f | %.1f | %.1f | %.1f | %d | %d | %.2f | %.2f |\n",
			r.Workload, r.Members, r.Gateways, r.Messages, r.Deliveries, r.PerSecond, r.P50ms, r.P99ms, r.MaxMs,
			r.Missing, r.Duplicates, r.ClusterCPU, r.LoadgenCPU)
	}
}

func writeJSON(path string, rows []fanoutResult) error {
	if !filepath.IsAbs(path) {
		path = filepath.Join(harness.RepoRoot(), path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(map[string]any{
		"go": runtime.Version(), "cpus": runtime.NumCPU(), "date": time.Now().UTC().Format(time.RFC3339), "rows": rows,
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
