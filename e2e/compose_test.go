package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
			Environment map[string]string `yaml:"environment"`
			Build       struct {
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
