package client

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codes"
)

var (
	// ErrClosed is returned by calls on a Client after Close.
	ErrClosed = errors.New("client: closed")
	// ErrStopped is wrapped by the error sends return after the client
	// stopped for good (kicked, or its login was refused permanently).
	ErrStopped = errors.New("client: stopped")
	// ErrTooLarge means a message does not fit in one frame (Config.MaxFrame).
	ErrTooLarge = errors.New("client: message larger than the frame limit")
	// ErrNoRecipient means a private message without a recipient.
	ErrNoRecipient = errors.New("client: no recipient")
	// ErrNoGroup means a group call or group message without a group id.
	ErrNoGroup = errors.New("client: no group")
	// ErrStarted means Start was called on a running client.
	ErrStarted = errors.New("client: already started")
	// ErrNotLoggedIn means a call that needs the session (History, an
	// upload) came before Start logged in.
	ErrNotLoggedIn = errors.New("client: not logged in")
	// ErrUnauthorized matches (errors.Is) the route's 401 / 4010 answer to a
	// call made with the access token: the session it belongs to was
	// replaced or logged off, or the token expired. The SDK does not log in
	// again for it; the next reconnect brings a new token.
	ErrUnauthorized = errors.New("client: access token refused")
	// ErrResumeRefused wraps the route's answer when it refused the resume
	// token and the Config has no password to fall back on (used, revoked
	// by a log-off or a password login elsewhere, or older than the
	// route's --resume-ttl): the login has to be asked for again.
	ErrResumeRefused = errors.New("client: resume token refused and no password to log in with")
)

// errLinkDown means a frame was not (known to be) written because its link
// ended; the sender tries again on the next link. Resending is safe: the route
// deduplicates by (sender, client_msg_id).
var errLinkDown = errors.New("client: link down")

// GatewayError is an ERROR frame from a gateway, as returned by Start when
// the gateway refuses the LOGIN (e.g. codes.Unauthorized).
type GatewayError struct {
	Code        codes.Code
	Text        string
	ClientMsgID string
}

func newGatewayError(e *cimpb.Error) *GatewayError {
	return &GatewayError{Code: codes.Code(e.GetCode()), Text: e.GetText(), ClientMsgID: e.GetClientMsgId()}
}

func (e *GatewayError) Error() string {
	text := e.Text
	if text == "" {
		text = e.Code.Text()
	}
	return fmt.Sprintf("gateway: %s (code %d)", text, e.Code)
}

// stopError ends a link in a way reconnecting cannot fix: a KICK, or an
// ERROR frame saying the session is no longer ours.
type stopError struct {
	reason string
	frame  *cimpb.Error // the ERROR frame, when one said so
	err    error        // underlying cause, if any
}

func (e *stopError) Error() string { return e.reason }
func (e *stopError) Unwrap() error { return e.err }

// endsSession reports whether an ERROR code means this session is over for
// good rather than this connection.
func endsSession(c codes.Code) bool {
	return c == codes.Unauthorized || c == codes.KickedElsewhere
}

// permanent reports whether retrying a failed login cannot help. first is
// true for Start's attempts: there a RepeatLogin (reject policy) means the
// account is in use elsewhere, while during a reconnect it usually means the
// route has not yet seen our own dead link go away.
//
// A TLS mismatch (the gateway's certificate does not verify, or it does not
// speak TLS at all) is permanent for Start too: it is a configuration error
// that retrying the same cluster will not fix. During a reconnect it may be
// one misconfigured gateway among good ones, so the client keeps trying.
func permanent(err error, first bool) bool {
	var se *stopError
	if errors.As(err, &se) || errors.Is(err, ErrResumeRefused) {
		return true
	}
	var cve *tls.CertificateVerificationError
	var rhe tls.RecordHeaderError
	if errors.As(err, &cve) || errors.As(err, &rhe) {
		return first
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.Code {
		case codes.BadAccount, codes.BadArgument:
			return true
		case codes.RepeatLogin:
			return first
		}
		return false
	}
	var ge *GatewayError
	if errors.As(err, &ge) {
		return endsSession(ge.Code)
	}
	return false
}
