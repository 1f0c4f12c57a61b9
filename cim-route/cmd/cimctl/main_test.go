package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gocim/gocim/cim-route/internal/api"
	"github.com/gocim/gocim/cim-route/internal/apikey"
	"github.com/gocim/gocim/cim-route/internal/balance"
	"github.com/gocim/gocim/cim-route/internal/errs"
	"github.com/gocim/gocim/cim-route/internal/fanout"
	"github.com/gocim/gocim/cim-route/internal/files"
	"github.com/gocim/gocim/cim-route/internal/gatewaytest"
	"github.com/gocim/gocim/cim-route/internal/memstore"
	"github.com/gocim/gocim/cim-route/internal/router"
	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/proto/cimpb"
)

const (
	adminKey = "admin-key-0123456789"
	pushKey  = "push-key-0123456789"
	secret   = "internal-secret-0123456789"
)

var quiet = slog.New(slog.DiscardHandler)

// route is a route's public API on the memory store with one fake
// gateway.
type route struct {
	url string
	r   *router.Router
	gw  *gatewaytest.Gateway
	ctx context.Context
}

func startRoute(t *testing.T) *route {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	gw := gatewaytest.Start(t, gatewaytest.WithSecret(secret))
	bal := balance.New(balance.Config{Logger: quiet})
	bal.SetGateways([]string{gw.ID})
	push := fanout.New(fanout.Config{Timeout: 2 * time.Second, Secret: secret, Logger: quiet})
	t.Cleanup(push.Close)
	tokenKeys := [][]byte{[]byte("token-key-0123456789abcdef")}
	r, err := router.New(router.Config{
		Store: memstore.New(), Gateways: bal, Pusher: push, Files: files.New(t.TempDir(), 1024),
		TokenKeys: tokenKeys, BcryptCost: bcrypt.MinCost, Logger: quiet, InternalSecret: secret,
	})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := apikey.Parse("app:"+pushKey+":push,ops:"+adminKey+":admin", 16)
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.NewPublic(api.Config{Service: r, Logger: quiet, TokenKeys: tokenKeys, APIKeys: keys})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &route{url: srv.URL, r: r, gw: gw, ctx: ctx}
}

// online registers name, logs it in and connects it at the fake gateway.
func (rt *route) online(t *testing.T, name string) router.Session {
	t.Helper()
	if _, err := rt.r.Register(rt.ctx, name, "password1"); err != nil && !errors.Is(err, errs.ErrNameTaken) {
		t.Fatal(err)
	}
	s, err := rt.login(name, "password1")
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.r.SessionOnline(rt.ctx, contract.Session{UserID: s.UserID, SessionID: s.SessionID, GatewayID: s.Gateway.ID}); err != nil {
		t.Fatal(err)
	}
	rt.gw.Connect(s.UserID, s.SessionID)
	return s
}

func (rt *route) login(name, pw string) (router.Session, error) {
	return rt.r.Login(rt.ctx, router.LoginRequest{UserName: name, Password: pw})
}

// cimctl runs the command with the route and admin key as flags.
func (rt *route) cimctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runCimctl(t, append([]string{"--route", rt.url, "--key", adminKey}, args...)...)
}

func runCimctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func kicked(rt *route, uid string) bool {
	return slices.ContainsFunc(rt.gw.Frames(uid), func(f *cimpb.Frame) bool { return f.Type == cimpb.Type_KICK })
}

