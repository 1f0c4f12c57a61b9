package testenv

import (
	"os"
	"os/exec"
	"strings"
)

// CheckMetrics runs `promtool check metrics` (Debian package prometheus)
// on a Prometheus text exposition: it must find no problem with the names,
// units, help or types. Without promtool the test is skipped, except under
// CI=true, where it fails.
func CheckMetrics(t TB, text string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool is not on PATH (Debian: apt-get install prometheus); CI needs it")
		}
		t.Skipf("promtool is not on PATH (Debian: apt-get install prometheus): /metrics not linted")
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
