package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestHelpShowsDefaultsAndEnv(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--help"}, io.Discard, &out); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"-listen", `"0.0.0.0:9000"`, "CIM_TOKEN_SECRET", "-route-retry", "15s", "-zk-session-timeout", "6s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
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

// TestReadyLineAndSignal runs the command in-process: it must print exactly
// one "gateway ready id=..." line and exit 0 on SIGTERM.
func TestReadyLineAndSignal(t *testing.T) {
	route := httptest.NewServer(http.NotFoundHandler())
	defer route.Close()
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
