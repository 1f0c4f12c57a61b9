// Package connlimit bounds how many connections one client address and all
// clients together may hold, so a single host cannot use up a server's open
// files (sockets) and starve everybody else.
//
// A Limiter counts slots: Acquire takes one for an address (refused when the
// address or the total is at its limit), and the returned release gives it
// back (idempotent). Listen wraps a net.Listener so every accepted
// connection holds a slot until it is closed; a connection over a limit is
// closed at once, before the server reads from it. IPv6 addresses count per
// /64 network, the block one subscriber usually gets.
//
// A Limiter is safe for concurrent use.
package connlimit

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Limiter counts connections per client address and in total. A limit of 0
// is no limit.
type Limiter struct {
	perAddr, total int

	mu     sync.Mutex
	byAddr map[netip.Prefix]int
	n      int
}

// New returns a Limiter allowing perAddr connections per client address and
// total connections in all (0: unlimited).
func New(perAddr, total int) *Limiter {
	return &Limiter{perAddr: max(perAddr, 0), total: max(total, 0), byAddr: map[netip.Prefix]int{}}
}

// Reason says which limit refused a connection.
type Reason string

const (
	// PerAddr: the client address holds its share already.
	PerAddr Reason = "per-address limit"
	// Total: the server holds as many connections as it allows.
	Total Reason = "total limit"
)

// Acquire takes a slot for a connection from addr. It returns a release
// function (safe to call more than once) and "" when the connection may
// stay, or nil and the limit that refused it. An address that is not IP
// (a Unix socket, a test pipe) only counts towards the total.
func (l *Limiter) Acquire(addr net.Addr) (release func(), refused Reason) {
	key, keyed := Key(addr)
	l.mu.Lock()
	switch {
	case l.total > 0 && l.n >= l.total:
		l.mu.Unlock()
		return nil, Total
	case keyed && l.perAddr > 0 && l.byAddr[key] >= l.perAddr:
		l.mu.Unlock()
		return nil, PerAddr
	}
	l.n++
	if keyed {
		l.byAddr[key]++
	}
	l.mu.Unlock()
	var done atomic.Bool
	return func() {
		if done.Swap(true) {
			return
		}
		l.mu.Lock()
		l.n--
		if keyed {
			if c := l.byAddr[key] - 1; c > 0 {
				l.byAddr[key] = c
			} else {
				delete(l.byAddr, key)
			}
		}
		l.mu.Unlock()
	}, ""
}

// Count returns the connections holding a slot.
func (l *Limiter) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// CountFor returns the connections addr's client holds.
func (l *Limiter) CountFor(addr net.Addr) int {
	key, ok := Key(addr)
	if !ok {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byAddr[key]
}

// Key returns the address block a connection from addr counts against: the
// IPv4 address, or the IPv6 /64. ok is false for non-IP addresses.
func Key(addr net.Addr) (key netip.Prefix, ok bool) {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		if addr == nil {
			return netip.Prefix{}, false
		}
		var err error
		if ap, err = netip.ParseAddrPort(addr.String()); err != nil {
			return netip.Prefix{}, false
		}
	}
	ip := ap.Addr().Unmap()
	if !ip.IsValid() {
		return netip.Prefix{}, false
	}
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, err := ip.Prefix(bits)
	return p, err == nil
}

// ListenOptions tune Listen; the zero value is fine.
type ListenOptions struct {
	// Refused, when set, is told about every connection closed for being
	// over a limit.
	Refused func(addr net.Addr, why Reason)
	// TotalOnly, when set, names client addresses that count toward the
	// total only, never a per-address cap: trusted reverse proxies, which
	// carry many clients on one address.
	TotalOnly func(addr net.Addr) bool
}

// Listen wraps ln: each accepted connection holds a slot of l until it is
// closed. A connection over a limit is closed at once (and o.Refused told);
// Accept then waits for the next one.
func Listen(ln net.Listener, l *Limiter, o ListenOptions) net.Listener {
	return &listener{Listener: ln, l: l, o: o}
}

type listener struct {
	net.Listener
	l *Limiter
	o ListenOptions
}

func (ln *listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := c.RemoteAddr()
		if ln.o.TotalOnly != nil && ln.o.TotalOnly(key) {
			key = nil // counts toward the total only
		}
		release, why := ln.l.Acquire(key)
		if why != "" {
			_ = c.Close()
			if ln.o.Refused != nil {
				ln.o.Refused(c.RemoteAddr(), why)
			}
			continue
		}
		return &conn{Conn: c, release: release}, nil
	}
}

// conn gives its slot back when closed.
type conn struct {
	net.Conn
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// CloseWrite half-closes a TCP connection (servers that hang up after a last
// frame use it); other connections cannot.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
