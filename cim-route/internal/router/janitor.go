package router

import (
	"context"
	"time"

	"github.com/gocim/gocim/internal/backoff"
)

// janitorEvery is the period of the janitor's sweep between gateway changes.
const janitorEvery = time.Minute

// GatewaysChanged tells the janitor the live gateway list changed (after
// every successful ZooKeeper listing, the first included). It never blocks.
func (r *Router) GatewaysChanged() {
	select {
	case r.wake <- struct{}{}:
	default: // a run is already due
	}
}

// RunJanitor clears the sessions of gateways that are gone until ctx ends.
// Each run compares the `servers` set (gateways that ever held users) with
// the live list, so it also catches gateways that died while no route was
// running. It first runs after the first GatewaysChanged (never on an empty
// list that was not read from ZooKeeper). Failed runs are retried with
// backoff.
func (r *Router) RunJanitor(ctx context.Context) {
	var retry, periodic <-chan time.Time
	bo := backoff.New(time.Second, 30*time.Second, backoff.None)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-retry:
		case <-periodic:
		}
		if periodic == nil {
			// Once there is a list, also sweep now and then: a dying
			// gateway's late /internal/online can re-add it to `servers`
			// after its clean-up ran.
			t := time.NewTicker(janitorEvery)
			defer t.Stop()
			periodic = t.C
		}
		// Let the list settle: a burst of changes makes one run, and a
		// gateway another replica already saw has time to reach us.
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.cfg.JanitorSettle):
		}
		select {
		case <-r.wake:
		default:
		}
		if err := r.clearDeadGateways(ctx); err != nil {
			d := bo.Next()
			r.log.Warn("clearing dead gateways failed; will retry", "err", err, "retry_in", d)
			retry = time.After(d)
			continue
		}
		bo.Reset()
		retry = nil
	}
}

func (r *Router) clearDeadGateways(ctx context.Context) error {
	gws, err := r.st.Gateways(ctx)
	if err != nil {
		return err
	}
	for _, gw := range gws {
		if r.gw.Live(gw) {
			continue
		}
		r.current.Purge()
		// The online list goes stale before the routes go, so that nobody
		// who sees them gone is still answered the cached list.
		r.online.stale.Store(true)
		gone, err := r.st.ClearGateway(ctx, gw)
		if err != nil {
			return err
		}
		changes := make([]presenceChange, len(gone))
		for i, uid := range gone {
			changes[i] = presenceChange{uid: uid, gw: gw, reason: reasonGatewayGone}
		}
		r.presenceChanged(ctx, changes)
		r.log.Info("cleared a dead gateway's sessions", "gateway", gw, "routes", len(gone))
	}
	return nil
}
