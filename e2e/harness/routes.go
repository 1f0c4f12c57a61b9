package harness

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gocim/gocim/internal/testenv"
)

// AddRoute starts one more route replica sharing the cluster's ZooKeeper and
// Redis: the first route's flags (Options.RouteArgs included) on new ports,
// then extra (a later flag wins, e.g. its own --upload-dir). It returns once
// the replica is ready and hands out every running gateway. Give gateways
// the replicas with AddGateway("--route", RouteList(...)).
func (c *Cluster) AddRoute(extra ...string) *Route {
	c.t.Helper()
	port, internal := testenv.FreePort(c.t), testenv.FreePort(c.t)
	r := &Route{Addr: "127.0.0.1:" + strconv.Itoa(port), InternalAddr: "127.0.0.1:" + strconv.Itoa(internal)}
	r.URL = "http://" + r.Addr
	if c.TLS != nil {
		r.URL = "https://" + r.Addr
	}
	r.InternalURL = "http://" + r.InternalAddr
	r.args = append(c.routeArgsOn(r.Addr, r.InternalAddr), extra...)
	c.StartRouteReplica(r)
	return r
}

// StartRouteReplica starts a replica made by AddRoute (again, after it was
// killed) on its ports and waits until it is ready and hands out every
// running gateway.
func (c *Cluster) StartRouteReplica(r *Route) {
	c.t.Helper()
	r.Process = testenv.Start(c.t, c.Dir, filepath.Join(c.Bin, "cim-route"), c.env(), r.args...)
	c.track(r.Process)
	c.wait(r.Process, "route ready")
	running := 0
	for _, g := range c.Gateways {
		if g.Process != nil && !g.Exited() {
			running++
		}
	}
	Eventually(c.t, 60*time.Second, func() error {
		n, err := liveGatewaysAt(r.InternalURL)
		if err != nil {
			return err
		}
		if n < running {
			return fmt.Errorf("route replica %s hands out %d of the %d running gateways", r.Addr, n, running)
		}
		return nil
	})
}

// RouteList joins the replicas' public URLs (internal: their internal URLs)
// with commas, as clients' and gateways' --route take them.
func RouteList(internal bool, routes ...*Route) string {
	urls := make([]string, len(routes))
	for i, r := range routes {
		urls[i] = r.URL
		if internal {
			urls[i] = r.InternalURL
		}
	}
	return strings.Join(urls, ",")
}

// routeArgsOn returns the first route's flags (Options.RouteArgs
// included) with its listeners moved to public and internal.
func (c *Cluster) routeArgsOn(public, internal string) []string {
	args := append([]string(nil), c.Route.args...)
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--listen":
			args[i+1] = public
		case "--internal-listen":
			args[i+1] = internal
		}
	}
	return args
}
