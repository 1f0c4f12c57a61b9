package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/internal/clienttest"
)

// TestRemember: with --remember, :q keeps the login in the file and the
// next start logs in with it, without a password; :logout logs off and
// removes it, so the start after that needs the password again; a
// remembered login the route refuses exits 1 and is forgotten.
func TestRemember(t *testing.T) {
	orig := askPassword
	asked := 0
	askPassword = func(io.Reader, io.Writer) (string, bool, error) { asked++; return "", false, nil }
	defer func() { askPassword = orig }()

	gw := clienttest.NewGateway(t)
	route := clienttest.NewRoute(t, gw)
	route.HandOutResumes()
	route.AddUser("alice", "secret1")
	file := filepath.Join(t.TempDir(), "alice.login")
	base := []string{"--route", route.URL, "--user", "alice", "--remember", file}
	runWith := func(stdin string, args ...string) (int, string) {
		t.Helper()
		var stdout, stderr syncBuffer
		code := run(context.Background(), append(append([]string(nil), base...), args...), strings.NewReader(stdin), &stdout, &stderr)
		return code, stderr.String()
	}

	if code, stderr := runWith(":q\n", "--password", "secret1"); code != 0 {
		t.Fatalf("first start: exit %d; stderr:\n%s", code, stderr)
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatalf("the login was not kept: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600 (it is a credential)", file, st.Mode().Perm())
	}
	if off := route.Offlines(); len(off) != 0 {
		t.Fatalf(":q with --remember logged off: %+v", off)
	}

	if code, stderr := runWith(":logout\n"); code != 0 || asked != 0 {
		t.Fatalf("start with the kept login: exit %d, password asked %d times; stderr:\n%s", code, asked, stderr)
	}
	if n, r := route.Logins(), route.Resumed(); n != 2 || r != 1 {
		t.Fatalf("%d logins, %d with the kept token; want 2 and 1", n, r)
	}
	if off := route.Offlines(); len(off) != 1 {
		t.Fatalf(":logout: offLine calls %+v, want one", off)
	}
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after :logout the file is still there (%v)", err)
	}
	if code, stderr := runWith(":q\n"); code != 2 || asked != 1 || !strings.Contains(stderr, "--password is required") {
		t.Fatalf("start after :logout: exit %d, password asked %d times; want 2 and once; stderr:\n%s", code, asked, stderr)
	}

	// Kept, then revoked at the route (a password reset, a log-off
	// elsewhere): the next start says so, exits 1 and forgets it.
	if code, stderr := runWith("", "--password", "secret1"); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	route.RevokeResumes()
	code, stderr := runWith(":q\n")
	if code != 1 || !strings.Contains(stderr, "remembered login is no longer good") {
		t.Fatalf("start with a revoked login: exit %d; stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused login is still kept (%v)", err)
	}
}

func TestLoadRemembered(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1_800_000_000, 0)
	file := filepath.Join(dir, "login")
	k := keeper{path: file, route: "http://r", user: "alice", log: slog.New(slog.DiscardHandler)}
	k.save("tok1", now.Add(time.Hour))
	for _, tc := range []struct {
		name, route, user string
		at                time.Time
		want              string
	}{
		{"its own", "http://r", "alice", now, "tok1"},
		{"another user's", "http://r", "bob", now, ""},
		{"another route's", "http://other", "alice", now, ""},
		{"expired", "http://r", "alice", now.Add(time.Hour), ""},
	} {
		got, err := loadRemembered(file, tc.route, tc.user, tc.at)
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if got, err := loadRemembered(filepath.Join(dir, "none"), "http://r", "alice", now); got != "" || err != nil {
		t.Errorf("no file: %q, %v; want nothing, no error", got, err)
	}
	if err := os.WriteFile(file, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadRemembered(file, "http://r", "alice", now); err == nil {
		t.Error("a file that is not a remembered login: no error")
	}
	k.save("", time.Time{})
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("save(\"\") left the file (%v)", err)
	}
}
