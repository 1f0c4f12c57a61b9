package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocim/gocim/cim-server/internal/metrics"
	"github.com/gocim/gocim/cim-server/internal/routeclient"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
)

// What an operator sees of the gateway: readiness (/readyz), metrics
// (/metrics) and the admin drain (POST /drain).
//
// Readiness: the gateway is ready when it is registered in ZooKeeper (its
// node exists under a live session; without --zk, always), is neither
// draining nor shutting down, and reached the route recently: a call to the
// route (a login, an uplink, an offline report, a probe) succeeded within
// --route-retry and none failed since. A route call that fails has been
// retried for --route-retry already, so one failure means the route was
// unreachable that long. When no call succeeded for routeProbeEvery (an
// idle gateway), or the last one failed, the gateway probes the route
// (GET /livez on each route URL, once; any answer below 500 will do).

// Readiness reasons, the text of /readyz's 503.
var (
	errNotReadyShuttingDown = errors.New("shutting down")
	errNotReadyDraining     = errors.New("draining")
	errNotReadyUnregistered = errors.New("not registered in ZooKeeper")
	errNotReadyRoute        = errors.New("route not reachable")
)

// routeProbeEvery is the default pace of the route probe: --route-retry
// divided by routeProbesPerWindow, and at least routeProbeMin.
const (
	routeProbesPerWindow = 3
	routeProbeMin        = 500 * time.Millisecond
)

func (g *Gateway) routeProbeEvery() time.Duration {
	return max(g.cfg.RouteRetry/routeProbesPerWindow, routeProbeMin)
}

// Ready returns nil when the gateway can take clients, else why not.
func (g *Gateway) Ready() error {
	switch {
	case g.shuttingDown.Load():
		return errNotReadyShuttingDown
	case g.draining.Load():
		return errNotReadyDraining
	case !g.zkRegistered() && g.cfg.hasZK():
		return errNotReadyUnregistered
	case !g.routeReachable(time.Now()):
		return errNotReadyRoute
	}
	return nil
}

// Draining reports whether a drain (POST /drain, or shutdown) has begun.
func (g *Gateway) Draining() bool { return g.draining.Load() }

// zkRegistered reports whether the gateway's ZooKeeper node exists under a
// live session (false without --zk).
func (g *Gateway) zkRegistered() bool {
	select {
	case <-g.registered:
		// g.registry was set before g.registered was closed.
		return g.registry != nil && g.registry.Live()
	default:
		return false
	}
}

func (c *Config) hasZK() bool { return len(c.ZKServers()) > 0 }

// routeReachable applies the readiness rule on route calls at now.
func (g *Gateway) routeReachable(now time.Time) bool {
	ok, failed := g.routeOK.Load(), g.routeFailed.Load()
	return ok != 0 && ok >= failed && now.UnixNano()-ok < int64(g.cfg.RouteRetry)
}

// routeCalled records the outcome of a call to the route for readiness
// and the metrics. Answers that show a working route (the session is not
// current, the device's credentials are bad, the route is busy) are
// successes; a call its caller gave up on says nothing. A refusal that is
// no secret mismatch (a contract mismatch) counts as an error but leaves
// the route reachable.
func (g *Gateway) routeCalled(ctx context.Context, err error) {
	now := time.Now().UnixNano()
	switch {
	case err == nil, errors.Is(err, contract.ErrNotCurrent),
		errors.Is(err, routeclient.ErrBadCredentials), errors.Is(err, routeclient.ErrBusy):
		g.routeOK.Store(now)
	case ctx.Err() != nil:
	case errors.Is(err, contract.ErrRejected) && !errors.Is(err, contract.ErrSecretRefused):
		g.metrics.RouteError()
		g.routeOK.Store(now)
	default:
		g.metrics.RouteError()
		g.routeFailed.Store(now)
	}
}

// probeLoop probes the route at once and then whenever no call to it
// succeeded for routeProbeEvery, or the last one failed, until shutdown.
func (g *Gateway) probeLoop() {
	every := g.routeProbeEvery()
	g.probeRoute(every)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		ok, failed := g.routeOK.Load(), g.routeFailed.Load()
		if failed > ok || time.Now().UnixNano()-ok >= int64(every) {
			g.probeRoute(every)
		}
	}
}

// probeRoute asks the route whether it answers, within timeout, and logs
// when that changes readiness.
func (g *Gateway) probeRoute(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(g.ctx, timeout)
	defer cancel()
	was := g.routeReachable(time.Now())
	err := g.route.Probe(ctx)
	if g.ctx.Err() != nil {
		return
	}
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w: no answer within %v", contract.ErrUnavailable, timeout)
	}
	g.routeCalled(context.Background(), err)
	switch now := g.routeReachable(time.Now()); {
	case was && !now:
		g.log.Warn("route not reachable: reporting not ready", "route", g.cfg.RouteURLs(), "err", err)
	case !was && now && g.routeProbed.Swap(true):
		g.log.Info("route reachable again", "route", g.cfg.RouteURLs())
	}
	g.routeProbed.Store(true)
}

