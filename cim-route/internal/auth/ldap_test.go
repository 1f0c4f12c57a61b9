package auth

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/gocim/gocim/internal/testenv"
	"go.uber.org/goleak"
)

var ldapUsers = map[string]string{"alice": "alice-pw", "bob": "bob-pw"}

func newLDAP(t *testing.T, cfg LDAPConfig) *LDAP {
	t.Helper()
	l, err := NewLDAP(cfg)
	if err != nil {
		t.Fatalf("NewLDAP: %v", err)
	}
	return l
}

// checkAuth asserts one Authenticate: want is the identity, or, with err set,
// the error it must wrap.
func checkAuth(t *testing.T, a Authenticator, name, password, want string, wantErr error) error {
	t.Helper()
	id, err := a.Authenticate(context.Background(), name, password)
	switch {
	case wantErr == nil && (err != nil || id.Name != want):
		t.Errorf("%q/%q: %+v, %v; want %q", name, password, id, err, want)
	case wantErr != nil && (!errors.Is(err, wantErr) || id != Identity{}):
		t.Errorf("%q/%q: %+v, %v; want %v", name, password, id, err, wantErr)
	}
	return err
}

func TestLDAPAuthenticate(t *testing.T) {
	s := testenv.StartSlapd(t, testenv.SlapdOptions{Users: ldapUsers})
	// Checked while slapd still runs, as its exit would end any
	// connection left open.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, mode := range []struct {
		name string
		cfg  LDAPConfig
	}{
		{"anonymous search", LDAPConfig{URL: s.URL, BaseDN: s.BaseDN}},
		{"service account", LDAPConfig{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.AdminDN, BindPassword: s.AdminPassword}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			l := newLDAP(t, mode.cfg)
			if l.Name() != "ldap" {
				t.Errorf("Name = %q", l.Name())
			}
			for _, c := range []struct {
				name, password, want string
				err                  error
			}{
				{"alice", "alice-pw", "alice", nil},
				{"bob", "bob-pw", "bob", nil},
				{"ALICE", "alice-pw", "alice", nil}, // the entry's uid, not the typed name
				{"alice", "wrong", "", ErrBadCredentials},
				{"alice", "bob-pw", "", ErrBadCredentials},
				{"carol", "alice-pw", "", ErrBadCredentials},
				{"alice", "", "", ErrBadCredentials},
				{"", "alice-pw", "", ErrBadCredentials},
			} {
				checkAuth(t, l, c.name, c.password, c.want, c.err)
			}
		})
	}
}

// TestLDAPEmptyPasswordRefused: the directory accepts an unauthenticated
// bind (DN with an empty password) as anonymous success, so only the
// authenticator's own check stands between "alice" with no password and a
// login. Without that check the bind below would be attempted and the
// answer would not be ErrBadCredentials.
func TestLDAPEmptyPasswordRefused(t *testing.T) {
	s := testenv.StartSlapd(t, testenv.SlapdOptions{Users: ldapUsers})
	raw, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.UnauthenticatedBind(s.UserDN("alice")); err != nil {
		t.Fatalf("the directory refuses an unauthenticated bind (%v), so this test proves nothing", err)
	}

	l := newLDAP(t, LDAPConfig{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.AdminDN, BindPassword: s.AdminPassword})
	checkAuth(t, l, "alice", "", "", ErrBadCredentials)
	// Nothing was asked either: even an unreachable directory gives the
	// same answer, not ErrUnavailable.
	s.Kill()
	checkAuth(t, l, "alice", "", "", ErrBadCredentials)
}

func TestLDAPFilterInjection(t *testing.T) {
	s := testenv.StartSlapd(t, testenv.SlapdOptions{Users: ldapUsers})
	l := newLDAP(t, LDAPConfig{URL: s.URL, BaseDN: s.BaseDN})
	for _, name := range []string{
		"*",                    // unescaped: both entries
		"al*",                  // unescaped: alice alone, and her password would work
		"alice)(uid=*",         // unescaped: a broken filter
		"*)(|(uid=*",           // same
		"alice)(|(uid=*)",      // unescaped: (uid=alice)(|(uid=*)), an extra term
		"alice\x00",            // NUL
		`\61lice`,              // "alice" hex-escaped by the caller
		"(uid=alice)",          //
		"alice)(objectClass=*", // tries to widen the match
	} {
		checkAuth(t, l, name, "alice-pw", "", ErrBadCredentials)
	}
	// A custom filter with the name twice is escaped in both places.
	l = newLDAP(t, LDAPConfig{URL: s.URL, BaseDN: s.BaseDN, Filter: "(|(uid=%s)(cn=%s))"})
	checkAuth(t, l, "alice", "alice-pw", "alice", nil)
	checkAuth(t, l, "al*", "alice-pw", "", ErrBadCredentials)
}

