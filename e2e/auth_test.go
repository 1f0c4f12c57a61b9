package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/internal/testenv"
	"github.com/gocim/gocim/proto/codes"
)

// connectAs logs name in with password through the route (no registration:
// an external user system owns the accounts).
func connectAs(t *testing.T, c *harness.Cluster, name, password string) (*harness.User, error) {
	t.Helper()
	cl, err := client.New(client.Config{RouteURL: c.Route.URL, UserName: name, Password: password, EventBuffer: 1024})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.Start(ctx); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cl.Close(ctx)
	})
	return &harness.User{Client: cl, Name: name, ID: cl.Info().UserID, Recorder: harness.Record(cl.Events())}, nil
}

// chat checks that a sends b a message that b receives.
func chat(t *testing.T, a, b *harness.User, text string) {
	t.Helper()
	if _, err := a.Send(ctxT(t), b.Name, text); err != nil {
		t.Fatal(err)
	}
	b.WaitFor(t, 0, wait, text, harness.IsMessage(text))
}

func wantBadAccount(t *testing.T, err error, what string) {
	t.Helper()
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != codes.BadAccount {
		t.Fatalf("%s: got %v, want code %d", what, err, codes.BadAccount)
	}
}

// TestHTTPCallbackAuthenticator: the route asks the application's own user
// system (a real HTTP server) and users it accepts chat; nobody else gets in,
// and gocim's own registration is closed.
func TestHTTPCallbackAuthenticator(t *testing.T) {
	const secret = "app-callback-secret-0123"
	users := map[string]string{"hana": "hana-pass-1", "ivo": "ivo-pass-1"}
	var calls, unsigned atomic.Int32
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("X-CIM-Auth") != secret {
			unsigned.Add(1)
			http.Error(w, "who are you", http.StatusForbidden)
			return
		}
		var req struct{ UserName, Password string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if pw, ok := users[req.UserName]; !ok || pw != req.Password {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"userName": req.UserName})
	}))
	t.Cleanup(app.Close)
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{
		"--auth", "http", "--auth-url", app.URL + "/check", "--auth-secret", secret,
	}})

	hana, err := connectAs(t, c, "hana", users["hana"])
	if err != nil {
		t.Fatal(err)
	}
	ivo, err := connectAs(t, c, "ivo", users["ivo"])
	if err != nil {
		t.Fatal(err)
	}
	chat(t, hana, ivo, "hello through the app's accounts")

	_, err = connectAs(t, c, "hana", "guess-1234")
	wantBadAccount(t, err, "wrong password")
	_, err = connectAs(t, c, "mallory", "whatever-1")
	wantBadAccount(t, err, "unknown user")
	checkAPI(t, c, "POST", "/registerAccount", nil, map[string]string{"userName": "mallory", "password": "whatever-1"}, 403, codes.Forbidden)
	if calls.Load() < 4 || unsigned.Load() != 0 {
		t.Fatalf("the app saw %d calls, %d without the shared secret", calls.Load(), unsigned.Load())
	}
}

// TestLDAPAuthenticator: the route checks passwords against a real OpenLDAP
// slapd (search as a service account, then bind as the user); directory users
// chat, wrong or empty passwords and unknown users do not get in.
func TestLDAPAuthenticator(t *testing.T) {
	dir := testenv.StartSlapd(t, testenv.SlapdOptions{Users: map[string]string{"lena": "lena-pass-1", "olaf": "olaf-pass-1"}})
	c := harness.Start(t, harness.Options{Gateways: 1, RouteArgs: []string{
		"--auth", "ldap", "--ldap-url", dir.URL, "--ldap-base-dn", dir.BaseDN,
		"--ldap-bind-dn", dir.AdminDN, "--ldap-bind-password", dir.AdminPassword,
	}})
	lena, err := connectAs(t, c, "lena", "lena-pass-1")
	if err != nil {
		t.Fatal(err)
	}
	olaf, err := connectAs(t, c, "olaf", "olaf-pass-1")
	if err != nil {
		t.Fatal(err)
	}
	chat(t, lena, olaf, "hello from the directory")
	chat(t, olaf, lena, "and back")

	_, err = connectAs(t, c, "lena", "not-her-password")
	wantBadAccount(t, err, "wrong password")
	_, err = connectAs(t, c, "nobody", "lena-pass-1")
	wantBadAccount(t, err, "unknown user")
	if _, err := connectAs(t, c, "l*", "lena-pass-1"); err == nil {
		t.Fatal("a wildcard name logged in")
	}
	checkAPI(t, c, "POST", "/login", nil, map[string]string{"userName": "lena", "password": ""}, 400, codes.BadArgument)
	checkAPI(t, c, "POST", "/registerAccount", nil, map[string]string{"userName": "mallory", "password": "whatever-1"}, 403, codes.Forbidden)

	// The directory going away is "try later", not "wrong password".
	dir.Kill()
	_, err = client.NewAPI(c.Route.URL, nil).Login(ctxT(t), "lena", "lena-pass-1")
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != codes.Unavailable {
		t.Fatalf("login with slapd down: got %v, want code %d", err, codes.Unavailable)
	}
}
