package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocim/gocim/bench/internal/run"
	"github.com/gocim/gocim/cim-client/client"
	"github.com/gocim/gocim/e2e/harness"
	"github.com/gocim/gocim/proto/cimpb"
)

// p2pRun is one measurement of the private-message latency workload: pairs
// senders, each sending perPair messages at an even pace, and the
// recipients' view of what arrived. The same code measures gocim and NATS.
type p2pRun struct {
	id      int64 // tells this run's messages from an earlier run's stragglers
	pairs   int
	perPair int
	every   time.Duration // pause between one sender's messages
	dur     time.Duration

	sent     atomic.Int64
	received atomic.Int64
	dups     atomic.Int64
	last     atomic.Int64 // unix nanos of the latest arrival
	recv     []pairRecv
	dump     bool // keep each arrival's send time too, for --latency-dump
}

type pairRecv struct {
	mu   sync.Mutex
	seen []bool
	lats []time.Duration
	sent []int64 // unix nanos, in lats's order, with --latency-dump
}

// latencyDump is --latency-dump: where result writes each latency row's
// messages, one file per row (FILE.1, FILE.2, …), and how many it wrote.
var latencyDump struct {
	path  string
	files atomic.Int64
}

var runIDs atomic.Int64

func newP2PRun(pairs int, rate float64, dur time.Duration) *p2pRun {
	perSender := rate / float64(pairs)
	r := &p2pRun{
		id: runIDs.Add(1), pairs: pairs, dur: dur,
		every:   time.Duration(float64(time.Second) / perSender),
		perPair: int(perSender * dur.Seconds()),
		recv:    make([]pairRecv, pairs),
		dump:    latencyDump.path != "",
	}
	for i := range r.recv {
		r.recv[i].seen = make([]bool, r.perPair)
		r.recv[i].lats = make([]time.Duration, 0, r.perPair)
	}
	return r
}

// body is the text of message seq of pair, sent at now:
// "p2p:<run>:<pair>:<seq>:<unix nanos>". The load generator's own garbage
// is kept small, as its collector's pauses show in every peer's tail.
func (r *p2pRun) body(pair, seq int, now time.Time) string {
	b := make([]byte, 0, 64)
	b = append(b, "p2p:"...)
	for _, n := range [...]int64{r.id, int64(pair), int64(seq), now.UnixNano()} {
		b = strconv.AppendInt(b, n, 10)
		b = append(b, ':')
	}
	return string(b[:len(b)-1])
}

// arrived records a message body seen by a recipient at now.
func (r *p2pRun) arrived(body string, now time.Time) {
	rest, ok := strings.CutPrefix(body, "p2p:")
	var f [4]int64
	for i := range f {
		var s string
		if i < len(f)-1 {
			s, rest, ok = strings.Cut(rest, ":")
		} else {
			s, ok = rest, ok && !strings.Contains(rest, ":")
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if !ok || err != nil {
			return
		}
		f[i] = n
	}
	id, pair, seq, ns := f[0], int(f[1]), int(f[2]), f[3]
	if id != r.id || pair < 0 || pair >= r.pairs || seq < 0 || seq >= r.perPair {
		return
	}
	p := &r.recv[pair]
	p.mu.Lock()
	if p.seen[seq] {
		p.mu.Unlock()
		r.dups.Add(1)
		return
	}
	p.seen[seq] = true
	p.lats = append(p.lats, now.Sub(time.Unix(0, ns)))
	if r.dump {
		p.sent = append(p.sent, ns)
	}
	p.mu.Unlock()
	r.received.Add(1)
	for {
		l := r.last.Load()
		if now.UnixNano() <= l || r.last.CompareAndSwap(l, now.UnixNano()) {
			break
		}
	}
}

// drive runs the senders: sender i calls send(i, body) every r.every,
// starting at an offset so the pairs' sends interleave. A sender that falls
// behind sends the late ones at once (the body carries the real send time);
// none sends after 1.5 × the window, so the loop stops on its own even if
// the system under test stalls.
func (r *p2pRun) drive(send func(pair int, body string) error) (start time.Time, sendErrs int64) {
	var wg sync.WaitGroup
	var errs atomic.Int64
	start = time.Now().Add(20 * time.Millisecond)
	stop := start.Add(r.dur + r.dur/2)
	for i := 0; i < r.pairs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := start.Add(r.every * time.Duration(i) / time.Duration(r.pairs))
			for k := 0; k < r.perPair; k++ {
				if d := time.Until(first.Add(r.every * time.Duration(k))); d > 0 {
					time.Sleep(d)
				}
				now := time.Now()
				if now.After(stop) {
					return
				}
				if err := send(i, r.body(i, k, now)); err != nil {
					errs.Add(1)
					continue
				}
				r.sent.Add(1)
			}
		}()
	}
	wg.Wait()
	return start, errs.Load()
}

