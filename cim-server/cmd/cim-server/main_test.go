package main

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-server/internal/gateway"
)

func TestHelpShowsDefaultsAndEnv(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--help"}, io.Discard, &out); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"-listen", `"0.0.0.0:9000"`, "CIM_TOKEN_SECRET", "-route-retry", "15s", "-zk-session-timeout", "6s",
		"-internal-secret", "CIM_INTERNAL_SECRET", "-tls-cert", "CIM_TLS_CERT", "-tls-key", "CIM_TLS_KEY",
		"-max-text", "(default 4096)", "-msg-rate", "(default 20)", "-msg-burst", "(default 100)", "CIM_MSG_RATE",
		"route internal base URLs", `"http://127.0.0.1:8090"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
}

// TestEveryFlagHasHelp: no flag without a usage text.
func TestEveryFlagHasHelp(t *testing.T) {
	cfg := gateway.DefaultConfig()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if len(strings.TrimSpace(f.Usage)) < 10 {
			t.Errorf("flag --%s has no real help text: %q", f.Name, f.Usage)
		}
	})
}

// TestInternalSecretRequired: a gateway without --internal-secret, or with
// a short one, does not start, and says why.
func TestInternalSecretRequired(t *testing.T) {
	base := []string{"--listen", "127.0.0.1:0", "--zk", "", "--token-secret", "0123456789abcdef"}
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{nil, "", "--internal-secret is required"},
		{[]string{"--internal-secret", "short"}, "", "--internal-secret: secret #1 is 5 bytes, want at least 16"},
		{[]string{"--internal-secret", "0123456789abcdef,tiny"}, "", "secret #2 is 4 bytes"},
		{nil, "too-short", "secret #1 is 9 bytes"}, // from CIM_INTERNAL_SECRET
	} {
		if tc.env != "" {
			t.Setenv("CIM_INTERNAL_SECRET", tc.env)
		}
		var out bytes.Buffer
		if code := run(append(base, tc.args...), io.Discard, &out); code != 2 || !strings.Contains(out.String(), tc.want) {
			t.Errorf("args %q env %q: exit %d, stderr:\n%s\nwant exit 2 and %q", tc.args, tc.env, code, out.String(), tc.want)
		}
	}
}

func TestBadConfigExits2(t *testing.T) {
	var out bytes.Buffer
	code := run([]string{"--listen", "0.0.0.0:0", "--token-secret", "short"}, io.Discard, &out)
	if code != 2 || !strings.Contains(out.String(), "--advertise-host") || !strings.Contains(out.String(), "at least 16") {
		t.Fatalf("exit %d, stderr:\n%s", code, out.String())
	}
}

// TestBadRouteReplicaExits2: a --route-replica file that is missing, or
// that holds flags cim-route refuses, stops the gateway before it starts.
func TestBadRouteReplicaExits2(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "replica-flags")
	if err := os.WriteFile(bad, []byte("--balance nonsense\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--listen", "127.0.0.1:0", "--zk", "", "--token-secret", "0123456789abcdef", "--internal-secret", "0123456789abcdef"}
	for file, want := range map[string]string{
		filepath.Join(dir, "none"): "no such file",
		bad:                        "--balance",
	} {
		var out bytes.Buffer
		if code := run(append(base, "--route-replica", file), io.Discard, &out); code != 2 || !strings.Contains(out.String(), want) {
			t.Errorf("--route-replica %s: exit %d, stderr:\n%s\nwant exit 2 and %q", file, code, out.String(), want)
		}
	}
}

// TestReadyLineAndSignal runs the command in-process: it must print exactly
// one "gateway ready id=..." line and exit 0 on SIGTERM.
func TestReadyLineAndSignal(t *testing.T) {
	route := httptest.NewServer(http.NotFoundHandler())
	defer route.Close()
	t.Setenv("CIM_INTERNAL_SECRET", "internal-secret-from-env") // the environment works as well as the flag
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	exit := make(chan int, 1)
	go func() {
		exit <- run([]string{"--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--zk", "",
			"--route", route.URL, "--token-secret", "0123456789abcdef", "--drain", "10ms"}, pw, &stderr)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	lines := make(chan string)
	go func() {
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var ready string
	select {
	case ready = <-lines:
	case code := <-exit:
		t.Fatalf("exited %d before ready:\n%s", code, stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatal("no ready line")
	}
	m := regexp.MustCompile(`^gateway ready id=127\.0\.0\.1:(\d+):(\d+)$`).FindStringSubmatch(ready)
	if m == nil {
		t.Fatalf("ready line %q", ready)
	}
	if c, err := net.Dial("tcp", "127.0.0.1:"+m[1]); err != nil {
		t.Fatalf("client port from the id is not listening: %v", err)
	} else {
		c.Close()
	}
	// The container health check works against readiness: ready once the
	// route answered the gateway's probe (any answer below 500).
	readyz := "http://127.0.0.1:" + m[2] + "/readyz"
	deadline := time.Now().Add(20 * time.Second)
	for {
		var probe bytes.Buffer
		if run([]string{"healthcheck", readyz}, io.Discard, &probe) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthcheck %s never passed: %s", readyz, probe.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit %d after SIGTERM:\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("did not exit after SIGTERM")
	}
	for l := range lines {
		t.Errorf("unexpected extra stdout line %q", l)
	}
}
