package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
)

// Peer describes the client at the other end of a request, as the server's
// transport saw it.
type Peer struct {
	// Subject is the common name (CN) of the client certificate's subject,
	// set only when the connection is TLS and the certificate was verified
	// against the server's ClientCAs. Empty otherwise.
	Subject string
	// Addr is the client's remote network address ("127.0.0.1:51234").
	Addr string
	// Protocol names the wire protocol of the request: "grpc", "grpcweb" or
	// "connect".
	Protocol string
	// Server is true when the caller is a cluster peer. The transports never
	// set it: what makes a certificate a peer's is the server's policy (its
	// peer CA and naming rule), so the server's interceptor decides and
	// stores the result with ContextWithPeer. A certificate's extended key
	// usage alone proves nothing.
	Server bool
	// Certificates is the client's certificate chain as presented (leaf
	// first), set only when the connection is TLS and the chain was verified
	// against the server's ClientCAs; nil otherwise. The server's interceptor
	// checks it against its own rule for peers.
	Certificates []*x509.Certificate
	// ForwardedFor is the subject a caller says it forwards this request for
	// (the ForwardedForHeader). Only a Server peer may be trusted with it;
	// the transport reports it, the server's interceptor decides.
	ForwardedFor string
}

// ForwardedForHeader is the request header (gRPC metadata key) in which a
// cluster peer that forwards a request names the client it came from, so the
// receiving server authorizes the original client, not the peer.
const ForwardedForHeader = "commitlog-forwarded-for"

type forwardedKey struct{}

// ContextWithForwardedFor returns a copy of ctx that makes a client of this
// module send subject in the ForwardedForHeader of unary calls.
func ContextWithForwardedFor(ctx context.Context, subject string) context.Context {
	return context.WithValue(ctx, forwardedKey{}, subject)
}

// ForwardedForFromContext returns the subject set by ContextWithForwardedFor.
// Client implementations call it.
func ForwardedForFromContext(ctx context.Context) (string, bool) {
	s, ok := ctx.Value(forwardedKey{}).(string)
	return s, ok && s != ""
}

// PeerIsServer reports whether the verified client certificate of a TLS
// connection allows server authentication (a cluster peer's certificate).
func PeerIsServer(state *tls.ConnectionState) bool {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return false
	}
	for _, u := range state.VerifiedChains[0][0].ExtKeyUsage {
		if u == x509.ExtKeyUsageServerAuth {
			return true
		}
	}
	return false
}

// PeerCertificates returns the client certificate chain of a TLS connection
// as presented (leaf first) when the server verified it, or nil.
func PeerCertificates(state *tls.ConnectionState) []*x509.Certificate {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return nil
	}
	return state.PeerCertificates
}

type peerKey struct{}

// ContextWithPeer returns a copy of ctx carrying p. Transport
// implementations call it before invoking the interceptor and handlers;
// tests use it to call handlers directly.
func ContextWithPeer(ctx context.Context, p Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFromContext returns the Peer of the request whose context is ctx. The
// boolean is false when ctx does not come from a transport server.
func PeerFromContext(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// PeerSubject returns the subject common name of the verified client
// certificate of a TLS connection: the leaf of the first verified chain. It
// returns "" for nil state or when no chain was verified (no client
// certificate, or a server that does not verify them), so an unverified
// certificate never yields an identity.
func PeerSubject(state *tls.ConnectionState) string {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return ""
	}
	return state.VerifiedChains[0][0].Subject.CommonName
}
