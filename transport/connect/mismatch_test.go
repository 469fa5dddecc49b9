package connect_test

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

// TestGRPCOnlyServer checks that a Connect or gRPC-Web client against a grpc-go server (which
// answers HTTP 415) gets the Unknown error it always got, now with transport.ErrGRPCOnly in
// its chain, and that a gRPC client of this package talks to it.
func TestGRPCOnlyServer(t *testing.T) {
	grpcHarness := transporttest.Harness{
		NewServer: func(cfg transport.ServerConfig) (transport.Server, error) { return tgrpc.NewServer(cfg) },
	}
	s := transporttest.Start(t, grpcHarness, transport.ServerConfig{})
	for _, p := range []tconnect.Protocol{tconnect.ProtocolConnect, tconnect.ProtocolGRPCWeb, tconnect.ProtocolGRPC} {
		t.Run(p.String(), func(t *testing.T) {
			c, err := tconnect.NewClientProtocol(s.Addr, transport.ClientConfig{}, p)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			_, err = c.GetServers(ctx, &logv1.GetServersRequest{})
			if p == tconnect.ProtocolGRPC {
				if err != nil {
					t.Fatalf("GetServers over gRPC: %v", err)
				}
				return
			}
			wantCause(t, err, transport.Unknown, transport.ErrGRPCOnly)
		})
	}
}

// TestErrorKeepsCause checks that a client error keeps connect-go's error, and what it wraps,
// in its chain (the *tls.CertificateVerificationError of an unverified server certificate),
// next to the transport's word for it.
func TestErrorKeepsCause(t *testing.T) {
	pki, other := transporttest.NewPKI(t), transporttest.NewPKI(t)
	s := transporttest.Start(t, harness(tconnect.ProtocolConnect), transport.ServerConfig{TLS: pki.ServerTLS()})
	call := func(cfg *tls.Config) error {
		c, err := tconnect.NewClient(s.Addr, transport.ClientConfig{TLS: cfg})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err = c.GetServers(ctx, &logv1.GetServersRequest{})
		return err
	}
	if err := call(other.ClientTLS("root")); wantCause(t, err, transport.Unavailable, transport.ErrServerCertificate) {
		if _, ok := errors.AsType[*tls.CertificateVerificationError](err); !ok {
			t.Errorf("another CA: err = %v, want a *tls.CertificateVerificationError in its chain", err)
		}
	}
	// net/http reports the connection's end as io.ErrUnexpectedEOF, or as a connection that
	// could not be established when it ended before the request was queued on it.
	if err := call(nil); wantCause(t, err, transport.Unavailable, transport.ErrClosedInPreface) {
		if _, ok := errors.AsType[*connect.Error](err); !ok {
			t.Errorf("plaintext: err = %v, want connect-go's error in its chain", err)
		}
	}
}

// wantCause reports an error unless err has code and cause in its chain, and says whether it
// has.
func wantCause(t *testing.T, err error, code transport.Code, cause error) bool {
	t.Helper()
	if got := transport.CodeOf(err); got != code || !errors.Is(err, cause) {
		t.Errorf("err = %v (code %v), want %v with %v in its chain", err, got, code, cause)
		return false
	}
	return true
}
