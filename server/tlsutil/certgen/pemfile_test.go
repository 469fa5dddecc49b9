package certgen_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
)

func TestWriteFilesModes(t *testing.T) {
	// A permissive umask must not loosen the key; a strict one must not
	// hide the certificate.
	for _, umask := range []int{0o000, 0o077} {
		old := syscall.Umask(umask)
		t.Cleanup(func() { syscall.Umask(old) })
		ca := mustCA(t, certgen.Options{CommonName: "ca"})
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
		if err := ca.WriteFiles(certFile, keyFile, false); err != nil {
			t.Fatal(err)
		}
		syscall.Umask(old)
		checkMode(t, keyFile, certgen.KeyFileMode)
		checkMode(t, certFile, certgen.CertFileMode)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 2 {
			t.Errorf("umask %o: directory holds %d entries, want 2 (temporary files left?)", umask, len(entries))
		}
		back, err := certgen.LoadKeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		if !back.Cert.Equal(ca.Cert) || !back.Key.Equal(ca.Key) {
			t.Error("files do not hold the key pair written")
		}
	}
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %o, want %o", filepath.Base(path), got, want)
	}
}

func TestWriteFilesRefusesOverwrite(t *testing.T) {
	ca := mustCA(t, certgen.Options{CommonName: "ca"})
	tests := []struct {
		name     string
		existing string // "cert", "key"
	}{
		{"cert exists", "cert"},
		{"key exists", "key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
			existing := map[string]string{"cert": certFile, "key": keyFile}[tt.existing]
			if err := os.WriteFile(existing, []byte("precious"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := ca.WriteFiles(certFile, keyFile, false)
			if !errors.Is(err, fs.ErrExist) {
				t.Fatalf("WriteFiles = %v, want fs.ErrExist", err)
			}
			if got, _ := os.ReadFile(existing); string(got) != "precious" {
				t.Errorf("existing file changed to %q", got)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want only the existing file", len(entries))
			}
		})
	}
}

func TestWriteFilesForceReplaces(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := os.WriteFile(keyFile, []byte("old key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, []byte("old cert"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := mustCA(t, certgen.Options{CommonName: "ca"})
	if err := ca.WriteFiles(certFile, keyFile, true); err != nil {
		t.Fatal(err)
	}
	checkMode(t, keyFile, certgen.KeyFileMode)
	checkMode(t, certFile, certgen.CertFileMode)
	if got, _ := os.ReadFile(keyFile); !bytes.Equal(got, ca.KeyPEM) {
		t.Error("key not replaced")
	}
	if got, _ := os.ReadFile(certFile); !bytes.Equal(got, ca.CertPEM) {
		t.Error("certificate not replaced")
	}
}

func TestWriteFilesSamePath(t *testing.T) {
	ca := mustCA(t, certgen.Options{CommonName: "ca"})
	p := filepath.Join(t.TempDir(), "both.pem")
	if err := ca.WriteFiles(p, p, true); !errors.Is(err, certgen.ErrInvalidOptions) {
		t.Fatalf("WriteFiles(same path) = %v, want ErrInvalidOptions", err)
	}
}

func TestParseKeyPairRejects(t *testing.T) {
	a := mustCA(t, certgen.Options{CommonName: "a"})
	b := mustCA(t, certgen.Options{CommonName: "b"})
	tests := []struct {
		name          string
		certPEM, keyP []byte
	}{
		{"key of another cert", a.CertPEM, b.KeyPEM},
		{"no certificate", nil, a.KeyPEM},
		{"no key", a.CertPEM, nil},
		{"key given as cert", a.KeyPEM, a.KeyPEM},
		{"garbage certificate", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), a.KeyPEM},
		{"garbage key", a.CertPEM, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kp, err := certgen.ParseKeyPair(tt.certPEM, tt.keyP)
			if kp != nil || !errors.Is(err, certgen.ErrInvalidPEM) {
				t.Fatalf("ParseKeyPair = %v, %v; want ErrInvalidPEM", kp, err)
			}
		})
	}
	if _, err := certgen.LoadKeyPair(filepath.Join(t.TempDir(), "missing"), "x"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadKeyPair(missing) = %v, want fs.ErrNotExist", err)
	}
}

// A CA loaded back from its files signs certificates that chain to it.
func TestLoadedCASigns(t *testing.T) {
	ca := mustCA(t, certgen.Options{CommonName: "ca"})
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if err := ca.WriteFiles(certFile, keyFile, false); err != nil {
		t.Fatal(err)
	}
	loaded, err := certgen.LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := certgen.CreateClientCert(loaded, certgen.Options{CommonName: "root"})
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.Cert.CheckSignatureFrom(ca.Cert); err != nil {
		t.Fatal(err)
	}
}
