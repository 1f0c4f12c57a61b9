package files

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gocim/gocim/internal/testenv"
)

// impl is one Store implementation under test: the package's tests run
// against each (a conformance table).
type impl struct {
	name string
	// open returns a fresh, initialised store with its clock at now.
	open func(t *testing.T, max int64, l Limits, now func() time.Time) Store
	// age makes an upload look d old to Sweep.
	age func(t *testing.T, s Store, ref string, d time.Duration)
}

// impls lists Disk and Redis (one redis-server for the whole test, a key
// prefix per store; skipped without redis-server outside CI).
func impls(t *testing.T) []impl {
	var rdb, crdb redis.UniversalClient
	stores := 0
	return []impl{{
		name: "disk",
		open: func(t *testing.T, max int64, l Limits, now func() time.Time) Store {
			s := New(t.TempDir()+"/up", max)
			s.SetLimits(l)
			if now != nil {
				s.now = now
			}
			if err := s.Init(); err != nil {
				t.Fatal(err)
			}
			return s
		},
		age: func(t *testing.T, s Store, ref string, d time.Duration) {
			d0 := s.(*Disk)
			old := d0.now().Add(-d)
			if err := chtimes(d0.path(ref), old); err != nil {
				t.Fatal(err)
			}
		},
	}, {
		name: "redis",
		open: func(t *testing.T, max int64, l Limits, now func() time.Time) Store {
			if rdb == nil {
				srv := testenv.StartRedis(t)
				rdb = redis.NewClient(&redis.Options{Addr: srv.Addr})
				t.Cleanup(func() { rdb.Close() })
			}
			stores++
			s := NewRedis(rdb, "t"+strconv.Itoa(stores)+":", max)
			s.chunk = 4 // every test file spans several pieces
			s.SetLimits(l)
			if now != nil {
				s.now = now
			}
			if err := s.Init(); err != nil {
				t.Fatal(err)
			}
			return s
		},
		age: func(t *testing.T, s Store, ref string, d time.Duration) {
			r := s.(*Redis)
			ctx := context.Background()
			if err := r.rdb.HSet(ctx, r.metaKey(ref), "created", r.now().Add(-d).UnixNano()).Err(); err != nil {
				t.Fatal(err)
			}
		},
	}, {
		// A one-node Redis Cluster refuses a command or script whose keys
		// are in different slots (CROSSSLOT), as a real cluster does.
		name: "redis-cluster",
		open: func(t *testing.T, max int64, l Limits, now func() time.Time) Store {
			if crdb == nil {
				crdb = startCluster(t)
			}
			stores++
			s := NewRedis(crdb, "t"+strconv.Itoa(stores)+":", max)
			s.chunk = 4
			s.SetLimits(l)
			if now != nil {
				s.now = now
			}
			if err := s.Init(); err != nil {
				t.Fatal(err)
			}
			return s
		},
		age: func(t *testing.T, s Store, ref string, d time.Duration) {
			r := s.(*Redis)
			if err := r.rdb.HSet(context.Background(), r.metaKey(ref), "created", r.now().Add(-d).UnixNano()).Err(); err != nil {
				t.Fatal(err)
			}
		},
	}}
}

// startCluster starts redis-server in cluster mode holding every slot and
// returns a cluster client of it.
func startCluster(t *testing.T) redis.UniversalClient {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Missing(t, "redis-server")
	}
	dir := t.TempDir()
	port := testenv.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	// The bus port is given explicitly: the default (port+10000) is not
	// known to be free and a taken one makes redis-server exit.
	p := testenv.Start(t, dir, bin, nil, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--cluster-enabled", "yes",
		"--cluster-port", strconv.Itoa(testenv.FreePort(t)), "--cluster-config-file", filepath.Join(dir, "nodes.conf"))
	node := redis.NewClient(&redis.Options{Addr: addr})
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := testenv.WaitTCP(ctx, p, addr); err != nil {
		t.Fatal(err)
	}
	for node.Ping(ctx).Err() != nil {
		if ctx.Err() != nil {
			t.Fatalf("redis cluster node %s did not answer:\n%s", addr, p.Tail(20))
		}
		time.Sleep(20 * time.Millisecond) // loading: no event says it is done
	}
	if err := node.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	for {
		info, _ := node.ClusterInfo(ctx).Result()
		if strings.Contains(info, "cluster_state:ok") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("redis cluster on %s not ok: %s", addr, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
	t.Cleanup(func() { c.Close() })
	return c
}
