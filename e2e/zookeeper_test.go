package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/internal/gwproof"
	"github.com/gocim/gocim/internal/testenv"
)

// zkConn opens a ZooKeeper session for the test, with digest credentials
// when auth is not empty.
func zkConn(t *testing.T, addr, auth string) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkQuiet{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if auth != "" {
		if err := c.AddAuth("digest", []byte(auth)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

type zkQuiet struct{}

func (zkQuiet) Printf(string, ...any) {}

// attacker is a rogue "gateway": a TCP listener where clients would send
// their LOGIN (with the gateway token) and an HTTP listener the route
// probes. Everything they receive is recorded.
type attacker struct {
	tcp  net.Listener
	http *httptest.Server

	mu       sync.Mutex
	accepted int      // TCP connections
	received []byte   // bytes read on them
	requests []string // HTTP requests: method, URL, headers, body
}

// startAttacker starts the listeners; answer builds each /healthz reply
// (the challenge may be empty).
func startAttacker(t *testing.T, answer func(challenge string) (int, []byte)) *attacker {
	t.Helper()
	a := &attacker{}
	var err error
	if a.tcp, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.tcp.Close() })
	go func() {
		for {
			conn, err := a.tcp.Accept()
			if err != nil {
				return
			}
			a.mu.Lock()
			a.accepted++
			a.mu.Unlock()
			go func() {
				defer conn.Close()
				b, _ := io.ReadAll(io.LimitReader(conn, 1<<20))
				a.mu.Lock()
				a.received = append(a.received, b...)
				a.mu.Unlock()
			}()
		}
	}()
	a.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var dump strings.Builder
		fmt.Fprintf(&dump, "%s %s\n", r.Method, r.URL)
		for k, v := range r.Header {
			fmt.Fprintf(&dump, "%s: %s\n", k, strings.Join(v, ","))
		}
		dump.Write(body)
		a.mu.Lock()
		a.requests = append(a.requests, dump.String())
		a.mu.Unlock()
		status, reply := answer(r.URL.Query().Get(gwproof.Param))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(reply)
	}))
	t.Cleanup(a.http.Close)
	return a
}

func (a *attacker) httpPort() int { return a.http.Listener.Addr().(*net.TCPAddr).Port }
func (a *attacker) tcpPort() int  { return a.tcp.Addr().(*net.TCPAddr).Port }

func (a *attacker) seen() (accepted int, received []byte, requests []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.accepted, append([]byte(nil), a.received...), append([]string(nil), a.requests...)
}

