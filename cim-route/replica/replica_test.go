package replica

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	in := `# route replica inside the gateway
--redis 127.0.0.1:6379   # the store
--zk 127.0.0.1:2181
  --listen 127.0.0.1:8083 --internal-listen 127.0.0.1:8084

--log-level=info
`
	got, err := parseArgs(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--redis", "127.0.0.1:6379", "--zk", "127.0.0.1:2181",
		"--listen", "127.0.0.1:8083", "--internal-listen", "127.0.0.1:8084", "--log-level=info"}
	if !slices.Equal(got, want) {
		t.Fatalf("parseArgs = %q, want %q", got, want)
	}
}

func TestReadArgsMissingFile(t *testing.T) {
	if _, err := ReadArgs(filepath.Join(t.TempDir(), "none")); !os.IsNotExist(err) {
		t.Fatalf("ReadArgs of a missing file: %v, want a not-exist error", err)
	}
}

func TestCheck(t *testing.T) {
	secrets := []string{"--token-secret", "e2e-token-0123456789abcdef", "--internal-secret", "e2e-internal-0123456789abcdef"}
	if err := Check(secrets); err != nil {
		t.Fatalf("Check(%q): %v", secrets, err)
	}
	for _, bad := range [][]string{
		{"--no-such-flag"},
		{"--balance", "nonsense"},
		{"stray"},
	} {
		args := append(slices.Clone(secrets), bad...)
		if err := Check(args); err == nil {
			t.Errorf("Check(%q) passed, want an error", args)
		}
	}
}
