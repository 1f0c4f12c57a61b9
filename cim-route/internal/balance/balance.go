// Package balance chooses the gateway a logging-in user is sent to: round
// robin or a consistent-hash ring on the user id, over the live gateways
// (from discovery) that passed their last health check. A periodic GET
// /healthz marks each gateway healthy or not; a gateway that failed (or whose
// /push failed, MarkDown) is skipped until a check passes again.
//
// With Config.Secrets (the route's internal secrets) every check is also a
// verification: it carries a fresh random challenge, and only an answer
// with a valid proof (package gwproof: an HMAC of the challenge and the
// gateway's own id under the internal secret) counts. Anybody who can write
// a node into ZooKeeper can make the route probe an address of their
// choosing, but not hand it out: a gateway just discovered is checked at
// once and handed out only after it proved itself; one that answers
// without a valid proof is an impostor, logged, never handed out and not
// Live either, so nothing that carries a secret (a push, a kick) is sent
// there. The challenge carries nothing secret. Without Secrets (unit tests
// of other packages) a gateway just discovered counts as healthy until its
// first check says otherwise.
//
// All methods are safe for concurrent use; Pick is lock-free while some
// gateway is healthy.
package balance

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocim/gocim/internal/contract"
	"github.com/gocim/gocim/internal/gwproof"
)

// Strategies.
const (
	RoundRobin = "round-robin"
	Hash       = "hash"
)

// vnodes is the number of ring points per gateway: enough to spread users
// evenly over a handful of gateways, cheap to rebuild on every change.
const vnodes = 160

// Config configures a Balancer.
type Config struct {
	Strategy       string        // RoundRobin (default) or Hash
	HealthInterval time.Duration // default 2s
	HealthTimeout  time.Duration // per check; default min(interval, 2s)
	Client         *http.Client  // for /healthz; default a small keep-alive client
	// Secrets are the route's internal secrets (any may have made a
	// gateway's proof). Set, a gateway is handed out only after proving
	// it holds one; empty, no verification (tests of other packages).
	Secrets []string
	// OnProven, when set, gets the sorted list of gateways that proved
	// they hold the secret (all live ones without Secrets) each time it
	// changes: the ones the route may open a stream to, which carries the
	// secret. It is called with the Balancer locked: it must not call back.
	OnProven func(ids []string)
	Logger   *slog.Logger
}

// Balancer holds the live gateways and their health.
type Balancer struct {
	cfg Config
	log *slog.Logger
	rr  atomic.Uint64

	mu    sync.Mutex // serialises writers of state
	state atomic.Pointer[state]
	// verified: gateways that answered a check with a valid proof (or,
	// without Secrets, any answer); proven: the last list given to
	// OnProven. Both guarded by mu.
	verified map[string]bool
	proven   []string

	kick    chan struct{} // new gateways to check now (Run)
	checkMu sync.Mutex
	checked chan struct{} // closed (and replaced) after every check round
}

// state is an immutable snapshot; writers replace it whole.
type state struct {
	live     []string // sorted, parsable ids
	addrs    map[string]contract.GatewayAddr
	down     map[string]bool // failed their last check (or a push), or not verified yet
	pending  map[string]bool // listed but not checked yet (with verification)
	impostor map[string]bool // answered without a valid proof
	healthy  []string        // live minus down, sorted
	ring     []point         // over all live gateways; Pick walks past down ones
}

// outcome is what one check found out.
type outcome int

const (
	unreachable outcome = iota // no answer (refused, timeout)
	refused                    // answered, proved itself (if asked), but not 200 (e.g. draining)
	passed                     // 200, proved itself (if asked)
	forged                     // answered without a valid proof
)

type point struct {
	hash uint64
	id   string
}

// New returns a Balancer with no gateways.
func New(cfg Config) *Balancer {
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 2 * time.Second
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = min(cfg.HealthInterval, 2*time.Second)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := &Balancer{cfg: cfg, log: cfg.Logger.With("component", "balance"),
		kick: make(chan struct{}, 1), checked: make(chan struct{}), verified: map[string]bool{}}
	b.state.Store(&state{addrs: map[string]contract.GatewayAddr{}, down: map[string]bool{}, pending: map[string]bool{}, impostor: map[string]bool{}})
	return b
}

func (b *Balancer) verifying() bool { return len(b.cfg.Secrets) > 0 }

