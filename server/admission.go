package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/transport"
	"github.com/commitlog-go/commitlog/transport/mux"
)

// admitTimeout bounds one admission check: dialing a member's Raft address and the handshake.
const admitTimeout = 5 * time.Second

// ErrNotAdmitted means a server did not prove who it is: no certificate chaining to the peer CA
// and naming it was presented at its advertised Raft address. It never enters Raft's
// configuration.
var ErrNotAdmitted = errors.New("server did not prove its identity")

// admit checks, before a server enters Raft's configuration (added, re-addressed or promoted),
// that the process at raftAddr is the node called id: it dials raftAddr the way Raft does
// (RaftByte, then the peer TLS handshake) expecting a certificate that chains to the peer CA and
// carries tlsutil.NodeDNSName(id). A handshake proves the other end holds the certificate's key.
//
// Without peer TLS there is nothing to prove identity with, and every server is admitted (a
// plaintext cluster: loopback, or --insecure-plaintext-peers, which warns at every start).
func admit(ctx context.Context, peerTLS *tls.Config, id, raftAddr string) error {
	if peerTLS == nil {
		return nil
	}
	if err := tlsutil.ValidNodeName(id); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotAdmitted, id, err)
	}
	ctx, cancel := context.WithTimeout(ctx, admitTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", raftAddr)
	if err != nil {
		return fmt.Errorf("%w: %s at %s: %w", ErrNotAdmitted, id, raftAddr, err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if _, err := conn.Write([]byte{mux.RaftByte}); err != nil {
		return fmt.Errorf("%w: %s at %s: %w", ErrNotAdmitted, id, raftAddr, err)
	}
	cfg := peerTLS.Clone()
	cfg.ServerName = tlsutil.NodeDNSName(id) // verified by crypto/tls against the peer CA
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("%w: %s at %s: peer TLS handshake expecting a certificate for %s: %w",
			ErrNotAdmitted, id, raftAddr, cfg.ServerName, err)
	}
	// crypto/tls compares host names without regard to case; node ids are compared exactly.
	if leaf := tc.ConnectionState().PeerCertificates[0]; !tlsutil.CertificateNamesNode(leaf, id) {
		return fmt.Errorf("%w: %s at %s: the certificate %q names %v", ErrNotAdmitted, id, raftAddr,
			leaf.Subject.CommonName, tlsutil.CertificateNodes(leaf))
	}
	return nil
}

// peerRule returns the one rule that makes an API caller a cluster peer (trusted with the
// forwarded-for header and with the cluster-internal calls): its verified certificate chains to
// the peer CA, allows server authentication and names a node (tlsutil.VerifyPeer). The peer CA
// is the one peerTLS verifies accepted peers against now: a configuration following a reload
// (tlsutil.Source's) answers the current CAs through GetConfigForClient, so a CA removed by a
// reload stops making peers. Without peer TLS no caller is a peer.
func peerRule(peerTLS *tls.Config) func(transport.Peer) bool {
	if peerTLS == nil {
		return func(transport.Peer) bool { return false }
	}
	return func(p transport.Peer) bool {
		if len(p.Certificates) == 0 {
			return false
		}
		roots := peerTLS.ClientCAs
		if peerTLS.GetConfigForClient != nil {
			if cur, err := peerTLS.GetConfigForClient(&tls.ClientHelloInfo{}); err == nil && cur != nil && cur.ClientCAs != nil {
				roots = cur.ClientCAs
			}
		}
		return roots != nil && tlsutil.VerifyPeer(p.Certificates, roots) == nil
	}
}
