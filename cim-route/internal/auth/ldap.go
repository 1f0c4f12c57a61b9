package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
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

const (
	defaultLDAPFilter   = "(uid=%s)"
	defaultLDAPNameAttr = "uid"
	// defaultLDAPTimeout bounds one Authenticate (dial, binds and search)
	// when LDAPConfig.Timeout is not set.
	defaultLDAPTimeout = 5 * time.Second
)

// LDAP authenticates against a directory: it searches BaseDN for the one
// entry matching Filter, then binds as that entry with the password. Each
// call uses its own connection, so it is safe for concurrent use.
type LDAP struct {
	cfg LDAPConfig
	tls *tls.Config // for ldaps:// and StartTLS; nil otherwise
}

// NewLDAP checks cfg, fills in defaults and reads CAFile.
func NewLDAP(cfg LDAPConfig) (*LDAP, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("auth: ldap: bad URL: %w", err)
	}
	if u.Scheme != "ldap" && u.Scheme != "ldaps" {
		return nil, fmt.Errorf("auth: ldap: URL %q: scheme must be ldap or ldaps", u.Redacted())
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("auth: ldap: URL %q has no host", u.Redacted())
	}
	if cfg.StartTLS && u.Scheme == "ldaps" {
		return nil, errors.New("auth: ldap: StartTLS is for ldap:// URLs; ldaps:// is TLS already")
	}
	if strings.TrimSpace(cfg.BaseDN) == "" {
		return nil, errors.New("auth: ldap: a base DN is required")
	}
	if _, err := ldap.ParseDN(cfg.BaseDN); err != nil {
		return nil, fmt.Errorf("auth: ldap: base DN %q: %w", cfg.BaseDN, err)
	}
	// A DN with an empty password is an unauthenticated bind, which many
	// servers accept as anonymous: say so rather than search anonymously
	// by surprise.
	if cfg.BindDN != "" && cfg.BindPassword == "" {
		return nil, errors.New("auth: ldap: a bind DN needs a bind password")
	}
	if cfg.BindDN == "" && cfg.BindPassword != "" {
		return nil, errors.New("auth: ldap: a bind password without a bind DN")
	}
	if cfg.Filter == "" {
		cfg.Filter = defaultLDAPFilter
	}
	if !strings.Contains(cfg.Filter, "%s") {
		return nil, fmt.Errorf("auth: ldap: filter %q has no %%s for the name", cfg.Filter)
	}
	if _, err := ldap.CompileFilter(searchFilter(cfg.Filter, "name")); err != nil {
		return nil, fmt.Errorf("auth: ldap: filter %q: %w", cfg.Filter, err)
	}
	if cfg.NameAttr == "" {
		cfg.NameAttr = defaultLDAPNameAttr
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultLDAPTimeout
	}
	l := &LDAP{cfg: cfg}
	if u.Scheme == "ldaps" || cfg.StartTLS {
		l.tls = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("auth: ldap: CA file: %w", err)
			}
			l.tls.RootCAs = x509.NewCertPool()
			if !l.tls.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("auth: ldap: CA file %s holds no PEM certificate", cfg.CAFile)
			}
		}
	}
	return l, nil
}

// Name implements Authenticator.
func (l *LDAP) Name() string { return "ldap" }

// searchFilter puts the escaped name into every %s of filter. It does not use
// fmt, so a filter with other % characters stays as written.
func searchFilter(filter, name string) string {
	return strings.ReplaceAll(filter, "%s", ldap.EscapeFilter(name))
}

// Authenticate implements Authenticator. Not finding exactly one entry and
// a refused user bind are ErrBadCredentials, deliberately without saying
// which; a failing service-account bind is ErrUnavailable, since it is the
// route's configuration that is wrong, not the caller's password.
func (l *LDAP) Authenticate(ctx context.Context, name, password string) (Identity, error) {
	// An empty simple bind is an "unauthenticated bind" (RFC 4513 5.1.2),
	// which many servers answer with success: refuse it before asking.
	if name == "" || password == "" {
		return Identity{}, ErrBadCredentials
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()

	conn, err := ldap.DialURL(l.cfg.URL,
		ldap.DialWithDialer(&net.Dialer{Timeout: l.cfg.Timeout, Deadline: deadline}),
		ldap.DialWithTLSConfig(l.tls))
	if err != nil {
		return Identity{}, l.unavailable(ctx, "connect", err)
	}
	defer conn.Close()
	// go-ldap's requests take no context: closing the connection ends
	// whichever one is waiting when ctx is done.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetTimeout(time.Until(deadline))

	if l.cfg.StartTLS {
		if err := conn.StartTLS(l.tls); err != nil {
			return Identity{}, l.unavailable(ctx, "StartTLS", err)
		}
	}
	if l.cfg.BindDN != "" {
		if err := conn.Bind(l.cfg.BindDN, l.cfg.BindPassword); err != nil {
			return Identity{}, l.unavailable(ctx, "service account bind", err)
		}
	}

	entry, err := l.find(ctx, conn, name, deadline)
	if err != nil {
		return Identity{}, err
	}
	canonical := entry.GetEqualFoldAttributeValue(l.cfg.NameAttr)
	if canonical == "" {
		return Identity{}, fmt.Errorf("%w: ldap: the entry found has no %s attribute", ErrUnavailable, l.cfg.NameAttr)
	}
	// ldap.Conn.Bind refuses an empty password as well; checked above so
	// that no bind with one is ever attempted.
	if err := conn.Bind(entry.DN, password); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return Identity{}, ErrBadCredentials
		}
		return Identity{}, l.unavailable(ctx, "user bind", err)
	}
	return Identity{Name: canonical}, nil
}

// find returns the one entry matching name.
func (l *LDAP) find(ctx context.Context, conn *ldap.Conn, name string, deadline time.Time) (*ldap.Entry, error) {
	seconds := int(math.Ceil(time.Until(deadline).Seconds()))
	req := ldap.NewSearchRequest(l.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, max(seconds, 1), false, searchFilter(l.cfg.Filter, name), []string{l.cfg.NameAttr}, nil)
	res, err := conn.Search(req)
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		// More than two entries match: as ambiguous as two.
		return nil, ErrBadCredentials
	case err != nil:
		return nil, l.unavailable(ctx, "search", err)
	case len(res.Entries) != 1:
		// None, or ambiguous: a login must name one entry.
		return nil, ErrBadCredentials
	case res.Entries[0].DN == "":
		// A bind with an empty DN would be anonymous whatever the password.
		return nil, fmt.Errorf("%w: ldap: the entry found has an empty DN", ErrUnavailable)
	}
	return res.Entries[0], nil
}

// unavailable wraps err in ErrUnavailable, and in ctx's error when the
// deadline or a cancellation is what broke the call.
func (l *LDAP) unavailable(ctx context.Context, step string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w: ldap %s at %s: %w (%v)", ErrUnavailable, step, redacted(l.cfg.URL), cerr, err)
	}
	return fmt.Errorf("%w: ldap %s at %s: %v", ErrUnavailable, step, redacted(l.cfg.URL), err)
}

var _ Authenticator = (*LDAP)(nil)
