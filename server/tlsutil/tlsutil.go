// Package tlsutil builds the crypto/tls configurations of commitlog: the API
// server's (mutual TLS when a CA is given), a client's, and a peer's (servers
// dialing each other for Raft and forwarding, both sides authenticated); and
// extracts the client identity from a verified connection.
//
// Certificates are files in PEM format, as written by package certgen
// (`commitlog tls ...`). Every configuration requires TLS 1.2 or later.
// The package-level builders read the files once; a Source reads them again
// on Reload, and the configurations it builds use what it loaded last for
// every new handshake (certificate rotation without a restart). All functions are safe for concurrent use and never log.
package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// MinVersion is the oldest TLS version any configuration here accepts.
const MinVersion = tls.VersionTLS12

// Errors returned by this package. Test for them with errors.Is.
var (
	// ErrNoCertificates means a CA file holds no PEM certificate. It is
	// client.ErrNoCertificates, so that one errors.Is test covers the
	// configurations built here and those the SDK's client.LoadTLS builds.
	ErrNoCertificates = client.ErrNoCertificates
	// ErrMissingFile means a required file name is empty (for example a
	// server without a certificate, or a peer without a CA).
	ErrMissingFile = errors.New("tlsutil: missing file")
	// ErrUnauthenticated means a connection carries no verified client
	// certificate, or one without a common name: there is no identity to
	// authorize. The server answers Unauthenticated.
	ErrUnauthenticated = errors.New("tlsutil: no verified client identity")
	// ErrExpired means a certificate (not a CA of a bundle) is past its validity: NewSource
	// and Reload refuse it.
	ErrExpired = errors.New("tlsutil: certificate expired")
	// ErrNotYetValid means a certificate (not a CA of a bundle) is not valid yet (its NotBefore
	// is after this host's clock): NewSource and Reload refuse it.
	ErrNotYetValid = errors.New("tlsutil: certificate not valid yet")
	// ErrPeerRefused means a node's own peer certificate is one its peers would refuse: it does
	// not chain to the peer CA bundle (as a certificate of another CA does), or is not a peer's
	// (CheckServerCertificate). A node started with it would be cut off from the cluster:
	// VerifyOwnPeer, Source.CheckPeer and Source.ReloadPeer return it.
	ErrPeerRefused = errors.New("tlsutil: peers would refuse this certificate")
)

// Option adjusts a configuration built here.
type Option interface {
	apply(*tls.Config)
}

type optionFunc func(*tls.Config)

func (f optionFunc) apply(c *tls.Config) { f(c) }

// WithClock makes the configuration judge certificate validity periods by
// now instead of the system clock (it sets tls.Config.Time). Tests use it
// to check that expired and not-yet-valid certificates are refused.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(c *tls.Config) { c.Time = now })
}

