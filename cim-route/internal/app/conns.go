package app

import (
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
	n := connlimit.OpenFiles()
	if n <= 0 {
		return 0
	}
	return max(n-max(connReserveMin, n/connReserveFrac), 64)
}

// newLimitListener holds every accepted connection to l's per-address and
// total caps (connlimit.Listen). Connections from exempt prefixes (trusted
// reverse proxies, which carry many clients on one address) count toward
// the total only. Refusals are logged at most every refusalLogEvery.
func newLimitListener(ln net.Listener, l *connlimit.Limiter, exempt []netip.Prefix, log *slog.Logger) net.Listener {
	r := &refusals{log: log, l: l, counts: map[connlimit.Reason]int{}}
	return connlimit.Listen(ln, l, connlimit.ListenOptions{
		Refused:   r.note,
		TotalOnly: func(addr net.Addr) bool { return inPrefixes(addr, exempt) },
	})
}

// inPrefixes reports whether addr's IP is in one of ps.
func inPrefixes(addr net.Addr, ps []netip.Prefix) bool {
	ta, ok := addr.(*net.TCPAddr)
	if !ok || len(ps) == 0 {
		return false
	}
	ip := ta.AddrPort().Addr().Unmap()
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// refusals logs refused connections at a bounded rate: a flood must not
// turn into a flood of log lines.
type refusals struct {
	log *slog.Logger
	l   *connlimit.Limiter

	mu     sync.Mutex
	counts map[connlimit.Reason]int // since the last log line
	last   time.Time
}

func (r *refusals) note(addr net.Addr, why connlimit.Reason) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[why]++
	if time.Since(r.last) < refusalLogEvery {
		return
	}
	r.log.Warn("connections refused", "per_address", r.counts[connlimit.PerAddr], "total", r.counts[connlimit.Total],
		"last_from", addr.String(), "open", r.l.Count())
	clear(r.counts)
	r.last = time.Now()
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
