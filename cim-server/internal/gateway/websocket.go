package gateway

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/gocim/gocim/cim-server/internal/wsconn"
)

// maxWSHeader bounds a WebSocket handshake's request headers.
const maxWSHeader = 16 << 10

// startWS serves the WebSocket listener: GET /ws upgrades (TLS like the
// client port), and the connection then goes through the same code as a
// TCP one (package wsconn makes it one). The connection caps apply before
// the upgrade: one over them gets 503 and no WebSocket. A socket that has
// not finished its handshake is bounded by the login timeout.
func (g *Gateway) startWS(root *slog.Logger) {
	g.wsUp = wsconn.NewUpgrader(g.cfg.MaxFrame, g.cfg.wsOrigins(), g.cfg.LoginTimeout)
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
	ln := g.wsLn
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

// serveWS upgrades one request, within the caps, and serves the connection.
func (g *Gateway) serveWS(w http.ResponseWriter, r *http.Request) {
	if g.shuttingDown.Load() {
		http.Error(w, "gateway shutting down", http.StatusServiceUnavailable)
		return
	}
	unauth, why := g.takeSlots(remoteAddr(r))
	if why != "" {
		g.refused.Add(1)
		if ok, _ := g.refusals.Allow(time.Now()); ok {
			g.log.Warn("WebSocket connection refused", "remote", r.RemoteAddr, "reason", why,
				"connections", g.open.Load(), "unauthenticated", g.unauth.Count())
		}
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	nc, err := g.wsUp.Upgrade(w, r)
	if err != nil {
		unauth()
		g.open.Add(-1)
		g.log.Debug("WebSocket handshake refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "err", err)
		return
	}
	// The handshake's deadlines no longer apply: the connection sets its own.
	_ = nc.SetDeadline(time.Time{})
	g.serveConn(nc, unauth)
}

// remoteAddr is the request's client address as the caps count it.
func remoteAddr(r *http.Request) net.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return &net.TCPAddr{}
	}
	return net.TCPAddrFromAddrPort(ap)
}