// ServerConfig returns the configuration of a TLS server presenting the
// certificate in certFile (with its key in keyFile).
//
// If caFile is not empty, the server requires every client to present a
// certificate issued by a CA in caFile and allowing client authentication
// (mutual TLS); SubjectFromState then yields the client's identity.
// If caFile is empty, clients are not asked for certificates.
//
// It returns an error wrapping ErrMissingFile, ErrNoCertificates, or the
// error of reading or parsing the files.
func ServerConfig(certFile, keyFile, caFile string, opts ...Option) (*tls.Config, error) {
	cert, err := loadCertificate(certFile, keyFile, true)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: server: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   MinVersion,
		Certificates: []tls.Certificate{*cert},
		ClientAuth:   tls.NoClientCert,
	}
	if caFile != "" {
		pool, err := loadPool(caFile)
		if err != nil {
			return nil, fmt.Errorf("tlsutil: server: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return applyOptions(cfg, opts), nil
}

// ClientConfig returns the configuration of a TLS client.
//
// certFile and keyFile are the client's certificate and key, presented when
// the server asks (mutual TLS); both empty means the client has none.
// caFile holds the CAs the server's certificate must chain to; empty means
// the system's roots. serverName is the name the server's certificate must
// carry (a DNS name or IP address among its subject alternative names);
// empty means the host of the address dialed, as crypto/tls and gRPC derive
// it.
//
// It loads the files with client.LoadTLS, the SDK's loader, so the result
// is what `commitlog produce --tls-*` and the tools use. It returns an error
// wrapping ErrMissingFile (only one of certFile and keyFile given), or
// client.ErrTLSFiles with ErrNoCertificates or the error of reading or
// parsing the files.
func ClientConfig(certFile, keyFile, caFile, serverName string, opts ...Option) (*tls.Config, error) {
	// The files are loaded by the SDK's loader, the one every client of this repository uses;
	// this adds the missing-file check (its errors promise ErrMissingFile) and never returns nil.
	if (certFile == "") != (keyFile == "") {
		_, err := loadCertificate(certFile, keyFile, false)
		return nil, fmt.Errorf("tlsutil: client: %w", err)
	}
	cfg, err := client.LoadTLS(caFile, certFile, keyFile, serverName)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: client: %w", err)
	}
	if cfg == nil { // nothing given: system roots, the host dialed
		cfg = &tls.Config{MinVersion: MinVersion}
	}
	return applyOptions(cfg, opts), nil
}

// PeerConfig returns one configuration for both ends of a connection
// between two servers: used with tls.Server (or a listener) it requires the
// dialing peer's certificate, and used with tls.Client it presents the same
// certificate and verifies the accepting peer's. Both certificates must be
// issued by a CA in caFile, allow server and client authentication and name
// a node (NodeDNSName; `commitlog tls cert create --server` certificates do).
//
// serverName is the name a dialing peer expects in the accepting peer's
// certificate. Peers are usually dialed by IP address; giving every server
// certificate a shared DNS name (for example "server.commitlog") and passing
// it here lets them verify each other whatever their addresses. Empty means
// the host of the address dialed.
//
// All three files are required; it returns an error wrapping
// ErrMissingFile, ErrNoCertificates, or the error of reading or parsing them.
func PeerConfig(certFile, keyFile, caFile, serverName string, opts ...Option) (*tls.Config, error) {
	if caFile == "" {
		return nil, fmt.Errorf("tlsutil: peer: %w: CA file is required", ErrMissingFile)
	}
	cert, err := loadCertificate(certFile, keyFile, true)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: peer: %w", err)
	}
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: peer: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   MinVersion,
		Certificates: []tls.Certificate{*cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ServerName:   serverName,
		// Client certificates usually come from the same CA and allow client authentication,
		// which is all the accepting side of a handshake checks: without this a client could
		// dial the Raft port and speak Raft. Peers' certificates must allow server
		// authentication and name a node (NodeDNSName): `commitlog tls cert create --server`
		// certificates do, so servers accept each other, and nothing else is a peer.
		VerifyConnection: requirePeer,
	}
	return applyOptions(cfg, opts), nil
}

// requirePeer refuses a peer whose certificate is not a cluster server's: it must allow server
// authentication and name at least one node (see NodeDNSName). The handshake has already
// checked that it chains to the peer CA.
func requirePeer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tlsutil: peer presented no certificate")
	}
	return CheckServerCertificate(cs.PeerCertificates[0])
}

// NodeNameSuffix ends the DNS name by which a certificate names a node: the certificate of
// node "n1" carries the DNS subject alternative name "n1.node.commitlog" (see NodeDNSName).
const NodeNameSuffix = ".node.commitlog"

// NodeDNSName returns the DNS name a server certificate carries to name the node called
// nodeName: nodeName + NodeNameSuffix. This is the rule by which servers prove who they are:
// the leader admits a member into Raft only when the certificate presented at the member's
// advertised Raft address chains to the peer CA and carries NodeDNSName(member name), and a
// caller is a cluster peer only when its certificate chains to the peer CA, allows server
// authentication and names some node.
func NodeDNSName(nodeName string) string { return nodeName + NodeNameSuffix }

