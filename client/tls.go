package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// MinTLSVersion is the oldest TLS version a configuration built by LoadTLS accepts: TLS 1.2
// (TLS 1.3 is negotiated whenever the server offers it).
const MinTLSVersion = tls.VersionTLS12

// The errors of LoadTLS. Test for them with errors.Is.
var (
	// ErrTLSFiles: the files given to LoadTLS do not make a usable client configuration (a
	// file cannot be read, a certificate without its key, a key that does not match its
	// certificate, a CA file without certificates). Every error LoadTLS returns wraps it; a
	// file-system error is wrapped too (errors.Is(err, fs.ErrNotExist) works).
	ErrTLSFiles = errors.New("client: bad TLS files")
	// ErrNoCertificates: the CA file holds no PEM certificate. It comes wrapped together
	// with ErrTLSFiles.
	ErrNoCertificates = errors.New("client: no certificates in CA file")
)

// LoadTLS builds the TLS configuration of a client, for WithTLS, from PEM files — the files
// `commitlog tls cert create` writes:
//
//   - caFile: the CAs the servers' certificates must chain to; empty means the system's roots;
//   - certFile and keyFile: the client's certificate and its key, presented when the server
//     asks for one (mutual TLS; its common name is the identity the server authorizes); both
//     or neither;
//   - serverName: the name to verify in the servers' certificates; empty means the host of the
//     address dialled.
//
// The configuration accepts TLS 1.2 and later (MinTLSVersion). When every argument is empty,
// LoadTLS returns nil, nil: plaintext, which WithTLS(nil) keeps. So flags that are all unset mean
// a plaintext client:
//
//	cfg, err := client.LoadTLS(*caFile, *certFile, *keyFile, *serverName)
//	if err != nil { ... }
//	c, err := client.New(ctx, addrs, client.WithTLS(cfg))
//
// Errors wrap ErrTLSFiles (and ErrNoCertificates, or the file system's error, when that is the
// cause). The files are read once; it is safe for concurrent use.
func LoadTLS(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" && serverName == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: MinTLSVersion, ServerName: serverName}
	switch {
	case certFile != "" && keyFile == "":
		return nil, fmt.Errorf("%w: certificate file %s given without its key file", ErrTLSFiles, certFile)
	case keyFile != "" && certFile == "":
		return nil, fmt.Errorf("%w: key file %s given without its certificate file", ErrTLSFiles, keyFile)
	case certFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate %s, key %s: %w", ErrTLSFiles, certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%w: CA file: %w", ErrTLSFiles, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: %w: %s", ErrTLSFiles, ErrNoCertificates, caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