// relayTo answers the route's challenge with whatever the real gateway at
// httpAddr answers to it: a valid proof, but for the real gateway's id.
func relayTo(httpAddr string) func(string) (int, []byte) {
	return func(challenge string) (int, []byte) {
		resp, err := http.Get("http://" + httpAddr + "/healthz?" + gwproof.Param + "=" + url.QueryEscape(challenge))
		if err != nil {
			return http.StatusBadGateway, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
}

// TestZooKeeperLockedDown: the gateways' ZooKeeper nodes are writable with
// their digest credentials only, and the route hands out only gateways
// that prove they hold the internal secret for their own id.
//
// (i) Without the credentials (or with wrong ones) nobody can add, change
// or delete a node under /cim/servers, nor open the folder up again.
// (ii) Rogue nodes that are there anyway (written here with the
// credentials, as after a leak or from before the lockdown) are never
// handed out over many logins and their TCP listeners never see a client,
// so never a gateway token; the route sends them nothing secret. One rogue
// relays the route's challenge to a real gateway; another points its HTTP
// port at a real gateway (which answers /healthz, so a plain health check
// would pass) and its TCP port at the attacker.
// (iii) The real gateways are still handed out and carry a chat.
func TestZooKeeperLockedDown(t *testing.T) {
	c := harness.Start(t, harness.Options{Gateways: 2})
	real := c.Gateways[0]

	// (i) The folder and the gateway nodes are locked.
	anon := zkConn(t, c.ZK.Addr, "")
	wrong := zkConn(t, c.ZK.Addr, "cim:not-the-password")
	for name, z := range map[string]*zk.Conn{"no credentials": anon, "wrong password": wrong} {
		_, err := z.Create("/cim/servers/127.0.0.1:1:2", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		if !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("%s: creating a gateway node: %v, want %v", name, err, zk.ErrNoAuth)
		}
		if err := z.Delete("/cim/servers/"+real.ID, -1); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("%s: deleting a real gateway's node: %v, want %v", name, err, zk.ErrNoAuth)
		}
		for _, p := range []string{"/cim", "/cim/servers"} {
			if _, err := z.SetACL(p, zk.WorldACL(zk.PermAll), -1); !errors.Is(err, zk.ErrNoAuth) {
				t.Errorf("%s: opening %s again: %v, want %v", name, p, err, zk.ErrNoAuth)
			}
		}
	}
	// Reading stays open (the route lists without credentials).
	if kids, _, err := anon.Children("/cim/servers"); err != nil || len(kids) != 2 {
		t.Fatalf("anonymous listing: %v %v", kids, err)
	}

	// (ii) Rogue nodes.
	relay := startAttacker(t, relayTo(real.HTTPAddr))
	relayID := fmt.Sprintf("127.0.0.1:%d:%d", relay.tcpPort(), relay.httpPort())
	_, realHTTP, _ := net.SplitHostPort(real.HTTPAddr)
	borrow := startAttacker(t, func(string) (int, []byte) { return http.StatusNotFound, nil }) // its HTTP is never used
	borrowID := fmt.Sprintf("127.0.0.1:%d:%s", borrow.tcpPort(), realHTTP)
	admin := zkConn(t, c.ZK.Addr, harness.ZKAuth)
	for _, id := range []string{relayID, borrowID} {
		if _, err := admin.Create("/cim/servers/"+id, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("rogue node %s: %v", id, err)
		}
	}
	// The route notices both, probes them and refuses them.
	harness.Eventually(t, wait, func() error {
		for _, id := range []string{relayID, borrowID} {
			if !logHas(c.Route.Process, "gateway failed verification", "gateway="+id) {
				return fmt.Errorf("the route has not refused %s (yet)", id)
			}
		}
		return nil
	})
	if n, err := c.LiveGateways(); err != nil || n != 2 {
		t.Fatalf("route hands out %d gateways (%v), want the 2 real ones", n, err)
	}

	const logins = 40
	got := map[string]int{}
	for i := range logins {
		s := login(t, c, "zkuser"+strconv.Itoa(i))
		got[s.Server.ID]++
	}
	if got[relayID]+got[borrowID] != 0 {
		t.Fatalf("route handed out rogue gateways: %v", got)
	}
	// (iii) The real gateways are handed out, both of them.
	if got[c.Gateways[0].ID] == 0 || got[c.Gateways[1].ID] == 0 {
		t.Fatalf("logins went to %v, want both real gateways", got)
	}
	alice := c.Connect(t, "zkalice")
	bob := c.Connect(t, "zkbob")
	if _, err := alice.Send(ctxT(t), "zkbob", "locked down"); err != nil {
		t.Fatal(err)
	}
	bob.WaitFor(t, 0, wait, "message", harness.IsMessage("locked down"))

	for name, a := range map[string]*attacker{"relay": relay, "borrow": borrow} {
		accepted, received, requests := a.seen()
		if accepted != 0 || len(received) != 0 {
			t.Errorf("%s: a client connected to the rogue gateway (%d connections, %d bytes: %q)", name, accepted, len(received), received)
		}
		for _, r := range requests {
			if strings.Contains(strings.ToLower(r), "x-cim-internal") || strings.Contains(r, harness.InternalSecret) ||
				strings.Contains(r, harness.Secret) || !strings.HasPrefix(r, "GET /healthz?"+gwproof.Param+"=") {
				t.Errorf("%s: the route sent the rogue gateway more than a challenge:\n%s", name, r)
			}
		}
	}
	if _, _, requests := relay.seen(); len(requests) == 0 {
		t.Fatal("the route never probed the relaying rogue")
	}
}

// logHas reports whether one line of p's log contains every one of parts.
func logHas(p *testenv.Process, parts ...string) bool {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		all := true
		for _, part := range parts {
			all = all && strings.Contains(line, part)
		}
		if all {
			return true
		}
	}
	return false
}
