package config

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

const secret = "0123456789abcdef"

func TestParseDefaultsAndEnv(t *testing.T) {
	t.Setenv("CIM_TOKEN_SECRET", secret+",old-secret-0123456")
	t.Setenv("CIM_LOGIN_POLICY", "reject")
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
	if k := c.TokenKeys(); len(k) != 2 || string(k[0]) != secret {
		t.Fatalf("keys = %q", k)
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
		{"policy", []string{"--token-secret", secret, "--login-policy", "maybe"}, "--login-policy"},
		{"balance", []string{"--token-secret", secret, "--balance", "random"}, "--balance"},
		{"listen", []string{"--token-secret", secret, "--listen", "nope"}, "--listen"},
		{"zk root", []string{"--token-secret", secret, "--zk-root", "cim/"}, "--zk-root"},
		{"cost", []string{"--token-secret", secret, "--bcrypt-cost", "99"}, "--bcrypt-cost"},
		{"level", []string{"--token-secret", secret, "--log-level", "loud"}, "--log-level"},
		{"format", []string{"--token-secret", secret, "--log-format", "xml"}, "--log-format"},
		{"cluster db", []string{"--token-secret", secret, "--redis", "a:1,b:2", "--redis-db", "3"}, "Cluster"},
		{"ttl", []string{"--token-secret", secret, "--token-ttl", "10ms"}, "--token-ttl"},
		{"inbox max", []string{"--token-secret", secret, "--inbox-max", "0"}, "--inbox-max"},
		{"inbox ttl", []string{"--token-secret", secret, "--inbox-ttl", "1s"}, "--inbox-ttl"},
		{"dedup", []string{"--token-secret", secret, "--dedup-window", "0s"}, "--dedup-window"},
		{"sync limit", []string{"--token-secret", secret, "--sync-limit", "0"}, "--sync-limit"},
		{"upload dir", []string{"--token-secret", secret, "--upload-dir", ""}, "--upload-dir"},
		{"upload max", []string{"--token-secret", secret, "--upload-max", "0"}, "--upload-max"},
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

func TestHelpShowsDefaults(t *testing.T) {
	var out bytes.Buffer
	_, err := Parse("cim-route", []string{"--help"}, &out)
	if err == nil {
		t.Fatal("--help: want flag.ErrHelp")
	}
	for _, s := range []string{"-listen", "0.0.0.0:8080", "CIM_ZK_ROOT", "round-robin", "push-timeout", "3s", "inbox-max", "10000", "168h0m0s", "24h0m0s", "sync-limit", "200", "upload-dir", "gocim-uploads", "10485760"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("--help output lacks %q", s)
		}
	}
}
