package tlsutil

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Source holds TLS credentials read from PEM files — a certificate with its key, a CA bundle,
// or both — and reloads them on demand, so that a running server can rotate its certificates.
//
// The configurations a Source builds (ServerConfig, PeerConfig, ClientConfig) read the
// credentials at every handshake: after a successful Reload, new handshakes present the new
// certificate and, on the accepting side, verify clients against the new CA bundle; established
// connections are not affected. The CAs a dialing side verifies the other end against
// (tls.Config.RootCAs) are those loaded when the configuration was built: crypto/tls has no
// per-handshake hook for them that keeps its own host name verification.
//
// All methods are safe for concurrent use.
type Source struct {
	certFile, keyFile, caFile string

	reloadMu sync.Mutex
	cur      atomic.Pointer[credentials]
}

// credentials are one loaded generation; never mutated after load.
type credentials struct {
	cert *tls.Certificate    // nil without a certificate file
	cas  []*x509.Certificate // the CA bundle's certificates
	pool *x509.CertPool      // nil without a CA file
}

// CertExpiry says when one certificate of a Source stops being valid.
type CertExpiry struct {
	// CA is false for the Source's own certificate, true for a certificate of its CA bundle.
	CA bool
	// Subject is the certificate's subject common name.
	Subject string
	// NotAfter is the end of the certificate's validity.
	NotAfter time.Time
}

// NewSource loads the key pair in certFile and keyFile (both or neither) and the CA bundle in
// caFile (optional). At least one of them must be given. A certificate that has expired, or
// is not valid yet, is refused, as Reload refuses it: a server started with it would fail
// every handshake while looking alive; an expired CA of the bundle is not
// (a bundle keeps the old CA during a rotation). It returns an error wrapping ErrMissingFile,
// ErrNoCertificates, ErrExpired, ErrNotYetValid, or the error of reading or parsing the files.
func NewSource(certFile, keyFile, caFile string) (*Source, error) {
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, fmt.Errorf("tlsutil: source: %w: no certificate and no CA file", ErrMissingFile)
	}
	s := &Source{certFile: certFile, keyFile: keyFile, caFile: caFile}
	c, err := s.load()
	if err == nil {
		err = s.checkValidity(c, time.Now())
	}
	if err != nil {
		return nil, err
	}
	s.cur.Store(c)
	return s, nil
}

