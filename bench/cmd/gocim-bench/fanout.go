package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gocim/gocim/bench/internal/run"
	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/codes"
)

// member is one connected load-generator user.
// Its events are handled by one goroutine (connectOne's), so what it
// records needs no lock: thousands of members sharing one mutex made the
// load generator, not the cluster, the bottleneck of a fan-out (a convoy
// of event goroutines each waiting for the lock's handoff on two cores).
type member struct {
	name string
	cl   *client.Client
	lat  []time.Duration // delivery latencies it saw
	seen []bool          // the fan-out messages it got, by index
	done chan struct{}   // closed when its events end (after Close)
}

// connectAll registers and logs in n users named prefix0…, spread over
// the gateways by the route, par at a time.
func connectAll(t *run.T, c *harness.Cluster, prefix string, n, par int, onEvent func(*member, client.Event)) []*member {
	return connectAllDial(t, c, prefix, n, par, onEvent, nil)
}

// dialFunc is client.Config.Dial.
type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// connectAllDial is connectAll with dialFor(name) as each user's
// client.Config.Dial (dialFor nil, or returning nil: a plain dialer).
func connectAllDial(t *run.T, c *harness.Cluster, prefix string, n, par int, onEvent func(*member, client.Event), dialFor func(name string) dialFunc) []*member {
	// One HTTP client for every member: thousands of users on one
	// address each keeping an idle keep-alive connection to the route
	// would pass the route's --max-conns-per-addr (1024), which is the
	// load generator's artifact, not what users from many addresses do.
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: par * 2}}
	t.Cleanup(hc.CloseIdleConnections)
	api := client.NewAPI(c.Route.URL, hc)
	ms := make([]*member, n)
	failed, firstErr := runParallel(n, par, func(ctx context.Context, i int) error {
		name := fmt.Sprintf("%s%05d", prefix, i)
		var dial dialFunc
		if dialFor != nil {
			dial = dialFor(name)
		}
		m, err := connectOne(ctx, c, api, hc, name, onEvent, dial)
		ms[i] = m
		return err
	})
	for _, m := range ms {
		if m != nil {
			cl := m.cl
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				cl.Close(ctx)
			})
		}
	}
	if failed > 0 {
		t.Fatalf("connecting %d users: %d failed, first: %v", n, failed, firstErr)
	}
	return ms
}

// benchSentKept is how many sent messages each SDK client of the bench
// remembers (client.Config.SentKept). At the SDK's default a p2p run's 50
// senders kept 16 MB of records alive in the load generator, 43 % of its
// live heap: every one of its collections marked them, and a collection
// there stalls every client at once, gocim's measured latency with them.
const benchSentKept = 16

func connectOne(ctx context.Context, c *harness.Cluster, api *client.API, hc *http.Client, name string, onEvent func(*member, client.Event), dial dialFunc) (*member, error) {
	_, err := api.Register(ctx, name, harness.Password)
	var apiErr *client.APIError
	if err != nil && !(errors.As(err, &apiErr) && apiErr.Code == codes.BadAccount) {
		return nil, fmt.Errorf("register %s: %w", name, err)
	}
	// benchSentKept, not the SDK's 1,000: the bench never asks a client for
	// Status or Recent, and a hundred apps' records of their sent messages
	// do not share one heap and one collector in the field as they do here.
	cl, err := client.New(client.Config{RouteURL: c.Route.URL, UserName: name, Password: harness.Password,
		Dial: dial, HTTPClient: hc, SentKept: benchSentKept})
	if err != nil {
		return nil, err
	}
	if err := cl.Start(ctx); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	m := &member{name: name, cl: cl, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for e := range cl.Events() {
			onEvent(m, e)
		}
	}()
	return m, nil
}

