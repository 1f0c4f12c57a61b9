// Package gatewaytest is a fake gateway for the route's tests: an HTTP server
// with the gateway's /push and /healthz that keeps a map of "connected"
// sessions instead of TCP connections, and records what it was sent. Only
// the route service's contract is real here; the gateway itself is cim-server.
// Started WithSecret, it refuses (401) a /push without that secret in
// contract.Header, as gateways do, and answers a /healthz challenge with the proof
// the route verifies (package gwproof).
package gatewaytest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/gwproof"
	"github.com/gocim/gocim/proto/cimpb"
)

// Gateway is a fake gateway.
type Gateway struct {
	ID      string // 127.0.0.1:<fake tcp port>:<http port>
	Healthy atomic.Bool
	srv     *httptest.Server
	secret  string
	refused atomic.Int32

	mu       sync.Mutex
	hold     chan struct{}     // while set, /push waits for it to close
	held     chan struct{}     // gets a value per /push that waits
	sessions map[string]string // user id -> session id
	frames   map[string][]*cimpb.Frame
	pushes   int
	shared   int // deliveries of one frame to many targets
}

// Option configures a fake gateway.
type Option func(*Gateway)

// WithSecret makes /push require secret in contract.Header.
func WithSecret(secret string) Option { return func(g *Gateway) { g.secret = secret } }

// Start runs a gateway until the test ends.
func Start(t testing.TB, opts ...Option) *Gateway {
	g := &Gateway{sessions: map[string]string{}, frames: map[string][]*cimpb.Frame{}}
	for _, o := range opts {
		o(g)
	}
	g.Healthy.Store(true)
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	u, _ := url.Parse(g.srv.URL)
	port, _ := strconv.Atoi(u.Port())
	g.ID = contract.FormatGatewayID("127.0.0.1", 1, port)
	return g
}

// Hold makes every /push wait, before delivering anything, until the
// returned release is called; the returned channel gets a value each time a
// push starts waiting.
func (g *Gateway) Hold() (held <-chan struct{}, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	h, w := make(chan struct{}), make(chan struct{}, 1024)
	g.hold, g.held = h, w
	var once sync.Once
	return w, func() {
		once.Do(func() {
			g.mu.Lock()
			g.hold, g.held = nil, nil
			g.mu.Unlock()
			close(h)
		})
	}
}

// Close stops the server: the gateway is dead from then on.
func (g *Gateway) Close() { g.srv.Close() }

// Connect makes the user's session connected here. Like a gateway, it
// holds one connection per user and device slot: the methods below take
// the user's id, or contract.DeviceKey for a session in a device slot
// ("7/mobile").
func (g *Gateway) Connect(uid, sid string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sessions[contract.DeviceKey(uid, sid)] = sid
}

// Disconnect drops the user's connection.
func (g *Gateway) Disconnect(uid string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.sessions, uid)
}

// Connected reports the user's session here, if any.
func (g *Gateway) Connected(uid string) (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	sid, ok := g.sessions[uid]
	return sid, ok
}

// Frames returns what the user received here.
func (g *Gateway) Frames(uid string) []*cimpb.Frame {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.frames[uid])
}

// Refused is the number of /push calls refused for a missing or wrong
// secret.
func (g *Gateway) Refused() int { return int(g.refused.Load()) }

// Shared is how many shared deliveries (one frame, many targets) the
// gateway got.
func (g *Gateway) Shared() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.shared
}

// Pushes is the number of /push calls received.
func (g *Gateway) Pushes() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pushes
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == contract.PathHealth && r.Method == http.MethodGet:
		status, answer := http.StatusOK, contract.Health{Status: contract.HealthOK}
		if !g.Healthy.Load() {
			status, answer.Status = http.StatusServiceUnavailable, contract.HealthShuttingDown
		}
		if c := r.URL.Query().Get(gwproof.Param); c != "" && g.secret != "" {
			// Prove the secret as cim-server does (healthy or not), so the
			// route hands it out.
			answer.ID, answer.Proof = g.ID, gwproof.Sign(g.secret, c, g.ID)
		}
		w.Header().Set("Content-Type", contract.JSONType)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(answer)
	case r.URL.Path == contract.PathPush && r.Method == http.MethodPost:
		if g.secret != "" && !contract.NewSecrets([]string{g.secret}).Valid(r.Header.Get(contract.Header)) {
			g.refused.Add(1)
			http.Error(w, `{"code":4010,"message":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		g.mu.Lock()
		hold, held := g.hold, g.held
		g.mu.Unlock()
		if hold != nil {
			held <- struct{}{}
			<-hold
		}
		body, _ := io.ReadAll(r.Body)
		var b cimpb.PushBatch
		if err := proto.Unmarshal(body, &b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		res := g.deliver(&b)
		out, _ := proto.Marshal(res)
		w.Header().Set("Content-Type", contract.ProtobufType)
		w.Write(out)
	default:
		http.NotFound(w, r)
	}
}

// deliver follows the gateway contract: a delivery whose user (and session,
// when set) is not connected is missing; a KICK closes the connection.
func (g *Gateway) deliver(b *cimpb.PushBatch) *cimpb.PushResult {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pushes++
	res := &cimpb.PushResult{}
	i := 0
	one := func(uid, sid string, f *cimpb.Frame) {
		defer func() { i++ }()
		key := contract.DeviceKey(uid, sid)
		held, ok := g.sessions[key]
		if !ok || (sid != "" && sid != held) {
			res.Missing = append(res.Missing, uint32(i))
			return
		}
		res.Delivered++
		g.frames[key] = append(g.frames[key], f)
		if f.GetType() == cimpb.Type_KICK {
			delete(g.sessions, key)
		}
	}
	for _, d := range b.Deliveries {
		if p := d.PackedTargets; len(p) > 0 {
			g.shared++
			n := 0
			for {
				uid, sid, rest, ok := contract.NextTarget(p)
				if !ok {
					break
				}
				one(string(uid), string(sid), d.Frame)
				n++
				p = rest
			}
			if n == 0 {
				one("", "", d.Frame) // counted once, like the gateway does
			}
			continue
		}
		if len(d.Targets) == 0 {
			one(d.UserId, d.SessionId, d.Frame)
			continue
		}
		g.shared++
		for _, t := range d.Targets {
			one(t.UserId, t.SessionId, d.Frame)
		}
	}
	return res
}
