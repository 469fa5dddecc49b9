package transporttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// PKI is a throwaway certificate authority for tests: it issues server
// certificates for 127.0.0.1, ::1 and localhost, and client certificates
// with a chosen common name. Not safe for concurrent use.
type PKI struct {
	t      testing.TB
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool
	serial int64
}

// NewPKI creates a CA valid for an hour; it fails t on any error.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("ca key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "transporttest CA"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("ca cert: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("ca parse: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &PKI{t: t, caCert: cert, caKey: key, pool: pool, serial: 1}
}

// Pool returns the pool holding the CA certificate.
func (p *PKI) Pool() *x509.CertPool { return p.pool }

func (p *PKI) issue(cn string, usage []x509.ExtKeyUsage, server bool) tls.Certificate {
	p.t.Helper()
	return p.issueValid(cn, usage, server, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
}

func (p *PKI) issueValid(cn string, usage []x509.ExtKeyUsage, server bool, notBefore, notAfter time.Time) tls.Certificate {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatalf("key: %v", err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
	}
	if server {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		p.t.Fatalf("cert %q: %v", cn, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// ServerTLS returns a server config that requires and verifies client
// certificates signed by the CA.
func (p *PKI) ServerTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.issue("server", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, true)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.pool,
		MinVersion:   tls.VersionTLS12,
	}
}

// ClientTLS returns a client config trusting the CA, presenting a
// certificate with common name cn, or none when cn is "".
func (p *PKI) ClientTLS(cn string) *tls.Config {
	c := &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}
	if cn != "" {
		c.Certificates = []tls.Certificate{p.issue(cn, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, false)}
	}
	return c
}

// ExpiredClientTLS is ClientTLS(cn) with a certificate that expired an hour ago.
func (p *PKI) ExpiredClientTLS(cn string) *tls.Config {
	c := &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}
	c.Certificates = []tls.Certificate{p.issueValid(cn, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, false,
		time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))}
	return c
}

// PeerTLS returns the server and client configs of a cluster peer named cn:
// one certificate valid for both roles (and for 127.0.0.1, ::1, localhost),
// the server side requiring peers' certificates from the CA.
func (p *PKI) PeerTLS(cn string) (server, client *tls.Config) {
	cert := p.issue(cn, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, true)
	server = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.pool,
		MinVersion:   tls.VersionTLS12,
	}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: p.pool, MinVersion: tls.VersionTLS12}
	return server, client
}
