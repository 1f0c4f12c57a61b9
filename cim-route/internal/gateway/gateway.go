// Package gateway parses gateway ids. A gateway id is also its ZooKeeper node
// name: "<host>:<tcpPort>:<httpPort>", where host may be a bracketed IPv6
// literal. Clients dial host:tcpPort; the route calls http://host:httpPort.
package gateway

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ErrBadID means a string is not a gateway id.
var ErrBadID = errors.New("gateway: bad id")

// Addr is a parsed gateway id.
type Addr struct {
	ID       string
	Host     string // without brackets
	TCPPort  int
	HTTPPort int
}

// Parse splits id on its last two colons, so an IPv6 host (bracketed or not)
// keeps its own colons.
func Parse(id string) (Addr, error) {
	i := strings.LastIndexByte(id, ':')
	if i <= 0 {
		return Addr{}, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	j := strings.LastIndexByte(id[:i], ':')
	if j <= 0 {
		return Addr{}, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(id[:j], "["), "]")
	tcp, err1 := port(id[j+1 : i])
	web, err2 := port(id[i+1:])
	if host == "" || err1 != nil || err2 != nil {
		return Addr{}, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	return Addr{ID: id, Host: host, TCPPort: tcp, HTTPPort: web}, nil
}

func port(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p <= 0 || p > 65535 {
		return 0, ErrBadID
	}
	return p, nil
}

// HTTPBase is the gateway's internal HTTP base URL, without a trailing slash.
func (a Addr) HTTPBase() string {
	return "http://" + net.JoinHostPort(a.Host, strconv.Itoa(a.HTTPPort))
}

// TCPAddr is where clients connect.
func (a Addr) TCPAddr() string {
	return net.JoinHostPort(a.Host, strconv.Itoa(a.TCPPort))
}