// SetGateways replaces the live list (ids that do not parse are ignored).
// Health marks of gateways that stay are kept. With verification, new
// gateways are checked at once (by Run) and handed out once they passed.
func (b *Balancer) SetGateways(ids []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.state.Load()
	addrs := make(map[string]contract.GatewayAddr, len(ids))
	live := make([]string, 0, len(ids))
	for _, id := range ids {
		a, err := contract.ParseGatewayID(id)
		if err != nil {
			b.log.Warn("ignoring a gateway node with a bad name", "id", id, "err", err)
			continue
		}
		if _, dup := addrs[id]; !dup {
			addrs[id] = a
			live = append(live, id)
		}
	}
	slices.Sort(live)
	down, pending, impostor := map[string]bool{}, map[string]bool{}, map[string]bool{}
	added := false
	for _, id := range live {
		_, known := old.addrs[id]
		switch {
		case !known && b.verifying():
			down[id], pending[id], added = true, true, true
		case known:
			down[id], pending[id], impostor[id] = old.down[id], old.pending[id], old.impostor[id]
		}
	}
	b.state.Store(build(live, addrs, clean(down), clean(pending), clean(impostor)))
	for id := range b.verified {
		if _, ok := addrs[id]; !ok {
			delete(b.verified, id)
		}
	}
	b.publishProven()
	if added {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// clean drops the false entries of m.
func clean(m map[string]bool) map[string]bool {
	for k, v := range m {
		if !v {
			delete(m, k)
		}
	}
	return m
}

func build(live []string, addrs map[string]contract.GatewayAddr, down, pending, impostor map[string]bool) *state {
	s := &state{live: live, addrs: addrs, down: down, pending: pending, impostor: impostor}
	for _, id := range live {
		if !down[id] {
			s.healthy = append(s.healthy, id)
		}
	}
	s.ring = make([]point, 0, len(live)*vnodes)
	for _, id := range live {
		for i := range vnodes {
			s.ring = append(s.ring, point{hash64(id + "#" + strconv.Itoa(i)), id})
		}
	}
	slices.SortFunc(s.ring, func(a, b point) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return 0
	})
	return s
}

// Pick returns a live, healthy gateway for key (the user id; only the hash
// strategy uses it), or false when there is none. When none is healthy but
// some were just discovered, it waits (up to the health timeout) for their
// first check, so that a login right after a start does not fail.
func (b *Balancer) Pick(key string) (string, bool) {
	s := b.state.Load()
	if len(s.healthy) == 0 {
		if s = b.awaitPending(); len(s.healthy) == 0 {
			return "", false
		}
	}
	if b.cfg.Strategy != Hash {
		n := b.rr.Add(1) - 1
		return s.healthy[n%uint64(len(s.healthy))], true
	}
	// First ring point at or after the key's hash that belongs to a healthy
	// gateway: removing or failing a gateway moves only its own users.
	h := hash64(key)
	i, _ := slices.BinarySearchFunc(s.ring, h, func(p point, h uint64) int {
		switch {
		case p.hash < h:
			return -1
		case p.hash > h:
			return 1
		}
		return 0
	})
	for j := range len(s.ring) {
		p := s.ring[(i+j)%len(s.ring)]
		if !s.down[p.id] {
			return p.id, true
		}
	}
	return "", false
}

// awaitPending waits while no gateway is healthy and some are not checked
// yet, for at most the health timeout, and returns the state then.
func (b *Balancer) awaitPending() *state {
	deadline := time.NewTimer(b.cfg.HealthTimeout)
	defer deadline.Stop()
	for {
		b.checkMu.Lock()
		round := b.checked
		b.checkMu.Unlock()
		s := b.state.Load()
		if len(s.healthy) > 0 || len(s.pending) == 0 {
			return s
		}
		select {
		case <-round:
		case <-deadline.C:
			return b.state.Load()
		}
	}
}

// Live reports whether id is in the current live list and has not answered
// a check without a valid proof. Pushes and kicks go only to live
// gateways; a gateway just discovered and not checked yet is live (it may
// hold sessions while the route restarts), but only gateways that
// confirmed sessions through the internal API are ever pushed to.
func (b *Balancer) Live(id string) bool {
	s := b.state.Load()
	_, ok := s.addrs[id]
	return ok && !s.impostor[id]
}

// Addr returns the parsed id of a live gateway.
func (b *Balancer) Addr(id string) (contract.GatewayAddr, bool) {
	a, ok := b.state.Load().addrs[id]
	return a, ok
}

// Gateways returns the live list, sorted.
func (b *Balancer) Gateways() []string { return slices.Clone(b.state.Load().live) }

// Count is the number of gateways Pick may hand out (live, healthy and,
// with verification, proven).
func (b *Balancer) Count() int { return len(b.state.Load().healthy) }

// Healthy returns the live gateways that Pick may choose, sorted.
func (b *Balancer) Healthy() []string { return slices.Clone(b.state.Load().healthy) }

// MarkDown skips id until a health check passes again (a /push to it failed).
func (b *Balancer) MarkDown(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.state.Load()
	if _, live := old.addrs[id]; !live || old.down[id] {
		return
	}
	down := copyMap(old.down)
	down[id] = true
	b.log.Warn("gateway unhealthy; not handing it out", "gateway", id)
	b.state.Store(build(old.live, old.addrs, down, old.pending, old.impostor))
}

func copyMap(m map[string]bool) map[string]bool {
	c := make(map[string]bool, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	return c
}

// apply records one round of check outcomes.
func (b *Balancer) apply(results map[string]outcome) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.state.Load()
	down, pending, impostor := copyMap(old.down), copyMap(old.pending), copyMap(old.impostor)
	for id, o := range results {
		if _, live := old.addrs[id]; !live {
			continue // removed while being checked
		}
		first := pending[id]
		delete(pending, id)
		switch o {
		case forged:
			if !impostor[id] {
				b.log.Error("gateway failed verification: it answered without a valid proof of the internal secret "+
					"(a rogue ZooKeeper node, or a gateway with another --internal-secret); not handing it out or pushing to it",
					"gateway", id)
			}
			impostor[id], down[id] = true, true
		case passed:
			switch {
			case impostor[id] || (first && b.verifying()):
				b.log.Info("gateway verified", "gateway", id)
			case down[id]:
				b.log.Info("gateway healthy again", "gateway", id)
			}
			delete(impostor, id)
			delete(down, id)
		case refused, unreachable:
			if o == refused {
				delete(impostor, id) // it proved itself, it is just not serving
			}
			if !down[id] || first {
				b.log.Warn("gateway unhealthy; not handing it out", "gateway", id)
			}
			down[id] = true
		}
	}
	for id, o := range results {
		if _, live := old.addrs[id]; !live {
			continue
		}
		if o == passed || o == refused {
			b.verified[id] = true
		} else if o == forged {
			delete(b.verified, id)
		}
	}
	b.state.Store(build(old.live, old.addrs, clean(down), pending, clean(impostor)))
	b.publishProven()
}

// publishProven gives OnProven the live gateways that proved themselves
// (see proven), when that list changed. b.mu is held.
func (b *Balancer) publishProven() {
	if b.cfg.OnProven == nil {
		return
	}
	s := b.state.Load()
	var ids []string
	for _, id := range s.live {
		if !b.verifying() || (b.verified[id] && !s.impostor[id]) {
			ids = append(ids, id)
		}
	}
	if slices.Equal(ids, b.proven) {
		return
	}
	b.proven = ids
	b.cfg.OnProven(slices.Clone(ids))
}

// Run checks every live gateway's /healthz each interval, and at once when
// new gateways appear, until ctx ends.
func (b *Balancer) Run(ctx context.Context) {
	t := time.NewTicker(b.cfg.HealthInterval)
	defer t.Stop()
	for {
		b.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.kick:
		}
	}
}

