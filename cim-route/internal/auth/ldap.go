package auth

import (
	"context"
	"errors"
	"time"
)

// LDAPConfig configures the LDAP authenticator (search, then bind as the
// entry found).
type LDAPConfig struct {
	URL          string // ldap://host:port or ldaps://host:port
	StartTLS     bool
	CAFile       string // PEM CA for ldaps/StartTLS (empty: system pool)
	BindDN       string // service account for the search (empty: anonymous)
	BindPassword string
	BaseDN       string
	Filter       string // default "(uid=%s)"; %s is the escaped name
	NameAttr     string // default "uid"
	Timeout      time.Duration
}

// LDAP authenticates against a directory.
type LDAP struct{ cfg LDAPConfig }

// NewLDAP checks cfg and returns the authenticator.
func NewLDAP(cfg LDAPConfig) (*LDAP, error) { return &LDAP{cfg: cfg}, nil }

// Name implements Authenticator.
func (l *LDAP) Name() string { return "ldap" }

// Authenticate implements Authenticator.
func (l *LDAP) Authenticate(ctx context.Context, name, password string) (Identity, error) {
	return Identity{}, errors.New("auth: ldap: not implemented")
}
