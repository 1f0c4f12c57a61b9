package testenv

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// RedisCluster is a Redis Cluster started for a test: masters with their
// replicas, every node a redis-server child process on its own free port
// (and cluster-bus port) with its own throwaway directory.
type RedisCluster struct {
	Nodes []*Redis
	cli   string
	t     TB
}

// StartRedisCluster starts masters × (1 + replicas) nodes with
// --cluster-enabled, joins them with `redis-cli --cluster create`, and waits
// until every node reports cluster_state:ok and every replica is in sync.
// A master's replicas take over after --cluster-node-timeout (1 s) of
// silence.
func StartRedisCluster(t TB, masters, replicas int) *RedisCluster {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		Missing(t, "redis-server")
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		Missing(t, "redis-cli")
	}
	c := &RedisCluster{cli: cli, t: t}
	for range masters * (1 + replicas) {
		dir := t.TempDir()
		port, bus := FreePort(t), FreePort(t)
		r := &Redis{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir, t: t}
		r.args = []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(bus), "--cluster-node-timeout", "1000",
			// A replica whose master died takes over whatever its lag: the
			// loss this allows is what the failover test measures.
			"--cluster-replica-validity-factor", "0"}
		r.Process = Start(t, dir, bin, nil, r.args...)
		c.Nodes = append(c.Nodes, r)
	}
	for _, r := range c.Nodes {
		r.wait()
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("redis cluster: %v", err)
	}
	return c
}

// Addrs returns every node's address; AddrList joins them with commas, as
// the route's --redis takes them.
func (c *RedisCluster) Addrs() []string {
	var out []string
	for _, r := range c.Nodes {
		out = append(out, r.Addr)
	}
	return out
}

// AddrList is Addrs joined with commas.
func (c *RedisCluster) AddrList() string { return strings.Join(c.Addrs(), ",") }

// Cmd runs a redis-cli command against node addr and returns its output.
func (c *RedisCluster) Cmd(addr string, args ...string) (string, error) {
	host, port, _ := strings.Cut(addr, ":")
	// Bounded: a frozen (SIGSTOPped) node accepts and never answers.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.cli, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// alive reports whether node r's process is running.
func alive(r *Redis) bool {
	select {
	case <-r.Done():
		return false
	default:
		return true
	}
}

// MasterOf returns the live node serving key as master (by CLUSTER
// KEYSLOT and CLUSTER SHARDS-free parsing of CLUSTER NODES on a live node).
func (c *RedisCluster) MasterOf(key string) (*Redis, error) {
	var s, nodes string
	var err error = errors.New("no live node")
	for _, r := range c.Nodes { // the first that answers
		if !alive(r) {
			continue
		}
		if s, err = c.Cmd(r.Addr, "cluster", "keyslot", key); err != nil {
			continue
		}
		if nodes, err = c.Cmd(r.Addr, "cluster", "nodes"); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster keyslot and nodes: %v", err)
	}
	slot, err := strconv.Atoi(s)
	if err != nil {
		return nil, fmt.Errorf("cluster keyslot %q: %v", s, err)
	}
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
			continue
		}
		for _, rng := range f[8:] {
			lo, hi, ok := strings.Cut(rng, "-")
			if !ok {
				hi = lo
			}
			l, err1 := strconv.Atoi(lo)
			h, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil || slot < l || slot > h {
				continue
			}
			addr, _, _ := strings.Cut(f[1], "@")
			for _, r := range c.Nodes {
				if r.Addr == addr {
					return r, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("no live master serves slot %d", slot)
}

// WaitFailover waits until a live node other than old serves key as
// master and reports cluster_state:ok, and returns it. Old may be frozen.
func (c *RedisCluster) WaitFailover(ctx context.Context, key string, old *Redis) (*Redis, error) {
	for {
		m, err := c.MasterOf(key)
		if err == nil && m != old && alive(m) {
			var info string
			if info, err = c.Cmd(m.Addr, "cluster", "info"); err == nil && strings.Contains(info, "cluster_state:ok") {
				return m, nil
			}
		}
		if err == nil {
			err = errors.New("still served by the old master")
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no failover for %q: %v (%w)", key, err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitReady waits until every live node reports cluster_state:ok, every
// slot is served by a live master, and every master's replicas that are
// alive are online and caught up with it (equal replication offsets), or
// ctx ends.
func (c *RedisCluster) WaitReady(ctx context.Context) error {
	for {
		err := c.ready()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %v (%w)", err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *RedisCluster) ready() error {
	for _, r := range c.Nodes {
		if !alive(r) {
			continue
		}
		info, err := c.Cmd(r.Addr, "cluster", "info")
		if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
			return fmt.Errorf("%s: %v %.200s", r.Addr, err, info)
		}
		repl, err := c.Cmd(r.Addr, "info", "replication")
		if err != nil {
			return fmt.Errorf("%s: %v", r.Addr, err)
		}
		if !strings.Contains(repl, "role:master") {
			continue
		}
		offset := field(repl, "master_repl_offset")
		for _, line := range strings.Split(repl, "\n") {
			if !strings.HasPrefix(line, "slave") || !strings.Contains(line, "ip=") {
				continue
			}
			if !strings.Contains(line, "state=online") || !strings.Contains(line, "offset="+offset+",") {
				return fmt.Errorf("%s: replica behind (master offset %s): %s", r.Addr, offset, strings.TrimSpace(line))
			}
		}
	}
	return nil
}

// field returns the value of name in INFO output.
func field(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}