// groupFanout: members users online over the cluster's gateways, all in one
// group; the owner sends messages group messages back to back; every other
// member must receive each exactly once. Measures deliveries per second from
// the first send to the last delivery, and per-delivery latency (send call
// to arrival).
func groupFanout(t *run.T, c *harness.Cluster, members, messages int) row {
	setup := time.Now()
	prefix := "f" + strconv.Itoa(members) + "m"
	sentAt := make([]atomic.Int64, messages)
	var total, dups, last atomic.Int64
	onEvent := func(m *member, e client.Event) {
		if e.Kind != client.EventMessage || e.Msg == nil || e.Msg.Group == "" {
			return
		}
		i, ok := parseIndex(string(e.Msg.Body))
		if !ok || i >= messages {
			return
		}
		now := time.Now()
		if m.seen == nil {
			m.seen = make([]bool, messages)
		}
		if m.seen[i] {
			dups.Add(1)
			return
		}
		m.seen[i] = true
		total.Add(1)
		for {
			l := last.Load()
			if now.UnixNano() <= l || last.CompareAndSwap(l, now.UnixNano()) {
				break
			}
		}
		if s := sentAt[i].Load(); s > 0 {
			m.lat = append(m.lat, now.Sub(time.Unix(0, s)))
		}
	}
	ms := connectAll(t, c, prefix, members, 16, onEvent)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	owner := ms[0]
	g, err := owner.cl.CreateGroup(ctx, prefix+" bench", true)
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	joinAll(t, ms[1:], g.ID)
	setupSecs := time.Since(setup).Seconds()

	want := int64(messages) * int64(members-1)
	ops0, opsErr := redisCommandCalls(c.RedisAddr)
	push0 := gatewayPushes(c)
	cpu := startCPU(clusterPIDs(c))
	start := time.Now()
	for i := 0; i < messages; i++ {
		sentAt[i].Store(time.Now().UnixNano())
		if _, err := owner.cl.SendGroup(ctx, g.ID, fmt.Sprintf("fanout-%d", i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for total.Load() < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	clusterCPU, loadCPU := cpu.stop()
	push := gatewayPushes(c).minus(push0)
	end := time.Unix(0, last.Load())
	if total.Load() < want {
		end = time.Now()
	}
	// The members acknowledge after the last delivery: count their Redis
	// commands too, until a quarter second adds almost nothing, and at
	// least 1.5 s (the SDK acknowledges a timeline group's messages after
	// its GroupAckDelay, 1 s).
	var ops commandCalls
	if opsErr == nil {
		ops, opsErr = settledCommandCalls(c.RedisAddr, ops0, 1500*time.Millisecond)
	}
	secs := end.Sub(start).Seconds()
	r := row{
		Workload: "group fan-out", System: "gocim",
		Setting: fmt.Sprintf("%d members, %d gateways, %d msgs back to back", members, len(c.Gateways), messages),
		Sent:    int64(messages), Expected: want, Received: total.Load(), Seconds: secs,
		Delivered:  float64(total.Load()) / secs,
		ClusterCPU: cores(clusterCPU), LoadgenCPU: loadCPU,
		Loss: want - total.Load(), Duplicates: dups.Load(), SetupSeconds: setupSecs,
		GatewayRSSMiB: gatewayRSS(c) / (1 << 20),
	}
	// Every member's latencies, read once its event goroutine has ended.
	for _, m := range ms {
		m.cl.Close(ctx)
	}
	var lats []time.Duration
	for _, m := range ms {
		<-m.done
		lats = append(lats, m.lat...)
	}
	r.latencies(lats)
	if opsErr == nil && r.Received > 0 {
		r.RedisOpsPerDelivery = float64(ops.total()) / float64(r.Received)
		r.Result = fmt.Sprintf("Redis: %.2f commands per delivery (INFO commandstats, from the first send until the acknowledgements settled: %s)",
			r.RedisOpsPerDelivery, ops.per(float64(r.Received), 6))
	}
	if push.batches > 0 {
		// How the deliveries were batched: every push batch is a write
		// per member connection it reaches, and a read in its client.
		// and every member SYNC a gap the member gave up waiting for
		// (the timeline read again).
		r.Result = strings.TrimSpace(fmt.Sprintf("%s; pushes: %.0f batches over %d gateways, %.1f frames each; members' SYNCs: %.0f",
			r.Result, push.batches, len(c.Gateways), push.frames/push.batches, push.syncs))
	}
	if r.Loss != 0 || r.Duplicates != 0 {
		t.Errorf("group fan-out to %d members: %d deliveries missing, %d duplicates", members, r.Loss, r.Duplicates)
	}
	return r
}

func joinAll(t *run.T, ms []*member, gid string) {
	failed, err := runParallel(len(ms), 16, func(ctx context.Context, i int) error {
		_, err := ms[i].cl.JoinGroup(ctx, gid)
		return err
	})
	if failed > 0 {
		t.Fatalf("%d joins failed, first: %v", failed, err)
	}
}

func parseIndex(body string) (int, bool) {
	s, ok := strings.CutPrefix(body, "fanout-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil && i >= 0
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}

func ms1(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// clusterPIDs are the processes whose CPU counts as the cluster's: Redis,
// the route and the gateways (ZooKeeper idles during a workload).
func clusterPIDs(c *harness.Cluster) []int {
	pids := []int{c.Redis.Cmd.Process.Pid, c.Route.Cmd.Process.Pid}
	for _, g := range c.Gateways {
		pids = append(pids, g.Cmd.Process.Pid)
	}
	return pids
}

// clusterNames name clusterPIDs' processes, in their order.
func clusterNames(c *harness.Cluster) []string {
	names := []string{"Redis", "route"}
	for range c.Gateways {
		names = append(names, "gateways")
	}
	return names
}

func gatewayRSS(c *harness.Cluster) float64 {
	var sum int64
	for _, g := range c.Gateways {
		if r, err := rssOf(g.Cmd.Process.Pid); err == nil {
			sum += r
		}
	}
	return float64(sum)
}

// pushTotals are the gateways' push batches and the frames in them
// (gocim_gateway_push_batch_frames) and the SYNCs their clients sent,
// summed over the gateways.
type pushTotals struct{ batches, frames, syncs float64 }

func (p pushTotals) minus(q pushTotals) pushTotals {
	return pushTotals{p.batches - q.batches, p.frames - q.frames, p.syncs - q.syncs}
}

// gatewayPushes reads every gateway's /metrics once; a gateway that does
// not answer counts nothing.
func gatewayPushes(c *harness.Cluster) pushTotals {
	var t pushTotals
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, g := range c.Gateways {
		req, err := http.NewRequest(http.MethodGet, "http://"+g.HTTPAddr+"/metrics", nil)
		if err != nil {
			continue
		}
		req.Header = harness.Internal()
		resp, err := hc.Do(req)
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		for line := range strings.Lines(string(body)) {
			name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
			v, err := strconv.ParseFloat(value, 64)
			if !ok || err != nil {
				continue
			}
			switch name {
			case "gocim_gateway_push_batch_frames_count":
				t.batches += v
			case "gocim_gateway_push_batch_frames_sum":
				t.frames += v
			case `gocim_gateway_frames_received_total{type="sync"}`:
				t.syncs += v
			}
		}
	}
	return t
}
