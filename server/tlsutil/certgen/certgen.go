// Package certgen creates the certificates a commitlog cluster needs for
// mutual TLS, without external tools such as cfssl (as `consul tls` does): a
// certificate authority, server certificates (used by servers for their API
// and to dial their peers) and client certificates (whose common name is the
// client identity that authorization policies name).
//
// Keys are ECDSA P-256; serial numbers are 128 random bits; certificates are
// PEM encoded, keys as PKCS #8 ("PRIVATE KEY"). WriteFiles writes keys with
// mode 0600 and certificates with mode 0644, and never overwrites an existing
// file unless told to.
//
// Every function is safe for concurrent use; none logs.
package certgen

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"time"
)

// Default validity periods, used when Options.Days is zero.
const (
	DefaultCADays   = 5 * 365
	DefaultCertDays = 365
)

// MaxDays bounds Options.Days (100 years).
const MaxDays = 100 * 365

// clockSkew is how far before "now" a new certificate becomes valid, so a
// peer whose clock is slightly behind accepts it at once.
const clockSkew = time.Minute

// Errors returned by this package. Test for them with errors.Is.
var (
	// ErrInvalidOptions means Options (or a Kind) cannot describe the
	// requested certificate: the message says which field is wrong.
	ErrInvalidOptions = errors.New("certgen: invalid options")
	// ErrNotCA means the key pair given as issuer is not a certificate
	// authority (or has no private key).
	ErrNotCA = errors.New("certgen: issuer is not a certificate authority")
	// ErrOutlivesCA means the requested certificate would stay valid after
	// its CA expires; ask for fewer days or create a new CA.
	ErrOutlivesCA = errors.New("certgen: certificate would outlive its CA")
	// ErrInvalidPEM means PEM input does not hold the expected certificate
	// or key, or the key does not belong to the certificate.
	ErrInvalidPEM = errors.New("certgen: invalid PEM")
)

// Kind says what a leaf certificate may be used for (its extended key
// usages). Servers verify that a client certificate allows client
// authentication, and clients that a server certificate allows server
// authentication, so a certificate of the wrong kind is refused.
type Kind int

const (
	// Server certificates allow server and client authentication: a
	// commitlog server presents the same certificate when it serves its API
	// and when it dials its peers (Raft, forwarding).
	Server Kind = iota + 1
	// Client certificates allow client authentication only. The common name
	// is the client identity.
	Client
	// ServerOnly certificates allow server authentication only, for a
	// listener that never dials out (a TLS-terminating proxy, say).
	ServerOnly
)

