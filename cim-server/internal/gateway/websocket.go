package gateway

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gocim/gocim/cim-server/internal/conn"
	"github.com/gocim/gocim/cim-server/internal/metrics"
	"github.com/gocim/gocim/cim-server/internal/wsconn"
)

// maxWSHeader bounds a WebSocket handshake's request headers.
const maxWSHeader = 16 << 10

// startWS serves the WebSocket listener: GET /ws upgrades (TLS like the
// client port), and the connection then goes through the same code as a
// TCP one (package wsconn makes it one). The connection caps hold from the
// accept on, as on the TCP port: a socket over them is closed at once (it
// has not said anything yet, so it gets no answer), and one that has not
// upgraded holds its unauthenticated slot, for at most the login timeout.
func (g *Gateway) startWS(root *slog.Logger) {
	g.wsUp = wsconn.NewUpgrader(g.cfg.MaxFrame, g.cfg.wsOrigins(), g.cfg.LoginTimeout, g.cfg.ReadTimeout)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wsconn.Path, g.serveWS)
	g.wsSrv = &http.Server{
		Handler:           mux,
		TLSConfig:         g.tlsCfg,
		ReadHeaderTimeout: g.cfg.LoginTimeout,
		ReadTimeout:       g.cfg.LoginTimeout,
		IdleTimeout:       g.cfg.LoginTimeout,
		MaxHeaderBytes:    maxWSHeader,
		ErrorLog:          slog.NewLogLogger(root.With("component", "ws").Handler(), slog.LevelWarn),
	}
	ln := &cappedListener{Listener: g.wsLn, g: g}
	g.goFunc(func() {
		var err error
		if g.tlsCfg != nil {
			err = g.wsSrv.ServeTLS(ln, "", "")
		} else {
			err = g.wsSrv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("WebSocket server stopped", "err", err)
		}
	})
}

// cappedListener takes each accepted socket's slots (the caps of the TCP
// port) before HTTP sees it, and closes the ones over a cap.
type cappedListener struct {
	net.Listener
	g *Gateway
}

func (l *cappedListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		unauth, why := l.g.takeSlots(nc.RemoteAddr())
		if why != "" {
			n := l.g.refused.Add(1)
			l.g.transport(metrics.WS).LoginFailed(metrics.Limit)
			_ = nc.Close()
			l.g.logRefusal(nc, "websocket: "+why, n)
			continue
		}
		key := nc.RemoteAddr().String()
		l.g.wsSlots.Store(key, unauth)
		return &slotConn{Conn: nc, g: l.g, key: key}, nil
	}
}

// slotConn gives its slots back when it closes before an upgrade took
// them over.
type slotConn struct {
	net.Conn
	g   *Gateway
	key string
}

func (c *slotConn) Close() error {
	if unauth, ok := c.g.wsSlots.LoadAndDelete(c.key); ok {
		unauth.(func())()
		c.g.open.Add(-1)
	}
	return c.Conn.Close()
}

// serveWS upgrades one request and serves the connection, which takes
// over the socket's slots.
func (g *Gateway) serveWS(w http.ResponseWriter, r *http.Request) {
	if g.shuttingDown.Load() || g.draining.Load() {
		http.Error(w, "gateway draining", http.StatusServiceUnavailable)
		return
	}
	v, ok := g.wsSlots.LoadAndDelete(r.RemoteAddr)
	if !ok { // upgraded already on this socket: not again
		http.Error(w, "one WebSocket per connection", http.StatusBadRequest)
		return
	}
	unauth := v.(func())
	nc, err := g.wsUp.Upgrade(w, r)
	if err != nil {
		g.wsSlots.Store(r.RemoteAddr, unauth) // the socket still holds it
		g.log.Debug("WebSocket handshake refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "err", err)
		return
	}
	// The handshake's deadlines no longer apply: the connection sets its own.
	_ = nc.SetDeadline(time.Time{})
	g.serve(conn.New(nc, g.wsConnCfg, g), nc, unauth)
}
