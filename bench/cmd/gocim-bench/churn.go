package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocim/gocim/bench/internal/run"
	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
)

// churnShare is the share of all clients that reconnect every minute.
const churnShare = 0.10

// cutter is one client's Config.Dial: it remembers the connections it made
// so that the workload can close them the way a network would, after which
// the SDK's own reconnect logic logs in again.
type cutter struct {
	mu    sync.Mutex
	conns []net.Conn
	cutAt atomic.Int64 // unix nanos of the cut still waiting for a login; 0: none
}

func (d *cutter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, network, addr)
	if err == nil {
		d.mu.Lock()
		d.conns = append(d.conns, conn)
		d.mu.Unlock()
	}
	return conn, err
}

// cut closes the client's connections; false if it had none.
func (d *cutter) cut() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.conns) == 0 {
		return false
	}
	d.cutAt.Store(time.Now().UnixNano())
	for _, c := range d.conns {
		c.Close()
	}
	d.conns = nil
	return true
}

// churnGocim: pairs sender/recipient pairs (on different gateways at the
// start) and idle more clients on a cluster of two gateways; the senders
// offer rate msg/s for dur while churnShare of all clients — senders and
// recipients included — have their connection cut each minute, spread
// evenly, and log in again on their own. Messages to a recipient that is
// away are stored and synced at its next login, so loss and dup must be 0.
func churnGocim(t *run.T, c *harness.Cluster, pairs, idle int, rate float64, dur, wait time.Duration) row {
	const prefix = "churn"
	n := 2*pairs + 2 + idle
	cutters := map[string]*cutter{}
	for i := 0; i < n; i++ {
		cutters[fmt.Sprintf("%s%05d", prefix, i)] = &cutter{}
	}
	var cur atomic.Pointer[p2pRun]
	var relogMu sync.Mutex
	var relogs []time.Duration // cut → logged in again
	onEvent := func(m *member, e client.Event) {
		switch e.Kind {
		case client.EventConnected:
			if d := cutters[m.name]; d != nil {
				if at := d.cutAt.Swap(0); at != 0 {
					relogMu.Lock()
					relogs = append(relogs, time.Since(time.Unix(0, at)))
					relogMu.Unlock()
				}
			}
		case client.EventMessage:
			if e.Msg == nil || e.Msg.Group != "" {
				return
			}
			if r := cur.Load(); r != nil {
				r.arrived(string(e.Msg.Body), time.Now())
			}
		}
	}
	setup := time.Now()
	ms := connectAllDial(t, c, prefix, n, 16, onEvent, func(name string) dialFunc { return cutters[name].dial })
	// Pairs from the first 2*pairs+2 users, as in p2pGocim; the rest idle.
	byGW := map[string][]*member{}
	var gws []string
	for _, m := range ms[:2*pairs+2] {
		g := m.cl.Info().Gateway
		if byGW[g] == nil {
			gws = append(gws, g)
		}
		byGW[g] = append(byGW[g], m)
	}
	if len(gws) < 2 {
		t.Fatalf("churn: all %d pair users on one gateway", 2*pairs+2)
	}
	a, b := byGW[gws[0]], byGW[gws[1]]
	np := min(len(a), len(b), pairs)
	senders, recipients := a[:np], b[:np]
	role := map[string]string{}
	for i := range senders {
		role[senders[i].name], role[recipients[i].name] = "sender", "recipient"
	}
	setupSecs := time.Since(setup).Seconds()

	// One cut every `every`, clients in a random order, none twice until
	// all have been cut once.
	perMinute := int(math.Ceil(churnShare * float64(len(ms))))
	every := time.Minute / time.Duration(perMinute)
	r := newP2PRun(np, rate, dur)
	cur.Store(r)
	ctx, cancel := context.WithTimeout(context.Background(), dur+time.Minute)
	defer cancel()
	cpu := startCPU(clusterPIDs(c))
	var cuts, cutSenders, cutRecipients atomic.Int64
	churnDone := make(chan struct{})
	go func() {
		defer close(churnDone)
		perm := rand.Perm(len(ms))
		begin := time.Now()
		for k := 1; ; k++ {
			at := begin.Add(every * time.Duration(k))
			if at.Sub(begin) > dur {
				return
			}
			time.Sleep(time.Until(at))
			m := ms[perm[(k-1)%len(perm)]]
			if cutters[m.name].cut() {
				cuts.Add(1)
				switch role[m.name] {
				case "sender":
					cutSenders.Add(1)
				case "recipient":
					cutRecipients.Add(1)
				}
			}
		}
	}()
	start, errs := r.drive(func(i int, body string) error {
		_, err := senders[i].cl.Send(ctx, recipients[i].name, body)
		return err
	})
	<-churnDone
	r.settle(wait)
	clusterCPU, loadCPU := cpu.stop()
	// Every cut client must be back: wait for the last logins.
	deadline := time.Now().Add(wait)
	for {
		relogMu.Lock()
		back := int64(len(relogs))
		relogMu.Unlock()
		if back >= cuts.Load() || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	pending := 0
	for _, s := range senders {
		pending += s.cl.Pending()
	}
	cur.Store(nil)

	out := r.result("gocim", fmt.Sprintf("%d pairs (sender and recipient on different gateways at the start) + %d idle clients = %d, 2 gateways, %v window; %.0f%% of all clients reconnect per minute (a connection cut every %v)",
		np, len(ms)-2*np, len(ms), dur, 100*churnShare, every.Round(time.Millisecond)), rate, start)
	out.Workload = "churn"
	out.ClusterCPU, out.LoadgenCPU = cores(clusterCPU), loadCPU
	out.SetupSeconds = setupSecs
	out.GatewayRSSMiB = gatewayRSS(c) / (1 << 20)
	relogMu.Lock()
	back := append([]time.Duration(nil), relogs...)
	relogMu.Unlock()
	sort.Slice(back, func(i, j int) bool { return back[i] < back[j] })
	out.Reconnects = cuts.Load()
	out.Relogins = int64(len(back))
	out.Result = fmt.Sprintf("reconnects: %d connections cut (%d senders, %d recipients), %d logged in again",
		cuts.Load(), cutSenders.Load(), cutRecipients.Load(), len(back))
	if len(back) > 0 {
		out.Result += fmt.Sprintf(" (cut → login p50 %.0f ms, max %.0f ms)", ms1(pct(back, 0.5)), ms1(pct(back, 1)))
	}
	if errs > 0 || pending > 0 {
		out.Setting += fmt.Sprintf("; %d send errors, %d unanswered at the end", errs, pending)
	}
	if out.Loss != 0 || out.Duplicates != 0 {
		t.Errorf("churn at %.0f/s: %d lost (%d of %d sent), %d duplicates", rate, out.Loss, out.Sent-out.Received, out.Sent, out.Duplicates)
	}
	if int64(len(back)) < cuts.Load() {
		t.Errorf("churn: %d of %d cut clients did not log in again within %v", cuts.Load()-int64(len(back)), cuts.Load(), wait)
	}
	if cuts.Load() == 0 {
		t.Errorf("churn: no connection was cut in %v (one every %v)", dur, every)
	}
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelClose()
	for _, m := range ms {
		m.cl.Close(closeCtx)
	}
	return out
}