// String returns "server", "client" or "server-only".
func (k Kind) String() string {
	switch k {
	case Server:
		return "server"
	case Client:
		return "client"
	case ServerOnly:
		return "server-only"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

func (k Kind) extKeyUsage() ([]x509.ExtKeyUsage, error) {
	switch k {
	case Server:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, nil
	case Client:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil
	case ServerOnly:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil
	}
	return nil, fmt.Errorf("%w: unknown certificate kind %d", ErrInvalidOptions, int(k))
}

// Options describes a certificate to create. The zero value of every field
// but CommonName means a documented default.
type Options struct {
	// CommonName is the subject's common name. Required. For a client
	// certificate it is the identity authorization policies name (e.g.
	// "root"); for a CA, a label such as "commitlog CA".
	CommonName string
	// Organization is the subject's organization; optional.
	Organization string
	// Days is how long the certificate is valid. Zero means DefaultCADays
	// for a CA and DefaultCertDays otherwise; at most MaxDays.
	Days int
	// DNSNames and IPs are the subject alternative names a client checks
	// when it dials a server. For Server and ServerOnly certificates, when
	// both are empty, they default to "localhost", 127.0.0.1 and ::1. CAs
	// take none.
	DNSNames []string
	IPs      []net.IP
	// Now is the clock the validity period starts from; nil means
	// time.Now. Tests set it to make expired or not-yet-valid certificates.
	Now func() time.Time
}

// KeyPair is a certificate with its private key, both parsed and PEM
// encoded. Treat it as immutable.
type KeyPair struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte // "CERTIFICATE" block
	KeyPEM  []byte // PKCS #8 "PRIVATE KEY" block
}

// CreateCA creates a self-signed certificate authority that can sign leaf
// certificates but not intermediate CAs. It returns an error wrapping
// ErrInvalidOptions when opts is unusable (CommonName empty, Days out of
// range, or SANs given).
func CreateCA(opts Options) (*KeyPair, error) {
	if err := opts.validate(DefaultCADays); err != nil {
		return nil, err
	}
	if len(opts.DNSNames) > 0 || len(opts.IPs) > 0 {
		return nil, fmt.Errorf("%w: a CA takes no DNS names or IP addresses", ErrInvalidOptions)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certgen: generate CA key: %w", err)
	}
	tmpl, err := opts.template(DefaultCADays)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	tmpl.SubjectKeyId = keyID(&key.PublicKey)
	return sign(tmpl, tmpl, &key.PublicKey, key, key)
}

// CreateServerCert creates a Server certificate signed by ca; see CreateCert.
func CreateServerCert(ca *KeyPair, opts Options) (*KeyPair, error) {
	return CreateCert(ca, Server, opts)
}

// CreateClientCert creates a Client certificate signed by ca, whose common
// name is the client identity; see CreateCert.
func CreateClientCert(ca *KeyPair, opts Options) (*KeyPair, error) {
	return CreateCert(ca, Client, opts)
}

// CreateCert creates a leaf certificate of the given kind, signed by ca.
//
// It returns an error wrapping ErrNotCA when ca is not a usable CA,
// ErrInvalidOptions when opts or kind is unusable, and ErrOutlivesCA when the
// certificate would expire after ca.
func CreateCert(ca *KeyPair, kind Kind, opts Options) (*KeyPair, error) {
	if ca == nil || ca.Cert == nil || ca.Key == nil || !ca.Cert.IsCA ||
		ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, ErrNotCA
	}
	usage, err := kind.extKeyUsage()
	if err != nil {
		return nil, err
	}
	if err := opts.validate(DefaultCertDays); err != nil {
		return nil, err
	}
	if kind != Client && len(opts.DNSNames) == 0 && len(opts.IPs) == 0 {
		opts.DNSNames = []string{"localhost"}
		opts.IPs = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	tmpl, err := opts.template(DefaultCertDays)
	if err != nil {
		return nil, err
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("%w: it would be valid until %s, the CA %q until %s",
			ErrOutlivesCA, tmpl.NotAfter.Format(time.RFC3339), ca.Cert.Subject.CommonName,
			ca.Cert.NotAfter.Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certgen: generate key: %w", err)
	}
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = usage
	tmpl.DNSNames = opts.DNSNames
	tmpl.IPAddresses = opts.IPs
	tmpl.SubjectKeyId = keyID(&key.PublicKey)
	return sign(tmpl, ca.Cert, &key.PublicKey, key, ca.Key)
}

func (o *Options) validate(defaultDays int) error {
	switch {
	case o.CommonName == "":
		return fmt.Errorf("%w: common name is required", ErrInvalidOptions)
	case o.Days < 0 || o.Days > MaxDays:
		return fmt.Errorf("%w: days must be between 1 and %d (0 for %d), got %d",
			ErrInvalidOptions, MaxDays, defaultDays, o.Days)
	}
	for _, ip := range o.IPs {
		if ip.To16() == nil {
			return fmt.Errorf("%w: invalid IP address %v", ErrInvalidOptions, ip)
		}
	}
	for _, name := range o.DNSNames {
		if name == "" {
			return fmt.Errorf("%w: empty DNS name", ErrInvalidOptions)
		}
	}
	return nil
}

// template fills the fields every certificate shares.
func (o *Options) template(defaultDays int) (*x509.Certificate, error) {
	serial, err := randomSerial(rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	days := o.Days
	if days == 0 {
		days = defaultDays
	}
	start := now().Add(-clockSkew).UTC().Truncate(time.Second)
	subject := pkix.Name{CommonName: o.CommonName}
	if o.Organization != "" {
		subject.Organization = []string{o.Organization}
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    start,
		NotAfter:     start.Add(clockSkew).AddDate(0, 0, days),
	}, nil
}

// randomSerial returns a positive serial number of up to 128 random bits,
// as CA/Browser Forum rules ask (at least 64).
func randomSerial(r io.Reader) (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for range 8 {
		n, err := rand.Int(r, limit)
		if err != nil {
			return nil, fmt.Errorf("certgen: serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
	return nil, errors.New("certgen: serial number: random source returned zero repeatedly")
}

// keyID derives a subject key identifier from the public key (RFC 7093
// method 1: leftmost 160 bits of the SHA-256 of the key).
func keyID(pub *ecdsa.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil // cannot happen for a P-256 key; x509 then omits the field
	}
	sum := sha256.Sum256(der)
	return sum[:20]
}

func sign(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, key *ecdsa.PrivateKey, signer crypto.Signer) (*KeyPair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("certgen: sign certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certgen: parse new certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certgen: encode key: %w", err)
	}
	return &KeyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}
