package grpc

import (
	"testing"

	"github.com/commitlog-go/commitlog/transport"
)

// TestConnectionCause pins the texts of grpc-go (v1.85.0) that connectionCause reads: a
// grpc-go upgrade that rewords them fails here, not silently in the SDK's hints.
func TestConnectionCause(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want error
	}{
		{`connection error: desc = "error reading server preface: EOF"`, transport.ErrClosedInPreface},
		{`connection error: desc = "error reading server preface: read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"`, transport.ErrClosedInPreface},
		{`connection error: desc = "transport: authentication handshake failed: tls: first record does not look like a TLS handshake"`, transport.ErrNotTLS},
		{`connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`, transport.ErrServerCertificate},
		{`connection error: desc = "error reading server preface: remote error: tls: certificate required"`, transport.ErrTLSRefused},
		{`connection error: desc = "transport: authentication handshake failed: remote error: tls: bad certificate"`, transport.ErrTLSRefused},
		{`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`, nil},
		{"no leader", nil},
	} {
		if got := connectionCause(tc.msg); got != tc.want {
			t.Errorf("connectionCause(%q) = %v, want %v", tc.msg, got, tc.want)
		}
	}
}
