package app

import (
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/gocim/gocim/internal/connlimit"
)

// accepted dials ln n times, one after the other, and reports per
// connection whether the listener handed it out (kept) or closed it
// (refused): whichever of the two happens first.
func accepted(t *testing.T, ln net.Listener, n int) []bool {
	t.Helper()
	kept := make(chan net.Conn)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			kept <- c
		}
	}()
	var out []bool
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		closed := make(chan struct{})
		go func() {
			io.Copy(io.Discard, c) // returns when the listener closes it (or at the end of the test)
			close(closed)
		}()
		select {
		case sc := <-kept:
			t.Cleanup(func() { sc.Close() })
			out = append(out, true)
		case <-closed:
			out = append(out, false)
		}
	}
	return out
}

// TestLimitListener: one address gets its cap of connections; a trusted
// proxy's address is exempt from it (it carries many clients).
func TestLimitListener(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	for _, tt := range []struct {
		name   string
		exempt []string
		want   []bool
	}{
		{"capped", nil, []bool{true, true, false}},
		{"trusted proxy", []string{"127.0.0.1"}, []bool{true, true, true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ln := newLimitListener(inner, connlimit.New(2, 0), proxyPrefixes(tt.exempt), quiet)
			defer ln.Close()
			got := accepted(t, ln, 3)
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("kept %v, want %v", got, tt.want)
				}
			}
		})
	}
	if n := publicConnLimit(0); connlimit.OpenFiles() > 0 && (n <= 0 || n >= connlimit.OpenFiles()) {
		t.Fatalf("default total cap %d with an open-file limit of %d: want a reserve kept", n, connlimit.OpenFiles())
	}
	if n := publicConnLimit(500); n != 500 {
		t.Fatalf("--max-conns 500 gives %d", n)
	}
}
