package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SlapdInstallHint tells a developer how to get OpenLDAP's server.
const SlapdInstallHint = "install it with scripts/deps.sh (apt-get install -y slapd; CIM_SLAPD=/path/to/slapd for another build)"

// The directory tree every StartSlapd serves.
const (
	SlapdBaseDN  = "dc=gocim,dc=test"
	SlapdAdminDN = "cn=admin," + SlapdBaseDN
	// SlapdPeopleDN holds the entries of SlapdOptions.Users.
	SlapdPeopleDN = "ou=people," + SlapdBaseDN
)

// SlapdOptions says what the directory holds and how it is reached.
type SlapdOptions struct {
	// Users maps uid → password: one inetOrgPerson entry
	// uid=<uid>,ou=people,dc=gocim,dc=test each (cn and sn = uid,
	// userPassword salted SHA-1 of the password).
	Users map[string]string
	// LDIF holds further entries (separated by blank lines), added after the
	// base, ou=people and the users, e.g. a second "uid=alice" elsewhere.
	LDIF string
	// TLS (from NewTLS): the server also speaks ldaps:// (LDAPSURL) and
	// accepts StartTLS on URL, with TLS.CertFile; clients trust TLS.CAFile.
	TLS *TLS
}

// Slapd is an OpenLDAP server started for a test.
//
// Its configuration is meant to be like a typical directory, plus one
// permissive setting: userPassword is readable by nobody but the admin (only
// usable to bind), everything else is readable by anyone including anonymous clients,
// the admin (rootdn) may do anything, and — like many production
// directories — an "unauthenticated bind" (a DN with an empty password,
// RFC 4513 5.1.2) is accepted, so tests can prove a client refuses empty
// passwords by itself.
type Slapd struct {
	*Process
	URL           string // ldap://127.0.0.1:port
	LDAPSURL      string // ldaps://127.0.0.1:port, with SlapdOptions.TLS only
	BaseDN        string // SlapdBaseDN
	AdminDN       string // SlapdAdminDN, the rootdn
	AdminPassword string // random per server
	Dir           string // configuration, database and logs

	bin  string
	args []string
	t    TB
}

// UserDN is the DN of a user added through SlapdOptions.Users.
func (s *Slapd) UserDN(uid string) string {
	return "uid=" + escapeRDNValue(uid) + "," + SlapdPeopleDN
}

// SlapdBinary returns the path of slapd (CIM_SLAPD overrides the search), or
// "" when there is none. /usr/sbin is searched even when not on PATH.
func SlapdBinary() string {
	if bin := os.Getenv("CIM_SLAPD"); bin != "" {
		if !executable(bin) {
			return ""
		}
		return bin
	}
	if bin, err := exec.LookPath("slapd"); err == nil {
		return bin
	}
	for _, bin := range []string{"/usr/sbin/slapd", "/usr/local/sbin/slapd", "/usr/libexec/slapd", "/usr/local/libexec/slapd"} {
		if executable(bin) {
			return bin
		}
	}
	return ""
}

func executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// StartSlapd starts slapd on a free loopback port with a throwaway
// configuration and mdb database in t.TempDir(), loaded beforehand (with
// slapd's own slapadd mode, so no client tools are needed) with
// SlapdBaseDN, SlapdPeopleDN and opts, and waits until it answers a bind.
// It is stopped when the test ends. Without slapd the test is skipped, or
// fails under CI=true.
func StartSlapd(t TB, opts SlapdOptions) *Slapd {
	t.Helper()
	bin := SlapdBinary()
	if bin == "" {
		what := "slapd (OpenLDAP)"
		if env := os.Getenv("CIM_SLAPD"); env != "" {
			what = "slapd (CIM_SLAPD=" + env + ")"
		}
		missingSlapd(t, what)
	}
	schemaDir := firstDir([]string{"/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema"}, "core.schema")
	if schemaDir == "" {
		missingSlapd(t, "the OpenLDAP schema files (core.schema)")
	}
	moduleDir := firstDir([]string{"/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap", "/usr/local/libexec/openldap"}, "back_mdb.la", "back_mdb.so")

	s := &Slapd{
		Dir:           t.TempDir(),
		BaseDN:        SlapdBaseDN,
		AdminDN:       SlapdAdminDN,
		AdminPassword: "admin-" + randomHex(t, 12),
		bin:           bin,
		t:             t,
	}
	s.URL = "ldap://127.0.0.1:" + strconv.Itoa(FreePort(t))
	listen := s.URL + "/"
	var tlsConf string
	if x := opts.TLS; x != nil {
		s.LDAPSURL = "ldaps://127.0.0.1:" + strconv.Itoa(FreePort(t))
		listen += " " + s.LDAPSURL + "/"
		tlsConf = fmt.Sprintf("TLSCACertificateFile %q\nTLSCertificateFile %q\nTLSCertificateKeyFile %q\n",
			x.CAFile, x.CertFile, x.KeyFile)
	}

	dbDir := filepath.Join(s.Dir, "db")
	if err := os.Mkdir(dbDir, 0o700); err != nil {
		t.Fatalf("slapd: %v", err)
	}
	conf := filepath.Join(s.Dir, "slapd.conf")
	writeFile(t, conf, slapdConf(s, schemaDir, moduleDir, dbDir, tlsConf))
	ldif := filepath.Join(s.Dir, "init.ldif")
	writeFile(t, ldif, initialLDIF(t, s, opts))

	// -T add is slapadd; -q skips consistency checks a fresh database does
	// not need.
	if out, err := exec.Command(bin, "-T", "add", "-q", "-f", conf, "-l", ldif).CombinedOutput(); err != nil {
		t.Fatalf("slapd: loading %s: %v\n%s", ldif, err, out)
	}
	// -d keeps slapd in the foreground; level 256 ("stats") logs each
	// connection and operation to its log file.
	s.args = []string{"-f", conf, "-h", listen, "-d", "256"}
	s.start()
	return s
}

func (s *Slapd) start() {
	s.t.Helper()
	s.Process = Start(s.t, s.Dir, s.bin, nil, s.args...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := waitSlapd(ctx, s.Process, strings.TrimPrefix(s.URL, "ldap://")); err != nil {
		if strings.Contains(s.Tail(20), "ermission denied") {
			err = fmt.Errorf("%w\n(an AppArmor profile for slapd may forbid %s: sudo aa-complain %s)", err, s.Dir, s.bin)
		}
		s.t.Fatalf("%v", err)
	}
}

// Restart starts slapd again on the same ports and database; stop it first
// with Kill or Stop.
func (s *Slapd) Restart() { s.t.Helper(); s.start() }

func missingSlapd(t TB, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not available and CI=true: %s", what, SlapdInstallHint)
	}
	t.Skipf("skipping: %s is not available; %s", what, SlapdInstallHint)
}

// firstDir returns the first of dirs holding one of the files, or "".
func firstDir(dirs []string, files ...string) string {
	for _, d := range dirs {
		for _, f := range files {
			if _, err := os.Stat(filepath.Join(d, f)); err == nil {
				return d
			}
		}
	}
	return ""
}

func slapdConf(s *Slapd, schemaDir, moduleDir, dbDir, tlsConf string) string {
	var b strings.Builder
	for _, schema := range []string{"core", "cosine", "inetorgperson"} {
		fmt.Fprintf(&b, "include %q\n", filepath.Join(schemaDir, schema+".schema"))
	}
	fmt.Fprintf(&b, "pidfile %q\nargsfile %q\n", filepath.Join(s.Dir, "slapd.pid"), filepath.Join(s.Dir, "slapd.args"))
	if moduleDir != "" { // else back_mdb is built in
		fmt.Fprintf(&b, "modulepath %q\nmoduleload back_mdb\n", moduleDir)
	}
	b.WriteString(tlsConf)
	b.WriteString(`# Accept a DN with an empty password as an anonymous bind, as many
# directories do (see Slapd).
allow bind_anon_dn
access to attrs=userPassword
	by anonymous auth
	by * none
access to *
	by * read
`)
	fmt.Fprintf(&b, "database mdb\nmaxsize 10485760\nsuffix %q\nrootdn %q\nrootpw %s\ndirectory %q\n",
		s.BaseDN, s.AdminDN, s.AdminPassword, dbDir)
	return b.String()
}

