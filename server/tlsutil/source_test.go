package tlsutil_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
)

// copyFile copies src over dst (replacing it atomically, as an operator rotating files would).
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeBytes(t, dst, data)
}

func writeBytes(t *testing.T, dst string, data []byte) {
	t.Helper()
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// live is a set of files a Source reads, which the test rotates.
type live struct{ cert, key, ca string }

func newLive(t *testing.T, kp files, caFile string) live {
	t.Helper()
	dir := t.TempDir()
	l := live{filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")}
	l.rotate(t, kp, caFile)
	return l
}

func (l live) rotate(t *testing.T, kp files, caFile string) {
	t.Helper()
	if kp.cert != "" {
		copyFile(t, kp.cert, l.cert)
		copyFile(t, kp.key, l.key)
	}
	if caFile != "" {
		copyFile(t, caFile, l.ca)
	}
}

// TestSourceReloadServer checks that a server configuration built from a Source follows
// Reload: a new handshake sees the new certificate and verifies clients against the new CA
// bundle; a file that does not load keeps the previous credentials.
func TestSourceReloadServer(t *testing.T) {
	f := newFixture(t)
	l := newLive(t, f.server, f.caFile)
	src, err := tlsutil.NewSource(l.cert, l.key, l.ca)
	if err != nil {
		t.Fatal(err)
	}
	serverCfg, err := src.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	alice := must2[*tls.Config](t)(tlsutil.ClientConfig(f.alice.cert, f.alice.key, f.caFile, "localhost"))
	otherAlice := must2[*tls.Config](t)(tlsutil.ClientConfig(f.otherAlice.cert, f.otherAlice.key, f.caFile, "localhost"))

	expect := func(step string, out outcome, wantServerCN string, wantOK bool) {
		t.Helper()
		ok := out.clientErr == nil && out.serverErr == nil
		if ok != wantOK {
			t.Fatalf("%s: handshake ok=%v (client %v, server %v), want ok=%v", step, ok, out.clientErr, out.serverErr, wantOK)
		}
		if ok && out.clientSubject != wantServerCN {
			t.Fatalf("%s: server presented %q, want %q", step, out.clientSubject, wantServerCN)
		}
	}
	expect("start", handshake(t, serverCfg, alice), "node-1", true)

	// A new certificate: the next handshake presents it.
	l.rotate(t, f.node2, "")
	if err := src.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	expect("rotated certificate", handshake(t, serverCfg, alice), "node-2", true)

	// A broken certificate file, then a key that does not match: kept the previous pair.
	writeBytes(t, l.cert, []byte("not a certificate"))
	if err := src.Reload(); err == nil {
		t.Fatal("Reload of a garbage certificate succeeded")
	}
	expect("garbage certificate", handshake(t, serverCfg, alice), "node-2", true)
	copyFile(t, f.server.cert, l.cert) // node-1's certificate with node-2's key
	if err := src.Reload(); err == nil {
		t.Fatal("Reload of a certificate with another's key succeeded")
	}
	expect("mismatched key", handshake(t, serverCfg, alice), "node-2", true)
	copyFile(t, f.node2.cert, l.cert)

	// A new CA bundle: clients of the old CA are refused, those of the new one accepted.
	expect("other CA's client before", handshake(t, serverCfg, otherAlice), "", false)
	l.rotate(t, files{}, f.otherCAFile)
	if err := src.Reload(); err != nil {
		t.Fatalf("Reload CA: %v", err)
	}
	expect("old CA's client after", handshake(t, serverCfg, alice), "", false)
	expect("new CA's client after", handshake(t, serverCfg, otherAlice), "node-2", true)

	// An empty CA file: kept the previous bundle.
	writeBytes(t, l.ca, nil)
	if err := src.Reload(); !errors.Is(err, tlsutil.ErrNoCertificates) {
		t.Fatalf("Reload of an empty CA file: %v, want ErrNoCertificates", err)
	}
	expect("empty CA file", handshake(t, serverCfg, otherAlice), "node-2", true)
}

// TestSourceReloadPeer checks both ends of a peer configuration built from Sources: the dialing
// side presents its reloaded certificate too.
func TestSourceReloadPeer(t *testing.T) {
	f := newFixture(t)
	ls, ld := newLive(t, f.server, f.caFile), newLive(t, f.node2, f.caFile)
	acc := mustSource(t, ls)
	dial := mustSource(t, ld)
	accCfg := must2[*tls.Config](t)(acc.PeerConfig(""))
	dialCfg := must2[*tls.Config](t)(dial.PeerConfig("server.commitlog"))

	out := handshake(t, accCfg, dialCfg)
	if out.serverErr != nil || out.clientErr != nil || out.serverSubject != "node-2" || out.clientSubject != "node-1" {
		t.Fatalf("before: %+v", out)
	}
	ld.rotate(t, f.server, "") // the dialer now presents node-1
	if err := dial.Reload(); err != nil {
		t.Fatal(err)
	}
	if out := handshake(t, accCfg, dialCfg); out.serverErr != nil || out.serverSubject != "node-1" {
		t.Fatalf("after rotating the dialer's certificate: %+v", out)
	}
	// A client certificate (no server authentication) is still refused as a peer.
	ld.rotate(t, f.aliceSAN, "")
	if err := dial.Reload(); err != nil {
		t.Fatal(err)
	}
	if out := handshake(t, accCfg, dialCfg); out.serverErr == nil {
		t.Fatalf("a client certificate was accepted as a peer's after reload: %+v", out)
	}
}

// TestSourceExpiries checks the expiry dates a Source reports.
func TestSourceExpiries(t *testing.T) {
	f := newFixture(t)
	src := mustSource(t, newLive(t, f.server, f.caFile))
	leaf := must(t)(certgen.LoadKeyPair(f.server.cert, f.server.key)).Cert
	ca := mustCert(t, f.caFile)
	got := src.Expiries()
	if len(got) != 2 {
		t.Fatalf("Expiries = %+v, want the certificate and the CA", got)
	}
	if got[0].CA || got[0].Subject != "node-1" || !got[0].NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("certificate expiry %+v, want node-1 until %v", got[0], leaf.NotAfter)
	}
	if !got[1].CA || got[1].Subject != "test CA" || !got[1].NotAfter.Equal(ca.NotAfter) {
		t.Errorf("CA expiry %+v, want test CA until %v", got[1], ca.NotAfter)
	}
	if _, err := tlsutil.NewSource("", "", ""); !errors.Is(err, tlsutil.ErrMissingFile) {
		t.Errorf("NewSource with no files: %v, want ErrMissingFile", err)
	}
}

func mustSource(t *testing.T, l live) *tlsutil.Source {
	t.Helper()
	src, err := tlsutil.NewSource(l.cert, l.key, l.ca)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func mustCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: no PEM block", file)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func must2[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
