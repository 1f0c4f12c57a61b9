package balance

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocim/gocim/internal/gwproof"
)

const (
	routeSecret = "route-internal-secret-0123"
	oldSecret   = "route-previous-secret-0123"
)

// proofGateway is a fake gateway's /healthz whose answer answer() builds
// from the challenge and the gateway's own id. It records every request.
type proofGateway struct {
	ID  string
	srv *httptest.Server

	mu         sync.Mutex
	answer     func(id, challenge string) (int, map[string]any)
	challenges []string
	requests   []string // method, URL and headers of each request
}

func startProofGateway(t *testing.T, answer func(id, challenge string) (int, map[string]any)) *proofGateway {
	g := &proofGateway{answer: answer}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var dump strings.Builder
		dump.WriteString(r.Method + " " + r.URL.String() + "\n")
		for k, v := range r.Header {
			dump.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
		dump.Write(body)
		g.mu.Lock()
		g.requests = append(g.requests, dump.String())
		c := r.URL.Query().Get(gwproof.Param)
		if c != "" {
			g.challenges = append(g.challenges, c)
		}
		answer, id := g.answer, g.ID
		g.mu.Unlock()
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		status, m := answer(id, c)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(m)
	}))
	t.Cleanup(g.srv.Close)
	u, _ := url.Parse(g.srv.URL)
	g.mu.Lock()
	g.ID = "127.0.0.1:1:" + u.Port()
	g.mu.Unlock()
	return g
}

func (g *proofGateway) set(answer func(id, challenge string) (int, map[string]any)) {
	g.mu.Lock()
	g.answer = answer
	g.mu.Unlock()
}

func (g *proofGateway) seen() (challenges, requests []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.challenges), slices.Clone(g.requests)
}

// signedWith answers as a real gateway holding secret does.
func signedWith(secret string, status int) func(id, c string) (int, map[string]any) {
	return func(id, c string) (int, map[string]any) {
		return status, map[string]any{"status": "ok", "connections": 0, "id": id, "proof": gwproof.Sign(secret, c, id)}
	}
}

