package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"testing"
)

// TestTLS: a server with the test certificate is trusted by a client that
// trusts only the test CA, and not by one that does not.
func TestTLS(t *testing.T) {
	x := NewTLS(t)
	if _, err := tls.LoadX509KeyPair(x.CertFile, x.KeyFile); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", x.ServerConfig())
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

// TestTLSHosts: a certificate made for other hosts is valid for them only,
// and a second CA does not trust the first one's certificate.
func TestTLSHosts(t *testing.T) {
	x := NewTLS(t, "gw.example.test", "10.1.2.3")
	leaf, err := x509.ParseCertificate(x.ServerConfig().Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"gw.example.test", "10.1.2.3"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: x.Pool}); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	for _, h := range []string{"127.0.0.1", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: x.Pool}); err == nil {
			t.Errorf("the certificate for other hosts is valid for %s", h)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "gw.example.test", Roots: NewTLS(t).Pool}); err == nil {
		t.Error("another test CA trusted the certificate")
	}
}