// TestCommands: every command against a real route API, in text and JSON.
func TestCommands(t *testing.T) {
	rt := startRoute(t)
	alice, bob := rt.online(t, "alice"), rt.online(t, "bob")

	code, out, _ := rt.cimctl(t, "online")
	if code != 0 || !strings.Contains(out, "alice") || !strings.Contains(out, "bob") || !strings.Contains(out, "2 online") {
		t.Fatalf("online: %d %q", code, out)
	}
	code, out, _ = rt.cimctl(t, "gateways")
	if code != 0 || !strings.Contains(out, rt.gw.ID) || !strings.Contains(out, "1 gateways, 0 connections, 2 users") {
		t.Fatalf("gateways: %d %q", code, out)
	}
	code, out, _ = rt.cimctl(t, "--json", "gateways")
	var gws []gateway
	if err := json.Unmarshal([]byte(out), &gws); code != 0 || err != nil || len(gws) != 1 || gws[0].ID != rt.gw.ID || gws[0].Users != 2 {
		t.Fatalf("gateways --json: %d %q %v", code, out, err)
	}

	code, out, _ = rt.cimctl(t, "kick", "alice")
	if code != 0 || out != "kicked alice (id "+alice.UserID+"): 1 session(s) ended\n" || !kicked(rt, alice.UserID) {
		t.Fatalf("kick: %d %q", code, out)
	}

	code, out, _ = rt.cimctl(t, "ban", "bob", "--reason", "spam", "--for", "1h")
	if code != 0 || !strings.HasPrefix(out, "banned bob (id "+bob.UserID+") until ") || !strings.HasSuffix(out, ": spam\n") || !kicked(rt, bob.UserID) {
		t.Fatalf("ban: %d %q", code, out)
	}
	if _, err := rt.login("bob", "password1"); !errors.Is(err, router.ErrBanned) {
		t.Fatalf("banned bob logs in: %v", err)
	}
	code, out, _ = rt.cimctl(t, "unban", bob.UserID)
	if code != 0 || out != "unbanned bob (id "+bob.UserID+")\n" {
		t.Fatalf("unban: %d %q", code, out)
	}
	if _, err := rt.login("bob", "password1"); err != nil {
		t.Fatalf("unbanned bob: %v", err)
	}

	if code, out, _ = rt.cimctl(t, "password", "bob", "another-pw"); code != 0 {
		t.Fatalf("password: %d %q", code, out)
	}
	if _, err := rt.login("bob", "another-pw"); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	code, out, _ = rt.cimctl(t, "password", "bob")
	m := regexp.MustCompile(`(?m)^new password: (\S+)$`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("generated password: %d %q", code, out)
	}
	if _, err := rt.login("bob", m[1]); err != nil {
		t.Fatalf("login with the generated password: %v", err)
	}

	code, _, errOut := rt.cimctl(t, "delete", "alice")
	if code != 2 || !strings.Contains(errOut, "--yes") {
		t.Fatalf("delete without --yes: %d %q", code, errOut)
	}
	if _, err := rt.login("alice", "password1"); err != nil {
		t.Fatalf("alice deleted without --yes: %v", err)
	}
	code, out, _ = rt.cimctl(t, "delete", "--yes", "alice")
	if code != 0 || out != "deleted alice (id "+alice.UserID+") and its data\n" {
		t.Fatalf("delete: %d %q", code, out)
	}
	if _, err := rt.login("alice", "password1"); err == nil {
		t.Fatal("deleted alice logs in")
	}
	if u, err := rt.r.Register(rt.ctx, "alice", "password1"); err != nil || u.ID == alice.UserID {
		t.Fatalf("re-register: %+v %v", u, err)
	}

	// The fake gateway has no drain: the route says why.
	code, _, errOut = rt.cimctl(t, "drain", rt.gw.ID)
	if code != 1 || !strings.Contains(errOut, "/drain") {
		t.Fatalf("drain of a gateway without drain: %d %q", code, errOut)
	}
}

// TestErrors: a bad key, a key without the admin scope, an unknown user,
// an unreachable route and bad usage each say so.
func TestErrors(t *testing.T) {
	rt := startRoute(t)
	dead := httptest.NewServer(nil)
	dead.Close()
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no key", []string{"--route", rt.url, "online"}, 2, "no API key"},
		{"bad key", []string{"--route", rt.url, "--key", "wrong-key-0123456789", "online"}, 1, "refused the API key"},
		{"push key", []string{"--route", rt.url, "--key", pushKey, "gateways"}, 1, "admin scope"},
		{"unknown user", []string{"--route", rt.url, "--key", adminKey, "kick", "nobody"}, 1, "no such user"},
		{"unreachable", []string{"--route", dead.URL, "--key", adminKey, "online"}, 1, "cannot reach the route"},
		{"unknown command", []string{"--route", rt.url, "--key", adminKey, "reboot"}, 2, "unknown command"},
		{"missing user", []string{"--route", rt.url, "--key", adminKey, "ban"}, 2, "want USER"},
		{"both ends", []string{"--route", rt.url, "--key", adminKey, "ban", "x", "--for", "1h", "--until", "2999-01-01T00:00:00Z"}, 2, "not both"},
	} {
		code, _, errOut := runCimctl(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", c.name, code, errOut, c.code, c.want)
		}
	}
}

// TestEnvironment: CIM_ROUTE and CIM_API_KEY stand in for the flags.
func TestEnvironment(t *testing.T) {
	rt := startRoute(t)
	rt.online(t, "alice")
	t.Setenv("CIM_ROUTE", rt.url)
	t.Setenv("CIM_API_KEY", adminKey)
	code, out, errOut := runCimctl(t, "online")
	if code != 0 || !strings.Contains(out, "alice") {
		t.Fatalf("online from the environment: %d %q %q", code, out, errOut)
	}
}
