package tlsutil_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
)

// files names a certificate and key written to disk.
type files struct{ cert, key string }

// fixture is a small PKI on disk: a trusted CA, an untrusted one, and
// certificates of every kind the tests present.
type fixture struct {
	base        time.Time // when the leaf certificates start (minus skew)
	caFile      string    // trusted CA certificate
	otherCAFile string    // a CA nobody trusts here

	server      files // Server kind, SANs localhost, 127.0.0.1, ::1, server.commitlog, node-1.node.commitlog
	node2       files // Server kind, another peer (node-2.node.commitlog)
	unnamed     files // Server kind (both usages) from the CA, naming no node: not a peer
	serverOnly  files // ServerOnly kind
	alice       files // Client kind, CN alice
	otherAlice  files // Client kind, CN alice, issued by the other CA
	selfSigned  files // self-signed, ClientAuth, CN alice
	futureAlice files // Client kind, valid from base + 10 days
	noCN        files // Client kind with an empty common name (made by hand)
	aliceSAN    files // Client kind with SANs localhost, 127.0.0.1, so only its key usage is wrong for a server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	base := time.Now()
	f := &fixture{base: base}
	// The CA starts 30 days earlier, so moving a clock back a few days
	// makes only the leaves not yet valid.
	ca := must(t)(certgen.CreateCA(certgen.Options{CommonName: "test CA", Now: func() time.Time { return base.AddDate(0, 0, -30) }}))
	other := must(t)(certgen.CreateCA(certgen.Options{CommonName: "other CA"}))
	f.caFile = write(t, dir, "ca", ca).cert
	f.otherCAFile = write(t, dir, "other-ca", other).cert

	peerSANs := certgen.Options{DNSNames: []string{"localhost", "server.commitlog"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
	f.unnamed = write(t, dir, "unnamed", must(t)(certgen.CreateServerCert(ca, certgen.Options{CommonName: "node-3",
		DNSNames: peerSANs.DNSNames, IPs: peerSANs.IPs})))
	for _, n := range []struct {
		name string
		to   *files
	}{{"node-1", &f.server}, {"node-2", &f.node2}} {
		opts := peerSANs
		opts.CommonName = n.name
		opts.DNSNames = append(slices.Clip(opts.DNSNames), tlsutil.NodeDNSName(n.name))
		*n.to = write(t, dir, n.name, must(t)(certgen.CreateServerCert(ca, opts)))
	}
	f.serverOnly = write(t, dir, "proxy", must(t)(certgen.CreateCert(ca, certgen.ServerOnly, certgen.Options{CommonName: "proxy"})))
	f.alice = write(t, dir, "alice", must(t)(certgen.CreateClientCert(ca, certgen.Options{CommonName: "alice"})))
	f.aliceSAN = write(t, dir, "alice-san", must(t)(certgen.CreateClientCert(ca, certgen.Options{
		CommonName: "alice", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
	})))
	f.otherAlice = write(t, dir, "other-alice", must(t)(certgen.CreateClientCert(other, certgen.Options{CommonName: "alice"})))
	f.futureAlice = write(t, dir, "future-alice", must(t)(certgen.CreateClientCert(ca, certgen.Options{
		CommonName: "alice", Days: 30, Now: func() time.Time { return base.AddDate(0, 0, 10) },
	})))
	f.selfSigned = writeSelfSigned(t, dir, "self-signed", "alice", nil)
	f.noCN = writeSelfSigned(t, dir, "no-cn", "", ca)
	return f
}

func must(t *testing.T) func(*certgen.KeyPair, error) *certgen.KeyPair {
	return func(kp *certgen.KeyPair, err error) *certgen.KeyPair {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
}

func write(t *testing.T, dir, name string, kp *certgen.KeyPair) files {
	t.Helper()
	f := files{cert: filepath.Join(dir, name+".pem"), key: filepath.Join(dir, name+"-key.pem")}
	if err := kp.WriteFiles(f.cert, f.key, false); err != nil {
		t.Fatal(err)
	}
	return f
}

// writeSelfSigned makes a client certificate by hand: self-signed when
// issuer is nil (certgen refuses to make such a leaf), else signed by issuer
// with the given (possibly empty) common name.
func writeSelfSigned(t *testing.T, dir, name, cn string, issuer *certgen.KeyPair) files {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	parent, signer := tmpl, any(key)
	if issuer != nil {
		parent, signer = issuer.Cert, issuer.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := files{cert: filepath.Join(dir, name+".pem"), key: filepath.Join(dir, name+"-key.pem")}
	if err := os.WriteFile(f.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