// Check runs one round of health checks, in parallel, and applies the results.
func (b *Balancer) Check(ctx context.Context) {
	defer b.roundDone()
	s := b.state.Load()
	results := make(map[string]outcome, len(s.live))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, id := range s.live {
		wg.Go(func() {
			o := b.probe(ctx, s.addrs[id])
			mu.Lock()
			results[id] = o
			mu.Unlock()
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // a cancelled probe says nothing about the gateway
	}
	b.apply(results)
}

// roundDone wakes the Picks waiting for a check round.
func (b *Balancer) roundDone() {
	b.checkMu.Lock()
	close(b.checked)
	b.checked = make(chan struct{})
	b.checkMu.Unlock()
}

// maxHealthBody bounds what is read of a /healthz answer.
const maxHealthBody = 4 << 10

func (b *Balancer) probe(ctx context.Context, a contract.GatewayAddr) outcome {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.HealthTimeout)
	defer cancel()
	u := a.HTTPBase() + contract.PathHealth
	var challenge string
	if b.verifying() {
		challenge = gwproof.NewChallenge()
		u += "?" + gwproof.Param + "=" + url.QueryEscape(challenge)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return unreachable
	}
	resp, err := b.cfg.Client.Do(req)
	if err != nil {
		b.log.Debug("health check failed", "gateway", a.ID, "err", err)
		return unreachable
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHealthBody))
	// Drain a little more so the connection is reused for the next check.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxHealthBody))
	resp.Body.Close()
	if err != nil {
		b.log.Debug("health check failed", "gateway", a.ID, "err", err)
		return unreachable
	}
	if b.verifying() {
		var answer contract.Health
		_ = json.Unmarshal(body, &answer)
		if answer.ID != a.ID || !gwproof.Verify(b.cfg.Secrets, challenge, a.ID, answer.Proof) {
			b.log.Debug("health check without a valid proof", "gateway", a.ID, "status", resp.StatusCode, "answered_id", answer.ID)
			return forged
		}
	}
	if resp.StatusCode != http.StatusOK {
		return refused
	}
	return passed
}

func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	// FNV alone clusters similar keys ("1", "2", ...); a finaliser spreads them.
	return mix(h.Sum64())
}

// mix is the splitmix64 finaliser.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
