package grpc

import (
	"net"
	"sync"

	"google.golang.org/grpc/credentials"

	"github.com/commitlog-go/commitlog/transport/internal/rejectlog"
)

// loggingCreds are server TLS credentials that log the handshakes they refuse (rejectlog: at
// warn level with the remote address and the reason, limited per reason). grpc-go logs them
// only through grpclog, at info level, which nothing shows by default.
type loggingCreds struct {
	credentials.TransportCredentials
	handshakes *rejectlog.Handshakes
}

func (c loggingCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	hc := &heldCloseConn{Conn: raw}
	conn, info, err := c.TransportCredentials.ServerHandshake(hc)
	if err != nil {
		// Logged before the connection closes: the line is there once the client sees the end.
		c.handshakes.Report(raw.RemoteAddr().String(), err)
	}
	hc.release()
	return conn, info, err
}

func (c loggingCreds) Clone() credentials.TransportCredentials {
	return loggingCreds{TransportCredentials: c.TransportCredentials.Clone(), handshakes: c.handshakes}
}

// heldCloseConn holds a Close called during the handshake until release.
type heldCloseConn struct {
	net.Conn
	mu       sync.Mutex
	released bool
	closed   bool // Close was called before release
}

func (c *heldCloseConn) Close() error {
	c.mu.Lock()
	if !c.released {
		c.closed = true
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// release ends the hold, closing the connection if Close was called during it.
func (c *heldCloseConn) release() {
	c.mu.Lock()
	c.released = true
	closed := c.closed
	c.mu.Unlock()
	if closed {
		c.Conn.Close()
	}
}
