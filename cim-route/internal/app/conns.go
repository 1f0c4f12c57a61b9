package app

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/gocim/gocim/internal/connlimit"
)

// connReserve is the share of the open-file limit kept from the public
// listener for everything else the route opens: Redis and gateway
// connections, the internal listener, uploads being written.
const (
	connReserveMin  = 128
	connReserveFrac = 5 // a fifth
	refusalLogEvery = 10 * time.Second
)

// publicConnLimit is --max-conns, or when 0 the open-file limit minus a
// reserve (0 when the limit is unknown: no total cap).
func publicConnLimit(configured int) int {
	if configured > 0 {
		return configured
	}
	n := openFileLimit()
	if n <= 0 {
		return 0
	}
	return max(n-max(connReserveMin, n/connReserveFrac), 64)
}

// limitListener holds every accepted connection to the limiter's per-address
// and total caps and closes the ones over them right away. Connections from
// exempt prefixes (trusted reverse proxies, which carry many clients on one
// address) count toward the total only.
type limitListener struct {
	net.Listener
	l      *connlimit.Limiter
	exempt []netip.Prefix
	log    *slog.Logger

	mu       sync.Mutex
	refused  map[connlimit.Reason]int // since the last log line
	lastLog  time.Time
	lastAddr net.Addr
}

func newLimitListener(ln net.Listener, l *connlimit.Limiter, exempt []netip.Prefix, log *slog.Logger) *limitListener {
	return &limitListener{Listener: ln, l: l, exempt: exempt, log: log, refused: map[connlimit.Reason]int{}}
}

func (ln *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := c.RemoteAddr()
		if ln.isExempt(key) {
			key = nil // a nil address counts toward the total only
		}
		release, why := ln.l.Acquire(key)
		if why != "" {
			_ = c.Close()
			ln.noteRefusal(c.RemoteAddr(), why)
			continue
		}
		return &limitedConn{Conn: c, release: release}, nil
	}
}

func (ln *limitListener) isExempt(addr net.Addr) bool {
	if len(ln.exempt) == 0 {
		return false
	}
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip := ta.AddrPort().Addr().Unmap()
	for _, p := range ln.exempt {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// noteRefusal logs refusals at most every refusalLogEvery: a flood must not
// turn into a flood of log lines.
func (ln *limitListener) noteRefusal(addr net.Addr, why connlimit.Reason) {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	ln.refused[why]++
	ln.lastAddr = addr
	if time.Since(ln.lastLog) < refusalLogEvery {
		return
	}
	ln.log.Warn("connections refused", "per_address", ln.refused[connlimit.PerAddr], "total", ln.refused[connlimit.Total],
		"last_from", ln.lastAddr.String(), "open", ln.l.Count())
	clear(ln.refused)
	ln.lastLog = time.Now()
}

// limitedConn gives its slot back when closed (once).
type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// CloseWrite keeps the half-close net/http uses before closing a
// connection after an error answer.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// proxyPrefixes parses --trusted-proxies (IPs or CIDRs; Validate checked
// them) into prefixes.
func proxyPrefixes(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}
