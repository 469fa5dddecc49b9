package mux_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
	"github.com/commitlog-go/commitlog/transport/mux"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitLimit = 10 * time.Second

// newMux starts a Mux on a loopback port, closed when the test ends.
func newMux(t testing.TB, cfg mux.Config) *mux.Mux {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m, err := mux.New(l, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// serveAPI serves the gRPC transport on m's API listener.
func serveAPI(t *testing.T, m *mux.Mux, tlsCfg *tls.Config) {
	t.Helper()
	srv, err := tgrpc.NewServer(transport.ServerConfig{Log: transporttest.NewService(), TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(m.API())
	}()
	t.Cleanup(func() {
		srv.Stop(context.Background())
		<-done
	})
}

// acceptRaft accepts one Raft connection in the background.
func acceptRaft(m *mux.Mux) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := m.Raft().Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

func echoCheck(t *testing.T, client, server net.Conn) {
	t.Helper()
	msg := []byte("append entries")
	if _, err := client.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	server.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatalf("server read: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("server read %q, want %q (the raft byte must not be passed on)", got, msg)
	}
	if _, err := server.Write([]byte("ok")); err != nil {
		t.Fatalf("server write: %v", err)
	}
	client.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := io.ReadFull(client, got[:2]); err != nil || string(got[:2]) != "ok" {
		t.Fatalf("client read %q, %v", got[:2], err)
	}
}

func apiCall(t *testing.T, addr string, cfg transport.ClientConfig) error {
	t.Helper()
	c, err := tgrpc.NewClient(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err = c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("v")}})
	return err
}

func TestRaftAndAPIShareOnePort(t *testing.T) {
	pki := transporttest.NewPKI(t)
	peerServer, peerClient := pki.PeerTLS("node-1")
	tests := []struct {
		name   string
		cfg    mux.Config
		apiTLS *tls.Config
		client transport.ClientConfig
	}{
		{name: "plaintext"},
		{
			name:   "TLS",
			cfg:    mux.Config{PeerServerTLS: peerServer, PeerClientTLS: peerClient, PeerServerName: "localhost"},
			apiTLS: pki.ServerTLS(),
			client: transport.ClientConfig{TLS: pki.ClientTLS("root")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMux(t, tt.cfg)
			serveAPI(t, m, tt.apiTLS)
			addr := m.Addr().String()
			accepted := acceptRaft(m)
			conn, err := m.Raft().Dial(addr, waitLimit)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer conn.Close()
			server, ok := <-accepted
			if !ok {
				t.Fatal("raft Accept failed")
			}
			defer server.Close()
			if _, isTLS := server.(*tls.Conn); isTLS != (tt.cfg.PeerServerTLS != nil) {
				t.Errorf("accepted raft conn is TLS: %v, want %v", isTLS, tt.cfg.PeerServerTLS != nil)
			}
			echoCheck(t, conn, server)
			if err := apiCall(t, addr, tt.client); err != nil {
				t.Fatalf("API call on the shared port: %v", err)
			}
			if m.Raft().Addr().String() != addr {
				t.Errorf("raft Addr = %v, want %v", m.Raft().Addr(), addr)
			}
		})
	}
}

func TestIdleConnectionDoesNotBlockOthers(t *testing.T) {
	// The timeout leaves room for a loaded machine to send the first byte of the connections that
	// must get through, and is still well under waitLimit for the idle one to be closed.
	m := newMux(t, mux.Config{FirstByteTimeout: 2 * time.Second})
	serveAPI(t, m, nil)
	addr := m.Addr().String()

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	// While idle sends nothing, Raft and API connections get through.
	accepted := acceptRaft(m)
	conn, err := m.Raft().Dial(addr, waitLimit)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer conn.Close()
	server, ok := <-accepted
	if !ok {
		t.Fatal("raft Accept failed")
	}
	defer server.Close()
	echoCheck(t, conn, server)
	if err := apiCall(t, addr, transport.ClientConfig{}); err != nil {
		t.Fatalf("API call: %v", err)
	}

	// The idle connection is closed once its first byte is overdue.
	idle.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle conn read = %v, want io.EOF (closed by the mux)", err)
	}
}

