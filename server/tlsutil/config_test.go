package tlsutil_test

import (
	"crypto/tls"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil"
)

func TestConfigShape(t *testing.T) {
	f := newFixture(t)
	now := func() time.Time { return f.base }
	tests := []struct {
		name           string
		build          func() (*tls.Config, error)
		wantClientAuth tls.ClientAuthType
		wantCerts      int
		wantRoots      bool
		wantServerName string
	}{
		{"server with CA", func() (*tls.Config, error) {
			return tlsutil.ServerConfig(f.server.cert, f.server.key, f.caFile, tlsutil.WithClock(now))
		}, tls.RequireAndVerifyClientCert, 1, false, ""},
		{"server without CA", func() (*tls.Config, error) {
			return tlsutil.ServerConfig(f.server.cert, f.server.key, "", tlsutil.WithClock(now))
		}, tls.NoClientCert, 1, false, ""},
		{"client with certificate", func() (*tls.Config, error) {
			return tlsutil.ClientConfig(f.alice.cert, f.alice.key, f.caFile, "localhost", tlsutil.WithClock(now))
		}, tls.NoClientCert, 1, true, "localhost"},
		{"client without certificate, system roots", func() (*tls.Config, error) {
			return tlsutil.ClientConfig("", "", "", "", tlsutil.WithClock(now))
		}, tls.NoClientCert, 0, false, ""},
		{"peer", func() (*tls.Config, error) {
			return tlsutil.PeerConfig(f.server.cert, f.server.key, f.caFile, "server.commitlog", tlsutil.WithClock(now))
		}, tls.RequireAndVerifyClientCert, 1, true, "server.commitlog"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.build()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MinVersion != tls.VersionTLS12 {
				t.Errorf("MinVersion = %x, want TLS 1.2", cfg.MinVersion)
			}
			if cfg.ClientAuth != tt.wantClientAuth {
				t.Errorf("ClientAuth = %v, want %v", cfg.ClientAuth, tt.wantClientAuth)
			}
			if len(cfg.Certificates) != tt.wantCerts {
				t.Errorf("%d certificates, want %d", len(cfg.Certificates), tt.wantCerts)
			}
			if (cfg.RootCAs != nil) != tt.wantRoots {
				t.Errorf("RootCAs set = %v, want %v", cfg.RootCAs != nil, tt.wantRoots)
			}
			if cfg.ServerName != tt.wantServerName {
				t.Errorf("ServerName = %q, want %q", cfg.ServerName, tt.wantServerName)
			}
			if cfg.Time == nil || !cfg.Time().Equal(f.base) {
				t.Error("WithClock not applied")
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("no certificates here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		build   func() (*tls.Config, error)
		wantErr error // nil: any error
	}{
		{"server without certificate", func() (*tls.Config, error) { return tlsutil.ServerConfig("", f.server.key, f.caFile) }, tlsutil.ErrMissingFile},
		{"server without key", func() (*tls.Config, error) { return tlsutil.ServerConfig(f.server.cert, "", f.caFile) }, tlsutil.ErrMissingFile},
		{"server certificate missing", func() (*tls.Config, error) { return tlsutil.ServerConfig(missing, f.server.key, "") }, fs.ErrNotExist},
		{"server CA missing", func() (*tls.Config, error) { return tlsutil.ServerConfig(f.server.cert, f.server.key, missing) }, fs.ErrNotExist},
		{"server CA without certificates", func() (*tls.Config, error) { return tlsutil.ServerConfig(f.server.cert, f.server.key, empty) }, tlsutil.ErrNoCertificates},
		{"server key of another certificate", func() (*tls.Config, error) { return tlsutil.ServerConfig(f.server.cert, f.alice.key, "") }, nil},
		{"client certificate without key", func() (*tls.Config, error) { return tlsutil.ClientConfig(f.alice.cert, "", f.caFile, "") }, tlsutil.ErrMissingFile},
		{"client key without certificate", func() (*tls.Config, error) { return tlsutil.ClientConfig("", f.alice.key, f.caFile, "") }, tlsutil.ErrMissingFile},
		{"client CA without certificates", func() (*tls.Config, error) { return tlsutil.ClientConfig("", "", empty, "") }, tlsutil.ErrNoCertificates},
		{"peer without CA", func() (*tls.Config, error) { return tlsutil.PeerConfig(f.server.cert, f.server.key, "", "") }, tlsutil.ErrMissingFile},
		{"peer without certificate", func() (*tls.Config, error) { return tlsutil.PeerConfig("", "", f.caFile, "") }, tlsutil.ErrMissingFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.build()
			if cfg != nil || err == nil {
				t.Fatalf("got %v, %v; want an error", cfg, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestSubjectFromStateWithoutVerifiedChain(t *testing.T) {
	tests := []struct {
		name  string
		state tls.ConnectionState
	}{
		{"zero state", tls.ConnectionState{}},
		{"handshake complete, no certificate", tls.ConnectionState{HandshakeComplete: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := tlsutil.SubjectFromState(tt.state); s != "" || !errors.Is(err, tlsutil.ErrUnauthenticated) {
				t.Fatalf("SubjectFromState = %q, %v; want ErrUnauthenticated", s, err)
			}
		})
	}
}
