package transporttest

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// cutProxy forwards TCP connections to a server until cut, which resets every connection it
// carries (SO_LINGER 0: the peers see ECONNRESET, as when the server's host or process dies).
type cutProxy struct {
	l     net.Listener
	to    string
	mu    sync.Mutex
	conns []*net.TCPConn
	ended bool // no connection is carried after end
	wg    sync.WaitGroup
}

func newCutProxy(t testing.TB, to string) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	p := &cutProxy{l: l, to: to}
	p.wg.Go(p.accept)
	t.Cleanup(p.cut)
	return p
}

func (p *cutProxy) addr() string { return p.l.Addr().String() }

func (p *cutProxy) accept() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.to)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.ended {
			// Accepted while end ran: it would never close these.
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		p.conns = append(p.conns, c.(*net.TCPConn), s.(*net.TCPConn))
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(s, c); _ = s.(*net.TCPConn).CloseWrite() })
		p.wg.Go(func() { _, _ = io.Copy(c, s); _ = c.(*net.TCPConn).CloseWrite() })
	}
}

// cut closes the listener and resets every connection, and waits for the copies to end.
func (p *cutProxy) cut() { p.end(true) }

// close closes the listener and every connection (a FIN, as the kernel closes the sockets of
// a process that died, when nothing it had not read was left), and waits for the copies to end.
func (p *cutProxy) close() { p.end(false) }

func (p *cutProxy) end(reset bool) {
	p.l.Close()
	p.mu.Lock()
	p.ended = true
	for _, c := range p.conns {
		if reset {
			_ = c.SetLinger(0)
		}
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// testClosedConnection: a call whose connection is closed under it, cleanly at the TCP level
// (the server's process died and its kernel closed the socket), fails Unavailable too, not
// Internal or Unknown: the server did not answer, and a caller that retries on Unavailable
// must retry it.
func testClosedConnection(t *testing.T, h Harness) {
	testConnectionEnd(t, h, "closed", (*cutProxy).close)
}

// testBrokenConnection: a call whose connection is reset under it (the server's host died, a
// middlebox dropped it) fails Unavailable: the caller cancelled nothing, and a caller that
// retries on Unavailable must retry it. A Canceled would say the caller gave up.
func testBrokenConnection(t *testing.T, h Harness) {
	testConnectionEnd(t, h, "reset", (*cutProxy).cut)
}

// testConnectionEnd ends (with end) the connection under a tailing stream and checks that its
// Receive fails Unavailable while the call's context is still alive.
func testConnectionEnd(t *testing.T, h Harness, how string, end func(*cutProxy)) {
	s := Start(t, h, transport.ServerConfig{})
	p := newCutProxy(t, s.Addr)
	c := Dial(t, h, p.addr(), transport.ClientConfig{})
	ctx := ctxT(t)
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("a")}}); err != nil {
		t.Fatalf("Produce: %v", err)
	}
	st, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{})
	if err != nil {
		t.Fatalf("ConsumeStream: %v", err)
	}
	defer st.Close()
	if _, err := st.Receive(); err != nil {
		t.Fatalf("Receive: %v", err)
	}
	end(p)
	_, err = st.Receive()
	wantCode(t, "a tailing stream's Receive after its connection was "+how, err, transport.Unavailable)
	if ctx.Err() != nil {
		t.Fatalf("the call's context ended (%v): the test proves nothing", ctx.Err())
	}
}

// silentServer accepts TCP connections and reads them, answering nothing (a server that
// hangs), and counts the connections it accepted and those the client ended.
type silentServer struct {
	l              net.Listener
	mu             sync.Mutex
	conns          []net.Conn
	accepted, done int
	wg             sync.WaitGroup
}

func newSilentServer(t testing.TB) *silentServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &silentServer{l: l}
	s.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.accepted++
			s.mu.Unlock()
			s.wg.Go(func() {
				_, _ = io.Copy(io.Discard, c)
				s.mu.Lock()
				s.done++
				s.mu.Unlock()
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// open is how many accepted connections the client has not ended, and how many were accepted.
func (s *silentServer) open() (open, accepted int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted - s.done, s.accepted
}

// testClientCloseEndsConnections: Close ends every connection the client opened, also those
// under calls that a silent server never answered and that their callers had just given up:
// a client closed after its server hung keeps no connection, and no goroutine reading one.
func testClientCloseEndsConnections(t *testing.T, h Harness) {
	s := newSilentServer(t)
	c, err := h.NewClient(s.l.Addr().String(), transport.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ctx, cancel := context.WithTimeout(ctxT(t), 100*time.Millisecond)
		_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("a")}})
		cancel()
		if err == nil {
			t.Fatal("Produce to a silent server succeeded")
		}
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		open, accepted := s.open()
		if accepted == 0 {
			t.Fatal("the client never connected: the test proves nothing")
		}
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d connections the client opened still open 5 s after Close", open, accepted)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
