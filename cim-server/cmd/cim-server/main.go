// Command cim-server is the gocim gateway: it holds client TCP connections,
// forwards what clients send to the route, delivers what the route pushes,
// and registers itself in ZooKeeper so the route can hand it users.
//
// Every flag can also be set through a CIM_* environment variable (see
// --help). On SIGTERM or SIGINT it deregisters, drains its clients and exits.
//
// Its --http-listen address also serves operators: /livez (the process
// serves), /readyz (registered in ZooKeeper, not draining, the route
// reached within --route-retry; else 503 with the reason), /metrics
// (Prometheus, gocim_gateway_*), and POST /drain with the internal secret,
// which deregisters, refuses new clients and closes the connected ones over
// --drain, then keeps the process up, not ready, until SIGTERM.
// "cim-server healthcheck http://host:port/readyz" probes any of them for
// a container health check.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/gocim/gocim/cim-route/replica"
	"github.com/gocim/gocim/cim-server/internal/gateway"
	"github.com/gocim/gocim/internal/envflag"
	"github.com/gocim/gocim/internal/gctune"
	"github.com/gocim/gocim/internal/healthprobe"
	"github.com/gocim/gocim/internal/logging"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// replicaStartTimeout bounds the wait for --route-replica's first list of
// gateways (its ZooKeeper and Redis connections).
const replicaStartTimeout = 60 * time.Second

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == healthprobe.Command {
		// "cim-server healthcheck [url]": a container health check.
		return healthprobe.Run(args[1:], "http://127.0.0.1:9100/healthz", stderr)
	}
	cfg := gateway.DefaultConfig()
	fs := flag.NewFlagSet("cim-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.RegisterFlags(fs)
	if err := envflag.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "cim-server:", err)
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "cim-server: invalid configuration:\n%v\n", err)
		return 2
	}
	var replicaArgs []string
	if cfg.RouteReplica != "" {
		args, err := replica.ReadArgs(cfg.RouteReplica)
		if err == nil {
			err = replica.Check(args)
		}
		if err != nil {
			fmt.Fprintf(stderr, "cim-server: --route-replica %s: %v\n", cfg.RouteReplica, err)
			return 2
		}
		replicaArgs = args
	}
	logger, err := logging.New(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil { // Validate checked both already
		fmt.Fprintln(stderr, "cim-server:", err)
		return 2
	}
	slog.SetDefault(logger)
	tuneGC := cfg.GCPercent >= 0 && os.Getenv("GOGC") == ""
	if tuneGC {
		debug.SetGCPercent(cfg.GCPercent)
	}

	g, err := gateway.New(cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "cim-server:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if tuneGC {
		go gctune.Run(ctx, cfg.GCPercent, uint64(cfg.GCFloorMiB)<<20, time.Second)
	}

	// Leave room for the drain plus the deregistration and flush steps.
	shutdownTimeout := cfg.Drain + 15*time.Second
	var rep *replica.Replica
	if replicaArgs != nil {
		// Before the gateway starts: its first uplinks go to the replica.
		rctx, cancel := context.WithTimeout(ctx, replicaStartTimeout)
		r, err := replica.Start(rctx, replicaArgs, logger.With("in", "route-replica"))
		cancel()
		if err != nil {
			logger.Error("start failed", "err", err)
			return 1
		}
		g.UseReplica(r)
		rep = r
		defer func() {
			// After the gateway: its last uplinks went to the replica.
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			if err := r.Shutdown(sctx); err != nil {
				logger.Error("route replica shutdown incomplete", "err", err)
			}
		}()
		go func() {
			for err := range r.Err() {
				logger.Error("route replica", "err", err)
			}
		}()
	}
	if err := g.Start(); err != nil {
		logger.Error("start failed", "err", err)
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		_ = g.Shutdown(sctx)
		return 1
	}
	if rep != nil {
		// Its pushes to this gateway are calls from now on (the gateway
		// has its id once it listens).
		rep.ServeLocally(g.ID(), g.Push)
	}

	select {
	case <-g.Registered():
		// The e2e harness and scripts wait for exactly this line.
		fmt.Fprintf(stdout, "gateway ready id=%s\n", g.ID())
	case <-ctx.Done():
	}
	<-ctx.Done()
	stop() // a second signal kills the process the default way
	logger.Info("signal received, shutting down", "drain", cfg.Drain)

	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := g.Shutdown(sctx); err != nil {
		logger.Error("shutdown incomplete", "err", err)
		return 1
	}
	return 0
}
