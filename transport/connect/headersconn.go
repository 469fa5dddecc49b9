package connect

import (
	"net"
	"sync"
	"time"
)

// headersHold is how long a response's lone HEADERS frame waits for the frame that follows it.
const headersHold = 200 * time.Microsecond

// headersListener gives each plaintext connection a headersConn holding HEADERS for hold.
type headersListener struct {
	net.Listener
	hold time.Duration
}

func (l headersListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newHeadersConn(c, l.hold), nil
}

// headersConn sends a response's HEADERS frame together with the frame after it, and on the
// client's side a request's, which net/http's HTTP/2 client flushes before the body too. net/http's
// HTTP/2 server writes a handler's response headers and waits for them to be written (and
// flushed) before the handler's body goes out, so every unary response cost two write system
// calls, and the client's reader woke twice. A Write that is exactly one HEADERS frame which
// does not end its stream (more frames of that response follow: the body, or trailers) is held
// until the next Write, which carries both, or until hold (headersHold) has passed (a stream whose
// body comes later: its headers are not kept from the client longer than that). Everything
// else, and what is held when it is not followed in time, is written as it comes; writes keep
// their order. Only for plaintext connections: under TLS the frames cannot be seen.
type headersConn struct {
	net.Conn

	hold  time.Duration
	mu    sync.Mutex
	held  []byte
	timer *time.Timer
	err   error // a held write's error, returned by the next Write
}

func newHeadersConn(c net.Conn, hold time.Duration) *headersConn {
	hc := &headersConn{Conn: c, hold: hold}
	hc.timer = time.AfterFunc(time.Hour, hc.flushHeld)
	hc.timer.Stop()
	return hc
}

// loneOpenHeaders reports whether p is exactly one HTTP/2 HEADERS frame, complete (END_HEADERS)
// and not ending its stream (no END_STREAM).
func loneOpenHeaders(p []byte) bool {
	const (
		frameHeaderLen = 9
		typeHeaders    = 0x1
		flagEndStream  = 0x1
		flagEndHeaders = 0x4
	)
	if len(p) < frameHeaderLen || p[3] != typeHeaders || p[4]&flagEndStream != 0 || p[4]&flagEndHeaders == 0 {
		return false
	}
	return int(p[0])<<16|int(p[1])<<8|int(p[2]) == len(p)-frameHeaderLen
}

func (c *headersConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if len(c.held) > 0 {
		c.timer.Stop()
		if len(p) > joinMaxBytes {
			// A large body: written after the headers, apart, so that the buffer stays small.
			if err := c.writeHeldLocked(); err != nil {
				return 0, err
			}
			return c.Conn.Write(p)
		}
		held := len(c.held)
		c.held = append(c.held, p...)
		n, err := c.Conn.Write(c.held)
		c.held = c.held[:0]
		if err != nil {
			c.err = err
		}
		return max(n-held, 0), err
	}
	if loneOpenHeaders(p) {
		c.held = append(c.held, p...)
		c.timer.Reset(c.hold)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// joinMaxBytes bounds the write joined to held HEADERS (what the buffer grows to).
const joinMaxBytes = 4 << 10

// flushHeld writes what is held, when nothing followed it in time.
func (c *headersConn) flushHeld() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		_ = c.writeHeldLocked() // kept in c.err for the next Write
	}
}

func (c *headersConn) writeHeldLocked() error {
	if len(c.held) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.held)
	c.held = c.held[:0]
	if err != nil {
		c.err = err
	}
	return err
}

// Close closes the connection at once, without taking the lock: a write blocked on a peer that
// does not read (holding it) ends with the close, as on the bare connection. What is held is
// dropped: HEADERS whose stream nothing else was written for within the last headersHold.
func (c *headersConn) Close() error {
	c.timer.Stop()
	return c.Conn.Close()
}
