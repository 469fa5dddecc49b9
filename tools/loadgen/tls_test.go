package loadgen

import (
	"context"
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
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/client/clienttest"
)

// testPKI is a CA with one server and one client certificate, written as PEM files.
type testPKI struct {
	caFile, certFile, keyFile string
	serverTLS                 *tls.Config
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) (tls.Certificate, []byte, []byte) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return pair, certPEM, keyPEM
	}
	serverCert, _, _ := issue(2, "server", x509.ExtKeyUsageServerAuth)
	_, clientPEM, clientKeyPEM := issue(3, "root", x509.ExtKeyUsageClientAuth)
	p := testPKI{
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "client.pem"),
		keyFile:  filepath.Join(dir, "client-key.pem"),
	}
	for file, data := range map[string][]byte{
		p.caFile:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		p.certFile: clientPEM,
		p.keyFile:  clientKeyPEM,
	} {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	p.serverTLS = &tls.Config{
		Certificates: []tls.Certificate{serverCert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	}
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestRunOverMutualTLS runs producers and readers through mTLS set up from PEM files by
// client.LoadTLS, as commitlog-bench's -tls-* flags do.
func TestRunOverMutualTLS(t *testing.T) {
	p := newTestPKI(t)
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			log := clienttest.New()
			srv, err := log.Serve(clienttest.ServeOptions{Transport: tr, TLS: p.serverTLS})
			if err != nil {
				t.Fatal(err)
			}
			addr, stop := srv.Addr(), func() { _ = srv.Close() }
			t.Cleanup(stop)
			tlsCfg, err := client.LoadTLS(p.caFile, p.certFile, p.keyFile, "")
			if err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(tr, addr)
			cfg.TLS = tlsCfg
			cfg.Mode = ModeStream
			cfg.Producers = 1
			cfg.StreamConsumers = 1
			cfg.Records = 50
			res, err := Run(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Produce.Records != 50 || res.Stream.Records != 50 || log.Len() != 50 {
				t.Fatalf("produce %+v stream %+v", res.Produce, res.Stream)
			}

			// Without the client certificate the server refuses the handshake.
			noCert, err := client.LoadTLS(p.caFile, "", "", "")
			if err != nil {
				t.Fatal(err)
			}
			cfg.TLS = noCert
			cfg.ClientOptions = append(cfg.ClientOptions, client.WithMaxRetries(0))
			cfg.MaxErrors = 1
			if _, err := Run(context.Background(), cfg, nil); err == nil {
				t.Fatal("run without a client certificate succeeded")
			}
		})
	}
}
