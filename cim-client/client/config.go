package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/gocim/gocim/proto/codec"
)

// Defaults for the zero fields of a Config.
const (
	DefaultHeartbeat    = 60 * time.Second
	DefaultPongTimeout  = 10 * time.Second
	DefaultReconnectMin = 500 * time.Millisecond
	DefaultReconnectMax = 30 * time.Second
	DefaultDialTimeout  = 10 * time.Second
	DefaultEventBuffer  = 256

	DefaultResendTimeout = 5 * time.Second
	DefaultResendMax     = 5
	DefaultAckDelay      = 100 * time.Millisecond
	DefaultAckInterval   = 500 * time.Millisecond
	DefaultAckEvery      = 100
	DefaultGroupAckDelay = time.Second
	DefaultSyncTimeout   = 10 * time.Second
	DefaultGapWait       = 200 * time.Millisecond
	DefaultGroupGapWait  = time.Second
)

// Config configures a Client. Zero fields take the documented defaults.
type Config struct {
	// RouteURL is the route's base URL, e.g. "http://127.0.0.1:8080", or
	// several replicas' as a comma-separated list.
	RouteURL string
	// RouteURLs are more route replicas' base URLs, after RouteURL's. With
	// several, logins go to each in turn and a call that cannot reach one
	// (connection refused, 502/503/504) moves on to the next (see API).
	RouteURLs []string
	// UserName is the account's name, or its decimal user id.
	UserName string
	// Password logs in. It may be empty when ResumeToken is set: a refused
	// token then ends Start (or the client, on a reconnect) with an error
	// matching ErrResumeRefused, and the application asks for the password.
	Password string
	// ResumeToken is a resume token an earlier Client handed to
	// OnResumeToken: the first login uses it instead of the password, so a
	// process that restarts (an app brought back, a device after a power
	// cut) comes back signed in without it, as long as the earlier one
	// ended with Disconnect or died, not with Close, and within the
	// route's --resume-ttl of the last password login.
	ResumeToken string
	// OnResumeToken, when set, is called with every new resume token the
	// route hands out (each login rotates it) and its expiry, and with ""
	// and the zero time once there is none to keep: the route refused it,
	// Close logged the session off, or the client was kicked. Keep the
	// latest where the next process finds it (a file only the user can
	// read: it is a credential). It runs on the goroutine that logged in,
	// never two at once, and must not block for long.
	OnResumeToken func(token string, expiresAt time.Time)
	// Platform names this kind of client at login (terminal, web, mobile,
	// desktop, device, or another short lowercase word); presence and the
	// app back-end's webhooks report it. Empty: none.
	Platform string

	// Heartbeat is how long the client may go without writing before it sends
	// a PING (default 60 s; negative disables heartbeats).
	Heartbeat time.Duration
	// PongTimeout is how long after a PING the gateway has to show life (a
	// PONG or any other frame) before the link counts as dead (default 10 s).
	// It also bounds one blocked write.
	PongTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the jittered exponential backoff
	// between login attempts (defaults 500 ms and 30 s).
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// DialTimeout bounds the TCP dial (with the TLS handshake, when TLS is
	// set) and, separately, the LOGIN → LOGIN_ACK handshake (default 10 s).
	DialTimeout time.Duration
	// TLS, when set, makes the gateway connection TLS: the client verifies
	// the gateway's certificate for the host /login named (TLS.ServerName
	// overrides it) against TLS.RootCAs (nil: the system pool). It is also
	// the TLS configuration of the private HTTP client (HTTPClient nil) for
	// an https:// RouteURL. Nil: plain TCP to the gateway; an https:// route
	// is still TLS, with Go's defaults.
	TLS *tls.Config
	// MaxFrame is the largest frame payload accepted from the gateway and
	// sent to it (default codec.DefaultMaxFrame, 64 KiB).
	MaxFrame int
	// HTTPClient calls the route. Nil means a private client with a 10 s
	// timeout (and TLS as its TLS configuration) whose idle connections
	// Close releases.
	HTTPClient *http.Client
	// Logger receives operational logs (nil: slog.Default()).
	Logger *slog.Logger
	// EventBuffer is the capacity of the Events channel (default 256).
	EventBuffer int
	// Dial opens the TCP connection to a gateway, bounded by DialTimeout
	// (nil: a net.Dialer). Tests use it to cut connections. With TLS set the
	// client runs the TLS handshake over what Dial returns.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// ResendTimeout is how long a sent MSG waits for the route's answer
	// (RECEIPT_SENT or ERROR) before it is sent again with the same
	// client_msg_id (default 5 s). Each further try waits twice as long as
	// the one before, at most 16 × ResendTimeout.
	ResendTimeout time.Duration
	// ResendMax is how many tries a MSG gets in all (default 5; 1 means
	// never resent after a timeout). After the last one times out, or
	// every try was answered with ERROR Unavailable, the client reports
	// an EventError with codes.Unavailable. Messages are also written again
	// after every reconnect; that does not count as a new try.
	ResendMax int
	// SentKept is how many sent messages the client remembers for Status
	// and Recent (default DefaultSentKept, 1000): the oldest answered ones
	// are forgotten first, and one still waiting for its answer is kept
	// even beyond the bound (it may have to be sent again). Each costs
	// about 350 bytes; a device that never asks can keep a few.
	SentKept int
	// AckDelay is how long after showing an inbox entry the client
	// acknowledges it (default 100 ms), but no sooner than AckInterval
	// after its previous ACK (default 500 ms; negative: no minimum), so a
	// busy inbox is acknowledged about twice a second, not ten times:
	// every ACK costs the cluster a range read, DELIVERED receipts and
	// the receipts' own ACKs. AckEvery acknowledges at once once that
	// many entries wait (default 100). Both waits are scaled by a factor
	// between 0.5 and 1.5, drawn anew for each ACK, so that clients that
	// connected or got a message together do not acknowledge together.
	AckDelay    time.Duration
	AckInterval time.Duration
	AckEvery    int
	// GroupAckDelay is AckDelay for the messages of large groups, those
	// the route keeps in a group timeline (default 1 s; AckEvery applies
	// too). Their ACK only moves the user's position in the group, which
	// matters for the next login of another process or device; while this
	// one runs it keeps its own place. Every member of a large group
	// acknowledging every 100 ms would be most of the cluster's work when
	// the group is busy.
	GroupAckDelay time.Duration
	// SyncTimeout is how long a SYNC (also the one the gateway makes on the
	// client's behalf at login) may go unanswered before the client asks
	// again (default 10 s).
	SyncTimeout time.Duration
	// GapWait is how long an inbox or group entry that arrived ahead of
	// its predecessor is held back before a SYNC asks for the missing one
	// (default 200 ms; negative: ask at once). Concurrent batches reach a
	// gateway out of order now and then; the missing entry usually follows
	// within milliseconds, and a SYNC would fetch everything after it again.
	GapWait time.Duration
	// GroupGapWait is GapWait for the messages of large groups, those the
	// route keeps in a group timeline (default 1 s; negative: ask at once).
	// There a gap is seen by every online member at once, and their SYNCs
	// would send the group's recent messages again to all of them; under
	// a burst the reordered push may trail by more than GapWait.
	GroupGapWait time.Duration
}