// settle waits, at most wait, until every sent message arrived.
func (r *p2pRun) settle(wait time.Duration) {
	deadline := time.Now().Add(wait)
	for r.received.Load() < r.sent.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// result turns the run into a row; the send window starts at start.
func (r *p2pRun) result(system, setting string, rate float64, start time.Time) row {
	var lats []time.Duration
	for i := range r.recv {
		lats = append(lats, r.recv[i].lats...)
	}
	end := time.Unix(0, r.last.Load())
	if r.received.Load() < r.sent.Load() || end.Before(start) {
		end = time.Now()
	}
	secs := end.Sub(start).Seconds()
	expected := int64(r.pairs * r.perPair)
	out := row{
		Workload: "p2p latency", System: system, Setting: setting, Offered: rate,
		Sent: r.sent.Load(), Expected: expected, Received: r.received.Load(), Seconds: secs,
		Delivered: float64(r.received.Load()) / secs,
		// Loss counts what was offered and never arrived, unsent included.
		Loss: expected - r.received.Load(), Duplicates: r.dups.Load(),
	}
	out.latencies(lats)
	if r.dump {
		r.writeDump(out)
	}
	return out
}

// writeDump writes, for --latency-dump, one line per message that arrived:
// its send time (unix nanos), its latency (nanos) and its pair, after a
// header naming the row. Percentiles say how long the tail is; this says
// when it happened: spread out, or in bursts that line up with something
// (a load generator's GC, GODEBUG=gctrace=1; a gateway's).
func (r *p2pRun) writeDump(out row) {
	path := fmt.Sprintf("%s.%d", latencyDump.path, latencyDump.files.Add(1))
	var b strings.Builder
	fmt.Fprintf(&b, "# %s | %s | %s | %.0f msg/s\n# sent_unix_ns latency_ns pair\n", out.Workload, out.System, out.Setting, out.Offered)
	for i := range r.recv {
		p := &r.recv[i]
		p.mu.Lock()
		for k, ns := range p.sent {
			fmt.Fprintf(&b, "%d %d %d\n", ns, p.lats[k].Nanoseconds(), i)
		}
		p.mu.Unlock()
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "latency dump: %v\n", err)
		return
	}
	fmt.Fprintf(os.Stderr, "latency dump of %s (%s, %.0f msg/s): %s\n", out.Workload, out.System, out.Offered, path)
}

// p2pUser is one connected user of the p2p workload: the SDK over TCP or
// the bench's WebSocket client.
type p2pUser struct {
	name    string // account name
	addr    string // what a sender puts in Msg.to for this user
	gateway string
	send    func(ctx context.Context, to, body string) error
	pending func() int // sent messages the route has not answered yet
	close   func(ctx context.Context)
	// notes says what went unusual on the connection since it was last
	// asked ("" when nothing).
	notes func() string
}

// p2pGocim runs the private-message latency workload on a cluster of (at
// least) two gateways at each rate: pairs users send to pairs users on
// another gateway, one shared set of connections for all rates, over
// transport (tcp: the SDK; ws: the bench's WebSocket client). Users are
// named after prefix (one prefix per call on one cluster). With sat, rates
// are saturation steps: the loop stops after the first step that does not
// hold (see holds), and loss is no error.
func p2pGocim(t *run.T, c *harness.Cluster, prefix string, pairs int, rates []float64, dur, wait time.Duration, sat bool, transport string) []row {
	return p2pGocimAround(t, c, prefix, pairs, rates, dur, wait, sat, transport, nil)
}

