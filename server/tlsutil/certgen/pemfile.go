package certgen

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File modes WriteFiles gives to what it writes.
const (
	KeyFileMode  fs.FileMode = 0o600
	CertFileMode fs.FileMode = 0o644
)

// ParseKeyPair parses a PEM certificate (the first CERTIFICATE block) and its
// ECDSA private key (PKCS #8 "PRIVATE KEY" or SEC 1 "EC PRIVATE KEY"), as
// written by WriteFiles, for example to sign new certificates with a CA
// created earlier. It returns an error wrapping ErrInvalidPEM when either
// does not parse or the key does not match the certificate.
func ParseKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	certBlock := firstBlock(certPEM, "CERTIFICATE")
	if certBlock == nil {
		return nil, fmt.Errorf("%w: no CERTIFICATE block", ErrInvalidPEM)
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate: %w", ErrInvalidPEM, err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("%w: the key does not belong to certificate %q", ErrInvalidPEM, cert.Subject.CommonName)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certgen: encode key: %w", err)
	}
	return &KeyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(certBlock),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// LoadKeyPair reads and parses a certificate file and its key file; see
// ParseKeyPair.
func LoadKeyPair(certFile, keyFile string) (*KeyPair, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("certgen: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("certgen: %w", err)
	}
	kp, err := ParseKeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", certFile, keyFile, err)
	}
	return kp, nil
}

func firstBlock(data []byte, typ string) *pem.Block {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil
		}
		if b.Type == typ {
			return b
		}
	}
}

func parseKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	if b := firstBlock(keyPEM, "PRIVATE KEY"); b != nil {
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: key: %w", ErrInvalidPEM, err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: key is %T, want ECDSA", ErrInvalidPEM, k)
		}
		return ek, nil
	}
	if b := firstBlock(keyPEM, "EC PRIVATE KEY"); b != nil {
		k, err := x509.ParseECPrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: key: %w", ErrInvalidPEM, err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: no PRIVATE KEY or EC PRIVATE KEY block", ErrInvalidPEM)
}

// WriteFiles writes the certificate to certFile (mode 0644) and the key to
// keyFile (mode 0600), whatever the umask.
//
// Unless force is true, it refuses, before writing anything, when either
// file exists: the error wraps fs.ErrExist. Each file is written to a
// temporary file in the same directory, fsynced, then moved into place, so
// a crash leaves the old file or the new one, never a mix; with force an
// existing file is replaced (and a key file that had looser permissions gets
// 0600). The directories must exist. The key is written first: if writing
// the certificate then fails, the key file may remain.
func (kp *KeyPair) WriteFiles(certFile, keyFile string, force bool) error {
	if certFile == keyFile {
		return fmt.Errorf("%w: certificate and key file are the same (%s)", ErrInvalidOptions, certFile)
	}
	if !force {
		for _, p := range [...]string{certFile, keyFile} {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("certgen: %s: %w (use force to overwrite)", p, fs.ErrExist)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("certgen: %w", err)
			}
		}
	}
	if err := writeFile(keyFile, kp.KeyPEM, KeyFileMode, force); err != nil {
		return err
	}
	return writeFile(certFile, kp.CertPEM, CertFileMode, force)
}

// WriteSecretFile writes data to path with mode 0600 (KeyFileMode), whatever the umask, the
// way WriteFiles writes a key: through a temporary file, fsynced, moved into place. Unless
// force is true it refuses when path exists (the error wraps fs.ErrExist); with force an
// existing file is replaced. The directory must exist.
func WriteSecretFile(path string, data []byte, force bool) error {
	if !force {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("certgen: %s: %w (use force to overwrite)", path, fs.ErrExist)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("certgen: %w", err)
		}
	}
	return writeFile(path, data, KeyFileMode, force)
}

// writeFile writes data to path through a temporary file. Without replace,
// it links the temporary file into place, which fails if path appeared in
// the meantime.
func writeFile(path string, data []byte, mode fs.FileMode, replace bool) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("certgen: %w", err)
	}
	defer func() {
		tmp.Close()
		if rmErr := os.Remove(tmp.Name()); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) && err == nil {
			err = fmt.Errorf("certgen: remove temporary file: %w", rmErr)
		}
	}()
	// CreateTemp makes the file 0600 before anything is written; Chmod
	// then sets the exact mode, ignoring the umask.
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("certgen: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("certgen: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("certgen: sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("certgen: close %s: %w", path, err)
	}
	if replace {
		err = os.Rename(tmp.Name(), path)
	} else {
		err = os.Link(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("certgen: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("certgen: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("certgen: sync %s: %w", dir, err)
	}
	return nil
}
