package loadgen

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrTLSFiles is wrapped by LoadTLS when the files do not make a usable configuration.
var ErrTLSFiles = errors.New("loadgen: bad TLS files")

// LoadTLS builds a client TLS configuration from PEM files: caFile (the CA that signed the
// servers' certificates; empty: the system roots), certFile and keyFile (the client's certificate
// for mTLS; both or neither), and serverName (the name to verify in the servers' certificates;
// empty: the host of the address dialled). It returns nil, nil when every argument is empty: the
// run is plaintext. Errors wrap ErrTLSFiles or the file system's error.
func LoadTLS(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" && serverName == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("loadgen: read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: no certificate in CA file %s", ErrTLSFiles, caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("%w: give both the certificate and the key file, or neither", ErrTLSFiles)
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate: %w", ErrTLSFiles, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