// p2pGocimAround is p2pGocim calling around (when not nil) right before
// each rate's send window and right after its stragglers arrived (or the
// wait ended), with the rate's row: readings over the messages alone,
// without the users' logins.
func p2pGocimAround(t *run.T, c *harness.Cluster, prefix string, pairs int, rates []float64, dur, wait time.Duration, sat bool, transport string,
	around func(out *row)) []row {
	var cur atomic.Pointer[p2pRun]
	var role sync.Map // user name → "sender" / "recipient"
	var discSend, discRecv atomic.Int64
	lost := func(name string) {
		switch v, _ := role.Load(name); v {
		case "sender":
			discSend.Add(1)
		case "recipient":
			discRecv.Add(1)
		}
	}
	arrived := func(body string, now time.Time) {
		if r := cur.Load(); r != nil {
			r.arrived(body, now)
		}
	}
	setup := time.Now()
	// One spare user per side, so that an uneven spread still makes pairs.
	var us []*p2pUser
	if transport == transportWS {
		us = p2pWSUsers(t, c, prefix, 2*pairs+2, arrived, lost)
	} else {
		us = p2pTCPUsers(t, c, prefix, 2*pairs+2, arrived, lost)
	}
	byGW := map[string][]*p2pUser{}
	var gws []string
	for _, u := range us {
		if byGW[u.gateway] == nil {
			gws = append(gws, u.gateway)
		}
		byGW[u.gateway] = append(byGW[u.gateway], u)
	}
	var senders, recipients []*p2pUser
	cross := len(gws) >= 2
	if cross {
		a, b := byGW[gws[0]], byGW[gws[1]]
		n := min(len(a), len(b), pairs)
		senders, recipients = a[:n], b[:n]
	} else {
		n := min(len(us)/2, pairs)
		senders, recipients = us[:n], us[n:2*n]
	}
	pairs = len(senders)
	for i := range senders {
		role.Store(senders[i].name, "sender")
		role.Store(recipients[i].name, "recipient")
	}
	setupSecs := time.Since(setup).Seconds()
	where := "sender and recipient on different gateways"
	if !cross {
		where = "ALL ON ONE GATEWAY"
	}
	how := "Send: stored + pushed"
	if len(c.Gateways) > 0 && c.Gateways[0].ReplicaURL != "" {
		where += ", a route replica inside each gateway"
	}
	if transport == transportWS {
		how = "WebSocket, binary subprotocol " + wsSubprotocol + " (the bench's client; recipients ACK like the SDK); MSG: stored + pushed"
	}

	var rows []row
	for _, rate := range rates {
		r := newP2PRun(pairs, rate, dur)
		cur.Store(r)
		discSend.Store(0)
		discRecv.Store(0)
		ctx, cancel := context.WithTimeout(context.Background(), dur+time.Minute)
		if around != nil {
			around(nil)
		}
		cpu := startCPU(clusterPIDs(c))
		start, errs := r.drive(func(i int, body string) error {
			return senders[i].send(ctx, recipients[i].addr, body)
		})
		r.settle(wait)
		clusterCPU, loadCPU := cpu.stop()
		cancel()
		pending := 0
		for _, s := range senders {
			pending += s.pending()
		}
		out := r.result(systemName(transport), fmt.Sprintf("%d pairs, %s, %v window; %s", pairs, where, dur, how), rate, start)
		out.Transport = transportName(transport)
		out.ClusterCPU, out.LoadgenCPU = cores(clusterCPU), loadCPU
		out.Result = cpu.perMessage(clusterNames(c), out.Received)
		out.SetupSeconds = setupSecs
		out.GatewayRSSMiB = gatewayRSS(c) / (1 << 20)
		if n, m := discSend.Load(), discRecv.Load(); n+m > 0 {
			out.Setting += fmt.Sprintf("; links lost and re-made: %d senders, %d recipients", n, m)
		}
		if errs > 0 || pending > 0 {
			out.Setting += fmt.Sprintf("; %d send errors, %d unanswered at the end", errs, pending)
		}
		if n := notes(us); n != "" {
			out.Setting += "; " + n
		}
		if around != nil {
			around(&out)
		}
		if (out.Loss != 0 && !sat) || out.Duplicates != 0 {
			t.Errorf("p2p (%s) at %.0f/s: %d lost (%d of %d sent), %d duplicates", transport, rate, out.Loss, out.Sent-out.Received, out.Sent, out.Duplicates)
		}
		rows = append(rows, out)
		cur.Store(nil)
		if sat && !holds(out) {
			break
		}
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, u := range us {
		u.close(closeCtx)
	}
	return rows
}

// p2pTCPUsers connects n SDK users (connectAll): their private messages go
// to arrived, a lost connection (which the SDK makes again) to lost.
func p2pTCPUsers(t *run.T, c *harness.Cluster, prefix string, n int, arrived func(string, time.Time), lost func(string)) []*p2pUser {
	onEvent := func(m *member, e client.Event) {
		if e.Kind == client.EventDisconnected {
			lost(m.name)
			return
		}
		if e.Kind != client.EventMessage || e.Msg == nil || e.Msg.Group != "" {
			return
		}
		arrived(string(e.Msg.Body), time.Now())
	}
	ms := connectAll(t, c, prefix, n, 16, onEvent)
	us := make([]*p2pUser, len(ms))
	for i, m := range ms {
		cl := m.cl
		us[i] = &p2pUser{
			name: m.name, addr: m.name, gateway: cl.Info().Gateway,
			send: func(ctx context.Context, to, body string) error {
				_, err := cl.Send(ctx, to, body)
				return err
			},
			pending: cl.Pending,
			close:   func(ctx context.Context) { cl.Close(ctx) },
			notes:   func() string { return "" },
		}
	}
	return us
}

// p2pWSUsers connects n users over the gateways' WebSockets (wsClients):
// their private messages go to arrived, a lost connection (not made again)
// to lost.
func p2pWSUsers(t *run.T, c *harness.Cluster, prefix string, n int, arrived func(string, time.Time), lost func(string)) []*p2pUser {
	cls := wsClients(t, c.Route.URL, prefix, n, 16,
		func(m *cimpb.Msg, now time.Time) { arrived(string(m.GetBody()), now) },
		func(name string, err error) {
			t.Logf("WebSocket of %s ended: %v", name, err)
			lost(name)
		})
	us := make([]*p2pUser, len(cls))
	for i, cl := range cls {
		us[i] = &p2pUser{
			name: cl.name, addr: cl.id, gateway: cl.gateway,
			send:    func(_ context.Context, to, body string) error { return cl.send(to, body) },
			pending: cl.pendingCount,
			close:   func(context.Context) { cl.close() },
			notes: func() string {
				var parts []string
				if n := cl.gapSyncs.Swap(0); n > 0 {
					parts = append(parts, fmt.Sprintf("%d gap SYNCs", n))
				}
				if n := cl.errFrames.Swap(0); n > 0 {
					parts = append(parts, fmt.Sprintf("%d ERROR frames", n))
				}
				return strings.Join(parts, ", ")
			},
		}
	}
	return us
}

// notes sums up the users' notes, "" when none has any.
func notes(us []*p2pUser) string {
	var parts []string
	for _, u := range us {
		if n := u.notes(); n != "" {
			parts = append(parts, u.name+": "+n)
		}
	}
	if len(parts) > 5 {
		parts = append(parts[:5], fmt.Sprintf("and %d more users", len(parts)-5))
	}
	return strings.Join(parts, "; ")
}

// Saturation: a step holds when delivered/s is at least satShare of the
// offered rate, nothing is lost and p99 is under satP99.
const (
	satShare = 0.95
	satP99   = 50.0 // ms
)

func holds(r row) bool {
	return r.Loss == 0 && r.Duplicates == 0 && r.Delivered >= satShare*r.Offered && r.P99ms < satP99
}

// saturationRow sums up one system's saturation steps (in the order run,
// the last one possibly failed) as one row: the highest step that held.
// With no step held, Offered is 0 and the numbers are the first step's.
func saturationRow(system string, steps []row) row {
	var best *row
	var desc []string
	for i := range steps {
		s := &steps[i]
		if holds(*s) {
			best = s
			desc = append(desc, fmt.Sprintf("%.0f ok", s.Offered))
		} else {
			desc = append(desc, fmt.Sprintf("%.0f failed (delivered %.0f/s, p99 %.1f ms, loss %d)", s.Offered, s.Delivered, s.P99ms, s.Loss))
		}
	}
	out := row{System: system}
	if best != nil {
		out = *best
	} else if len(steps) > 0 {
		out = steps[0]
		out.Offered = 0
	}
	out.Workload, out.System = "saturation", system
	out.Result = "steps/s: " + strings.Join(desc, ", ")
	if best != nil && best == &steps[len(steps)-1] {
		out.Result += " (every step held: the ceiling is higher)"
	}
	if best == nil {
		out.Result += " (no step held)"
	}
	return out
}
