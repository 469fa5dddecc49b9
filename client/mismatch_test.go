package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// TestConfigMismatch checks that New against servers whose TLS or transport does not match the
// client's fails with ErrUnavailable, as before, and with the error that says what is likely
// wrong (errors.Is) and a message naming the option that fixes it.
func TestConfigMismatch(t *testing.T) {
	pki, other := newTestPKI(t), newTestPKI(t)
	mtls := &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientCAs: pki.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	good := &tls.Config{Certificates: []tls.Certificate{pki.client}, RootCAs: pki.pool, MinVersion: tls.VersionTLS12}
	type mismatch struct {
		name      string
		addrs     []string
		transport string
		tls       *tls.Config
		want      error  // the cause
		option    string // what the message must name
	}
	for _, tr := range transports {
		tlsCluster, err := startFakeClusterTLS(tr, 2, mtls)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tlsCluster.stop)
		plainCluster, err := startFakeCluster(tr, 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(plainCluster.stop)
		tests := []mismatch{
			{"plaintext client", tlsCluster.addrs(), tr, nil, client.ErrTLSRequired, "WithTLS"},
			{"no client certificate", tlsCluster.addrs(), tr, &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS12},
				client.ErrClientCertificate, "Certificates of WithTLS"},
			{"CA that did not sign the server's certificate", tlsCluster.addrs(), tr,
				&tls.Config{Certificates: []tls.Certificate{pki.client}, RootCAs: other.pool, MinVersion: tls.VersionTLS12},
				client.ErrServerCertificate, "RootCAs of WithTLS"},
			{"TLS client, plaintext server", plainCluster.addrs(), tr, good, client.ErrServerNotTLS, "WithTLS"},
		}
		if tr == client.TransportGRPC {
			tests = append(tests, mismatch{"connect client, grpc server", plainCluster.addrs(), client.TransportConnect, nil,
				client.ErrTransportMismatch, "WithTransport(TransportGRPC)"})
		}
		for _, tc := range tests {
			t.Run(tr+"/"+tc.name, func(t *testing.T) {
				opts := []client.Option{client.WithTransport(tc.transport), client.WithMaxRetries(1), client.WithBackoff(time.Millisecond, time.Millisecond)}
				if tc.tls != nil {
					opts = append(opts, client.WithTLS(tc.tls))
				}
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				c, err := client.New(ctx, tc.addrs, opts...)
				if err == nil {
					c.Close()
					t.Fatal("New succeeded")
				}
				wantCause(t, err, client.ErrUnavailable, tc.want, tc.option)
			})
		}
	}
}

// TestConfigMismatchOutlivesDeadline: when the caller's deadline cuts a later round short, New's
// error still names the mismatch an earlier round found. A server that answers a TLS client's
// first connection in plaintext, then holds every later one unanswered: the second round waits
// until the deadline. Before, New said only "cluster unavailable: context deadline exceeded:
// context deadline exceeded" (seen in CI: server/cli TestClientMismatchHints on a loaded machine,
// where grpc-go's reconnection took the last round past the CLI's --timeout).
func TestConfigMismatchOutlivesDeadline(t *testing.T) {
	pki := newTestPKI(t)
	good := &tls.Config{Certificates: []tls.Certificate{pki.client}, RootCAs: pki.pool, MinVersion: tls.VersionTLS12}
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var conns sync.WaitGroup
			var held []net.Conn
			var mu sync.Mutex
			t.Cleanup(func() {
				ln.Close()
				mu.Lock()
				for _, c := range held {
					c.Close()
				}
				mu.Unlock()
				conns.Wait()
			})
			conns.Go(func() {
				for first := true; ; first = false {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					if first {
						_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
						c.Close()
						continue
					}
					mu.Lock()
					held = append(held, c)
					mu.Unlock()
				}
			})
			ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
			defer cancel()
			c, err := client.New(ctx, []string{ln.Addr().String()}, client.WithTransport(tr), client.WithTLS(good),
				client.WithMaxRetries(1000), client.WithBackoff(time.Millisecond, time.Millisecond))
			if err == nil {
				c.Close()
				t.Fatal("New succeeded")
			}
			wantCause(t, err, client.ErrUnavailable, client.ErrServerNotTLS, "WithTLS")
		})
	}
}

// wantCause reports an error unless err is code (one of the client's classes, such as
// ErrUnavailable) with cause in its chain and a message naming option.
func wantCause(t *testing.T, err, code, cause error, option string) {
	t.Helper()
	if !errors.Is(err, code) || !errors.Is(err, cause) || !strings.Contains(err.Error(), option) {
		t.Errorf("err = %v; want %v with %v in its chain, naming %s", err, code, cause, option)
	}
}
