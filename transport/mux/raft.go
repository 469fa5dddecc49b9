package mux

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// StreamLayer is Raft's side of the Mux. It has the shape of hashicorp/raft's
// StreamLayer (net.Listener plus Dial) without importing raft; the server
// adapts Dial's address type:
//
//	func (a adapter) Dial(addr raft.ServerAddress, t time.Duration) (net.Conn, error) {
//		return a.StreamLayer.Dial(string(addr), t)
//	}
//
// Accept, Close and Addr behave as for Mux.API. Safe for concurrent use.
type StreamLayer struct {
	*subListener
	cfg Config
}

// Dial connects to the Raft side of the peer at address ("host:port"):
// TCP, RaftByte, then the TLS handshake when Config.PeerClientTLS is set,
// all within timeout (no limit when timeout <= 0). The peer's certificate
// is verified for Config.PeerServerName or the host of address.
func (s *StreamLayer) Dial(address string, timeout time.Duration) (net.Conn, error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, fmt.Errorf("mux: dial raft peer %s: %w", address, err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetWriteDeadline(deadline)
	}
	if _, err := conn.Write([]byte{RaftByte}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("mux: dial raft peer %s: %w", address, err)
	}
	conn.SetWriteDeadline(time.Time{})
	if s.cfg.PeerClientTLS == nil {
		return conn, nil
	}
	cfg := s.cfg.PeerClientTLS.Clone()
	switch {
	case s.cfg.PeerServerName != "":
		cfg.ServerName = s.cfg.PeerServerName
	case cfg.ServerName == "":
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("mux: dial raft peer %s: %w", address, err)
		}
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("mux: TLS handshake with raft peer %s: %w", address, err)
	}
	return tc, nil
}