func initialLDIF(t TB, s *Slapd, opts SlapdOptions) string {
	var b strings.Builder
	entry := func(dn string, attrs ...string) {
		writeLDIF(&b, "dn", dn)
		for i := 0; i+1 < len(attrs); i += 2 {
			writeLDIF(&b, attrs[i], attrs[i+1])
		}
		b.WriteString("\n")
	}
	entry(s.BaseDN, "objectClass", "dcObject", "objectClass", "organization", "dc", "gocim", "o", "gocim")
	entry(SlapdPeopleDN, "objectClass", "organizationalUnit", "ou", "people")
	uids := make([]string, 0, len(opts.Users))
	for uid := range opts.Users {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	for _, uid := range uids {
		entry(s.UserDN(uid), "objectClass", "inetOrgPerson", "uid", uid, "cn", uid, "sn", uid,
			"userPassword", ssha(t, opts.Users[uid]))
	}
	if extra := strings.TrimSpace(opts.LDIF); extra != "" {
		b.WriteString(extra + "\n")
	}
	return b.String()
}

// writeLDIF writes one attribute line, base64 when the value is not an LDIF
// SAFE-STRING (RFC 2849).
func writeLDIF(b *strings.Builder, attr, value string) {
	safe := value == "" || !strings.ContainsAny(value[:1], " :<")
	for i := 0; i < len(value) && safe; i++ {
		c := value[i]
		safe = c != 0 && c != '\n' && c != '\r' && c < 0x80
	}
	if safe && !strings.HasSuffix(value, " ") {
		fmt.Fprintf(b, "%s: %s\n", attr, value)
		return
	}
	fmt.Fprintf(b, "%s:: %s\n", attr, base64.StdEncoding.EncodeToString([]byte(value)))
}

// escapeRDNValue escapes an attribute value for a DN (RFC 4514 2.4).
func escapeRDNValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case strings.IndexByte(`"+,;<>\=`, c) >= 0,
			(c == ' ' || c == '#') && i == 0,
			c == ' ' && i == len(v)-1:
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == 0:
			b.WriteString(`\00`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ssha is a userPassword value slapd checks natively: {SSHA} base64(SHA-1 of
// password+salt, then salt).
func ssha(t TB, password string) string {
	salt := make([]byte, 8)
	if _, err := rand.Read(salt); err != nil {
		t.Fatalf("salt: %v", err)
	}
	sum := sha1.Sum(append([]byte(password), salt...))
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(sum[:], salt...))
}

func randomHex(t TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}

func writeFile(t TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// anonymousBind is an LDAPv3 BindRequest (message 1, empty DN, empty simple
// password) and okBind the start of its successful BindResponse, so readiness
// needs no LDAP client library.
var (
	anonymousBind = []byte{0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00}
	okBind        = []byte{0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00}
)

// waitSlapd waits until the server answers an anonymous bind with success.
func waitSlapd(ctx context.Context, p *Process, addr string) error {
	for {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			_, err = c.Write(anonymousBind)
			b := make([]byte, 64)
			n := 0
			for err == nil && n < len(okBind) {
				var m int
				m, err = c.Read(b[n:])
				n += m
			}
			c.Close()
			if bytes.HasPrefix(b[:n], okBind) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("slapd on %s not ready: %w\n%s", addr, ctx.Err(), p.Tail(20))
		case <-p.done:
			return fmt.Errorf("slapd exited early:\n%s", p.Tail(20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
