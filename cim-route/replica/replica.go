// Package replica runs a route replica inside another process: a gateway
// started with --route-replica handles its own uplinks in its own process,
// with the route's code, without the network hop to a cim-route process.
//
// The replica is a whole route (cim-route's flags, listeners, Redis,
// ZooKeeper watch, gateway proofs and pushes); only the uplinks of its
// host arrive as function calls. Like every route replica it keeps no
// state of its own beyond caches that other replicas' changes expire.
package replica

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/gocim/gocim/cim-route/internal/app"
	"github.com/gocim/gocim/cim-route/internal/config"
	"github.com/gocim/gocim/proto/cimpb"
)

// Replica is a started route replica.
type Replica struct{ a *app.App }

// ReadArgs reads cim-route flags from a file: whitespace-separated, with
// everything after a # on a line left out (a value cannot hold spaces).
func ReadArgs(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseArgs(f)
}

func parseArgs(r io.Reader) ([]string, error) {
	var args []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		args = append(args, strings.Fields(line)...)
	}
	return args, sc.Err()
}

// Check parses args as cim-route would, without starting anything.
func Check(args []string) error {
	_, err := config.Parse("cim-route", args, io.Discard)
	return err
}

// Start parses args as cim-route's flags (CIM_* variables apply too),
// starts the replica and waits, at most until ctx ends, until it listens
// and has its first list of gateways.
func Start(ctx context.Context, args []string, logger *slog.Logger) (*Replica, error) {
	cfg, err := config.Parse("cim-route", args, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("route replica: %w", err)
	}
	a, err := app.New(cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("route replica: %w", err)
	}
	if err := a.Start(); err != nil {
		_ = a.Shutdown(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("route replica: %w", err)
	}
	select {
	case <-a.Ready():
		return &Replica{a: a}, nil
	case err = <-a.Err():
	case <-ctx.Done():
		err = ctx.Err()
	}
	_ = a.Shutdown(context.WithoutCancel(ctx))
	return nil, fmt.Errorf("route replica: %w", err)
}

// Uplink handles one batch of uplinks, as the route's internal stream and
// POST /internal/uplink do.
func (r *Replica) Uplink(ctx context.Context, b *cimpb.UplinkBatch) (*cimpb.PushBatch, error) {
	return r.a.Uplink(ctx, b)
}

// ServeLocally makes the replica's pushes to gateway id (the gateway it
// runs in, once that knows its id) calls of push instead of frames on a
// stream.
func (r *Replica) ServeLocally(id string, push func(*cimpb.PushBatch) *cimpb.PushResult) {
	r.a.ServeLocally(id, push)
}

// Err reports a listener that failed while the replica runs.
func (r *Replica) Err() <-chan error { return r.a.Err() }

// Shutdown stops the replica: its listeners drain, its background pushes
// finish, its streams close.
func (r *Replica) Shutdown(ctx context.Context) error { return r.a.Shutdown(ctx) }
