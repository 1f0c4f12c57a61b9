package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocim/gocim/internal/testenv"
)

func TestFlagErrors(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--help"}, io.Discard, &out); code != 0 {
		t.Fatalf("--help: exit %d, output %q", code, out.String())
	}
	for _, f := range []string{"-token-secret", "-internal-secret", "-internal-listen", "-tls-cert", "-api-keys", "-auth", "-ldap-url", "-login-rate"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("--help lacks %s", f)
		}
	}
	out.Reset()
	if code := run([]string{"--listen", "127.0.0.1:0"}, io.Discard, &out); code != 2 ||
		!strings.Contains(out.String(), "--token-secret is required") || !strings.Contains(out.String(), "--internal-secret is required") {
		t.Fatalf("no secret: exit %d, output %q", code, out.String())
	}
	if code := run([]string{"--no-such-flag"}, io.Discard, io.Discard); code != 2 {
		t.Fatalf("unknown flag: exit %d", code)
	}
}

// TestReadyLineAndSignal runs the whole binary in-process: exactly one ready
// line with the real port, serving, then a clean exit on SIGTERM.
func TestReadyLineAndSignal(t *testing.T) {
	zks := testenv.StartZooKeeper(t)
	rds := testenv.StartRedis(t)
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	exit := make(chan int, 1)
	go func() {
		exit <- run([]string{"--listen", "127.0.0.1:0", "--internal-listen", "127.0.0.1:0", "--internal-secret", "main-test-internal-0123",
			"--zk", zks.Addr, "--redis", rds.Addr,
			"--upload-dir", t.TempDir(), "--token-secret", "main-test-secret-0123", "--log-level", "warn"}, pw, &stderr)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	got := make(chan string, 16)
	go func() {
		for lines.Scan() {
			got <- lines.Text()
		}
		close(got)
	}()
	var line string
	select {
	case line = <-got:
	case code := <-exit:
		t.Fatalf("exited with %d before ready: %s", code, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("no ready line")
	}
	m := regexp.MustCompile(`^route ready addr=(127\.0\.0\.1:[1-9][0-9]*) internal=(127\.0\.0\.1:[1-9][0-9]*)$`).FindStringSubmatch(line)
	if m == nil || m[1] == m[2] {
		t.Fatalf("ready line %q", line)
	}
	for _, addr := range m[1:] {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("healthz on %s: HTTP %d", addr, resp.StatusCode)
		}
	}
	// "cim-route healthcheck URL" probes any of them: alive, but not
	// ready without a gateway.
	internal := "http://" + m[2]
	var probe bytes.Buffer
	if code := run([]string{"healthcheck", internal + "/livez"}, io.Discard, &probe); code != 0 {
		t.Fatalf("healthcheck /livez: exit %d: %s", code, probe.String())
	}
	if code := run([]string{"healthcheck", internal + "/readyz"}, io.Discard, &probe); code != 1 || !strings.Contains(probe.String(), "503") {
		t.Fatalf("healthcheck /readyz without a gateway: exit %d: %s", code, probe.String())
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit %d after SIGTERM: %s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	for extra := range got { // closed once run returned and stdout closed
		t.Fatalf("more than one line on stdout: %q", extra)
	}
}
