package conn

// Cause is what ended a connection. The first close records it (see
// Conn.CloseWith); whatever happens after (the reader seeing EOF once the
// peer hung up, a write failing on a closed socket) does not change it,
// with one exception: Replaced.
type Cause uint8

const (
	// Open: the connection has not begun to close.
	Open Cause = iota
	// PeerClosed: the client hung up, or reading failed (EOF, reset).
	PeerClosed
	// Idle: nothing was read for Config.ReadTimeout.
	Idle
	// HandshakeFailed: the TLS handshake failed or did not finish within
	// Config.LoginTimeout.
	HandshakeFailed
	// LoginTimeout: no LOGIN within Config.LoginTimeout (ERROR
	// LoginTimeout).
	LoginTimeout
	// LoginRefused: the token did not verify, or the route refused the
	// session or could not be reached.
	LoginRefused
	// BadFrame: a frame that does not parse or is over Config.MaxFrame, a
	// first frame that is not LOGIN, a second LOGIN.
	BadFrame
	// Flooding: too many ACK/READ frames over the rate in a row (ERROR
	// RateLimited).
	Flooding
	// SlowConsumer: the client did not read fast enough to keep its write
	// queue within Config.WriteQueue frames and Config.WriteQueueBytes bytes
	// (ERROR SlowConsumer).
	SlowConsumer
	// WriteFailed: a write to the client failed or timed out.
	WriteFailed
	// Replaced: a newer connection of the same session took over here;
	// the session lives on in it. A connection replaced while it was
	// already closing for another cause is recorded as Replaced, as long
	// as Handler.Closed has not been called yet: what the gateway must
	// know about it is that its session did not end.
	Replaced
	// Kicked: the session ended elsewhere: the user logged in again with
	// another session, logged off, or the route no longer knows the
	// session as current.
	Kicked
	// StaleSession: the route refused the connection's uplinks (ERROR
	// StaleSession): its session is no longer where the user is.
	StaleSession
	// GoingAway: the gateway is shutting down (ERROR GoingAway).
	GoingAway
	// UplinkFailed: a message of the connection could not be forwarded to
	// the route in time (ERROR Reconnect): what it sent after must not be
	// stored first, so it logs in again and resends in order.
	UplinkFailed
)

var causeNames = [...]string{
	Open:            "open",
	PeerClosed:      "peer closed",
	Idle:            "idle timeout",
	HandshakeFailed: "TLS handshake failed",
	LoginTimeout:    "login timeout",
	LoginRefused:    "login refused",
	BadFrame:        "bad frame",
	Flooding:        "flooding",
	SlowConsumer:    "slow consumer",
	WriteFailed:     "write failed",
	Replaced:        "replaced by a newer connection of the session",
	Kicked:          "kicked",
	StaleSession:    "stale session",
	GoingAway:       "going away",
	UplinkFailed:    "uplink failed",
}

func (c Cause) String() string {
	if int(c) < len(causeNames) {
		return causeNames[c]
	}
	return "unknown"
}

// CloseReason is what Handler.Closed is told about a connection that is
// gone.
type CloseReason struct {
	Cause Cause
	// WasOnline says whether the login had succeeded (Handler.Online
	// returned nil): the route knows the session on this gateway.
	WasOnline bool
}

// EndsSession reports whether the connection's end is its session's end
// here, which the gateway reports to the route: it was online and was not
// replaced by a newer connection of the same session.
func (r CloseReason) EndsSession() bool {
	return r.WasOnline && r.Cause != Replaced
}

func (r CloseReason) String() string {
	if r.WasOnline {
		return r.Cause.String() + " (online)"
	}
	return r.Cause.String()
}

// EndError is what the Read of a transport adapter (mqttconn, wsconn)
// returns when it ends the connection on its own terms — a device broke
// the transport's rules, or its login was refused before there was a LOGIN
// frame to hand over: the adapter has told the client in the transport's
// own words, or does so when the connection hangs up (CloseWrite). The
// connection closes with Cause: what is queued is written (once LOGIN_ACK
// is), no ERROR frame is added, and the writer hangs up.
type EndError struct {
	Cause Cause
	Err   error // what went wrong, for the log
}

func (e *EndError) Error() string {
	if e.Err == nil {
		return e.Cause.String()
	}
	return e.Cause.String() + ": " + e.Err.Error()
}

func (e *EndError) Unwrap() error { return e.Err }
