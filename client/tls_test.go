package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// testPKI is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate with CN "root".
type testPKI struct {
	caDER  []byte
	pool   *x509.CertPool
	server tls.Certificate
	client tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return testPKI{
		caDER:  caDER,
		pool:   pool,
		server: issue(2, "server", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)}),
		client: issue(3, "root", x509.ExtKeyUsageClientAuth, nil),
	}
}

func TestMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			c, err := startFakeClusterTLS(tr, 3, &tls.Config{
				Certificates: []tls.Certificate{pki.server},
				ClientCAs:    pki.pool,
				ClientAuth:   tls.RequireAndVerifyClientCert,
				MinVersion:   tls.VersionTLS13,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.stop)
			cl := newClient(t, c, nil, client.WithTLS(&tls.Config{
				Certificates: []tls.Certificate{pki.client},
				RootCAs:      pki.pool,
				MinVersion:   tls.VersionTLS13,
			}))
			if _, err := cl.Produce(context.Background(), []byte("secret")); err != nil {
				t.Fatalf("Produce over mTLS: %v", err)
			}
			if got, _ := c.nodes[0].subject.Load().(string); got != "root" {
				t.Errorf("server saw subject %q, want root", got)
			}

			// Without a client certificate the handshake fails: New
			// cannot learn the cluster.
			_, err = client.New(context.Background(), c.addrs(),
				client.WithTransport(tr),
				client.WithTLS(&tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS13}),
				client.WithMaxRetries(0))
			if !errors.Is(err, client.ErrUnavailable) {
				t.Errorf("New without a client certificate: err = %v, want ErrUnavailable", err)
			}
		})
	}
}