// ValidNodeName reports why nodeName cannot be put in a certificate's DNS name, or nil.
func ValidNodeName(nodeName string) error {
	if nodeName == "" {
		return errors.New("tlsutil: empty node name")
	}
	for _, r := range nodeName {
		ok := r == '-' || r == '_' || r == '.' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
		if !ok {
			return fmt.Errorf("tlsutil: node name %q: only letters, digits, '-', '_' and '.' can be put in a certificate", nodeName)
		}
	}
	if nodeName[0] == '.' || nodeName[len(nodeName)-1] == '.' || len(NodeDNSName(nodeName)) > 253 {
		return fmt.Errorf("tlsutil: node name %q cannot be part of a DNS name", nodeName)
	}
	return nil
}

// CertificateNodes returns the names of the nodes cert names (its DNS names ending in
// NodeNameSuffix, without it). Wildcard names name no node.
func CertificateNodes(cert *x509.Certificate) []string {
	var nodes []string
	for _, n := range cert.DNSNames {
		name, ok := strings.CutSuffix(n, NodeNameSuffix)
		if ok && ValidNodeName(name) == nil {
			nodes = append(nodes, name)
		}
	}
	return nodes
}

// CertificateNamesNode reports whether cert carries NodeDNSName(nodeName), compared exactly.
func CertificateNamesNode(cert *x509.Certificate, nodeName string) bool {
	return slices.Contains(CertificateNodes(cert), nodeName)
}

// CheckServerCertificate returns an error unless cert may be a cluster server's: it allows
// server authentication and names at least one node. It does not check the chain.
func CheckServerCertificate(cert *x509.Certificate) error {
	serverAuth := false
	for _, u := range cert.ExtKeyUsage {
		serverAuth = serverAuth || u == x509.ExtKeyUsageServerAuth || u == x509.ExtKeyUsageAny
	}
	if !serverAuth {
		return fmt.Errorf("tlsutil: certificate %q does not allow server authentication: it is not a peer's", cert.Subject.CommonName)
	}
	if len(CertificateNodes(cert)) == 0 {
		return fmt.Errorf("tlsutil: certificate %q names no node (no DNS name ending in %s): it is not a peer's", cert.Subject.CommonName, NodeNameSuffix)
	}
	return nil
}

// VerifyPeer checks that chain (a presented certificate chain, leaf first) is a cluster
// peer's: the leaf chains to a CA in roots for client authentication, and satisfies
// CheckServerCertificate. It is the one notion of a peer for requests on the API (forwarded
// writes, cluster-internal calls); Raft connections apply the same rule in their handshake.
func VerifyPeer(chain []*x509.Certificate, roots *x509.CertPool) error {
	if len(chain) == 0 {
		return errors.New("tlsutil: no certificate")
	}
	if roots == nil {
		return errors.New("tlsutil: no peer CA")
	}
	if err := verifyChain(chain, roots, x509.ExtKeyUsageClientAuth); err != nil {
		return fmt.Errorf("tlsutil: certificate %q does not chain to the peer CA: %w", chain[0].Subject.CommonName, err)
	}
	return CheckServerCertificate(chain[0])
}

