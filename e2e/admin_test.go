package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/codes"
)

var (
	cimctlOnce sync.Once
	cimctlPath string
	cimctlErr  error
)

// cimctlBin returns the cimctl binary: bin/cimctl when the binaries
// directory has one, else one built once for this test process.
func cimctlBin(t *testing.T, c *harness.Cluster) string {
	t.Helper()
	if p := filepath.Join(c.Bin, "cimctl"); fileExists(p) {
		return p
	}
	cimctlOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gocim-cimctl-")
		if err != nil {
			cimctlErr = err
			return
		}
		cimctlPath = filepath.Join(dir, "cimctl")
		cmd := exec.Command("go", "build", "-o", cimctlPath, "./cim-route/cmd/cimctl")
		cmd.Dir = harness.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			cimctlErr = fmt.Errorf("go build cimctl: %v\n%s", err, out)
		}
	})
	if cimctlErr != nil {
		t.Fatal(cimctlErr)
	}
	return cimctlPath
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// TestCimctl drives a real cluster with cimctl: the gateways are listed
// with their connections, a connected client is kicked, a banned user's
// client is closed and its logins refused until unbanned, and a deleted
// account's name registers again as a new account.
func TestCimctl(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	bin := cimctlBin(t, c)
	cimctl := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--route", c.Route.URL, "--key", harness.ListKey}, args...)...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("cimctl %s: %v: %s", strings.Join(args, " "), err, errOut.String())
		}
		return out.String(), err
	}
	mustCimctl := func(args ...string) string {
		t.Helper()
		out, err := cimctl(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	// Two clients, one per gateway (round-robin): both gateways are listed
	// with one connection and one user each.
	alice, bob := c.Connect(t, "alice"), c.Connect(t, "bob")
	harness.Eventually(t, 10*time.Second, func() error {
		var gws []struct {
			ID          string `json:"id"`
			Connections int    `json:"connections"`
			Users       int    `json:"users"`
		}
		if err := json.Unmarshal([]byte(mustCimctl("--json", "gateways")), &gws); err != nil {
			return err
		}
		if len(gws) != 2 {
			return fmt.Errorf("%d gateways listed: %+v", len(gws), gws)
		}
		for _, g := range gws {
			if c.Gateway(g.ID) == nil || g.Connections != 1 || g.Users != 1 {
				return fmt.Errorf("gateways %+v, want both of the cluster's with 1 connection and 1 user", gws)
			}
		}
		return nil
	})
	if out := mustCimctl("gateways"); !strings.Contains(out, "2 gateways, 2 connections, 2 users") {
		t.Fatalf("gateways: %q", out)
	}
	if out := mustCimctl("online"); !strings.Contains(out, "alice") || !strings.Contains(out, "bob") {
		t.Fatalf("online: %q", out)
	}

	// Kick: alice's client is told and stops.
	if out := mustCimctl("kick", "alice"); !strings.Contains(out, "1 session(s) ended") {
		t.Fatalf("kick: %q", out)
	}
	alice.WaitFor(t, 0, 10*time.Second, "alice kicked", harness.IsKind(client.EventKicked))

	// Ban: bob's client is closed at once and his logins are refused.
	if out := mustCimctl("ban", "bob", "--reason", "spam"); !strings.Contains(out, "banned bob") {
		t.Fatalf("ban: %q", out)
	}
	bob.WaitFor(t, 0, 10*time.Second, "bob kicked by the ban", harness.IsKind(client.EventKicked))
	var env harness.Envelope
	status, err := c.API("POST", "/login", nil, map[string]string{"userName": "bob", "password": harness.Password}, &env)
	if err != nil || status != 403 || env.Code != int(codes.Forbidden) || !strings.Contains(env.Message, "spam") {
		t.Fatalf("banned login: HTTP %d %+v %v", status, env, err)
	}
	mustCimctl("unban", "bob")
	c.Connect(t, "bob")

	// Delete: the name registers again, as a new account that logs in.
	if _, err := cimctl("delete", "alice"); err == nil {
		t.Fatal("delete without --yes went through")
	}
	if out := mustCimctl("delete", "alice", "--yes"); !strings.Contains(out, "deleted alice (id "+alice.ID+")") {
		t.Fatalf("delete: %q", out)
	}
	if id := c.Register(t, "alice"); id == "" || id == alice.ID {
		t.Fatalf("re-registered alice has id %q (deleted: %s)", id, alice.ID)
	}
	if again := c.Connect(t, "alice"); again.ID == alice.ID {
		t.Fatal("the new alice logged in as the deleted one")
	}

	// Errors a person can act on.
	if _, err := cimctl("kick", "nobody"); err == nil || !strings.Contains(err.Error(), "no such user") {
		t.Fatalf("kick of nobody: %v", err)
	}
	cmd := exec.Command(bin, "--route", c.Route.URL, "--key", harness.PushKey, "online")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "admin scope") {
		t.Fatalf("push key: %v %s", err, out)
	}
}
