// Package balance chooses the gateway a logging-in user is sent to: round
// robin or a consistent-hash ring on the user id, over the live gateways
// (from discovery) that passed their last health check. A periodic GET
// /healthz marks each gateway healthy or not; a gateway that failed (or whose
// /push failed, MarkDown) is skipped until a check passes again. A gateway
// just discovered counts as healthy until its first check says otherwise.
//
// All methods are safe for concurrent use; Pick is lock-free.
package balance

import (
	"context"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocim/gocim/cim-route/internal/gateway"
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
	Logger         *slog.Logger
}

// Balancer holds the live gateways and their health.
type Balancer struct {
	cfg Config
	log *slog.Logger
	rr  atomic.Uint64

	mu    sync.Mutex // serialises writers of state
	state atomic.Pointer[state]
}

// state is an immutable snapshot; writers replace it whole.
type state struct {
	live    []string // sorted, parsable ids
	addrs   map[string]gateway.Addr
	down    map[string]bool // failed their last check (or a push)
	healthy []string        // live minus down, sorted
	ring    []point         // over all live gateways; Pick walks past down ones
}

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
	b := &Balancer{cfg: cfg, log: cfg.Logger.With("component", "balance")}
	b.state.Store(&state{addrs: map[string]gateway.Addr{}, down: map[string]bool{}})
	return b
}

// SetGateways replaces the live list (ids that do not parse are ignored).
// Health marks of gateways that stay are kept.
func (b *Balancer) SetGateways(ids []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.state.Load()
	addrs := make(map[string]gateway.Addr, len(ids))
	live := make([]string, 0, len(ids))
	for _, id := range ids {
		a, err := gateway.Parse(id)
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
	down := map[string]bool{}
	for _, id := range live {
		if old.down[id] {
			down[id] = true
		}
	}
	b.state.Store(build(live, addrs, down))
}

func build(live []string, addrs map[string]gateway.Addr, down map[string]bool) *state {
	s := &state{live: live, addrs: addrs, down: down}
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
// strategy uses it), or false when there is none.
func (b *Balancer) Pick(key string) (string, bool) {
	s := b.state.Load()
	if len(s.healthy) == 0 {
		return "", false
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

// Live reports whether id is in the current live list.
func (b *Balancer) Live(id string) bool {
	_, ok := b.state.Load().addrs[id]
	return ok
}

// Addr returns the parsed id of a live gateway.
func (b *Balancer) Addr(id string) (gateway.Addr, bool) {
	a, ok := b.state.Load().addrs[id]
	return a, ok
}

// Gateways returns the live list, sorted.
func (b *Balancer) Gateways() []string { return slices.Clone(b.state.Load().live) }

// Count is the number of live gateways.
func (b *Balancer) Count() int { return len(b.state.Load().live) }

// Healthy returns the live gateways that Pick may choose, sorted.
func (b *Balancer) Healthy() []string { return slices.Clone(b.state.Load().healthy) }

// MarkDown skips id until a health check passes again (a /push to it failed).
func (b *Balancer) MarkDown(id string) { b.setHealth(map[string]bool{id: false}) }

func (b *Balancer) setHealth(results map[string]bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.state.Load()
	down := make(map[string]bool, len(old.down))
	for id := range old.down {
		down[id] = true
	}
	changed := false
	for id, ok := range results {
		if _, live := old.addrs[id]; !live || down[id] == !ok {
			continue
		}
		changed = true
		if ok {
			delete(down, id)
			b.log.Info("gateway healthy again", "gateway", id)
		} else {
			down[id] = true
			b.log.Warn("gateway unhealthy; not handing it out", "gateway", id)
		}
	}
	if changed {
		b.state.Store(build(old.live, old.addrs, down))
	}
}

// Run checks every live gateway's /healthz each interval until ctx ends.
func (b *Balancer) Run(ctx context.Context) {
	t := time.NewTicker(b.cfg.HealthInterval)
	defer t.Stop()
	for {
		b.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check runs one round of health checks, in parallel, and applies the results.
func (b *Balancer) Check(ctx context.Context) {
	s := b.state.Load()
	results := make(map[string]bool, len(s.live))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, id := range s.live {
		wg.Go(func() {
			ok := b.probe(ctx, s.addrs[id])
			mu.Lock()
			results[id] = ok
			mu.Unlock()
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // a cancelled probe says nothing about the gateway
	}
	b.setHealth(results)
}

func (b *Balancer) probe(ctx context.Context, a gateway.Addr) bool {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.HealthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.HTTPBase()+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := b.cfg.Client.Do(req)
	if err != nil {
		b.log.Debug("health check failed", "gateway", a.ID, "err", err)
		return false
	}
	// Drain a little so the connection is reused for the next check.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
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
