package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
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

// GatewayInfo is what a gateway publishes as the data of its ZooKeeper node
// (JSON): the addresses its id does not carry. An empty node is a gateway
// without them (one from before they existed, or with no WebSocket port).
type GatewayInfo struct {
	// WSURL is where browsers connect: ws://host:port/ws, or wss:// when
	// the gateway has TLS. Empty: no WebSocket listener.
	WSURL string `json:"wsUrl,omitempty"`
	// MQTTAddr is where devices connect over MQTT, host:port as they dial
	// it (an IPv6 host in brackets). Empty: no MQTT listener.
	MQTTAddr string `json:"mqtt,omitempty"`
	// MQTTTLS says the MQTT listener speaks TLS (mqtts).
	MQTTTLS bool `json:"mqttTls,omitempty"`
}

// MaxGatewayInfo bounds a node's data: anything longer is not a gateway's.
const MaxGatewayInfo = 1 << 10

// ErrBadGatewayInfo means a node's data is not a GatewayInfo.
var ErrBadGatewayInfo = errors.New("contract: bad gateway info")

// Marshal returns info as node data (nil when there is nothing to say).
func (info GatewayInfo) Marshal() []byte {
	if info == (GatewayInfo{}) {
		return nil
	}
	b, _ := json.Marshal(info) // a struct of strings and a bool always encodes
	return b
}

// ParseGatewayInfo reads a node's data; nil or empty is the zero info. A
// WSURL must be an absolute ws:// or wss:// URL; an MQTTAddr a host:port
// with a non-empty host and a port 1..65535, and MQTTTLS needs one.
func ParseGatewayInfo(data []byte) (GatewayInfo, error) {
	var info GatewayInfo
	if len(data) == 0 {
		return info, nil
	}
	if len(data) > MaxGatewayInfo {
		return GatewayInfo{}, fmt.Errorf("%w: %d bytes", ErrBadGatewayInfo, len(data))
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return GatewayInfo{}, fmt.Errorf("%w: %v", ErrBadGatewayInfo, err)
	}
	if info.WSURL != "" {
		u, err := url.Parse(info.WSURL)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return GatewayInfo{}, fmt.Errorf("%w: wsUrl %q", ErrBadGatewayInfo, info.WSURL)
		}
	}
	if info.MQTTAddr != "" {
		host, p, err := net.SplitHostPort(info.MQTTAddr)
		if _, ok := port(p); err != nil || host == "" || !ok {
			return GatewayInfo{}, fmt.Errorf("%w: mqtt %q", ErrBadGatewayInfo, info.MQTTAddr)
		}
	} else if info.MQTTTLS {
		return GatewayInfo{}, fmt.Errorf("%w: mqttTls without an mqtt address", ErrBadGatewayInfo)
	}
	return info, nil
}
