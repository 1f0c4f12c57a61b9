package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/gocim/gocim/e2e/harness"
)

// TestComposeFile checks docker/docker-compose.yml parses, names the whole
// cluster, points at Dockerfiles that exist, and sets only CIM_* variables
// that the binaries really read.
func TestComposeFile(t *testing.T) {
	root := harness.RepoRoot()
	raw, err := os.ReadFile(filepath.Join(root, "docker", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Ports       []string          `yaml:"ports"`
			NetworkMode string            `yaml:"network_mode"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
			Build struct {
				Context    string `yaml:"context"`
				Dockerfile string `yaml:"dockerfile"`
			} `yaml:"build"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	for _, want := range []string{"zookeeper", "redis", "route", "gw1", "gw2"} {
		if _, ok := compose.Services[want]; !ok {
			t.Errorf("service %q missing", want)
		}
	}
	// Issue 11: Redis bounds client output buffers; ZooKeeper is reachable
	// from this host only and the gateways lock their nodes.
	if cmd := strings.Join(compose.Services["redis"].Command, " "); !strings.Contains(cmd, "--client-output-buffer-limit normal ") {
		t.Errorf("redis command %q sets no client-output-buffer-limit for normal clients", cmd)
	}
	zkSvc := compose.Services["zookeeper"]
	if len(zkSvc.Ports) != 0 || !strings.Contains(zkSvc.Environment["ZOO_SERVERS"], ";127.0.0.1:2181") || zkSvc.NetworkMode != "host" {
		t.Errorf("zookeeper: ports %v, ZOO_SERVERS %q, network %q: want its client port on 127.0.0.1 only",
			zkSvc.Ports, zkSvc.Environment["ZOO_SERVERS"], zkSvc.NetworkMode)
	}
	for _, gw := range []string{"gw1", "gw2"} {
		if compose.Services[gw].Environment["CIM_ZK_AUTH"] == "" {
			t.Errorf("%s: no CIM_ZK_AUTH: its ZooKeeper node would be world-writable", gw)
		}
	}
	// Issue 12: the file works as written.
	if zkSvc.Environment["ZOO_ADMINSERVER_ENABLED"] != "false" {
		t.Error("zookeeper: the admin server is on: under host networking it takes port 8080 from the route")
	}
	route := compose.Services["route"]
	for _, k := range []string{"CIM_TOKEN_SECRET", "CIM_INTERNAL_SECRET", "CIM_API_KEYS"} {
		if _, ok := route.Environment[k]; !ok {
			t.Errorf("route: %s is not set (or passed through)", k)
		}
	}
	if dir := route.Environment["CIM_UPLOAD_DIR"]; dir == "" || !slices.ContainsFunc(route.Volumes, func(v string) bool { return strings.HasSuffix(v, ":"+dir) }) {
		t.Errorf("route: uploads in %q, volumes %v: want the upload directory on a volume", dir, route.Volumes)
	}
	if df, _ := os.ReadFile(filepath.Join(root, "docker", "Dockerfile.cim-route")); !strings.Contains(string(df), "--chown=65532:65532") {
		t.Error("Dockerfile.cim-route: the upload directory is not owned by the image's user: a fresh volume would not be writable")
	}
	for name, svc := range compose.Services {
		test := strings.Join(svc.Healthcheck.Test, " ")
		if test == "" {
			t.Errorf("service %s has no healthcheck", name)
			continue
		}
		if svc.Image == "" {
			binary := strings.TrimPrefix(filepath.Base(svc.Build.Dockerfile), "Dockerfile.")
			if !strings.Contains(test, "/usr/local/bin/"+binary+" healthcheck ") {
				t.Errorf("service %s: healthcheck %q, want its binary's healthcheck subcommand (the image has no shell)", name, test)
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

	bin := harness.Binaries(t)
	help := map[string]string{}
	for _, b := range []string{"cim-server", "cim-route"} {
		out, _ := exec.Command(filepath.Join(bin, b), "--help").CombinedOutput()
		help[b] = string(out)
	}
	envVar := regexp.MustCompile(`^CIM_[A-Z_]+$`)
	for name, svc := range compose.Services {
		if svc.Image == "" {
			df := filepath.Join(root, "docker", filepath.Base(svc.Build.Dockerfile))
			if _, err := os.Stat(df); err != nil {
				t.Errorf("service %s: Dockerfile %s: %v", name, svc.Build.Dockerfile, err)
			}
			binary := strings.TrimPrefix(filepath.Base(svc.Build.Dockerfile), "Dockerfile.")
			for k := range svc.Environment {
				if !envVar.MatchString(k) {
					continue
				}
				if !strings.Contains(help[binary], k) {
					t.Errorf("service %s sets %s, which %s --help does not list", name, k, binary)
				}
			}
		}
	}
}