func TestPeerTLSMismatchRefused(t *testing.T) {
	pki := transporttest.NewPKI(t)
	peerServer, peerClient := pki.PeerTLS("node-1")
	_, otherClient := transporttest.NewPKI(t).PeerTLS("intruder")

	t.Run("plaintext peer to TLS", func(t *testing.T) {
		m := newMux(t, mux.Config{PeerServerTLS: peerServer, HandshakeTimeout: time.Second})
		accepted := acceptRaft(m)
		plain := newMux(t, mux.Config{})
		conn, err := plain.Raft().Dial(m.Addr().String(), waitLimit)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer conn.Close()
		conn.Write([]byte("plaintext raft rpc"))
		conn.SetReadDeadline(time.Now().Add(waitLimit))
		// The mux answers with a TLS alert at most, then closes: ReadAll
		// ends (EOF, or a reset) instead of hanging.
		if _, err := io.ReadAll(conn); err != nil && !isNetErr(err) {
			t.Fatalf("read = %v, want the mux to close the connection", err)
		}
		select {
		case c := <-accepted:
			c.Close()
			t.Fatal("a plaintext peer reached Raft on a TLS mux")
		default:
		}
	})
	t.Run("unknown CA", func(t *testing.T) {
		m := newMux(t, mux.Config{PeerServerTLS: peerServer})
		accepted := acceptRaft(m)
		dialer := newMux(t, mux.Config{PeerClientTLS: otherClient})
		if conn, err := dialer.Raft().Dial(m.Addr().String(), waitLimit); err == nil {
			conn.Close()
			t.Fatal("Dial with a certificate from another CA succeeded")
		}
		select {
		case c := <-accepted:
			c.Close()
			t.Fatal("a peer with a foreign certificate reached Raft")
		default:
		}
	})
	t.Run("TLS peer to plaintext", func(t *testing.T) {
		m := newMux(t, mux.Config{})
		accepted := acceptRaft(m)
		go func() { // Raft rejects the garbage: here, just close it.
			if c, ok := <-accepted; ok {
				c.Close()
			}
		}()
		dialer := newMux(t, mux.Config{PeerClientTLS: peerClient})
		if conn, err := dialer.Raft().Dial(m.Addr().String(), waitLimit); err == nil {
			conn.Close()
			t.Fatal("TLS Dial to a plaintext peer succeeded")
		}
	})
}

func isNetErr(err error) bool {
	e, ok := errors.AsType[*net.OpError](err)
	return ok && !e.Timeout()
}

func TestClose(t *testing.T) {
	m := newMux(t, mux.Config{})
	addr := m.Addr().String()
	idle, err := net.Dial("tcp", addr) // pending: closed by Close
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	apiErr := make(chan error, 1)
	go func() {
		_, err := m.API().Accept()
		apiErr <- err
	}()
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := <-apiErr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("API Accept after Close = %v, want net.ErrClosed", err)
	}
	if _, err := m.Raft().Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Raft Accept after Close = %v, want net.ErrClosed", err)
	}
	idle.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := idle.Read(make([]byte, 1)); err == nil {
		t.Errorf("pending connection still open after Close")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Errorf("listener still accepting after Close")
	}
}

func TestSubListenerCloseKeepsOtherSide(t *testing.T) {
	m := newMux(t, mux.Config{})
	serveAPI(t, m, nil)
	if err := m.Raft().Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Raft().Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Raft Accept after its Close = %v", err)
	}
	if err := apiCall(t, m.Addr().String(), transport.ClientConfig{}); err != nil {
		t.Fatalf("API call after the Raft side closed: %v", err)
	}
}

func TestNewNilListener(t *testing.T) {
	if _, err := mux.New(nil, mux.Config{}); !errors.Is(err, mux.ErrNilListener) {
		t.Errorf("New(nil) = %v", err)
	}
}

