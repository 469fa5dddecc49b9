package tlsutil_test

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
)

// TestSourceReloadRefusesExpiredCertificate: a reload whose certificate file holds an expired
// certificate (an old file copied back by mistake) keeps the previous, valid certificate and
// says why. It replaced it, and every new handshake failed until the next good reload.
func TestSourceReloadRefusesExpiredCertificate(t *testing.T) {
	dir := t.TempDir()
	past := time.Now().AddDate(0, 0, -10)
	ca := must(t)(certgen.CreateCA(certgen.Options{CommonName: "test CA", Now: func() time.Time { return past }}))
	caFile := write(t, dir, "ca", ca).cert
	opts := certgen.Options{CommonName: "fresh", DNSNames: []string{"localhost"}}
	fresh := write(t, dir, "fresh", must(t)(certgen.CreateServerCert(ca, opts)))
	opts.CommonName, opts.Days, opts.Now = "expired", 2, func() time.Time { return past }
	expired := write(t, dir, "expired", must(t)(certgen.CreateServerCert(ca, opts)))

	l := newLive(t, fresh, caFile)
	src := mustSource(t, l)
	serverCfg := must2[*tls.Config](t)(src.ServerConfig())
	alice := write(t, dir, "alice", must(t)(certgen.CreateClientCert(ca, certgen.Options{CommonName: "alice"})))
	client := must2[*tls.Config](t)(tlsutil.ClientConfig(alice.cert, alice.key, caFile, "localhost"))

	l.rotate(t, expired, "")
	err := src.Reload()
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("Reload of an expired certificate: %v, want an error saying it expired", err)
	}
	if cn := src.Certificate().Leaf.Subject.CommonName; cn != "fresh" {
		t.Errorf("after the reload the Source holds %q, want the previous certificate (fresh)", cn)
	}
	if out := handshake(t, serverCfg, client); out.clientErr != nil || out.serverErr != nil || out.clientSubject != "fresh" {
		t.Errorf("handshake after the refused reload: client %v, server %v, presented %q; want fresh", out.clientErr, out.serverErr, out.clientSubject)
	}
}
