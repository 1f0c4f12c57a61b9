package main

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gocim/gocim/bench/internal/run"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// p2pNATS runs the private-message latency workload on an embedded
// nats-server (core NATS: no JetStream, no storage) on a free loopback
// port: pairs sender connections publish to one subject per recipient
// connection, one set of connections for all rates. It is the ceiling for
// one relay hop. The server runs inside this process, so its CPU is in the
// load generator's. With sat, rates are saturation steps: the loop stops
// after the first step that does not hold (see holds).
func p2pNATS(t *run.T, pairs int, rates []float64, dur, wait time.Duration, sat bool) []row {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats-server did not start")
	}
	url := s.ClientURL()
	var cur atomic.Pointer[p2pRun]
	var conns []*nats.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	senders := make([]*nats.Conn, pairs)
	base := runIDs.Add(1) // keeps subjects apart from another call's
	for i := 0; i < pairs; i++ {
		rc, err := nats.Connect(url)
		if err != nil {
			t.Fatalf("nats connect: %v", err)
		}
		sc, err := nats.Connect(url)
		if err != nil {
			t.Fatalf("nats connect: %v", err)
		}
		conns = append(conns, rc, sc)
		senders[i] = sc
		if _, err := rc.Subscribe(subject(base, i), func(m *nats.Msg) {
			if r := cur.Load(); r != nil {
				r.arrived(string(m.Data), time.Now())
			}
		}); err != nil {
			t.Fatalf("nats subscribe: %v", err)
		}
		if err := rc.Flush(); err != nil {
			t.Fatalf("nats flush: %v", err)
		}
	}
	var rows []row
	for _, rate := range rates {
		r := newP2PRun(pairs, rate, dur)
		cur.Store(r)
		cpu := startCPU(nil)
		start, errs := r.drive(func(i int, body string) error {
			return senders[i].Publish(subject(base, i), []byte(body))
		})
		for _, sc := range senders {
			sc.Flush()
		}
		r.settle(wait)
		_, loadCPU := cpu.stop()
		cur.Store(nil)
		out := r.result("nats (embedded, no storage)",
			fmt.Sprintf("nats-server v%s in the loadgen process (its CPU is in loadgen CPU), core pub/sub, %d pairs, %v window", server.VERSION, pairs, dur),
			rate, start)
		out.LoadgenCPU, out.Transport = loadCPU, "tcp"
		if errs > 0 {
			out.Setting += fmt.Sprintf("; %d publish errors", errs)
		}
		rows = append(rows, out)
		if sat && !holds(out) {
			break
		}
	}
	return rows
}

func subject(run int64, pair int) string {
	return "bench.p2p." + strconv.FormatInt(run, 10) + "." + strconv.Itoa(pair)
}