func (c *Config) setDefaults() {
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = DefaultPongTimeout
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = DefaultReconnectMax
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = codec.DefaultMaxFrame
	}
	if c.EventBuffer <= 0 {
		c.EventBuffer = DefaultEventBuffer
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ResendTimeout <= 0 {
		c.ResendTimeout = DefaultResendTimeout
	}
	if c.ResendMax <= 0 {
		c.ResendMax = DefaultResendMax
	}
	if c.SentKept <= 0 {
		c.SentKept = DefaultSentKept
	}
	if c.AckDelay <= 0 {
		c.AckDelay = DefaultAckDelay
	}
	if c.AckInterval == 0 {
		c.AckInterval = DefaultAckInterval
	}
	if c.AckEvery <= 0 {
		c.AckEvery = DefaultAckEvery
	}
	if c.GroupAckDelay <= 0 {
		c.GroupAckDelay = DefaultGroupAckDelay
	}
	if c.SyncTimeout <= 0 {
		c.SyncTimeout = DefaultSyncTimeout
	}
	if c.GapWait == 0 {
		c.GapWait = DefaultGapWait
	}
	if c.GroupGapWait == 0 {
		c.GroupGapWait = DefaultGroupGapWait
	}
}

// Validate reports the first problem with c, defaults applied.
func (c Config) Validate() error {
	c.setDefaults()
	routes := c.routes()
	if len(routes) == 0 {
		return errors.New("client: RouteURL is required")
	}
	for _, r := range routes {
		if u, err := url.Parse(r); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("client: RouteURL %q is not an http(s) URL", r)
		}
	}
	switch {
	case c.UserName == "":
		return errors.New("client: UserName is required")
	case c.Password == "" && c.ResumeToken == "":
		return errors.New("client: Password (or a ResumeToken) is required")
	case c.ReconnectMin > c.ReconnectMax:
		return fmt.Errorf("client: ReconnectMin %v is above ReconnectMax %v", c.ReconnectMin, c.ReconnectMax)
	}
	return nil
}

// routes lists every route base URL: RouteURL's (comma-separated) then
// RouteURLs.
func (c Config) routes() []string {
	out := splitRoutes(c.RouteURL)
	for _, r := range c.RouteURLs {
		out = append(out, splitRoutes(r)...)
	}
	return out
}
