// Package auth holds the pluggable authenticators of the route's /login:
// an HTTP callback to an application's own user system and LDAP. The
// built-in one (Redis accounts with bcrypt) lives in the router, which owns
// the accounts; an external authenticator only answers "who is this".
package auth

import (
	"context"
	"errors"
)

var (
	// ErrBadCredentials: unknown name or wrong password.
	ErrBadCredentials = errors.New("wrong user or password")
	// ErrUnavailable: the user system could not be asked; retry later.
	ErrUnavailable = errors.New("authenticator unavailable")
)

// Identity is who an authenticator says the caller is.
type Identity struct {
	// Name is the canonical user name; the router checks that it is a
	// valid gocim user name.
	Name string
}

// Authenticator checks a name and password against a user system.
type Authenticator interface {
	// Authenticate returns the caller's identity, an error wrapping
	// ErrBadCredentials, or one wrapping ErrUnavailable.
	Authenticate(ctx context.Context, name, password string) (Identity, error)
	// Name is "http" or "ldap".
	Name() string
}