// meteredUplink is the uplink batcher's Sender: the route links, timed and
// counted.
type meteredUplink struct{ g *Gateway }

func (u meteredUplink) Uplink(ctx context.Context, b *cimpb.UplinkBatch) (*cimpb.PushBatch, error) {
	start := time.Now()
	out, err := u.g.uplink(ctx, b)
	u.g.metrics.Uplink(len(b.GetUplinks()), time.Since(start))
	u.g.routeCalled(ctx, err)
	return out, err
}

// offlineReports is the offline queue's Reporter: the route client, its
// outcomes recorded.
type offlineReports struct{ g *Gateway }

func (o offlineReports) Offline(ctx context.Context, userID, sessionID, platform string) error {
	err := o.g.route.Offline(ctx, userID, sessionID, platform)
	o.g.routeCalled(ctx, err)
	return err
}

// transport returns the metrics of a transport.
func (g *Gateway) transport(name string) *metrics.Transport { return g.metrics.Transport(name) }

// ---- admin drain ----

// Drain starts a drain asked for by an operator (POST /drain from remote):
// the gateway leaves ZooKeeper, stops accepting clients on every
// transport, and closes its clients spread over --drain, like the first
// steps of Shutdown, but then stays up, answering /readyz with 503
// (draining) until it is stopped. A drain or shutdown under way answers
// Already.
func (g *Gateway) Drain(remote string) contract.Drain {
	if g.shuttingDown.Load() || !g.draining.CompareAndSwap(false, true) {
		g.log.Info("drain requested again; already draining", "remote", remote)
		return contract.Drain{Already: true}
	}
	g.connMu.Lock()
	n := len(g.conns)
	g.connMu.Unlock()
	g.log.Warn("drain requested: leaving ZooKeeper, refusing new clients, closing clients; not ready until stopped",
		"remote", remote, "id", g.id, "connections", n, "drain", g.cfg.Drain)
	if !g.goFunc(g.adminDrain) {
		return contract.Drain{Already: true} // shutdown won the race
	}
	return contract.Drain{Connections: n}
}

// adminDrain runs the drain Drain started; shutdown cuts it short.
func (g *Gateway) adminDrain() {
	g.leave(g.ctx)
	if err := g.drain(g.ctx); err != nil && g.ctx.Err() == nil {
		g.log.Warn("drain did not finish", "err", err)
		return
	}
	g.log.Info("drain done; staying up until stopped", "id", g.id)
}

// leave deregisters from ZooKeeper, then stops accepting client
// connections: the first steps of a drain and of Shutdown (safe twice).
func (g *Gateway) leave(ctx context.Context) {
	// Leave ZooKeeper first so the route stops sending new users here.
	// Failing that (ZooKeeper unreachable) is not fatal: the node goes away
	// when the session expires.
	if g.registry != nil {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if err := g.registry.Deregister(rctx); err != nil {
			g.log.Warn("could not delete the ZooKeeper node; it disappears when the session expires",
				"timeout", g.cfg.ZKSessionTimeout, "err", err)
		}
		cancel()
	}
	_ = g.ln.Close()
	if g.mqttLn != nil {
		_ = g.mqttLn.Close()
	}
	if g.wsSrv != nil {
		// Upgraded connections are hijacked: the drain closes them.
		_ = g.wsSrv.Close()
	}
}

// Uplinker handles uplink batches: a route replica in this process (see
// UseReplica).
type Uplinker interface {
	Uplink(ctx context.Context, b *cimpb.UplinkBatch) (*cimpb.PushBatch, error)
}

// UseReplica makes the gateway send its uplinks to r, a route replica in
// its own process, before the route links. Call it before Start.
func (g *Gateway) UseReplica(r Uplinker) { g.replica = r }

// uplink sends b to the replica in this process, when there is one, then
// (when it fails, e.g. its Redis is unreachable) over the route links. A
// batch the replica failed is sent whole again: resent messages are
// recognized by their client ids, and nothing of it was answered.
func (g *Gateway) uplink(ctx context.Context, b *cimpb.UplinkBatch) (*cimpb.PushBatch, error) {
	if g.replica != nil {
		out, err := g.replica.Uplink(ctx, b)
		if err == nil {
			return out, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		if ok, held := g.replicaFails.Allow(time.Now()); ok {
			g.log.Warn("uplink to the route replica in this process failed; sending it to --route",
				"uplinks", len(b.GetUplinks()), "err", err, "failed_before", held)
		}
	}
	return g.links.Uplink(ctx, b)
}
