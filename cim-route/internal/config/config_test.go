package config

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

const secret = "0123456789abcdef"

// ok are the required flags.
var ok = []string{"--token-secret", secret, "--internal-secret", "internal-0123456789"}

func with(args ...string) []string { return append(append([]string(nil), ok...), args...) }

func TestParseDefaultsAndEnv(t *testing.T) {
	t.Setenv("CIM_TOKEN_SECRET", secret+",old-secret-0123456")
	t.Setenv("CIM_LOGIN_POLICY", "reject")
	t.Setenv("CIM_INTERNAL_SECRET", "internal-0123456789, old-internal-01234")
	t.Setenv("CIM_API_KEYS", "crm:crm-secret-0123456789:push+admin")
	c, err := Parse("cim-route", []string{"--listen", "127.0.0.1:0", "--push-timeout", "1s"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:0" || c.PushTimeout != time.Second || c.LoginPolicy != PolicyReject {
		t.Fatalf("flags/env not applied: %+v", c)
	}
	if c.ZKRoot != "/cim" || c.RedisPrefix != "cim:" || c.TokenTTL != 60*time.Second || c.Balance != BalanceRoundRobin || c.BcryptCost != 10 {
		t.Fatalf("defaults wrong: %+v", c)
	}
	if c.InboxMax != 10000 || c.InboxTTL != 168*time.Hour || c.DedupWindow != 24*time.Hour || c.SyncLimit != 200 || c.UploadMax != 10<<20 || c.UploadDir == "" {
		t.Fatalf("inbox and upload defaults wrong: %+v", c)
	}
	if c.GroupMaxMembers != 10000 {
		t.Fatalf("group max members default = %d", c.GroupMaxMembers)
	}
	if c.EditWindow != 15*time.Minute {
		t.Fatalf("edit window default = %v", c.EditWindow)
	}
	t.Setenv("CIM_GROUP_MAX_MEMBERS", "50")
	if c, err := Parse("cim-route", nil, &bytes.Buffer{}); err != nil || c.GroupMaxMembers != 50 {
		t.Fatalf("CIM_GROUP_MAX_MEMBERS: %d, %v", c.GroupMaxMembers, err)
	}
	if c, err := Parse("cim-route", []string{"--group-max-members", "7"}, &bytes.Buffer{}); err != nil || c.GroupMaxMembers != 7 {
		t.Fatalf("--group-max-members over the env: %d, %v", c.GroupMaxMembers, err)
	}
	if k := c.TokenKeys(); len(k) != 2 || string(k[0]) != secret {
		t.Fatalf("keys = %q", k)
	}
	if s := c.InternalSecrets(); len(s) != 2 || s[0] != "internal-0123456789" || s[1] != "old-internal-01234" {
		t.Fatalf("internal secrets = %q", s)
	}
	if r, err := c.APIKeyRing(); err != nil || len(r.Keys()) != 1 || r.Keys()[0].Name != "crm" {
		t.Fatalf("api keys: %v", err)
	}
	if c.InternalListen != "127.0.0.1:8090" || c.AccessTTL != 24*time.Hour || c.LoginRate != 2 || c.LoginBurst != 20 ||
		c.MaxBody != 64<<10 || c.Auth != AuthBuiltin || c.AuthTimeout != 3*time.Second || c.LDAPFilter != "(uid=%s)" || c.LDAPNameAttr != "uid" {
		t.Fatalf("security defaults wrong: %+v", c)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no secret", nil, "--token-secret is required"},
		{"short secret", []string{"--token-secret", "short"}, "shorter than 16"},
		{"second secret short", []string{"--token-secret", secret + ",x"}, "secret #2"},
		{"no internal secret", []string{"--token-secret", secret}, "--internal-secret is required"},
		{"short internal secret", []string{"--token-secret", secret, "--internal-secret", "internal-0123456789,short"}, "--internal-secret: secret #2 is shorter than 16"},
		{"policy", with("--login-policy", "maybe"), "--login-policy"},
		{"balance", with("--balance", "random"), "--balance"},
		{"listen", with("--listen", "nope"), "--listen"},
		{"internal listen", with("--internal-listen", "nope"), "--internal-listen"},
		{"zk root", with("--zk-root", "cim/"), "--zk-root"},
		{"cost", with("--bcrypt-cost", "99"), "--bcrypt-cost"},
		{"level", with("--log-level", "loud"), "--log-level"},
		{"format", with("--log-format", "xml"), "--log-format"},
		{"cluster db", with("--redis", "a:1,b:2", "--redis-db", "3"), "Cluster"},
		{"ttl", with("--token-ttl", "10ms"), "--token-ttl"},
		{"access ttl", with("--access-ttl", "0s"), "--access-ttl"},
		{"inbox max", with("--inbox-max", "0"), "--inbox-max"},
		{"inbox ttl", with("--inbox-ttl", "1s"), "--inbox-ttl"},
		{"dedup", with("--dedup-window", "0s"), "--dedup-window"},
		{"edit window", with("--edit-window", "-1s"), "--edit-window"},
		{"edit window past the inbox", with("--edit-window", "2h", "--inbox-ttl", "1h"), "--edit-window 2h0m0s: want 0 (off) up to --inbox-ttl 1h0m0s"},
		{"sync limit", with("--sync-limit", "0"), "--sync-limit"},
		{"group max members", with("--group-max-members", "1"), "--group-max-members 1: want 2..1000000"},
		{"upload dir", with("--upload-dir", ""), "--upload-dir"},
		{"upload max", with("--upload-max", "0"), "--upload-max"},
		{"tls half", with("--tls-cert", "c.pem"), "--tls-cert and --tls-key"},
		{"proxies", with("--trusted-proxies", "10.0.0.0/8,nope"), `--trusted-proxies: "nope"`},
		{"api key short", with("--api-keys", "crm:short:push"), "--api-keys: key \"crm\": secret is shorter"},
		{"api key scope", with("--api-keys", "crm:crm-secret-0123456789:write"), `unknown scope "write"`},
		{"login rate", with("--login-rate", "-1"), "--login-rate"},
		{"login burst", with("--login-burst", "0"), "--login-burst"},
		{"max body", with("--max-body", "10"), "--max-body"},
		{"read timeout", with("--read-timeout", "10ms"), "--read-timeout"},
		{"write timeout", with("--write-timeout", "0s"), "--write-timeout"},
		{"conns per addr", with("--max-conns-per-addr", "-1"), "--max-conns-per-addr"},
		{"conns", with("--max-conns", "-5"), "--max-conns"},
		{"online read rate", with("--online-read-rate", "-1"), "--online-read-rate"},
		{"transfer rate", with("--transfer-min-rate", "10"), "--transfer-min-rate"},
		{"register burst", with("--register-burst", "0"), "--register-burst"},
		{"history rate", with("--history-rate", "-1"), "--history-rate"},
		{"hash queue", with("--hash-queue", "-1"), "--hash-queue"},
		{"invites", with("--invites-per-hour", "-1"), "--invites-per-hour"},
		{"upload quota", with("--upload-quota", "-1"), "--upload-quota"},
		{"upload ttl", with("--upload-unreferenced-ttl", "0s"), "--upload-unreferenced-ttl"},
		{"upload age", with("--upload-max-age", "1h"), "--upload-max-age"},
		{"upload sweep", with("--upload-sweep", "1ms"), "--upload-sweep"},
		{"auth", with("--auth", "kerberos"), `--auth "kerberos": want builtin, http or ldap`},
		{"auth url", with("--auth", "http"), "--auth http needs --auth-url"},
		{"auth url scheme", with("--auth", "http", "--auth-url", "ftp://x/"), "--auth-url"},
		{"auth secret", with("--auth", "http", "--auth-url", "https://x/", "--auth-secret", "short"), "--auth-secret"},
		{"auth timeout", with("--auth-timeout", "0s"), "--auth-timeout"},
		{"ldap url", with("--auth", "ldap", "--ldap-base-dn", "dc=x"), "--auth ldap needs --ldap-url"},
		{"ldap scheme", with("--auth", "ldap", "--ldap-url", "http://x", "--ldap-base-dn", "dc=x"), "--ldap-url"},
		{"ldaps starttls", with("--auth", "ldap", "--ldap-url", "ldaps://x:636", "--ldap-start-tls", "--ldap-base-dn", "dc=x"), "--ldap-start-tls"},
		{"ldap base", with("--auth", "ldap", "--ldap-url", "ldap://x:389"), "--ldap-base-dn"},
		{"ldap filter", with("--auth", "ldap", "--ldap-url", "ldap://x:389", "--ldap-base-dn", "dc=x", "--ldap-filter", "(uid=x)"), "--ldap-filter"},
		{"ldap attr", with("--auth", "ldap", "--ldap-url", "ldap://x:389", "--ldap-base-dn", "dc=x", "--ldap-name-attr", ""), "--ldap-name-attr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("cim-route", tt.args, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestValidAuthConfigs(t *testing.T) {
	for _, args := range [][]string{
		with("--auth", "http", "--auth-url", "https://users.example.org/check", "--auth-secret", "auth-secret-0123456789"),
		with("--auth", "ldap", "--ldap-url", "ldap://ldap.example.org:389", "--ldap-start-tls", "--ldap-base-dn", "ou=people,dc=example,dc=org"),
		with("--auth", "ldap", "--ldap-url", "ldaps://ldap.example.org", "--ldap-base-dn", "dc=example,dc=org", "--ldap-filter", "(&(objectClass=person)(uid=%s))"),
		with("--tls-cert", "c.pem", "--tls-key", "k.pem", "--trusted-proxies", "10.0.0.1, 192.168.0.0/16", "--login-rate", "0"),
	} {
		if _, err := Parse("cim-route", args, &bytes.Buffer{}); err != nil {
			t.Errorf("%q: %v", args, err)
		}
	}
}

func TestHelpShowsDefaults(t *testing.T) {
	var out bytes.Buffer
	_, err := Parse("cim-route", []string{"--help"}, &out)
	if err == nil {
		t.Fatal("--help: want flag.ErrHelp")
	}
	for _, s := range []string{"-listen", "0.0.0.0:8080", "CIM_ZK_ROOT", "round-robin", "push-timeout", "3s", "inbox-max", "10000", "168h0m0s", "24h0m0s", "sync-limit", "200", "upload-dir", "gocim-uploads", "10485760",
		"internal-listen", "127.0.0.1:8090", "access-ttl", "24h0m0s", "login-burst", "(default 20)", "login-rate", "(default 2)",
		"max-body", "65536", `(default "builtin")`, "auth-timeout", "(uid=%s)", "ldap-name-attr", `(default "uid")`, "CIM_INTERNAL_SECRET",
		"group-max-members", "CIM_GROUP_MAX_MEMBERS"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("--help output lacks %q", s)
		}
	}
}

func TestPlatformLoginPolicy(t *testing.T) {
	c, err := Parse("cim-route", with("--login-policy", "platform"), &bytes.Buffer{})
	if err != nil || c.LoginPolicy != PolicyPlatform {
		t.Fatalf("--login-policy platform: %+v %v", c.LoginPolicy, err)
	}
}
