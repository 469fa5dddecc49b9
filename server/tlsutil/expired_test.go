package tlsutil_test

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
)

// TestSourceReloadRefusesCertificateOutOfValidity: a reload whose certificate file holds a
// certificate outside its validity keeps the previous, valid certificate and says why. An
// expired one (an old file copied back by mistake), or one not valid yet (issued by a host
// whose clock is ahead, or with a start date to come), replaced the working certificate, and
// every new handshake, clients' and peers' alike, failed until the next good reload: a node
// rotated so was cut off from its clients and its cluster.
func TestSourceReloadRefusesCertificateOutOfValidity(t *testing.T) {
	past := time.Now().AddDate(0, 0, -10)
	for _, tc := range []struct {
		name string
		opts certgen.Options
		want error
		says string
	}{
		{"expired", certgen.Options{Days: 2, Now: func() time.Time { return past }}, tlsutil.ErrExpired, "expired"},
		{"not valid yet", certgen.Options{Now: func() time.Time { return time.Now().Add(time.Hour) }}, tlsutil.ErrNotYetValid, "valid from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ca := must(t)(certgen.CreateCA(certgen.Options{CommonName: "test CA", Now: func() time.Time { return past }}))
			caFile := write(t, dir, "ca", ca).cert
			fresh := write(t, dir, "fresh", must(t)(certgen.CreateServerCert(ca, certgen.Options{CommonName: "fresh", DNSNames: []string{"localhost"}})))
			opts := tc.opts
			opts.CommonName, opts.DNSNames = "bad", []string{"localhost"}
			bad := write(t, dir, "bad", must(t)(certgen.CreateServerCert(ca, opts)))

			l := newLive(t, fresh, caFile)
			src := mustSource(t, l)
			serverCfg := must2[*tls.Config](t)(src.ServerConfig())
			alice := write(t, dir, "alice", must(t)(certgen.CreateClientCert(ca, certgen.Options{CommonName: "alice"})))
			client := must2[*tls.Config](t)(tlsutil.ClientConfig(alice.cert, alice.key, caFile, "localhost"))

			l.rotate(t, bad, "")
			err := src.Reload()
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("Reload of a certificate %s: %v, want %v saying %q", tc.name, err, tc.want, tc.says)
			}
			if cn := src.Certificate().Leaf.Subject.CommonName; cn != "fresh" {
				t.Errorf("after the reload the Source holds %q, want the previous certificate (fresh)", cn)
			}
			if out := handshake(t, serverCfg, client); out.clientErr != nil || out.serverErr != nil || out.clientSubject != "fresh" {
				t.Errorf("handshake after the refused reload: client %v, server %v, presented %q; want fresh", out.clientErr, out.serverErr, out.clientSubject)
			}
		})
	}
}

// TestNewSourceRefusesExpiredCertificate: a Source built from an expired certificate (a server
// started with it) was accepted: the server started, logged the expiry, and then failed every
// TLS handshake, clients' and peers' alike, while looking healthy to its supervisor. NewSource
// refuses it as Reload does, naming the file and when it expired. An expired CA of the bundle
// is not refused (a bundle keeps the old CA during a rotation).
func TestNewSourceRefusesExpiredCertificate(t *testing.T) {
	dir := t.TempDir()
	past := time.Now().AddDate(0, 0, -10)
	ca := must(t)(certgen.CreateCA(certgen.Options{CommonName: "test CA", Now: func() time.Time { return past }}))
	caFile := write(t, dir, "ca", ca).cert
	expiredCert := must(t)(certgen.CreateServerCert(ca, certgen.Options{CommonName: "expired", DNSNames: []string{"localhost"}, Days: 2,
		Now: func() time.Time { return past }}))
	expired := write(t, dir, "expired", expiredCert)

	_, err := tlsutil.NewSource(expired.cert, expired.key, caFile)
	notAfter := expiredCert.Cert.NotAfter.UTC().Format(time.RFC3339)
	if err == nil || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), expired.cert) || !strings.Contains(err.Error(), notAfter) {
		t.Fatalf("NewSource with an expired certificate: %v; want an error naming %s and its expiry %s", err, expired.cert, notAfter)
	}

	oldCA := must(t)(certgen.CreateCA(certgen.Options{CommonName: "old CA", Days: 2, Now: func() time.Time { return past }}))
	bundle := filepath.Join(dir, "bundle.pem")
	if err := os.WriteFile(bundle, append(must2[[]byte](t)(os.ReadFile(caFile)), oldCA.CertPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := write(t, dir, "fresh", must(t)(certgen.CreateServerCert(ca, certgen.Options{CommonName: "fresh", DNSNames: []string{"localhost"}})))
	if _, err := tlsutil.NewSource(fresh.cert, fresh.key, bundle); err != nil {
		t.Errorf("NewSource with a valid certificate and an expired CA in the bundle: %v, want it accepted", err)
	}
}

// TestNewSourceRefusesNotYetValidCertificate: a server started with a certificate not valid
// yet started, looked healthy, and failed every TLS handshake until the certificate's start.
// NewSource refuses it as it refuses an expired one, naming the file and when it becomes
// valid.
func TestNewSourceRefusesNotYetValidCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := must(t)(certgen.CreateCA(certgen.Options{CommonName: "test CA"}))
	caFile := write(t, dir, "ca", ca).cert
	futureCert := must(t)(certgen.CreateServerCert(ca, certgen.Options{CommonName: "future", DNSNames: []string{"localhost"},
		Now: func() time.Time { return time.Now().Add(time.Hour) }}))
	future := write(t, dir, "future", futureCert)

	_, err := tlsutil.NewSource(future.cert, future.key, caFile)
	notBefore := futureCert.Cert.NotBefore.UTC().Format(time.RFC3339)
	if !errors.Is(err, tlsutil.ErrNotYetValid) || !strings.Contains(err.Error(), future.cert) || !strings.Contains(err.Error(), notBefore) {
		t.Fatalf("NewSource with a certificate not valid yet: %v; want ErrNotYetValid naming %s and its start %s", err, future.cert, notBefore)
	}
}
