// Command cim-route is gocim's route service: accounts and login, gateway
// selection, session tracking and message routing between gateways, over
// HTTP, with its state in Redis and the live gateways from ZooKeeper.
//
// Flags are listed by --help; each can also come from a CIM_* environment
// variable. Once listening and holding its first gateway list it prints
// exactly one line to stdout, "route ready addr=<host:port>
// internal=<host:port>" (addr is the public API, internal the listener for
// the gateways' --route); logs go to stderr. SIGINT/SIGTERM shut it down
// gracefully.
//
// Both listeners answer GET /livez (200 while the process serves) and GET
// /readyz (200 once Redis answers, the ZooKeeper session is up and a
// gateway can be handed out; 503 naming the failed checks otherwise); the
// internal one serves the Prometheus metrics at /metrics. "cim-route
// healthcheck [url]" exits 0 when url (default /healthz on :8080) answers
// 200: point it at /readyz to probe readiness.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gocim/gocim/cim-route/internal/app"
	"github.com/gocim/gocim/cim-route/internal/config"
	"github.com/gocim/gocim/internal/healthprobe"
)

// shutdownTimeout bounds the graceful shutdown.
const shutdownTimeout = 15 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == healthprobe.Command {
		// "cim-route healthcheck [url]": a container health check.
		return healthprobe.Run(args[1:], "http://127.0.0.1:8080/healthz", stderr)
	}
	cfg, err := config.Parse("cim-route", args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "cim-route: %v\n", err)
		return 2
	}
	log := cfg.NewLogger(stderr)
	a, err := app.New(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "cim-route: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := a.Start(); err != nil {
		log.Error("start failed", "err", err)
		return 1
	}

	code := 0
	ready := a.Ready()
loop:
	for {
		select {
		case <-ready:
			fmt.Fprintf(stdout, "route ready addr=%s internal=%s\n", a.Addr(), a.InternalAddr())
			ready = nil
		case <-ctx.Done():
			log.Info("shutting down", "reason", "signal")
			break loop
		case err := <-a.Err():
			log.Error("fatal", "err", err)
			code = 1
			break loop
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		log.Warn("unclean shutdown", "err", err)
	}
	return code
}