// checkValidity refuses c's certificate if it is outside its validity at now (expired, or not
// valid yet: issued by a host whose clock is ahead, or with a start date to come), naming the
// file and when. Every handshake with it would fail: clients and peers check both ends.
func (s *Source) checkValidity(c *credentials, now time.Time) error {
	if c.cert == nil || c.cert.Leaf == nil {
		return nil
	}
	leaf := c.cert.Leaf
	switch {
	case now.After(leaf.NotAfter):
		return fmt.Errorf("%w: %q in %s expired at %s: replace the file", ErrExpired, leaf.Subject.CommonName, s.certFile,
			leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("%w: %q in %s is valid from %s, and this host's clock says %s: wait until then, or check the clocks",
			ErrNotYetValid, leaf.Subject.CommonName, s.certFile, leaf.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// Reload reads the files again. If they all load, new handshakes use them; if any does not,
// or the certificate has expired or is not valid yet, the Source keeps the credentials it had and returns the error
// (wrapping what NewSource would). Concurrent Reloads are serialized.
func (s *Source) Reload() error { return s.ReloadChecked(nil) }

// ReloadChecked is Reload, with check (when set) deciding whether the new certificate, when
// the Source has one, may replace the current one: its error keeps the previous credentials,
// and is returned.
func (s *Source) ReloadChecked(check func(*x509.Certificate) error) error {
	return s.reload(check, false)
}

// ReloadPeer is ReloadChecked for the credentials a node presents to its peers: it also keeps
// the previous credentials when the new certificate is one that peers trusting the new CA
// bundle would refuse (VerifyOwnPeer: a certificate of another CA, say), returning an error
// wrapping ErrPeerRefused that names the files and the certificate's issuer.
func (s *Source) ReloadPeer(check func(*x509.Certificate) error) error {
	return s.reload(check, true)
}

// CheckPeer returns an error wrapping ErrPeerRefused, naming the files and the certificate's
// issuer, unless the Source's current certificate is one that peers trusting its CA bundle
// accept (VerifyOwnPeer). Call it at start on the credentials a node presents to its peers,
// as ReloadPeer checks a reloaded certificate.
func (s *Source) CheckPeer() error { return s.checkPeer(s.cur.Load()) }

func (s *Source) checkPeer(c *credentials) error {
	return VerifyOwnPeer(c.cert, c.pool, s.certFile, s.caFile)
}

func (s *Source) reload(check func(*x509.Certificate) error, peer bool) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	c, err := s.load()
	if err == nil {
		// An old file copied back, or a new one not valid yet: every handshake with it
		// would fail.
		err = s.checkValidity(c, time.Now())
	}
	if err == nil && check != nil && c.cert != nil {
		err = check(c.cert.Leaf)
	}
	if err == nil && peer {
		// A certificate of another CA: every peer would refuse it.
		err = s.checkPeer(c)
	}
	if err != nil {
		return fmt.Errorf("%w (keeping the previous certificates)", err)
	}
	s.cur.Store(c)
	return nil
}

// Files returns the file names the Source reads.
func (s *Source) Files() (certFile, keyFile, caFile string) { return s.certFile, s.keyFile, s.caFile }

// Certificate returns the current key pair, or nil when the Source has none.
func (s *Source) Certificate() *tls.Certificate { return s.cur.Load().cert }

// CAs returns the current CA pool, or nil when the Source has no CA file. The pool must not be
// modified.
func (s *Source) CAs() *x509.CertPool { return s.cur.Load().pool }

// Expiries returns when the current certificate and each certificate of the CA bundle expire.
func (s *Source) Expiries() []CertExpiry {
	c := s.cur.Load()
	var out []CertExpiry
	if c.cert != nil && c.cert.Leaf != nil {
		out = append(out, CertExpiry{Subject: c.cert.Leaf.Subject.CommonName, NotAfter: c.cert.Leaf.NotAfter})
	}
	for _, ca := range c.cas {
		out = append(out, CertExpiry{CA: true, Subject: ca.Subject.CommonName, NotAfter: ca.NotAfter})
	}
	return out
}

func (s *Source) load() (*credentials, error) {
	c := &credentials{}
	if s.certFile != "" || s.keyFile != "" {
		cert, err := loadCertificate(s.certFile, s.keyFile, true)
		if err != nil {
			return nil, fmt.Errorf("tlsutil: %w", err)
		}
		if cert.Leaf == nil && len(cert.Certificate) > 0 {
			if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
				return nil, fmt.Errorf("tlsutil: parse %s: %w", s.certFile, err)
			}
		}
		c.cert = cert
	}
	if s.caFile != "" {
		data, err := os.ReadFile(s.caFile)
		if err != nil {
			return nil, fmt.Errorf("tlsutil: %w", err)
		}
		pool := x509.NewCertPool()
		for rest := data; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				continue
			}
			ca, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("tlsutil: parse %s: %w", s.caFile, err)
			}
			pool.AddCert(ca)
			c.cas = append(c.cas, ca)
		}
		if len(c.cas) == 0 {
			return nil, fmt.Errorf("tlsutil: %w: %s", ErrNoCertificates, s.caFile)
		}
		c.pool = pool
	}
	return c, nil
}

// ServerNextProtos are the application protocols (ALPN) a Source's ServerConfig offers: HTTP/2
// (gRPC, Connect) and HTTP/1.1 (Connect). The configuration of each handshake comes from
// GetConfigForClient, which replaces the NextProtos a server adds to its own copy of the
// configuration, so they are set here.
var ServerNextProtos = []string{"h2", "http/1.1"}