// TestVerification: only gateways that prove the internal secret for their
// own id are handed out; impostors are not live either; a draining but
// proven gateway stays live; the secret is never sent; every check uses a
// fresh challenge.
func TestVerification(t *testing.T) {
	for _, strategy := range []string{RoundRobin, Hash} {
		t.Run(strategy, func(t *testing.T) {
			real := startProofGateway(t, signedWith(routeSecret, 200))
			rotated := startProofGateway(t, signedWith(oldSecret, 200)) // signs with the previous secret
			draining := startProofGateway(t, signedWith(routeSecret, 503))
			wrong := startProofGateway(t, signedWith("some-other-secret-0123", 200))
			plain := startProofGateway(t, func(string, string) (int, map[string]any) {
				return 200, map[string]any{"status": "ok", "connections": 0}
			})
			// A rogue that relays the route's challenge to the real gateway
			// and answers with what it got: a proof for the real id.
			relay := startProofGateway(t, func(_, c string) (int, map[string]any) {
				resp, err := http.Get(real.srv.URL + "/healthz?" + gwproof.Param + "=" + c)
				if err != nil {
					return 500, nil
				}
				defer resp.Body.Close()
				var m map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&m)
				return 200, m
			})
			// The same, claiming to be the real gateway in "id".
			relayOwnID := startProofGateway(t, func(id, c string) (int, map[string]any) {
				return 200, map[string]any{"status": "ok", "id": id, "proof": gwproof.Sign(routeSecret, c, real.ID)}
			})
			// Replays a proof of an earlier challenge.
			var replayMu sync.Mutex
			var lastProof string
			replay := startProofGateway(t, func(id, c string) (int, map[string]any) {
				replayMu.Lock()
				defer replayMu.Unlock()
				p := lastProof
				if p == "" {
					p = gwproof.Sign(routeSecret, gwproof.NewChallenge(), id)
				}
				lastProof = gwproof.Sign(routeSecret, c, id) // never shown: what it would need
				return 200, map[string]any{"status": "ok", "id": id, "proof": p}
			})
			dead := "127.0.0.1:1:" + strconv.Itoa(freePort(t))
			all := []*proofGateway{real, rotated, draining, wrong, plain, relay, relayOwnID, replay}
			ids := []string{dead}
			for _, g := range all {
				ids = append(ids, g.ID)
			}
			var provenMu sync.Mutex
			var proven []string // what OnProven last said: where streams (carrying the secret) may go
			lastProven := func() []string {
				provenMu.Lock()
				defer provenMu.Unlock()
				return slices.Clone(proven)
			}
			b := New(Config{Strategy: strategy, Logger: quiet, HealthTimeout: 5 * time.Second, Secrets: []string{routeSecret, oldSecret},
				OnProven: func(ids []string) { provenMu.Lock(); proven = ids; provenMu.Unlock() }})
			b.SetGateways(ids)
			if n := b.Count(); n != 0 {
				t.Fatalf("%d gateways handed out before any check", n)
			}
			if p := lastProven(); len(p) != 0 {
				t.Fatalf("proven before any check: %v", p)
			}
			for range 3 {
				b.Check(context.Background())
			}
			want := []string{real.ID, rotated.ID}
			slices.Sort(want)
			if got := b.Healthy(); !slices.Equal(got, want) || b.Count() != 2 {
				t.Fatalf("healthy = %v (count %d), want %v", got, b.Count(), want)
			}
			for i := range 200 {
				id, ok := b.Pick(strconv.Itoa(i))
				if !ok || !slices.Contains(want, id) {
					t.Fatalf("pick %d = %q %v, want one of %v", i, id, ok, want)
				}
			}
			wantProven := []string{real.ID, rotated.ID, draining.ID} // not the dead one: it never answered
			slices.Sort(wantProven)
			if p := lastProven(); !slices.Equal(p, wantProven) {
				t.Fatalf("proven = %v, want %v", p, wantProven)
			}
			for _, g := range []*proofGateway{wrong, plain, relay, relayOwnID, replay} {
				if b.Live(g.ID) {
					t.Errorf("impostor %s is live: pushes would carry the secret there", g.ID)
				}
			}
			for _, id := range []string{real.ID, rotated.ID, draining.ID, dead} {
				if !b.Live(id) {
					t.Errorf("%s not live", id)
				}
			}
			for _, g := range all {
				challenges, requests := g.seen()
				// (The real gateway also gets the relays' copies.)
				if len(challenges) < 3 || len(slices.Compact(slices.Sorted(slices.Values(challenges)))) != len(challenges) {
					t.Errorf("%s got challenges %v, want one fresh one per check", g.ID, challenges)
				}
				for _, r := range requests {
					if strings.Contains(r, routeSecret) || strings.Contains(r, oldSecret) || strings.Contains(strings.ToLower(r), "x-cim-internal") {
						t.Fatalf("a check sent a secret to %s:\n%s", g.ID, r)
					}
				}
			}
			// The wrong gateway gets the right secret: verified and live again.
			wrong.set(signedWith(routeSecret, 200))
			b.Check(context.Background())
			if !b.Live(wrong.ID) || !slices.Contains(b.Healthy(), wrong.ID) {
				t.Fatalf("a gateway that proved itself stays excluded: %v", b.Healthy())
			}
			// A verified gateway that stops proving itself is out at once.
			real.set(signedWith("some-other-secret-0123", 200))
			b.Check(context.Background())
			if b.Live(real.ID) || slices.Contains(b.Healthy(), real.ID) {
				t.Fatalf("a gateway that stopped proving itself is still handed out: %v", b.Healthy())
			}
			if p := lastProven(); slices.Contains(p, real.ID) || !slices.Contains(p, wrong.ID) {
				t.Fatalf("proven = %v: want the re-keyed gateway in and the one that stopped proving out", p)
			}
			// A gateway that leaves is no longer proven.
			b.SetGateways([]string{rotated.ID})
			if p := lastProven(); !slices.Equal(p, []string{rotated.ID}) {
				t.Fatalf("proven after the others left = %v", p)
			}
		})
	}
}

// TestPickWaitsForFirstCheck: a login right after a gateway appeared gets
// it once Run verified it, instead of "no gateway"; a rogue alone is never
// picked.
func TestPickWaitsForFirstCheck(t *testing.T) {
	real := startProofGateway(t, signedWith(routeSecret, 200))
	rogue := startProofGateway(t, signedWith("rogue-secret-0123456", 200))
	b := New(Config{Logger: quiet, HealthInterval: time.Hour, HealthTimeout: 10 * time.Second, Secrets: []string{routeSecret}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	b.SetGateways([]string{rogue.ID})
	if id, ok := b.Pick("1"); ok {
		t.Fatalf("picked the rogue %s", id)
	}
	b.SetGateways([]string{rogue.ID, real.ID}) // checked at once, not after the hour
	if id, ok := b.Pick("1"); !ok || id != real.ID {
		t.Fatalf("Pick = %q %v, want %s", id, ok, real.ID)
	}
}

func freePort(t *testing.T) int {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
