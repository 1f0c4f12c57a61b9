package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestZKCredentials(t *testing.T) {
	dir := t.TempDir()
	file := func(content string) string {
		p := filepath.Join(dir, strings.NewReplacer("/", "_", "\n", "_").Replace(content)+".auth")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name       string
		auth, path string
		want       string
		err        string
	}{
		{name: "none"},
		{name: "flag", auth: "cim:pw", want: "cim:pw"},
		{name: "file, trailing newline", path: file("cim:pw:with:colons\n"), want: "cim:pw:with:colons"},
		{name: "both", auth: "cim:pw", path: file("cim:pw"), err: "give one, not both"},
		{name: "missing file", path: filepath.Join(dir, "nope"), err: "--zk-auth-file"},
		{name: "no password", auth: "cim:", err: "want user:password"},
		{name: "two lines", path: file("cim:pw\nmore"), err: "want user:password"},
	}
	for _, tc := range cases {
		c := validConfig()
		c.ZKAuth, c.ZKAuthFile = tc.auth, tc.path
		got, err := c.ZKCredentials()
		verr := c.Validate()
		if tc.err == "" {
			if err != nil || got != tc.want || verr != nil {
				t.Errorf("%s: %q %v (Validate %v), want %q", tc.name, got, err, verr, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) || verr == nil || !strings.Contains(verr.Error(), tc.err) {
			t.Errorf("%s: %v (Validate %v), want an error with %q", tc.name, err, verr, tc.err)
		}
	}
}
