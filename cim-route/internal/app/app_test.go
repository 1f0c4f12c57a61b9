package app

import (
	"context"
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

func post(t *testing.T, url, body string, v any) answer {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
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
	gw := gatewaytest.Start(t)

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
	if strings.HasSuffix(a.Addr(), ":0") {
		t.Fatalf("Addr() = %s, want the real port", a.Addr())
	}
	base := "http://" + a.Addr()

	post(t, base+"/registerAccount", `{"userName":"alice","password":"password1"}`, nil)
	var l struct {
		UserID, SessionID string
		Server            struct{ ID string }
	}
	if a := post(t, base+"/login", `{"userName":"alice","password":"password1"}`, &l); a.Code != 9000 || l.Server.ID != gw.ID {
		t.Fatalf("login: %+v %+v", a, l)
	}
	if a := post(t, base+"/internal/online", `{"userId":"`+l.UserID+`","sessionId":"`+l.SessionID+`","gatewayId":"`+gw.ID+`"}`, nil); a.Code != 9000 {
		t.Fatalf("online: %+v", a)
	}
	online := func() int {
		resp, err := http.Get(base + "/onlineUser")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a struct{ Data []json.RawMessage }
		json.NewDecoder(resp.Body).Decode(&a)
		return len(a.Data)
	}
	if n := online(); n != 1 {
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
	if n := online(); n != 0 {
		t.Fatalf("%d online after the gateway left", n)
	}

	// Shutdown: the listener closes; a second call is harmless.
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("still serving after Shutdown")
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
