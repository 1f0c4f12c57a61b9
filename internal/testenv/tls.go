package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TLS is a throwaway certificate authority and a server certificate it
// signed (for 127.0.0.1, ::1 and localhost unless NewTLS was given hosts),
// written as PEM files into a test directory.
type TLS struct {
	CAFile   string // the CA certificate
	CertFile string // the server certificate
	KeyFile  string // the server key
	Pool     *x509.CertPool

	cert tls.Certificate // CertFile and KeyFile, loaded
}

// ClientConfig trusts only the test CA.
func (x *TLS) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: x.Pool, MinVersion: tls.VersionTLS12}
}

// ServerConfig serves the server certificate (CertFile, KeyFile), TLS 1.2
// or later. Each call returns a new configuration.
func (x *TLS) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{x.cert}, MinVersion: tls.VersionTLS12}
}

// NewTLS makes a CA and a server certificate valid for an hour. The
// certificate is for hosts (IP addresses or DNS names), or for 127.0.0.1,
// ::1 and localhost when none are given.
func NewTLS(t TB, hosts ...string) *TLS {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("test TLS files: %v", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gocim test CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("test TLS files: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("test TLS files: %v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("test TLS files: %v", err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			leafTmpl.IPAddresses = append(leafTmpl.IPAddresses, ip)
		} else {
			leafTmpl.DNSNames = append(leafTmpl.DNSNames, h)
		}
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("test TLS files: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("test TLS files: %v", err)
	}
	x := &TLS{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "server.pem"),
		KeyFile:  filepath.Join(dir, "server-key.pem"),
		Pool:     x509.NewCertPool(),
	}
	x.Pool.AddCert(ca)
	writePEM(t, x.CAFile, "CERTIFICATE", caDER)
	writePEM(t, x.CertFile, "CERTIFICATE", leafDER)
	writePEM(t, x.KeyFile, "PRIVATE KEY", keyDER)
	if x.cert, err = tls.LoadX509KeyPair(x.CertFile, x.KeyFile); err != nil {
		t.Fatalf("test TLS files: %v", err)
	}
	return x
}

func writePEM(t TB, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatalf("test TLS files: %v", err)
	}
}
