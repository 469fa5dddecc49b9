package tlsutil_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
)

// peerOpts are the names of node-1's peer certificate.
var peerOpts = certgen.Options{CommonName: "node-1", DNSNames: []string{"localhost", "server.commitlog", tlsutil.NodeDNSName("node-1")}}

// intermediateChain writes a root CA that may sign one intermediate, an intermediate CA, and
// node-1's peer certificate issued by the intermediate: chainFile holds the leaf then the
// intermediate (as a CA's issuing service delivers it), leafOnly the leaf alone.
func intermediateChain(t *testing.T, dir string) (rootFile string, chain, leafOnly files) {
	t.Helper()
	newCA := func(cn string, parent *certgen.KeyPair) *certgen.KeyPair {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
			IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1, MaxPathLenZero: parent != nil,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		}
		issuer, signer := tmpl, any(key)
		if parent != nil {
			issuer, signer = parent.Cert, parent.Key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return &certgen.KeyPair{Cert: cert, Key: key, CertPEM: pemCert(der)}
	}
	root := newCA("root CA", nil)
	inter := newCA("intermediate CA", root)
	leaf := must(t)(certgen.CreateServerCert(inter, peerOpts))
	leafOnly = write(t, dir, "inter-leaf", leaf)
	chain = files{cert: filepath.Join(dir, "inter-chain.pem"), key: leafOnly.key}
	writeBytes(t, chain.cert, append(append([]byte{}, leaf.CertPEM...), inter.CertPEM...))
	rootFile = filepath.Join(dir, "root-ca.pem")
	writeBytes(t, rootFile, root.CertPEM)
	return rootFile, chain, leafOnly
}

// TestVerifyOwnPeer: a node's own peer certificate is checked by the rules its peers apply,
// against its own peer CA bundle. A certificate of another CA is refused, naming the file,
// its issuer and the bundle; a bundle of two CAs (a rotation) accepts either's; a chain
// through an intermediate CA is accepted when the file holds the intermediate, as peers accept
// it in a handshake; an intermediate that does not parse is refused, naming the file.
func TestVerifyOwnPeer(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	otherCA := must(t)(certgen.CreateCA(certgen.Options{CommonName: "stranger CA"}))
	otherCAFile := write(t, dir, "stranger-ca", otherCA).cert
	stranger := write(t, dir, "stranger-node-1", must(t)(certgen.CreateServerCert(otherCA, peerOpts)))
	bundle := filepath.Join(dir, "bundle.pem")
	writeBytes(t, bundle, append(readFile(t, f.caFile), readFile(t, otherCAFile)...))
	rootFile, chain, leafOnly := intermediateChain(t, dir)
	// An intermediate that does not parse (tls.LoadX509KeyPair parses the leaf only).
	garbled := files{cert: filepath.Join(dir, "garbled-chain.pem"), key: leafOnly.key}
	writeBytes(t, garbled.cert, append(readFile(t, leafOnly.cert), pemCert([]byte("not a certificate"))...))

	for _, tt := range []struct {
		name     string
		cert     files
		caFile   string
		wantErr  bool
		contains []string
	}{
		{"the cluster CA's node certificate", f.server, f.caFile, false, nil},
		{"another CA's node certificate", stranger, f.caFile, true,
			[]string{stranger.cert, `"stranger CA"`, f.caFile, "unknown authority"}},
		{"the other CA's certificate, its own CA only", stranger, otherCAFile, false, nil},
		{"rotation bundle, old CA's certificate", f.server, bundle, false, nil},
		{"rotation bundle, new CA's certificate", stranger, bundle, false, nil},
		{"through an intermediate in the file", chain, rootFile, false, nil},
		{"intermediate missing from the file", leafOnly, rootFile, true, []string{`"intermediate CA"`, "unknown authority"}},
		{"unparseable intermediate in the file", garbled, rootFile, true, []string{"certificate 1 of the chain", garbled.cert, "x509: malformed"}},
		{"client certificate", f.aliceSAN, f.caFile, true, []string{"server authentication"}},
		{"certificate naming no node", f.unnamed, f.caFile, true, []string{"names no node"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cert := must2[tls.Certificate](t)(tls.LoadX509KeyPair(tt.cert.cert, tt.cert.key))
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(readFile(t, tt.caFile))
			err := tlsutil.VerifyOwnPeer(&cert, pool, tt.cert.cert, tt.caFile)
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, tlsutil.ErrPeerRefused)) {
				t.Fatalf("VerifyOwnPeer = %v, want error: %v (ErrPeerRefused)", err, tt.wantErr)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("VerifyOwnPeer = %v, want it to name %s", err, s)
				}
			}
		})
	}

	// What VerifyOwnPeer accepts and refuses, peers do: the intermediate chain against a peer
	// of the root CA, both ways.
	for _, tt := range []struct {
		name string
		cert files
		ok   bool
	}{{"with the intermediate", chain, true}, {"without it", leafOnly, false}} {
		t.Run("handshake "+tt.name, func(t *testing.T) {
			peer := f.node2
			// node-2 is of the fixture's CA: trust both roots on both sides.
			both := filepath.Join(t.TempDir(), "both.pem")
			writeBytes(t, both, append(readFile(t, f.caFile), readFile(t, rootFile)...))
			self := must2[*tls.Config](t)(tlsutil.PeerConfig(tt.cert.cert, tt.cert.key, both, "server.commitlog"))
			other := must2[*tls.Config](t)(tlsutil.PeerConfig(peer.cert, peer.key, both, "server.commitlog"))
			in := handshake(t, other, self) // self dials
			out := handshake(t, self, other)
			if ok := in.serverErr == nil && in.clientErr == nil && out.clientErr == nil && out.serverErr == nil; ok != tt.ok {
				t.Errorf("handshakes: dialing %+v, dialed %+v; want accepted: %v", in, out, tt.ok)
			}
		})
	}
}

