package connect

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

// frame builds an HTTP/2 frame of type typ with flags and a payload of n bytes.
func frame(typ, flags byte, n int) []byte {
	return append([]byte{byte(n >> 16), byte(n >> 8), byte(n), typ, flags, 0, 0, 0, 1}, make([]byte, n)...)
}

// writeRecorder is a net.Conn that records each Write it is given, and can be made to fail.
type writeRecorder struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	fail   error
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		return 0, w.fail
	}
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

func (w *writeRecorder) Close() error { return nil }

func (w *writeRecorder) got() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.writes)
}

func TestLoneOpenHeaders(t *testing.T) {
	for _, c := range []struct {
		name string
		p    []byte
		want bool
	}{
		{"HEADERS, END_HEADERS", frame(0x1, 0x4, 5), true},
		{"HEADERS, END_HEADERS with padding and priority flags", frame(0x1, 0x4|0x8|0x20, 7), true},
		{"HEADERS, END_HEADERS, END_STREAM (trailers)", frame(0x1, 0x4|0x1, 5), false},
		{"HEADERS without END_HEADERS (CONTINUATION follows in the same flush)", frame(0x1, 0, 5), false},
		{"DATA", frame(0x0, 0x0, 5), false},
		{"HEADERS and DATA in one write", append(frame(0x1, 0x4, 5), frame(0x0, 0x1, 3)...), false},
		{"a truncated HEADERS frame", frame(0x1, 0x4, 5)[:10], false},
		{"short", []byte{0, 0, 0, 1, 4}, false},
		{"HTTP/1.1", []byte("HTTP/1.1 200 OK\r\n\r\n"), false},
	} {
		if got := loneOpenHeaders(c.p); got != c.want {
			t.Errorf("%s: loneOpenHeaders = %v, want %v", c.name, got, c.want)
		}
	}
}

// A response's HEADERS frame goes out with the frame after it, in one write and in order; a
// frame that ends its stream, and anything that is not a lone HEADERS frame, go out at once.
func TestHeadersConnJoinsHeadersAndBody(t *testing.T) {
	rec := &writeRecorder{}
	c := newHeadersConn(rec, headersHold)
	defer c.Close()
	headers, data := frame(0x1, 0x4, 5), frame(0x0, 0x1, 3)
	if n, err := c.Write(headers); n != len(headers) || err != nil {
		t.Fatalf("Write(HEADERS) = %d, %v", n, err)
	}
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("HEADERS written alone: %x", got)
	}
	if n, err := c.Write(data); n != len(data) || err != nil {
		t.Fatalf("Write(DATA) = %d, %v", n, err)
	}
	trailers := frame(0x1, 0x4|0x1, 2)
	if _, err := c.Write(trailers); err != nil {
		t.Fatal(err)
	}
	got := rec.got()
	want := [][]byte{append(bytes.Clone(headers), data...), trailers}
	if len(got) != len(want) || !bytes.Equal(got[0], want[0]) || !bytes.Equal(got[1], want[1]) {
		t.Fatalf("writes %x, want %x", got, want)
	}
}

// A large body after held HEADERS is written apart, after them, not copied into the buffer.
func TestHeadersConnLargeBodyApart(t *testing.T) {
	rec := &writeRecorder{}
	c := newHeadersConn(rec, time.Minute)
	defer c.Close()
	headers, data := frame(0x1, 0x4, 5), frame(0x0, 0x1, joinMaxBytes)
	if _, err := c.Write(headers); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Write(data); n != len(data) || err != nil {
		t.Fatalf("Write(DATA) = %d, %v", n, err)
	}
	if got := rec.got(); len(got) != 2 || !bytes.Equal(got[0], headers) || !bytes.Equal(got[1], data) {
		t.Fatalf("%d writes, want the HEADERS, then the DATA", len(got))
	}
	if cap(c.held) > 1024 {
		t.Errorf("held buffer grew to %d bytes", cap(c.held))
	}
}

// HEADERS that nothing follows (a stream whose first message comes later) go out within
// headersHold.
func TestHeadersConnHoldsBriefly(t *testing.T) {
	rec := &writeRecorder{}
	c := newHeadersConn(rec, headersHold)
	defer c.Close()
	headers := frame(0x1, 0x4, 5)
	if _, err := c.Write(headers); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(rec.got()) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("held HEADERS never written")
		}
	}
	if got := rec.got(); len(got) != 1 || !bytes.Equal(got[0], headers) {
		t.Fatalf("writes %x, want the HEADERS", got)
	}
}

