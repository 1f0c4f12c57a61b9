package testenv

import (
	"crypto/tls"
	"io"
	"testing"
)

// TestTLS: a server with the test certificate is trusted by a client that
// trusts only the test CA, and not by one that does not.
func TestTLS(t *testing.T) {
	x := NewTLS(t)
	cert, err := tls.LoadX509KeyPair(x.CertFile, x.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("hi"))
			}()
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), x.ClientConfig())
	if err != nil {
		t.Fatalf("client trusting the test CA: %v", err)
	}
	b, _ := io.ReadAll(c)
	c.Close()
	if string(b) != "hi" {
		t.Fatalf("read %q", b)
	}
	if c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{}); err == nil {
		c.Close()
		t.Fatal("a client without the test CA trusted the server")
	}
}
