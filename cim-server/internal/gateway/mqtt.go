package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/cim-server/internal/metrics"
	"github.com/gocim/gocim/cim-server/internal/mqttconn"
	"github.com/gocim/gocim/cim-server/internal/routeclient"
	"github.com/gocim/gocim/internal/connlimit"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
)

// startMQTT serves the MQTT listener (TLS like the client port): each
// device connection goes through the same code as a TCP one (package
// mqttconn makes it one), logs in with its credential at the route through
// a gate of --mqtt-login-parallel turns and --mqtt-login-queue places, and
// is drained like the others (MQTT 5 devices get DISCONNECT 0x8B).
//
// The connection caps hold from the accept on: --max-conns, and
// --max-unauth for connections whose CONNECT is not accepted yet; the
// per-address share of those is --mqtt-max-unauth-per-addr (default: none)
// instead of --max-unauth-per-addr, since a fleet of devices behind one NAT
// reconnects at once after a power cut. A socket over a cap is closed at
// once: before its CONNECT the gateway does not know which MQTT to answer in.
func (g *Gateway) startMQTT(root *slog.Logger) {
	g.mqttUnauth = connlimit.New(g.cfg.MQTTMaxUnauthPerAddr, 0)
	g.mqttCfg = mqttconn.NewConfig(mqttconn.Config{
		GatewayID: g.id,
		Login:     deviceLogins{g},
		Gate:      mqttconn.NewGate(g.cfg.MQTTLoginParallel, g.cfg.MQTTLoginQueue),
		MaxFrame:  g.cfg.MaxFrame,
		MaxBody:   g.cfg.MaxText,
		Logger:    root,
	})
	g.goFunc(func() { g.acceptOn(g.mqttLn, g.takeMQTTSlots, g.refuseMQTT, g.serveMQTT) })
}

// MQTTAddr returns the MQTT listener's address as devices dial it ("" without one).
func (g *Gateway) MQTTAddr() string { return g.mqttAddr }

// takeMQTTSlots takes a device connection's slots: among all connections,
// and among those not logged in yet, in total (the gateway's limiter, which
// an address that is not IP only counts in total) and per address (the
// MQTT listener's own).
func (g *Gateway) takeMQTTSlots(addr net.Addr) (releaseUnauth func(), why string) {
	if n := g.open.Add(1); g.limits.total > 0 && n > int64(g.limits.total) {
		g.open.Add(-1)
		return nil, "connection cap"
	}
	total, refused := g.unauth.Acquire(nil)
	if refused != "" {
		g.open.Add(-1)
		return nil, "unauthenticated " + string(refused)
	}
	perAddr, refused := g.mqttUnauth.Acquire(addr)
	if refused != "" {
		total()
		g.open.Add(-1)
		return nil, "unauthenticated MQTT " + string(refused)
	}
	return func() { perAddr(); total() }, ""
}

// refuseMQTT closes a device connection over a cap at once.
func (g *Gateway) refuseMQTT(nc net.Conn, why string) {
	n := g.refused.Add(1)
	g.transport(metrics.MQTT).LoginFailed(metrics.Limit)
	_ = nc.Close()
	g.logRefusal(nc, "mqtt: "+why, n)
}

// serveMQTT serves an accepted device connection that holds its slots.
func (g *Gateway) serveMQTT(nc net.Conn, unauth func()) {
	mc := mqttconn.New(nc, g.mqttCfg)
	c := conn.New(mc, g.mqttConnCfg, g)
	mc.Bind(mqttOwner{g: g, c: c})
	g.serve(c, nc, unauth)
}

// mqttOwner is the gateway side of one device connection.
type mqttOwner struct {
	g *Gateway
	c *conn.Conn
}

// Uplink forwards the adapter's own frames (ACK, SYNC) like the device's.
func (o mqttOwner) Uplink(f *cimpb.Frame) {
	if err := o.g.Uplink(o.g.ctx, o.c, f); err != nil {
		o.g.log.Debug("device frame not forwarded", "user", o.c.UserID(), "type", f.GetType().String(), "err", err)
	}
}

func (o mqttOwner) CloseWith(why conn.Cause, f *cimpb.Frame) bool { return o.c.CloseWith(why, f) }

// deviceLogins asks the route for device tokens, in mqttconn's terms.
type deviceLogins struct{ g *Gateway }

func (d deviceLogins) DeviceLogin(ctx context.Context, req contract.DeviceLogin) (contract.DeviceToken, error) {
	tok, err := d.g.route.DeviceLogin(ctx, req)
	d.g.routeCalled(ctx, err)
	switch {
	case errors.Is(err, routeclient.ErrBadCredentials):
		err = fmt.Errorf("%w: %w", mqttconn.ErrBadCredentials, err)
	case errors.Is(err, routeclient.ErrBusy):
		err = fmt.Errorf("%w: %w", mqttconn.ErrBusy, err)
	}
	return tok, err
}
