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
	// ErrUnauthorized: the request's session is not the user's current one
	// (history, uploads).
	ErrUnauthorized = errors.New("not the user's current session")
	// ErrNoGateway: no live, healthy gateway to hand out.
	ErrNoGateway = errors.New("no gateway available")
	// ErrStaleSession: the session is no longer the user's current one.
	ErrStaleSession = errors.New("session is not current")
	// ErrUnavailable: Redis (the storage) cannot be reached or failed.
	ErrUnavailable = errors.New("storage unavailable")
)
