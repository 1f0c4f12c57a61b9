package gateway

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
)

// BenchmarkHeartbeat reports the CPU (the whole test process: gateway and
// clients) per PING → PONG of connections that are otherwise idle, their
// PINGs further apart than --idle-buffers: kept (0: each holds its read
// buffers) against released (each gives them back between PINGs). The
// clients' share is the same in both; the difference is the gateway's.
func BenchmarkHeartbeat(b *testing.B) {
	b.Run("kept", func(b *testing.B) { benchHeartbeat(b, 0) })
	b.Run("released", func(b *testing.B) { benchHeartbeat(b, 5*time.Millisecond) })
}

func benchHeartbeat(b *testing.B, idleBuffers time.Duration) {
	route := newFakeRoute(b)
	g := startGateway(b, route.srv.URL, func(c *Config) { c.IdleBuffers = idleBuffers })
	const n = 1000
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = loginIdle(b, g, i)
		defer conns[i].Close()
	}
	ping, _ := codec.Encode(&cimpb.Frame{Type: cimpb.Type_PING})
	buf := make([]byte, 64)
	// A round PINGs every connection once; a connection's PINGs are a
	// round apart (≈ 10 ms here, more than the idle spell).
	round := func() {
		for _, c := range conns {
			if _, err := c.Write(ping); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Read(buf); err != nil { // PONG: a few bytes, one segment
				b.Fatal(err)
			}
		}
	}
	round()
	time.Sleep(2 * idleBuffers)
	rounds := max(b.N/n, 1)
	cpu0 := processCPU()
	b.ResetTimer()
	for range rounds {
		round()
	}
	b.StopTimer()
	b.ReportMetric(float64(processCPU()-cpu0)/float64(rounds*n), "cpu-ns/ping")
}

// processCPU is the process's user and system CPU time so far, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