// verifyChain verifies chain (leaf first, then the intermediates it presents) against roots
// for usage, as crypto/tls verifies a presented chain: a dialed peer's for server
// authentication, a dialing peer's for client authentication (ClientAuth
// RequireAndVerifyClientCert).
func verifyChain(chain []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) error {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// VerifyOwnPeer returns an error wrapping ErrPeerRefused unless cert — the chain a node
// presents to its peers: its certificate and the intermediates after it — is one the peers
// trusting roots (the node's own peer CA bundle) accept, by the rules they apply: a dialing
// peer's chain must verify for client authentication and satisfy CheckServerCertificate
// (VerifyPeer, the accepting end of Raft), a dialed peer's for server authentication (the
// leader's admission, a follower dialing the leader). The name a dialer expects is not
// checked: it depends on the address dialed. certFile and caFile, when not empty, are named
// in the error, which also names the certificate's issuer. A bundle of several CAs (a
// rotation) accepts a certificate of any of them.
func VerifyOwnPeer(cert *tls.Certificate, roots *x509.CertPool, certFile, caFile string) error {
	if cert == nil || len(cert.Certificate) == 0 {
		return fmt.Errorf("%w: no certificate", ErrPeerRefused)
	}
	in := ""
	if certFile != "" {
		in = " in " + certFile
	}
	chain := make([]*x509.Certificate, 0, len(cert.Certificate))
	for i, der := range cert.Certificate {
		if i == 0 && cert.Leaf != nil {
			chain = append(chain, cert.Leaf)
			continue
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("%w: certificate %d of the chain%s: %w", ErrPeerRefused, i, in, err)
		}
		chain = append(chain, c)
	}
	leaf := chain[0]
	what := fmt.Sprintf("certificate %q%s", leaf.Subject.CommonName, in)
	issuer := leaf.Issuer.CommonName
	if issuer == "" {
		issuer = leaf.Issuer.String()
	}
	what += fmt.Sprintf(" (issued by %q)", issuer)
	bundle := "the peer CA"
	if caFile != "" {
		bundle = "the peer CA bundle " + caFile
	}
	if roots == nil {
		return fmt.Errorf("%w: %s: no peer CA to verify it against", ErrPeerRefused, what)
	}
	if err := CheckServerCertificate(leaf); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrPeerRefused, what, err)
	}
	err := verifyChain(chain, roots, x509.ExtKeyUsageClientAuth)
	if err == nil {
		err = verifyChain(chain, roots, x509.ExtKeyUsageServerAuth)
	}
	if err != nil {
		return fmt.Errorf("%w: %s is not trusted by %s: %w; every peer would refuse it and this node would be cut off "+
			"from the cluster: use a certificate issued by a CA of that bundle (with the intermediates, if any, after it in "+
			"the certificate file), or add its CA to the bundle of every node", ErrPeerRefused, what, bundle, err)
	}
	return nil
}

// Presented returns the certificate chain cfg presents (the first of Certificates, or
// GetCertificate's answer); an error when it has none.
func Presented(cfg *tls.Config) (*tls.Certificate, error) {
	var cert *tls.Certificate
	switch {
	case cfg == nil:
	case len(cfg.Certificates) > 0:
		cert = &cfg.Certificates[0]
	case cfg.GetCertificate != nil:
		c, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			return nil, err
		}
		cert = c
	}
	if cert == nil {
		return nil, errors.New("tlsutil: no certificate configured")
	}
	return cert, nil
}

// Leaf returns the certificate cfg presents (the first of Certificates, or GetCertificate's
// answer), parsed; an error when it has none.
func Leaf(cfg *tls.Config) (*x509.Certificate, error) {
	cert, err := Presented(cfg)
	if err != nil {
		return nil, err
	}
	if cert.Leaf != nil {
		return cert.Leaf, nil
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("tlsutil: empty certificate")
	}
	return x509.ParseCertificate(cert.Certificate[0])
}

// PeerConfigFromServer derives a peer configuration (see PeerConfig) from an API server
// configuration with mutual TLS: the server's certificate is the peer certificate and the CA
// its clients must chain to is the peer CA. When server answers each handshake with a current
// configuration (GetConfigForClient, as a Source's does after a Reload), so does the derived
// one, with the peer rule applied to it: accepted peers are verified against the API's current
// client CAs. It returns an error when server has no client CA.
func PeerConfigFromServer(server *tls.Config, serverName string) (*tls.Config, error) {
	if server == nil || server.ClientCAs == nil {
		return nil, fmt.Errorf("tlsutil: peer: %w: the API configuration has no client CA to use as the peer CA", ErrMissingFile)
	}
	return perHandshake(server, func(c *tls.Config) *tls.Config { return derivePeer(c, serverName) }), nil
}

