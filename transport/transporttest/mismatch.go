package transporttest

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// testConfigMismatch checks that a client whose TLS configuration does not match the server's
// gets an Unavailable error whose chain says why (the transport's causes, for errors.Is):
// plaintext against TLS, TLS against plaintext, a server certificate from a CA the client does
// not trust, and no client certificate for a server that requires one.
func testConfigMismatch(t *testing.T, h Harness) {
	pki, other := NewPKI(t), NewPKI(t)
	mtls := Start(t, h, transport.ServerConfig{TLS: pki.ServerTLS()})
	plain := Start(t, h, transport.ServerConfig{})
	for _, tc := range []struct {
		name string
		addr string
		tls  *tls.Config
		want error
	}{
		{"plaintext client, TLS server", mtls.Addr, nil, transport.ErrClosedInPreface},
		{"TLS client, plaintext server", plain.Addr, pki.ClientTLS("root"), transport.ErrNotTLS},
		{"server certificate from another CA", mtls.Addr, other.ClientTLS("root"), transport.ErrServerCertificate},
		{"no client certificate", mtls.Addr, pki.ClientTLS(""), transport.ErrNoClientCertificate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Dial(t, h, tc.addr, transport.ClientConfig{TLS: tc.tls})
			for _, call := range []struct {
				name string
				fn   func(context.Context) error
			}{
				{"GetServers", func(ctx context.Context) error {
					_, err := c.GetServers(ctx, &logv1.GetServersRequest{})
					return err
				}},
				{"ConsumeStream", func(ctx context.Context) error {
					s, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{})
					if err == nil {
						defer s.Close()
						_, err = s.Receive()
					}
					return err
				}},
			} {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				err := call.fn(ctx)
				cancel()
				if call.name == "ConsumeStream" && tc.want == transport.ErrClosedInPreface {
					// Only calls that wait for their connection (unary ones) know whether the
					// server sent anything on it: a stream just fails.
					if transport.CodeOf(err) != transport.Unavailable {
						t.Errorf("%s: err = %v, want Unavailable", call.name, err)
					}
					continue
				}
				if transport.CodeOf(err) != transport.Unavailable || !errors.Is(err, tc.want) {
					t.Errorf("%s: err = %v (code %v), want Unavailable with %v in its chain", call.name, err, transport.CodeOf(err), tc.want)
				}
			}
		})
	}
}
