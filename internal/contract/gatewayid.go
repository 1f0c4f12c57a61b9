package contract

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// A gateway id is also the gateway's ZooKeeper node name:
// "<host>:<tcpPort>:<httpPort>", where host is the gateway's advertised
// host and may be an IPv6 literal, bracketed or not. Clients dial
// host:tcpPort; the route calls http://host:httpPort.

// ErrBadGatewayID means a string is not a gateway id.
var ErrBadGatewayID = errors.New("contract: bad gateway id")

// GatewayAddr is a parsed gateway id.
type GatewayAddr struct {
	ID       string
	Host     string // without brackets
	TCPPort  int
	HTTPPort int
}

// FormatGatewayID returns the id of the gateway advertising host (as
// given: an IPv6 literal may come with or without brackets) with its client
// port tcpPort and its HTTP port httpPort.
func FormatGatewayID(host string, tcpPort, httpPort int) string {
	return host + ":" + strconv.Itoa(tcpPort) + ":" + strconv.Itoa(httpPort)
}

// ParseGatewayID splits id on its last two colons, so an IPv6 host
// (bracketed or not) keeps its own colons. Both ports must be 1..65535 and
// the host non-empty, else the error wraps ErrBadGatewayID.
func ParseGatewayID(id string) (GatewayAddr, error) {
	i := strings.LastIndexByte(id, ':')
	if i <= 0 {
		return GatewayAddr{}, fmt.Errorf("%w: %q", ErrBadGatewayID, id)
	}
	j := strings.LastIndexByte(id[:i], ':')
	if j <= 0 {
		return GatewayAddr{}, fmt.Errorf("%w: %q", ErrBadGatewayID, id)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(id[:j], "["), "]")
	tcp, ok1 := port(id[j+1 : i])
	web, ok2 := port(id[i+1:])
	if host == "" || !ok1 || !ok2 {
		return GatewayAddr{}, fmt.Errorf("%w: %q", ErrBadGatewayID, id)
	}
	return GatewayAddr{ID: id, Host: host, TCPPort: tcp, HTTPPort: web}, nil
}

func port(s string) (int, bool) {
	p, err := strconv.Atoi(s)
	return p, err == nil && p > 0 && p <= 65535
}

// HTTPBase is the gateway's HTTP base URL, without a trailing slash.
func (a GatewayAddr) HTTPBase() string {
	return "http://" + net.JoinHostPort(a.Host, strconv.Itoa(a.HTTPPort))
}

// TCPAddr is where clients connect.
func (a GatewayAddr) TCPAddr() string {
	return net.JoinHostPort(a.Host, strconv.Itoa(a.TCPPort))
}