// TestSourcePeerRefusesCertificateOfAnotherCA: ReloadPeer keeps the previous certificate when
// the new one is of a CA the peer CA bundle does not hold, as Reload does for an expired one,
// and CheckPeer refuses such a Source at start. A rotation (a bundle of both CAs, then the new
// CA's certificate) goes through.
func TestSourcePeerRefusesCertificateOfAnotherCA(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	newCA := must(t)(certgen.CreateCA(certgen.Options{CommonName: "new CA"}))
	newCAFile := write(t, dir, "new-ca", newCA).cert
	rotated := write(t, dir, "rotated-node-1", must(t)(certgen.CreateServerCert(newCA, peerOpts)))

	l := newLive(t, f.server, f.caFile)
	src := mustSource(t, l)
	if err := src.CheckPeer(); err != nil {
		t.Fatalf("CheckPeer of the cluster CA's certificate: %v", err)
	}
	l.rotate(t, rotated, "")
	err := src.ReloadPeer(nil)
	if !errors.Is(err, tlsutil.ErrPeerRefused) || !strings.Contains(err.Error(), `"new CA"`) ||
		!strings.Contains(err.Error(), l.ca) || !strings.Contains(err.Error(), "keeping the previous") {
		t.Errorf("ReloadPeer of another CA's certificate = %v, want ErrPeerRefused naming its issuer and %s", err, l.ca)
	}
	if issuer := src.Certificate().Leaf.Issuer.CommonName; issuer != "test CA" {
		t.Errorf("after the refused reload the Source holds a certificate of %q, want the previous one (test CA)", issuer)
	}
	if err := mustSource(t, l).CheckPeer(); !errors.Is(err, tlsutil.ErrPeerRefused) {
		t.Errorf("CheckPeer of a Source of another CA's certificate = %v, want ErrPeerRefused", err)
	}

	// The rotation: both CAs in the bundle, then the new CA's certificate.
	writeBytes(t, l.ca, append(readFile(t, f.caFile), readFile(t, newCAFile)...))
	if err := src.ReloadPeer(nil); err != nil {
		t.Fatalf("ReloadPeer with the new CA added to the bundle: %v", err)
	}
	if issuer := src.Certificate().Leaf.Issuer.CommonName; issuer != "new CA" {
		t.Errorf("after the rotation the Source holds a certificate of %q, want new CA", issuer)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
