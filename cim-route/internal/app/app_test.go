package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/goleak"

	"github.com/gocim/gocim/cim-route/internal/config"
	"github.com/gocim/gocim/cim-route/internal/gatewaytest"
	"github.com/gocim/gocim/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The test's own HTTP client keeps idle keep-alive connections.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

type answer struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

const (
	internalSecret = "app-internal-secret-0123"
	adminKey       = "app-admin-key-0123456789"
)

// post sends body to url with the headers given as name, value pairs.
func post(t *testing.T, url, body string, v any, headers ...string) answer {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("POST %s: %q", url, raw)
	}
	if v != nil && a.Code == 9000 {
		if err := json.Unmarshal(a.Data, v); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestApp(t *testing.T) {
	zks := testenv.StartZooKeeper(t)
	rds := testenv.StartRedis(t)
	gw := gatewaytest.Start(t, gatewaytest.WithSecret(internalSecret))

	// The gateway registers before the route starts.
	zc, _, err := zk.Connect([]string{zks.Addr}, 4*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Close()
	for _, p := range []string{"/cim", "/cim/servers"} {
		if _, err := zc.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			t.Fatal(err)
		}
	}
	node := "/cim/servers/" + gw.ID
	if _, err := zc.Create(node, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}

	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.InternalListen = "127.0.0.1:0"
	cfg.InternalSecret = internalSecret + ",app-old-internal-secret"
	cfg.APIKeys = "ops:" + adminKey + ":admin"
	cfg.LoginRate = 1000 // the test polls /login
	cfg.ZK = zks.Addr
	cfg.Redis = rds.Addr
	cfg.UploadDir = t.TempDir()
	cfg.TokenSecret = "app-test-secret-0123"
	cfg.BcryptCost = 4
	cfg.HealthInterval = 100 * time.Millisecond
	a, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	select {
	case <-a.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("not ready")
	}
	if strings.HasSuffix(a.Addr(), ":0") || strings.HasSuffix(a.InternalAddr(), ":0") || a.Addr() == a.InternalAddr() {
		t.Fatalf("Addr() = %s, InternalAddr() = %s, want two real ports", a.Addr(), a.InternalAddr())
	}
	base, internal := "http://"+a.Addr(), "http://"+a.InternalAddr()

	post(t, base+"/registerAccount", `{"userName":"alice","password":"password1"}`, nil)
	var l struct {
		UserID, SessionID, AccessToken string
		Server                         struct{ ID string }
	}
	if a := post(t, base+"/login", `{"userName":"alice","password":"password1"}`, &l); a.Code != 9000 || l.Server.ID != gw.ID || l.AccessToken == "" {
		t.Fatalf("login: %+v %+v", a, l)
	}
	online := `{"userId":"` + l.UserID + `","sessionId":"` + l.SessionID + `","gatewayId":"` + gw.ID + `"}`
	if a := post(t, base+"/internal/online", online, nil, "X-CIM-Internal", internalSecret); a.Code == 9000 {
		t.Fatal("/internal/online served on the public listener")
	}
	if a := post(t, internal+"/internal/online", online, nil); a.Code != 4010 {
		t.Fatalf("/internal/online without the secret: %+v", a)
	}
	if a := post(t, internal+"/internal/online", online, nil, "X-CIM-Internal", internalSecret); a.Code != 9000 {
		t.Fatalf("online: %+v", a)
	}
	gw.Connect(l.UserID, l.SessionID)
	// A message to herself reaches the gateway: the push carried the secret.
	if a := post(t, base+"/p2pRoute", `{"receiveUserId":"alice","msg":"note to self"}`, nil, "Authorization", "Bearer "+l.AccessToken); a.Code != 9000 {
		t.Fatalf("p2p: %+v", a)
	}
	if f := gw.Frames(l.UserID); len(f) != 1 || gw.Refused() != 0 {
		t.Fatalf("gateway got %v, refused %d pushes", f, gw.Refused())
	}
	onlineUsers := func() int {
		req, _ := http.NewRequest("GET", base+"/onlineUser", nil)
		req.Header.Set("X-API-Key", adminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a struct{ Data []json.RawMessage }
		json.NewDecoder(resp.Body).Decode(&a)
		return len(a.Data)
	}
	if n := onlineUsers(); n != 1 {
		t.Fatalf("%d online, want 1", n)
	}

	// The gateway leaves ZooKeeper: it is no longer handed out and its
	// sessions are cleared.
	if err := zc.Delete(node, -1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "no gateway for logins", func() bool {
		return post(t, base+"/login", `{"userName":"alice","password":"password1"}`, nil).Code == 7100
	})
	waitFor(t, "the dead gateway's sessions to be cleared", func() bool {
		return a.rdb.Exists(context.Background(), "cim:route:{"+l.UserID+"}").Val() == 0
	})
	if n := onlineUsers(); n != 0 {
		t.Fatalf("%d online after the gateway left", n)
	}
	// The gateway's sessions are gone, and with them the access token.
	req, _ := http.NewRequest("GET", base+"/history", nil)
	req.Header.Set("Authorization", "Bearer "+l.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("access token of a cleared session: HTTP %d, want 401", resp.StatusCode)
	}

	// Shutdown: the listener closes; a second call is harmless.
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{base, internal} {
		if _, err := http.Get(u + "/healthz"); err == nil {
			t.Fatalf("%s still serving after Shutdown", u)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestNewRejectsBadConfig(t *testing.T) {
	cfg := config.Default() // no token secret
	if _, err := New(cfg, nil); err == nil {
		t.Fatal("New accepted a config without a token secret")
	}
}

func TestStartFailsOnABadUploadDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.InternalListen = "127.0.0.1:0"
	cfg.InternalSecret = internalSecret
	cfg.TokenSecret = "app-test-secret-0123"
	cfg.UploadDir = filepath.Join(file, "uploads") // under a regular file
	a, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	if err := a.Start(); err == nil || !strings.Contains(err.Error(), "--upload-dir") {
		t.Fatalf("Start with an unusable upload dir: %v", err)
	}
}

// TestTLS: with --tls-cert/--tls-key the public listener speaks HTTPS (and
// only HTTPS); the internal one stays plain HTTP on its own address.
func TestTLS(t *testing.T) {
	zks := testenv.StartZooKeeper(t)
	rds := testenv.StartRedis(t)
	x := testenv.NewTLS(t)
	cfg := config.Default()
	cfg.Listen, cfg.InternalListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.InternalSecret = internalSecret
	cfg.TLSCert, cfg.TLSKey = x.CertFile, x.KeyFile
	cfg.ZK, cfg.Redis = zks.Addr, rds.Addr
	cfg.UploadDir = t.TempDir()
	cfg.TokenSecret = "app-test-secret-0123"
	a, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	if !a.TLS() {
		t.Fatal("TLS() = false")
	}

	tr := &http.Transport{TLSClientConfig: x.ClientConfig()}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := client.Get("https://" + a.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h answer
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if resp.StatusCode != 200 || h.Code != 9000 || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("https /healthz: HTTP %d %+v, TLS %v", resp.StatusCode, h, resp.TLS)
	}
	// Plain HTTP on the public port is refused.
	if resp, err := http.Get("http://" + a.Addr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("the TLS listener answered plain HTTP")
		}
	}
	// A client that does not trust the certificate gets nowhere.
	if _, err := (&http.Client{Timeout: 10 * time.Second}).Get("https://" + a.Addr() + "/healthz"); err == nil {
		t.Fatal("an untrusted certificate was accepted")
	}
	resp, err = http.Get("http://" + a.InternalAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("internal /healthz: HTTP %d", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestNewRejectsABadCertificate(t *testing.T) {
	cfg := config.Default()
	cfg.TokenSecret, cfg.InternalSecret = "app-test-secret-0123", internalSecret
	cfg.TLSCert, cfg.TLSKey = filepath.Join(t.TempDir(), "missing.pem"), filepath.Join(t.TempDir(), "missing-key.pem")
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "--tls-cert") {
		t.Fatalf("New with a missing certificate: %v", err)
	}
}

func TestNewAuthenticator(t *testing.T) {
	cfg := config.Default()
	if a, err := newAuthenticator(cfg); err != nil || a != nil {
		t.Fatalf("builtin: %v %v, want no authenticator", a, err)
	}
	cfg.Auth, cfg.AuthURL = config.AuthHTTP, "http://127.0.0.1:1/check"
	if a, err := newAuthenticator(cfg); err != nil || a == nil || a.Name() != "http" {
		t.Fatalf("http: %v %v", a, err)
	}
	cfg.Auth, cfg.LDAPURL, cfg.LDAPBaseDN = config.AuthLDAP, "ldap://127.0.0.1:1", "dc=example,dc=org"
	if a, err := newAuthenticator(cfg); err != nil || a == nil || a.Name() != "ldap" {
		t.Fatalf("ldap: %v %v", a, err)
	}
}
