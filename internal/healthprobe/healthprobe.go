// Package healthprobe is the "healthcheck" subcommand of cim-route and
// cim-server: their container images have no shell and no curl
// (distroless), so a container health check runs the binary itself, which
// asks the process's /healthz and exits 0 when it answers 200.
package healthprobe

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Command is the first argument that selects the probe.
const Command = "healthcheck"

// timeout bounds one probe.
const timeout = 3 * time.Second

// Run probes the URL in args (defaultURL without one) and returns the exit
// code: 0 for 200 OK, 1 otherwise (a draining gateway answers 503), 2 for a
// bad invocation. Why it failed goes to w.
func Run(args []string, defaultURL string, w io.Writer) int {
	url := defaultURL
	switch len(args) {
	case 0:
	case 1:
		url = args[0]
	default:
		fmt.Fprintf(w, "usage: %s [http://host:port/healthz]\n", Command)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(w, "%s: %v\n", Command, err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(w, "%s: %v\n", Command, err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(w, "%s: %s answered %s\n", Command, url, resp.Status)
		return 1
	}
	return 0
}
