package envflag

import (
	"flag"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Setenv("CIM_ZK_ROOT", "/env")
	t.Setenv("CIM_PORT", "9")
	t.Setenv("CIM_BAD", "x")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	root := fs.String("zk-root", "/cim", "root")
	port := fs.Int("port", 1, "port")
	if err := Parse(fs, []string{"--port", "2"}); err != nil {
		t.Fatal(err)
	}
	if *root != "/env" || *port != 2 {
		t.Fatalf("root=%q port=%d, want /env and 2 (flag beats env)", *root, *port)
	}
	if u := fs.Lookup("zk-root").Usage; !strings.Contains(u, "CIM_ZK_ROOT") {
		t.Fatalf("usage %q does not name the variable", u)
	}

	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Int("bad", 1, "bad")
	if err := Parse(fs, nil); err == nil || !strings.Contains(err.Error(), "CIM_BAD") {
		t.Fatalf("bad env value: got %v, want an error naming CIM_BAD", err)
	}
}

func TestList(t *testing.T) {
	if got := List(" a, b,,c ,"); strings.Join(got, "|") != "a|b|c" {
		t.Fatalf("List = %q, want [a b c]", got)
	}
	if got := List(""); got != nil {
		t.Fatalf("List(\"\") = %q, want nil", got)
	}
}