// Close does not wait for a write stuck on a peer that reads nothing (the write holds the
// conn's lock): it closes the connection, which ends the write, as on a bare connection.
func TestHeadersConnCloseEndsStuckWrite(t *testing.T) {
	server, client := net.Pipe() // synchronous: a Write waits for a Read that never comes
	defer client.Close()
	c := newHeadersConn(server, time.Minute)
	if _, err := c.Write(frame(0x1, 0x4, 5)); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(frame(0x0, 0x1, 3))
		wrote <- err
	}()
	time.Sleep(20 * time.Millisecond) // the write is stuck in the pipe
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a stuck write")
	}
	if err := <-wrote; !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("the stuck write ended with %v, want io.ErrClosedPipe", err)
	}
}

// A failed write of what was held is the next Write's error, and every later one's.
func TestHeadersConnWriteError(t *testing.T) {
	broken := errors.New("broken pipe")
	rec := &writeRecorder{}
	c := newHeadersConn(rec, headersHold)
	defer c.Close()
	if _, err := c.Write(frame(0x1, 0x4, 5)); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	rec.fail = broken
	rec.mu.Unlock()
	if n, err := c.Write(frame(0x0, 0x1, 3)); n != 0 || !errors.Is(err, broken) {
		t.Fatalf("Write(DATA) = %d, %v; want 0, %v", n, err, broken)
	}
	if _, err := c.Write(frame(0x0, 0x1, 3)); !errors.Is(err, broken) {
		t.Fatalf("next Write: %v, want %v", err, broken)
	}
}

// writeCounter counts the writes a server makes on its connections.
type writeCounter struct {
	net.Listener
	writes *atomic.Int64
}

func (l writeCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestUnaryResponseIsOneWrite: a unary call's response (HEADERS and DATA) reaches the
// connection in one write, not two, over Connect and gRPC (whose trailers go with their own).
func TestUnaryResponseIsOneWrite(t *testing.T) {
	for _, p := range []Protocol{ProtocolConnect, ProtocolGRPC} {
		t.Run(p.String(), func(t *testing.T) {
			srv, err := NewServer(transport.ServerConfig{Log: transporttest.NewService()})
			if err != nil {
				t.Fatal(err)
			}
			srv.headersHold = time.Minute // the body always comes in time: the count does not depend on the machine's speed
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var writes atomic.Int64
			served := make(chan error, 1)
			go func() { served <- srv.Serve(writeCounter{l, &writes}) }()
			defer func() {
				_ = srv.Stop(t.Context())
				<-served
			}()
			c, err := NewClientProtocol(l.Addr().String(), transport.ClientConfig{}, p)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			perCall := writesPerProduce(t, c, &writes)
			t.Logf("%.2f writes per unary response", perCall)
			want := 1.0
			if p == ProtocolGRPC {
				want = 2 // HEADERS and DATA, then the trailers
			}
			if perCall > want+0.1 { // the odd WINDOW_UPDATE or PING besides
				t.Errorf("%.2f writes per unary response, want %v", perCall, want)
			}
		})
	}
}

// countingDialer dials TCP connections whose writes it counts.
type countingDialer struct{ writes *atomic.Int64 }

func (d countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return countingConn{c, d.writes}, nil
}

// TestUnaryRequestIsOneWrite: the client sends a unary call's request (HEADERS and DATA) in
// one write, not two.
func TestUnaryRequestIsOneWrite(t *testing.T) {
	s := transporttest.Start(t, transporttest.Harness{
		NewServer: func(cfg transport.ServerConfig) (transport.Server, error) { return NewServer(cfg) },
	}, transport.ServerConfig{})
	c, err := NewClientProtocol(s.Addr, transport.ClientConfig{}, ProtocolConnect)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var writes atomic.Int64
	if c.conns.headersHold == 0 {
		t.Fatal("a plaintext client's connections do not hold HEADERS for the body")
	}
	c.conns.headersHold = time.Minute // the body always comes in time: the count does not depend on the machine's speed
	c.http.DialContext = c.conns.dial(countingDialer{&writes})
	perCall := writesPerProduce(t, c, &writes)
	t.Logf("%.2f writes per unary request", perCall)
	if perCall > 1.1 { // the odd WINDOW_UPDATE or PING besides
		t.Errorf("%.2f writes per unary request, want 1", perCall)
	}
}

// writesPerProduce makes 50 Produce calls through c, after one to warm the connection up, and
// returns how many writes writes counted per call.
func writesPerProduce(t *testing.T, c transport.Client, writes *atomic.Int64) float64 {
	t.Helper()
	if _, err := c.Produce(t.Context(), &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("warm")}}); err != nil {
		t.Fatal(err)
	}
	const n = 50
	before := writes.Load()
	for i := range n {
		if _, err := c.Produce(t.Context(), &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("r")}}); err != nil {
			t.Fatalf("Produce %d: %v", i, err)
		}
	}
	return float64(writes.Load()-before) / n
}
