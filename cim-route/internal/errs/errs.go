// Package errs holds the route service's sentinel errors in one place. Lower
// layers wrap them with detail (fmt.Errorf("%w: ...", ErrX)); the HTTP edge
// (package api) maps each to a result code and an HTTP status in one table.
package errs

import "errors"

var (
	// ErrBadArgument: malformed JSON, a missing or invalid field.
	ErrBadArgument = errors.New("bad argument")
	// ErrTooLarge: a request body above the limit.
	ErrTooLarge = errors.New("request body too large")
	// ErrBadAccount: unknown user or wrong password.
	ErrBadAccount = errors.New("bad account")
	// ErrNameTaken: the user name is already registered.
	ErrNameTaken = errors.New("user name taken")
	// ErrRepeatLogin: the user is online and the login policy is reject.
	ErrRepeatLogin = errors.New("user already logged in")
	// ErrNotFound: no such thing (an unknown file ref).
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized: no credential, or a malformed, forged, expired or
	// revoked one (a session that is not the user's current one).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: a valid credential that does not allow this (another
	// user's data, a missing API key scope).
	ErrForbidden = errors.New("forbidden")
	// ErrRateLimited: too many attempts; the HTTP edge says when to retry.
	ErrRateLimited = errors.New("too many requests")
	// ErrNoGateway: no live, healthy gateway to hand out.
	ErrNoGateway = errors.New("no gateway available")
	// ErrStaleSession: the session is no longer the user's current one.
	ErrStaleSession = errors.New("session is not current")
	// ErrUnavailable: Redis (the storage) cannot be reached or failed.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrAuthUnavailable: the external authenticator (--auth http or ldap)
	// cannot be asked.
	ErrAuthUnavailable = errors.New("authenticator unavailable")
	// ErrNoGroup: no such group (never created, or dissolved).
	ErrNoGroup = errors.New("no such group")
	// ErrGroupFull: the group is at --group-max-members.
	ErrGroupFull = errors.New("group is full")
)
