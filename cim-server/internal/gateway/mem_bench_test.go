package gateway

import (
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/gocim/gocim/proto/cimpb"
	"github.com/gocim/gocim/proto/codec"
)

// BenchmarkIdleConnection reports the Go memory (heap + goroutine stacks)
// one logged-in idle connection costs, client socket included. It is a
// measurement for bench/, not an assertion.
func BenchmarkIdleConnection(b *testing.B) {
	route := newFakeRoute(b)
	g := startGateway(b, route.srv.URL, nil)
	n := max(b.N, 1000)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	hb, sb := memSplit()
	before := memInUse()
	b.ResetTimer()
	for i := range n {
		c, err := net.Dial("tcp", g.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		tok := tokenFor(b, g.ID(), strconv.Itoa(i), "s"+strconv.Itoa(i))
		frame, _ := codec.Encode(&cimpb.Frame{Type: cimpb.Type_LOGIN, Login: &cimpb.Login{Token: tok}})
		if _, err := c.Write(frame); err != nil {
			b.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := readFrame(c); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	for g.Connections() != n {
		time.Sleep(time.Millisecond)
	}
	after := memInUse()
	ha, sa := memSplit()
	b.ReportMetric(float64(after-before)/float64(n), "bytes/conn")
	b.ReportMetric(float64(sa-sb)/float64(n), "stack-bytes/conn")
	b.ReportMetric(float64(ha-hb)/float64(n), "heap-bytes/conn")
}

func memInUse() uint64 {
	for range 3 {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// readFrame reads one frame without a buffered reader, so the client side
// keeps no buffer per connection.
func readFrame(c net.Conn) (*cimpb.Frame, int, error) {
	var buf []byte
	one := make([]byte, 1)
	for {
		if _, err := c.Read(one); err != nil {
			return nil, 0, err
		}
		buf = append(buf, one[0])
		if f, n, err := codec.Decode(buf, 0); err == nil {
			return f, n, nil
		}
	}
}

func memSplit() (heap, stack uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse
}