// TestNewRejectsInvalidConfig: a negative field is refused, named, and the listener stays the
// caller's (still open).
func TestNewRejectsInvalidConfig(t *testing.T) {
	for _, tt := range []struct {
		field string
		cfg   mux.Config
	}{
		{"FirstByteTimeout", mux.Config{FirstByteTimeout: -time.Second}},
		{"HandshakeTimeout", mux.Config{HandshakeTimeout: -time.Second}},
		{"MaxPending", mux.Config{MaxPending: -1}},
	} {
		t.Run(tt.field, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			m, err := mux.New(l, tt.cfg)
			if m != nil || !errors.Is(err, mux.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field+" ") {
				t.Fatalf("New = %v, %v; want ErrInvalidConfig naming %s", m, err, tt.field)
			}
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatalf("the listener was closed by a failed New: %v", err)
			}
			_ = c.Close()
		})
	}
}

// TestPendingCapClosesOldest: with MaxPending connections waiting for their first byte, a new
// connection closes the oldest waiting one; the others, and connections that speak at once,
// are served.
func TestPendingCapClosesOldest(t *testing.T) {
	m := newMux(t, mux.Config{FirstByteTimeout: time.Hour, MaxPending: 2})
	serveAPI(t, m, nil)
	addr := m.Addr().String()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedByMux := func(c net.Conn) bool {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(waitLimit))
		_, err := c.Read(make([]byte, 1))
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read: %v, want EOF (closed by the mux)", err)
		}
		return err != nil
	}
	idle1 := dial()
	idle2 := dial()
	idle3 := dial() // the third waiting connection: idle1, the oldest, goes
	if !closedByMux(idle1) {
		t.Fatal("oldest idle connection still open")
	}
	// idle2 and idle3 are still waiting: a Raft byte on idle3 makes it a Raft connection.
	accepted := acceptRaft(m)
	if _, err := idle3.Write([]byte{mux.RaftByte}); err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("raft Accept failed")
	}
	defer server.Close()
	echoCheck(t, idle3, server)
	// An API client that speaks at once is served (it may close idle2, the oldest, on the way).
	if err := apiCall(t, addr, transport.ClientConfig{}); err != nil {
		t.Fatalf("API call: %v", err)
	}
	_ = idle2
}

// TestStopAcceptingRefusesNewKeepsOpen: after StopAccepting a new connection is refused by the
// operating system (its client knows it sent nothing), a Raft connection accepted before
// keeps carrying data, and one still waiting for its first byte is still sorted.
func TestStopAcceptingRefusesNewKeepsOpen(t *testing.T) {
	m := newMux(t, mux.Config{})
	addr := m.Addr().String()
	raftCh := acceptRaft(m)
	raftClient, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raftClient.Close()
	if _, err := raftClient.Write([]byte{mux.RaftByte}); err != nil {
		t.Fatal(err)
	}
	raftServer, ok := <-raftCh
	if !ok {
		t.Fatal("Raft Accept failed")
	}
	defer raftServer.Close()
	late, err := net.Dial("tcp", addr) // accepted, its first byte not sent yet
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	waitUntil := time.Now().Add(waitLimit)
	for m.Stats().Pending == 0 && time.Now().Before(waitUntil) {
		time.Sleep(time.Millisecond)
	}
	if err := m.StopAccepting(); err != nil {
		t.Fatalf("StopAccepting: %v", err)
	}
	if err := m.StopAccepting(); err != nil {
		t.Fatalf("second StopAccepting: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("a connection was accepted after StopAccepting")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after StopAccepting = %v, want connection refused", err)
	}
	echoCheck(t, raftClient, raftServer)
	lateCh := acceptRaft(m)
	if _, err := late.Write([]byte{mux.RaftByte}); err != nil {
		t.Fatal(err)
	}
	lateServer, ok := <-lateCh
	if !ok {
		t.Fatal("a connection accepted before StopAccepting was not sorted")
	}
	defer lateServer.Close()
	echoCheck(t, late, lateServer)
	if err := m.Close(); err != nil {
		t.Fatalf("Close after StopAccepting: %v", err)
	}
}
