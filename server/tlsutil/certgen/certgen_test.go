package certgen_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
)

func mustCA(t *testing.T, opts certgen.Options) *certgen.KeyPair {
	t.Helper()
	ca, err := certgen.CreateCA(opts)
	if err != nil {
		t.Fatalf("CreateCA: %v", err)
	}
	return ca
}

func TestCreateCA(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ca := mustCA(t, certgen.Options{CommonName: "commitlog CA", Organization: "acme", Days: 10, Now: func() time.Time { return now }})
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid || !c.MaxPathLenZero || c.MaxPathLen != 0 {
		t.Errorf("CA constraints: IsCA=%v valid=%v maxPathLen=%d zero=%v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("KeyUsage %v lacks CertSign", c.KeyUsage)
	}
	if c.Subject.CommonName != "commitlog CA" || !slices.Equal(c.Subject.Organization, []string{"acme"}) {
		t.Errorf("subject = %v", c.Subject)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if want := now.Add(-time.Minute); !c.NotBefore.Equal(want) {
		t.Errorf("NotBefore = %v, want %v", c.NotBefore, want)
	}
	if want := now.AddDate(0, 0, 10); !c.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", c.NotAfter, want)
	}
	if len(c.SubjectKeyId) == 0 {
		t.Error("no subject key id")
	}
}

func TestSerialNumbersAreRandom(t *testing.T) {
	ca := mustCA(t, certgen.Options{CommonName: "ca"})
	seen := map[string]bool{ca.Cert.SerialNumber.String(): true}
	for range 20 {
		leaf, err := certgen.CreateClientCert(ca, certgen.Options{CommonName: "c"})
		if err != nil {
			t.Fatal(err)
		}
		s := leaf.Cert.SerialNumber
		if s.Sign() <= 0 || s.BitLen() < 64 || s.BitLen() > 128 {
			t.Fatalf("serial %v out of range", s)
		}
		if seen[s.String()] {
			t.Fatalf("serial %v repeated", s)
		}
		seen[s.String()] = true
	}
}

func TestCreateCertKinds(t *testing.T) {
	ca := mustCA(t, certgen.Options{CommonName: "ca"})
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	tests := []struct {
		kind      certgen.Kind
		opts      certgen.Options
		wantUsage []x509.ExtKeyUsage
		wantDNS   []string
		wantIPs   []string
	}{
		{
			kind:      certgen.Server,
			opts:      certgen.Options{CommonName: "node-1"},
			wantUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			wantDNS:   []string{"localhost"},
			wantIPs:   []string{"127.0.0.1", "::1"},
		},
		{
			kind:      certgen.Server,
			opts:      certgen.Options{CommonName: "node-2", DNSNames: []string{"server.commitlog"}, IPs: []net.IP{net.ParseIP("127.0.0.12")}},
			wantUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			wantDNS:   []string{"server.commitlog"},
			wantIPs:   []string{"127.0.0.12"},
		},
		{
			kind:      certgen.Client,
			opts:      certgen.Options{CommonName: "root"},
			wantUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		},
		{
			kind:      certgen.ServerOnly,
			opts:      certgen.Options{CommonName: "proxy", DNSNames: []string{"proxy.local"}},
			wantUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			wantDNS:   []string{"proxy.local"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String()+"/"+tt.opts.CommonName, func(t *testing.T) {
			kp, err := certgen.CreateCert(ca, tt.kind, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			c := kp.Cert
			if c.IsCA {
				t.Error("leaf is a CA")
			}
			if c.Subject.CommonName != tt.opts.CommonName {
				t.Errorf("CN = %q", c.Subject.CommonName)
			}
			if !slices.Equal(c.ExtKeyUsage, tt.wantUsage) {
				t.Errorf("ExtKeyUsage = %v, want %v", c.ExtKeyUsage, tt.wantUsage)
			}
			if !slices.Equal(c.DNSNames, tt.wantDNS) {
				t.Errorf("DNSNames = %v, want %v", c.DNSNames, tt.wantDNS)
			}
			var ips []string
			for _, ip := range c.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.wantIPs) {
				t.Errorf("IPs = %v, want %v", ips, tt.wantIPs)
			}
			for _, usage := range tt.wantUsage {
				if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
					t.Errorf("verify for %v: %v", usage, err)
				}
			}
			if !slices.Equal(c.AuthorityKeyId, ca.Cert.SubjectKeyId) {
				t.Errorf("AuthorityKeyId does not name the CA")
			}
		})
	}
}

func TestCreateRejectsBadInput(t *testing.T) {
	ca := mustCA(t, certgen.Options{CommonName: "ca", Days: 30})
	leaf, err := certgen.CreateClientCert(ca, certgen.Options{CommonName: "leaf", Days: 1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		create  func() (*certgen.KeyPair, error)
		wantErr error
	}{
		{"CA without CN", func() (*certgen.KeyPair, error) { return certgen.CreateCA(certgen.Options{}) }, certgen.ErrInvalidOptions},
		{"CA negative days", func() (*certgen.KeyPair, error) {
			return certgen.CreateCA(certgen.Options{CommonName: "ca", Days: -1})
		}, certgen.ErrInvalidOptions},
		{"CA too many days", func() (*certgen.KeyPair, error) {
			return certgen.CreateCA(certgen.Options{CommonName: "ca", Days: certgen.MaxDays + 1})
		}, certgen.ErrInvalidOptions},
		{"CA with SANs", func() (*certgen.KeyPair, error) {
			return certgen.CreateCA(certgen.Options{CommonName: "ca", DNSNames: []string{"x"}})
		}, certgen.ErrInvalidOptions},
		{"leaf without CN", func() (*certgen.KeyPair, error) { return certgen.CreateClientCert(ca, certgen.Options{}) }, certgen.ErrInvalidOptions},
		{"empty DNS name", func() (*certgen.KeyPair, error) {
			return certgen.CreateServerCert(ca, certgen.Options{CommonName: "s", DNSNames: []string{""}})
		}, certgen.ErrInvalidOptions},
		{"bad IP", func() (*certgen.KeyPair, error) {
			return certgen.CreateServerCert(ca, certgen.Options{CommonName: "s", IPs: []net.IP{{1, 2, 3}}})
		}, certgen.ErrInvalidOptions},
		{"unknown kind", func() (*certgen.KeyPair, error) {
			return certgen.CreateCert(ca, certgen.Kind(42), certgen.Options{CommonName: "x"})
		}, certgen.ErrInvalidOptions},
		{"nil CA", func() (*certgen.KeyPair, error) {
			return certgen.CreateClientCert(nil, certgen.Options{CommonName: "x"})
		}, certgen.ErrNotCA},
		{"leaf as CA", func() (*certgen.KeyPair, error) {
			return certgen.CreateClientCert(leaf, certgen.Options{CommonName: "x"})
		}, certgen.ErrNotCA},
		{"CA without key", func() (*certgen.KeyPair, error) {
			return certgen.CreateClientCert(&certgen.KeyPair{Cert: ca.Cert}, certgen.Options{CommonName: "x"})
		}, certgen.ErrNotCA},
		{"outlives CA", func() (*certgen.KeyPair, error) {
			return certgen.CreateClientCert(ca, certgen.Options{CommonName: "x", Days: 31})
		}, certgen.ErrOutlivesCA},
		{"default days outlive short CA", func() (*certgen.KeyPair, error) {
			return certgen.CreateServerCert(ca, certgen.Options{CommonName: "x"})
		}, certgen.ErrOutlivesCA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kp, err := tt.create()
			if kp != nil || !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, %v; want nil, %v", kp, err, tt.wantErr)
			}
		})
	}
}