func TestLDAPAmbiguous(t *testing.T) {
	s := testenv.StartSlapd(t, testenv.SlapdOptions{Users: ldapUsers, LDIF: `
dn: ou=staff,dc=gocim,dc=test
objectClass: organizationalUnit
ou: staff

dn: uid=bob,ou=staff,dc=gocim,dc=test
objectClass: inetOrgPerson
uid: bob
cn: Bob Staff
sn: Staff
userPassword: bob-pw
`})
	l := newLDAP(t, LDAPConfig{URL: s.URL, BaseDN: s.BaseDN})
	checkAuth(t, l, "alice", "alice-pw", "alice", nil)
	// Two entries "uid=bob", both with that password: neither is chosen.
	checkAuth(t, l, "bob", "bob-pw", "", ErrBadCredentials)
	// Three entries: the server stops at the size limit of 2.
	l = newLDAP(t, LDAPConfig{URL: s.URL, BaseDN: s.BaseDN, Filter: "(|(uid=%s)(objectClass=inetOrgPerson))"})
	checkAuth(t, l, "alice", "alice-pw", "", ErrBadCredentials)
}

func TestLDAPFilterAndNameAttr(t *testing.T) {
	s := testenv.StartSlapd(t, testenv.SlapdOptions{Users: ldapUsers, LDIF: `
dn: uid=carol,ou=people,dc=gocim,dc=test
objectClass: inetOrgPerson
uid: carol
cn: Carol C
sn: C
mail: carol@example.com
userPassword: carol-pw
`})
	l := newLDAP(t, LDAPConfig{URL: s.URL, BaseDN: s.BaseDN, Filter: "(&(objectClass=inetOrgPerson)(mail=%s))", NameAttr: "uid"})
	checkAuth(t, l, "carol@example.com", "carol-pw", "carol", nil)
	checkAuth(t, l, "carol", "carol-pw", "", ErrBadCredentials)

	// An entry without the name attribute is the configuration's fault.
	l = newLDAP(t, LDAPConfig{URL: s.URL, BaseDN: s.BaseDN, NameAttr: "mail"})
	checkAuth(t, l, "carol", "carol-pw", "carol@example.com", nil)
	checkAuth(t, l, "alice", "alice-pw", "", ErrUnavailable)
}

func TestLDAPServiceAccountWrongPassword(t *testing.T) {
	s := testenv.StartSlapd(t, testenv.SlapdOptions{Users: ldapUsers})
	l := newLDAP(t, LDAPConfig{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.AdminDN, BindPassword: "not-the-admin-password"})
	err := checkAuth(t, l, "alice", "alice-pw", "", ErrUnavailable)
	if err != nil && (!strings.Contains(err.Error(), "service account") || strings.Contains(err.Error(), "not-the-admin-password")) {
		t.Errorf("error %q should name the service account bind, not its password", err)
	}
}

func TestLDAPUnavailable(t *testing.T) {
	s := testenv.StartSlapd(t, testenv.SlapdOptions{Users: ldapUsers})
	l := newLDAP(t, LDAPConfig{URL: s.URL, BaseDN: s.BaseDN, Timeout: 2 * time.Second})
	checkAuth(t, l, "alice", "alice-pw", "alice", nil)

	s.Kill()
	checkAuth(t, l, "alice", "alice-pw", "", ErrUnavailable)
	checkAuth(t, l, "alice", "wrong", "", ErrUnavailable)

	s.Restart()
	checkAuth(t, l, "alice", "alice-pw", "alice", nil)

	// A base DN the directory does not hold.
	l = newLDAP(t, LDAPConfig{URL: s.URL, BaseDN: "dc=elsewhere,dc=test"})
	checkAuth(t, l, "alice", "alice-pw", "", ErrUnavailable)
}