// AcceptPeersOnly returns cfg, the accepting side of peer connections (Raft's), made to accept
// only cluster peers whatever built it: a verified client certificate that allows server
// authentication and names a node (requirePeer), then cfg's own VerifyConnection, if any. A
// plain mutual-TLS server configuration of the peer CA (ServerConfig) would accept any client
// certificate of that CA, whose holder could then speak Raft. Each configuration cfg answers
// per handshake (GetConfigForClient, as a Source's do) gets the same rule. Nil stays nil.
func AcceptPeersOnly(cfg *tls.Config) *tls.Config {
	if cfg == nil {
		return nil
	}
	return perHandshake(cfg, func(c *tls.Config) *tls.Config {
		out := c.Clone()
		out.GetConfigForClient = nil
		out.ClientAuth = tls.RequireAndVerifyClientCert
		own := c.VerifyConnection
		out.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.VerifiedChains) == 0 {
				return errors.New("tlsutil: a peer must present a verified certificate")
			}
			if err := requirePeer(cs); err != nil {
				return err
			}
			if own != nil {
				return own(cs)
			}
			return nil
		}
		return out
	})
}

// perHandshake returns derive(cfg) whose GetConfigForClient, when cfg has one, answers derive
// of each configuration cfg's answers (derived once per configuration; an answer without client
// CAs, or none, is the returned configuration itself). derive must return a configuration
// without GetConfigForClient.
func perHandshake(cfg *tls.Config, derive func(*tls.Config) *tls.Config) *tls.Config {
	out := derive(cfg)
	get := cfg.GetConfigForClient
	if get == nil {
		return out
	}
	var (
		mu            sync.Mutex
		from, derived *tls.Config
	)
	out.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		cur, err := get(hello)
		if err != nil || cur == nil || cur.ClientCAs == nil {
			return nil, err // nil, nil: out itself
		}
		mu.Lock()
		defer mu.Unlock()
		if cur != from {
			from, derived = cur, derive(cur)
		}
		return derived, nil
	}
	return out
}

// derivePeer is PeerConfigFromServer's configuration of one API configuration, without its
// per-client configuration (which would be the API's, without the peer rule).
func derivePeer(server *tls.Config, serverName string) *tls.Config {
	cfg := server.Clone()
	cfg.GetConfigForClient = nil
	cfg.RootCAs = server.ClientCAs
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ServerName = serverName
	cfg.VerifyConnection = requirePeer
	if cfg.MinVersion < MinVersion {
		cfg.MinVersion = MinVersion
	}
	if len(cfg.Certificates) == 0 && cfg.GetCertificate != nil && cfg.GetClientCertificate == nil {
		get := cfg.GetCertificate
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return get(&tls.ClientHelloInfo{})
		}
	}
	return cfg
}

// SubjectFromState returns the identity of the peer of a TLS connection:
// the common name of its certificate, if that certificate was verified
// against the configured CAs during the handshake. Use it on the server side
// of a mutual TLS connection (for example from
// credentials.TLSInfo.State in gRPC, or http.Request.TLS).
//
// It returns ErrUnauthenticated when the handshake is not complete, the
// peer presented no certificate, the certificate was not verified (the
// configuration did not require verification), or its common name is empty.
// The name is returned as is; authorization decides what names are valid.
func SubjectFromState(state tls.ConnectionState) (string, error) {
	if !state.HandshakeComplete {
		return "", fmt.Errorf("%w: handshake not complete", ErrUnauthenticated)
	}
	if len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return "", fmt.Errorf("%w: no verified certificate", ErrUnauthenticated)
	}
	cn := state.VerifiedChains[0][0].Subject.CommonName
	if cn == "" {
		return "", fmt.Errorf("%w: certificate has no common name", ErrUnauthenticated)
	}
	return cn, nil
}

func applyOptions(cfg *tls.Config, opts []Option) *tls.Config {
	for _, o := range opts {
		o.apply(cfg)
	}
	return cfg
}

// loadCertificate loads a key pair. When neither file is given it returns
// nil, nil unless required.
func loadCertificate(certFile, keyFile string, required bool) (*tls.Certificate, error) {
	switch {
	case certFile == "" && keyFile == "" && !required:
		return nil, nil
	case certFile == "":
		return nil, fmt.Errorf("%w: certificate file is required", ErrMissingFile)
	case keyFile == "":
		return nil, fmt.Errorf("%w: key file is required", ErrMissingFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load %s, %s: %w", certFile, keyFile, err)
	}
	return &cert, nil
}

func loadPool(caFile string) (*x509.CertPool, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%w: %s", ErrNoCertificates, caFile)
	}
	return pool, nil
}
