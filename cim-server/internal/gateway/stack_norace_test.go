//go:build !race

package gateway

import (
	"net"
	"runtime"
	"testing"
	"time"
)

// TestIdleReaderStackStaysAt4KiB guards half of an idle connection's
// memory: the goroutine that reads it. Parked in the read, it uses about
// 1,070 bytes of stack. Go halves a stack at a collection only while what
// it uses plus its 800-byte guard stays under a quarter of it, so the
// reader keeps 4 KiB as long as it uses under 1,248 bytes, and 8 KiB (the
// whole of issue 13's 8 KiB budget per connection) once a deeper call or a
// larger frame on the idle read path crosses that line (Conn.Serve and
// Conn.finish are split for it). The race detector changes frames, so this
// runs without it (make allocs).
func TestIdleReaderStackStaysAt4KiB(t *testing.T) {
	t.Run("tcp", func(t *testing.T) {
		idleReaderStack(t, startGateway(t, newFakeRoute(t).srv.URL, nil), loginIdle)
	})
	// A WebSocket waits under the WebSocket library (package wsconn), not
	// in its frame reader, which would keep 8 KiB.
	t.Run("websocket", func(t *testing.T) {
		g := startGateway(t, newFakeRoute(t).srv.URL, func(c *Config) { c.WSListen = "127.0.0.1:0" })
		idleReaderStack(t, g, wsLoginIdle)
	})
	// So does one whose client pinged (the ping answered in wsconn's wait).
	t.Run("websocket pinged", func(t *testing.T) {
		g := startGateway(t, newFakeRoute(t).srv.URL, func(c *Config) { c.WSListen = "127.0.0.1:0" })
		idleReaderStack(t, g, wsLoginPinged)
	})
	// A device waits in its adapter (mqttconn.Conn.WaitFrame).
	t.Run("mqtt", func(t *testing.T) {
		g, _ := startMQTTGateway(t, nil)
		idleReaderStack(t, g, mqttLoginIdle)
	})
}

func idleReaderStack(t *testing.T, g *Gateway, login func(testing.TB, *Gateway, int) net.Conn) {
	const n = 400
	_, stackBefore := memSplit()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range n {
		conns = append(conns, login(t, g, i))
	}
	// Every reader is past its login once the hub holds it.
	for deadline := time.Now().Add(10 * time.Second); g.Connections() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections registered, want %d", g.Connections(), n)
		}
		runtime.Gosched()
	}
	// A stack shrinks by half per collection: from wherever the login left
	// it down to what the idle reader needs.
	for range 3 {
		runtime.GC()
	}
	_, stackAfter := memSplit()
	perConn := float64(stackAfter-stackBefore) / n
	if perConn > 5<<10 {
		t.Fatalf("goroutine stacks: %.0f bytes per idle connection, want about 4 KiB: the idle read path's stack has grown past the line where Go keeps 8 KiB per reader", perConn)
	}
	t.Logf("goroutine stacks: %.0f bytes per idle connection", perConn)
}