// ServerConfig returns the configuration of a TLS server presenting the Source's certificate,
// as the package-level ServerConfig does, but following Reload: when the Source has a CA
// bundle, clients must present a certificate issued by one of its CAs (mutual TLS). It offers
// ServerNextProtos. It returns an error wrapping ErrMissingFile when the Source has no
// certificate.
func (s *Source) ServerConfig(opts ...Option) (*tls.Config, error) {
	if s.Certificate() == nil {
		return nil, fmt.Errorf("tlsutil: server: %w: certificate file is required", ErrMissingFile)
	}
	base := &tls.Config{MinVersion: MinVersion, ClientAuth: tls.NoClientCert, NextProtos: ServerNextProtos}
	if s.CAs() != nil {
		base.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return s.dynamic(applyOptions(base, opts)), nil
}

// PeerConfig returns one configuration for both ends of a connection between two servers, as
// the package-level PeerConfig does, but following Reload for the presented certificate (both
// ends) and for the CAs an accepting peer verifies the dialer against. The Source needs a
// certificate and a CA bundle; it returns an error wrapping ErrMissingFile otherwise.
func (s *Source) PeerConfig(serverName string, opts ...Option) (*tls.Config, error) {
	if s.Certificate() == nil || s.CAs() == nil {
		return nil, fmt.Errorf("tlsutil: peer: %w: a certificate and a CA file are required", ErrMissingFile)
	}
	base := &tls.Config{
		MinVersion:       MinVersion,
		RootCAs:          s.CAs(),
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ServerName:       serverName,
		VerifyConnection: requirePeer,
	}
	return s.dynamic(applyOptions(base, opts)), nil
}

// ClientConfig returns the configuration of a TLS client presenting the Source's certificate
// (following Reload) when the server asks for one. roots are the CAs the server's certificate
// must chain to (nil: the system's); serverName as in the package-level ClientConfig.
func (s *Source) ClientConfig(roots *x509.CertPool, serverName string, opts ...Option) *tls.Config {
	cfg := &tls.Config{MinVersion: MinVersion, RootCAs: roots, ServerName: serverName}
	if s.Certificate() != nil {
		cfg.GetClientCertificate = s.clientCertificate
	}
	return applyOptions(cfg, opts)
}

func (s *Source) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c := s.Certificate(); c != nil {
		return c, nil
	}
	return &tls.Certificate{}, nil
}

// dynamic makes base follow the Source: as a client it presents the current certificate; as a
// server each handshake gets base with the current certificate and client CAs (a configuration
// built once per loaded generation).
func (s *Source) dynamic(base *tls.Config) *tls.Config {
	type derived struct {
		from *credentials
		cfg  *tls.Config
	}
	var (
		mu    sync.Mutex
		cache *derived
	)
	forHandshake := func() *tls.Config {
		c := s.cur.Load()
		mu.Lock()
		defer mu.Unlock()
		if cache == nil || cache.from != c {
			cfg := base.Clone()
			cfg.GetConfigForClient = nil
			cfg.GetCertificate = nil
			cfg.Certificates = []tls.Certificate{*c.cert}
			if base.ClientAuth != tls.NoClientCert {
				cfg.ClientCAs = c.pool
				// Tickets of an earlier generation do not decrypt: a session verified against
				// CAs since removed is not resumed, it handshakes again.
				var key [32]byte
				_, _ = rand.Read(key[:])
				cfg.SetSessionTicketKeys([][32]byte{key})
			}
			cache = &derived{from: c, cfg: cfg}
		}
		return cache.cfg
	}
	cfg := base.Clone()
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return forHandshake(), nil }
	// Checked by some servers before the handshake (net/http), and used as a fallback.
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.Certificate(), nil }
	cfg.GetClientCertificate = s.clientCertificate
	if cfg.ClientAuth != tls.NoClientCert {
		cfg.ClientCAs = s.CAs() // replaced per handshake; set for code that inspects it
	}
	return cfg
}
