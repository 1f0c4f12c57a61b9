package connlimit

import (
	"net"
	"testing"
)

func tcp(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return a
}

func TestAcquirePerAddressAndTotal(t *testing.T) {
	l := New(2, 3)
	a1, a2, b := tcp("10.0.0.1:1000"), tcp("10.0.0.1:1001"), tcp("10.0.0.2:1000")
	r1, why := l.Acquire(a1)
	if why != "" {
		t.Fatalf("first: %s", why)
	}
	if _, why := l.Acquire(a2); why != "" {
		t.Fatalf("second from the same address: %s", why)
	}
	if _, why := l.Acquire(a1); why != PerAddr {
		t.Fatalf("third from the same address: %q, want %q", why, PerAddr)
	}
	if _, why := l.Acquire(b); why != "" {
		t.Fatalf("another address: %s", why)
	}
	if _, why := l.Acquire(tcp("10.0.0.3:1")); why != Total {
		t.Fatalf("fourth in all: %q, want %q", why, Total)
	}
	r1()
	r1() // twice is once
	if got := l.Count(); got != 2 {
		t.Fatalf("count %d after one release, want 2", got)
	}
	if got := l.CountFor(a1); got != 1 {
		t.Fatalf("10.0.0.1 holds %d, want 1", got)
	}
	if _, why := l.Acquire(a1); why != "" {
		t.Fatalf("after a release: %s", why)
	}
}

func TestIPv6CountsPer64(t *testing.T) {
	l := New(1, 0)
	if _, why := l.Acquire(tcp("[2001:db8:1:2::1]:1")); why != "" {
		t.Fatal(why)
	}
	if _, why := l.Acquire(tcp("[2001:db8:1:2::ffff]:1")); why != PerAddr {
		t.Fatalf("same /64: %q, want %q", why, PerAddr)
	}
	if _, why := l.Acquire(tcp("[2001:db8:1:3::1]:1")); why != "" {
		t.Fatalf("another /64: %s", why)
	}
	// IPv4-mapped IPv6 is the IPv4 address.
	if _, why := l.Acquire(tcp("[::ffff:10.0.0.9]:1")); why != "" {
		t.Fatal(why)
	}
	if _, why := l.Acquire(tcp("10.0.0.9:2")); why != PerAddr {
		t.Fatalf("mapped and plain IPv4: %q, want %q", why, PerAddr)
	}
}

func TestListenClosesConnectionsOverTheLimit(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(1, 0)
	refused := make(chan Reason, 4)
	ln := Listen(inner, l, ListenOptions{Refused: func(_ net.Addr, why Reason) { refused <- why }})
	defer ln.Close()

	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	c1, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	s1 := <-accepted
	c2, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if why := <-refused; why != PerAddr {
		t.Fatalf("second connection refused for %q, want %q", why, PerAddr)
	}
	// The refused one was closed by the server: the client reads EOF.
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("refused connection still open")
	}
	// Closing the first gives its slot back.
	s1.Close()
	c3, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	s3 := <-accepted
	defer s3.Close()
	if l.Count() != 1 {
		t.Fatalf("count %d, want 1", l.Count())
	}
}
