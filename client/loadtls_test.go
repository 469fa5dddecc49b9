package client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/commitlog-go/commitlog/client"
)

// pkiFiles are testPKI's CA and client certificate written as PEM files, as
// `commitlog tls` writes them.
type pkiFiles struct {
	ca, cert, key string
}

func writePKIFiles(t *testing.T, p testPKI) pkiFiles {
	t.Helper()
	dir := t.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(p.client.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	f := pkiFiles{
		ca:   filepath.Join(dir, "ca.pem"),
		cert: filepath.Join(dir, "client.pem"),
		key:  filepath.Join(dir, "client-key.pem"),
	}
	for name, block := range map[string]*pem.Block{
		f.ca:   {Type: "CERTIFICATE", Bytes: p.caDER},
		f.cert: {Type: "CERTIFICATE", Bytes: p.client.Certificate[0]},
		f.key:  {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(name, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestLoadTLS(t *testing.T) {
	f := writePKIFiles(t, newTestPKI(t))
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	empty := filepath.Join(dir, "empty.pem")
	missing := filepath.Join(dir, "missing.pem")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	ok := []struct {
		name                  string
		ca, cert, key, server string
		wantRoots, wantCert   bool
	}{
		{name: "CA only", ca: f.ca, wantRoots: true},
		{name: "mutual TLS", ca: f.ca, cert: f.cert, key: f.key, wantRoots: true, wantCert: true},
		{name: "certificate with system roots", cert: f.cert, key: f.key, wantCert: true},
		{name: "server name only", server: "node-1.commitlog"},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := client.LoadTLS(tt.ca, tt.cert, tt.key, tt.server)
			if err != nil {
				t.Fatal(err)
			}
			if cfg == nil {
				t.Fatal("nil configuration")
			}
			if cfg.MinVersion != tls.VersionTLS12 || client.MinTLSVersion != tls.VersionTLS12 {
				t.Errorf("MinVersion = %#x, want TLS 1.2", cfg.MinVersion)
			}
			if (cfg.RootCAs != nil) != tt.wantRoots {
				t.Errorf("RootCAs set: %v, want %v", cfg.RootCAs != nil, tt.wantRoots)
			}
			if (len(cfg.Certificates) == 1) != tt.wantCert {
				t.Errorf("%d certificates, want one: %v", len(cfg.Certificates), tt.wantCert)
			}
			if cfg.ServerName != tt.server {
				t.Errorf("ServerName = %q, want %q", cfg.ServerName, tt.server)
			}
		})
	}

	t.Run("nothing is plaintext", func(t *testing.T) {
		cfg, err := client.LoadTLS("", "", "", "")
		if cfg != nil || err != nil {
			t.Fatalf("LoadTLS() = %v, %v; want nil, nil", cfg, err)
		}
	})

	bad := []struct {
		name          string
		ca, cert, key string
		also          error // wrapped besides ErrTLSFiles
	}{
		{name: "certificate without key", ca: f.ca, cert: f.cert},
		{name: "key without certificate", ca: f.ca, key: f.key},
		{name: "key and certificate swapped", cert: f.key, key: f.cert},
		{name: "missing certificate file", cert: missing, key: f.key, also: fs.ErrNotExist},
		{name: "missing CA file", ca: missing, also: fs.ErrNotExist},
		{name: "CA file is a directory", ca: dir},
		{name: "empty CA file", ca: empty, also: client.ErrNoCertificates},
		{name: "CA file without a certificate", ca: junk, also: client.ErrNoCertificates},
		{name: "CA file holds a key", ca: f.key, also: client.ErrNoCertificates},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := client.LoadTLS(tt.ca, tt.cert, tt.key, "")
			if cfg != nil || !errors.Is(err, client.ErrTLSFiles) {
				t.Fatalf("LoadTLS = %v, %v; want an error wrapping ErrTLSFiles", cfg, err)
			}
			if tt.also != nil && !errors.Is(err, tt.also) {
				t.Errorf("err = %v, want it to wrap %v too", err, tt.also)
			}
			if tt.also != client.ErrNoCertificates && errors.Is(err, client.ErrNoCertificates) {
				t.Errorf("err = %v wraps ErrNoCertificates", err)
			}
		})
	}
}

// TestLoadTLSMutual connects with a configuration LoadTLS built: the server sees the client
// certificate's subject, and without the certificate the handshake fails.
func TestLoadTLSMutual(t *testing.T) {
	pki := newTestPKI(t)
	f := writePKIFiles(t, pki)
	c, err := startFakeClusterTLS(client.TransportConnect, 1, &tls.Config{
		Certificates: []tls.Certificate{pki.server},
		ClientCAs:    pki.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)

	cfg, err := client.LoadTLS(f.ca, f.cert, f.key, "")
	if err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, c, nil, client.WithTLS(cfg))
	if _, err := cl.Produce(context.Background(), []byte("secret")); err != nil {
		t.Fatalf("Produce over mTLS: %v", err)
	}
	if got, _ := c.nodes[0].subject.Load().(string); got != "root" {
		t.Errorf("server saw subject %q, want root", got)
	}

	noCert, err := client.LoadTLS(f.ca, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.New(context.Background(), c.addrs(), client.WithTLS(noCert), client.WithMaxRetries(0))
	if !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("New without a client certificate: err = %v, want ErrUnavailable", err)
	}
}

func ExampleLoadTLS() {
	// The files `commitlog tls ca create` and `commitlog tls cert create --client --cn root`
	// write. Here they do not exist, so LoadTLS says which one it could not read.
	cfg, err := client.LoadTLS("commitlog-ca.pem", "commitlog-root-client.pem", "commitlog-root-client-key.pem", "")
	fmt.Println(cfg == nil, errors.Is(err, client.ErrTLSFiles), errors.Is(err, fs.ErrNotExist))

	// No files at all: a plaintext client.
	cfg, err = client.LoadTLS("", "", "", "")
	fmt.Println(cfg == nil, err)
	// Then: client.New(ctx, addrs, client.WithTLS(cfg)).

	// Output:
	// true true true
	// true <nil>
}
