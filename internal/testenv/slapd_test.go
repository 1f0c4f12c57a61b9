package testenv

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// bindResult sends one LDAPv3 simple bind over c and returns the result code
// of the answer (0 success, 49 invalid credentials, 53 unwilling, ...).
func bindResult(t *testing.T, c net.Conn, dn, password string) int {
	t.Helper()
	if len(dn) > 100 || len(password) > 100 {
		t.Fatalf("bindResult only encodes short DNs and passwords")
	}
	op := []byte{0x02, 0x01, 0x03, 0x04, byte(len(dn))}
	op = append(op, dn...)
	op = append(op, 0x80, byte(len(password)))
	op = append(op, password...)
	msg := append([]byte{0x02, 0x01, 0x01, 0x60, byte(len(op))}, op...)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(append([]byte{0x30, byte(len(msg))}, msg...)); err != nil {
		t.Fatalf("bind: %v", err)
	}
	// 30 len 02 01 01 61 len 0a 01 <code>
	b := make([]byte, 10)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("bind answer: %v", err)
	}
	if b[0] != 0x30 || b[5] != 0x61 || b[7] != 0x0a || b[8] != 0x01 {
		t.Fatalf("bind answer % x is no BindResponse", b)
	}
	return int(b[9])
}

func bind(t *testing.T, addr, dn, password string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	return bindResult(t, c, dn, password)
}

func TestSlapdUsersAndRestart(t *testing.T) {
	s := StartSlapd(t, SlapdOptions{Users: map[string]string{
		"alice":      "alice-pw",
		"bob":        "bob pw ünïcode ",
		"o'neil, jr": " :<lead",
	}})
	addr := strings.TrimPrefix(s.URL, "ldap://")
	for _, c := range []struct {
		dn, password string
		want         int
	}{
		{s.UserDN("alice"), "alice-pw", 0},
		{s.UserDN("alice"), "wrong", 49},
		{s.UserDN("bob"), "bob pw ünïcode ", 0},
		{s.UserDN("o'neil, jr"), " :<lead", 0},
		{s.UserDN("carol"), "alice-pw", 49},
		{s.AdminDN, s.AdminPassword, 0},
		{s.AdminDN, "wrong", 49},
		// An unauthenticated bind (DN, empty password) is accepted, as
		// documented on Slapd.
		{s.UserDN("alice"), "", 0},
	} {
		if got := bind(t, addr, c.dn, c.password); got != c.want {
			t.Errorf("bind %q/%q = %d, want %d", c.dn, c.password, got, c.want)
		}
	}
	if s.BaseDN != "dc=gocim,dc=test" || s.AdminDN != "cn=admin,dc=gocim,dc=test" || s.UserDN("alice") != "uid=alice,ou=people,dc=gocim,dc=test" {
		t.Errorf("names: %q %q %q", s.BaseDN, s.AdminDN, s.UserDN("alice"))
	}

	s.Kill()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts after Kill", addr)
	}
	s.Restart()
	if got := bind(t, addr, s.UserDN("alice"), "alice-pw"); got != 0 {
		t.Errorf("bind after restart = %d, want 0 (the database is kept)", got)
	}
}

func TestSlapdExtraLDIF(t *testing.T) {
	s := StartSlapd(t, SlapdOptions{LDIF: `
dn: ou=staff,dc=gocim,dc=test
objectClass: organizationalUnit
ou: staff

dn: uid=alice,ou=staff,dc=gocim,dc=test
objectClass: inetOrgPerson
uid: alice
cn: Alice Staff
sn: Staff
userPassword: plain-pw
`})
	if got := bind(t, strings.TrimPrefix(s.URL, "ldap://"), "uid=alice,ou=staff,dc=gocim,dc=test", "plain-pw"); got != 0 {
		t.Errorf("bind as the LDIF entry = %d, want 0", got)
	}
}

func TestSlapdTLS(t *testing.T) {
	x := NewTLS(t)
	s := StartSlapd(t, SlapdOptions{TLS: x, Users: map[string]string{"alice": "alice-pw"}})
	conf := x.ClientConfig()
	conf.ServerName = "127.0.0.1"
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", strings.TrimPrefix(s.LDAPSURL, "ldaps://"), conf)
	if err != nil {
		t.Fatalf("ldaps: %v", err)
	}
	defer c.Close()
	if got := bindResult(t, c, s.UserDN("alice"), "alice-pw"); got != 0 {
		t.Errorf("bind over ldaps = %d, want 0", got)
	}
	// The plain port still answers (StartTLS is tested by its users).
	if got := bind(t, strings.TrimPrefix(s.URL, "ldap://"), s.UserDN("alice"), "alice-pw"); got != 0 {
		t.Errorf("bind over ldap = %d, want 0", got)
	}
}

func TestEscapeRDNValue(t *testing.T) {
	for in, want := range map[string]string{
		"alice":       "alice",
		"o'neil, jr":  `o'neil\, jr`,
		" #x=y+z ":    `\ #x\=y\+z\ `,
		`a"b;c<d>e\f`: `a\"b\;c\<d\>e\\f`,
		"#a#":         `\#a#`,
	} {
		if got := escapeRDNValue(in); got != want {
			t.Errorf("escapeRDNValue(%q) = %q, want %q", in, got, want)
		}
	}
}

// recordingTB stops like testing.T on Fatalf/Skipf and records which ran.
type recordingTB struct {
	TB
	mu           sync.Mutex
	fatal, skip  string
	tempDir      string
	cleanupFuncs []func()
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}
func (r *recordingTB) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skip = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}
func (r *recordingTB) Logf(string, ...any) {}
func (r *recordingTB) Cleanup(f func())    { r.cleanupFuncs = append(r.cleanupFuncs, f) }
func (r *recordingTB) TempDir() string     { return r.tempDir }
func (r *recordingTB) outcome() (string, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fatal, r.skip
}

func TestSlapdMissingSkipsOrFailsUnderCI(t *testing.T) {
	t.Setenv("CIM_SLAPD", "/nonexistent/slapd")
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		r := &recordingTB{tempDir: t.TempDir()}
		done := make(chan struct{})
		go func() {
			defer close(done)
			StartSlapd(r, SlapdOptions{})
		}()
		<-done
		fatal, skip := r.outcome()
		if ci == "true" && (fatal == "" || skip != "") || ci == "" && (skip == "" || fatal != "") {
			t.Errorf("CI=%q: fatal %q, skip %q", ci, fatal, skip)
		}
		if msg := fatal + skip; !strings.Contains(msg, "slapd") || !strings.Contains(msg, "scripts/deps.sh") {
			t.Errorf("CI=%q: message %q does not say what to install", ci, msg)
		}
	}
}
