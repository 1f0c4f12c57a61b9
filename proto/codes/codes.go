// Package codes holds the result codes gocim shares between the route's JSON
// API and ERROR frames. The first six are CIM's own.
package codes

// Code is a gocim result code.
type Code int32

const (
	OK          Code = 9000 // success
	RepeatLogin Code = 5000 // user already logged in (reject policy)
	Offline     Code = 7000 // recipient is not online
	NoServer    Code = 7100 // no live gateway to hand out
	BadAccount  Code = 9100 // unknown user, wrong password, name taken
	BadArgument Code = 3000 // malformed or missing request fields

	Unauthorized    Code = 4010 // missing, forged, expired or revoked token
	WrongGateway    Code = 4011 // token issued for another gateway
	LoginTimeout    Code = 4080 // no LOGIN within the allowed time after connect
	FrameTooLarge   Code = 4130 // frame above the configured maximum
	BadFrame        Code = 4000 // frame does not parse or is not allowed now
	SlowConsumer    Code = 4290 // client does not read fast enough
	Unavailable     Code = 5030 // route or storage unavailable, retry later
	Internal        Code = 5000 + 1
	GoingAway       Code = 5031 // gateway shutting down: reconnect elsewhere
	Reconnect       Code = 5033 // this connection's messages could not be forwarded: log in again and resend, in order
	KickedElsewhere Code = 4090 // same user logged in on another connection
	StaleSession    Code = 4091 // the connection's session is no longer where the user is: log in again
	Forbidden       Code = 4030 // valid credential, but not allowed to do this
	RateLimited     Code = 4291 // too many requests or messages: slow down
	TooLarge        Code = 4131 // request body or message body above the limit
	NoGroup         Code = 9200 // unknown group
	GroupFull       Code = 9201 // group at its member limit

	TooManyConnections Code = 4292 // the client address (or the server) holds as many connections as allowed
	QuotaExceeded      Code = 4293 // a per-user quota (upload bytes, invitations) is used up for now
	Busy               Code = 5032 // the server is at capacity for this kind of work: retry later
	StorageFull        Code = 5070 // the server cannot store more (upload space): nothing was kept
)

// Text returns a short English description of c.
func (c Code) Text() string {
	switch c {
	case OK:
		return "ok"
	case RepeatLogin:
		return "user already logged in"
	case Offline:
		return "user offline"
	case NoServer:
		return "no gateway available"
	case BadAccount:
		return "bad account"
	case BadArgument:
		return "bad argument"
	case Unauthorized:
		return "unauthorized"
	case WrongGateway:
		return "token issued for another gateway"
	case LoginTimeout:
		return "login timeout"
	case FrameTooLarge:
		return "frame too large"
	case BadFrame:
		return "bad frame"
	case SlowConsumer:
		return "slow consumer"
	case Unavailable:
		return "service unavailable"
	case Internal:
		return "internal error"
	case GoingAway:
		return "gateway going away"
	case Reconnect:
		return "messages not forwarded: log in again"
	case KickedElsewhere:
		return "logged in elsewhere"
	case StaleSession:
		return "session moved: log in again"
	case Forbidden:
		return "forbidden"
	case RateLimited:
		return "rate limited"
	case TooLarge:
		return "too large"
	case NoGroup:
		return "no such group"
	case GroupFull:
		return "group is full"
	case TooManyConnections:
		return "too many connections"
	case QuotaExceeded:
		return "quota exceeded"
	case Busy:
		return "server busy"
	case StorageFull:
		return "storage full"
	}
	return "unknown"
}