// TestLDAPTimeout: a server that accepts connections but never answers.
func TestLDAPTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(conns)
				return
			}
			conns <- c
		}
	}()
	defer func() {
		ln.Close()
		for c := range conns {
			c.Close()
		}
	}()
	url := "ldap://" + ln.Addr().String()

	l := newLDAP(t, LDAPConfig{URL: url, BaseDN: "dc=gocim,dc=test", Timeout: 300 * time.Millisecond})
	start := time.Now()
	checkAuth(t, l, "alice", "alice-pw", "", ErrUnavailable)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("gave up after %v, want about 300ms", d)
	}

	// The caller's cancellation ends the call as well, and says so.
	l = newLDAP(t, LDAPConfig{URL: url, BaseDN: "dc=gocim,dc=test", Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start = time.Now()
	_, err = l.Authenticate(ctx, "alice", "alice-pw")
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want ErrUnavailable and context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled call returned after %v", d)
	}
}

func TestLDAPTLS(t *testing.T) {
	x := testenv.NewTLS(t)
	s := testenv.StartSlapd(t, testenv.SlapdOptions{Users: ldapUsers, TLS: x})
	for _, cfg := range []LDAPConfig{
		{URL: s.LDAPSURL, CAFile: x.CAFile, BaseDN: s.BaseDN},
		{URL: s.URL, StartTLS: true, CAFile: x.CAFile, BaseDN: s.BaseDN, BindDN: s.AdminDN, BindPassword: s.AdminPassword},
	} {
		l := newLDAP(t, cfg)
		checkAuth(t, l, "alice", "alice-pw", "alice", nil)
		checkAuth(t, l, "alice", "wrong", "", ErrBadCredentials)
	}
	// The throwaway CA is not in the system pool: the certificate is
	// refused, over ldaps and with StartTLS.
	for _, cfg := range []LDAPConfig{
		{URL: s.LDAPSURL, BaseDN: s.BaseDN},
		{URL: s.URL, StartTLS: true, BaseDN: s.BaseDN},
	} {
		checkAuth(t, newLDAP(t, cfg), "alice", "alice-pw", "", ErrUnavailable)
	}
}

func TestNewLDAPChecksConfig(t *testing.T) {
	ok := LDAPConfig{URL: "ldap://127.0.0.1:389", BaseDN: "dc=gocim,dc=test"}
	l, err := NewLDAP(ok)
	if err != nil {
		t.Fatalf("NewLDAP(%+v): %v", ok, err)
	}
	if l.cfg.Filter != "(uid=%s)" || l.cfg.NameAttr != "uid" || l.cfg.Timeout != 5*time.Second {
		t.Errorf("defaults: %+v", l.cfg)
	}
	for name, change := range map[string]func(*LDAPConfig){
		"no URL":               func(c *LDAPConfig) { c.URL = "" },
		"http URL":             func(c *LDAPConfig) { c.URL = "http://127.0.0.1:389" },
		"no host":              func(c *LDAPConfig) { c.URL = "ldap://" },
		"StartTLS over ldaps":  func(c *LDAPConfig) { c.URL = "ldaps://127.0.0.1"; c.StartTLS = true },
		"no base DN":           func(c *LDAPConfig) { c.BaseDN = "" },
		"bad base DN":          func(c *LDAPConfig) { c.BaseDN = "not a dn" },
		"filter without %s":    func(c *LDAPConfig) { c.Filter = "(uid=alice)" },
		"broken filter":        func(c *LDAPConfig) { c.Filter = "(uid=%s" },
		"bind DN, no password": func(c *LDAPConfig) { c.BindDN = "cn=admin,dc=gocim,dc=test" },
		"password, no bind DN": func(c *LDAPConfig) { c.BindPassword = "secret" },
		"missing CA file":      func(c *LDAPConfig) { c.URL = "ldaps://127.0.0.1"; c.CAFile = "/nonexistent/ca.pem" },
		"CA file without PEM":  func(c *LDAPConfig) { c.URL = "ldaps://127.0.0.1"; c.CAFile = "ldap_test.go" },
	} {
		cfg := ok
		change(&cfg)
		if _, err := NewLDAP(cfg); err == nil {
			t.Errorf("%s: NewLDAP(%+v) accepted", name, cfg)
		}
	}
}
