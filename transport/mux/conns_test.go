package mux_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
	"github.com/commitlog-go/commitlog/transport/mux"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

// dialSpeaking opens a connection to addr that sends first, closed when the test ends.
func dialSpeaking(t *testing.T, addr string, first []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(first); err != nil {
		t.Fatal(err)
	}
	return c
}

// closedByServer reports whether c is closed by the other side within waitLimit (false: it
// stayed open, or sent data).
func closedByServer(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitLimit))
	_, err := c.Read(make([]byte, 1))
	if err == nil {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read: %v, want EOF (closed by the server)", err)
	}
	return true
}

// acceptAPI accepts one API connection, or fails the test.
func acceptAPI(t *testing.T, m *mux.Mux) net.Conn {
	t.Helper()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := m.API().Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("API Accept failed")
		}
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(waitLimit):
		t.Fatal("no API connection accepted")
		return nil
	}
}

// TestMaxConnsClosesOneOver: with MaxConns API connections open, one more is closed at once;
// once one of them closes, a new one is accepted again.
func TestMaxConnsClosesOneOver(t *testing.T) {
	const maxConns = 3
	m := newMux(t, mux.Config{MaxConns: maxConns})
	addr := m.Addr().String()
	var server []net.Conn
	for range maxConns {
		dialSpeaking(t, addr, []byte("P"))
		server = append(server, acceptAPI(t, m))
	}
	over := dialSpeaking(t, addr, []byte("P"))
	if !closedByServer(t, over) {
		t.Fatalf("connection %d of at most %d still open", maxConns+1, maxConns)
	}
	if st := m.Stats(); st.Refused != 1 || st.APIOpen != maxConns {
		t.Fatalf("Stats = %+v, want Refused 1, APIOpen %d", st, maxConns)
	}
	// The API server closes one: room for another.
	server[0].Close()
	server[0].Close() // counted once
	dialSpeaking(t, addr, []byte("P"))
	acceptAPI(t, m)
	if st := m.Stats(); st.APIOpen != maxConns {
		t.Fatalf("Stats = %+v, want APIOpen %d", st, maxConns)
	}
}

// TestMaxConnsKeepsRaft: Raft's connections are not counted against MaxConns, and the API's
// at the cap do not keep Raft out.
func TestMaxConnsKeepsRaft(t *testing.T) {
	m := newMux(t, mux.Config{MaxConns: 1})
	addr := m.Addr().String()
	raftDial := func() {
		t.Helper()
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
	}
	// A Raft connection open does not take the API's one place.
	accepted := acceptRaft(m)
	raftConn, err := m.Raft().Dial(addr, waitLimit)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer raftConn.Close()
	if s, ok := <-accepted; ok {
		defer s.Close()
	}
	dialSpeaking(t, addr, []byte("P"))
	acceptAPI(t, m)
	// The API is full; more API connections are refused, Raft's still get through.
	if over := dialSpeaking(t, addr, []byte("P")); !closedByServer(t, over) {
		t.Fatal("API connection over MaxConns still open")
	}
	raftDial()
	raftDial()
}

// partialClientHello is the start of a TLS record carrying a ClientHello that never comes.
var partialClientHello = []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}

// TestStalledTLSHandshakesArePending: API connections that start a TLS handshake and never
// finish it count among the MaxPending waiting connections (the oldest is closed), so they do
// not pile up however many come, and a client that completes its handshake is served and no
// longer waiting. TLS 1.2 and 1.3 both (the end of the handshake is seen in the records the
// client sends).
func TestStalledTLSHandshakesArePending(t *testing.T) {
	for _, tr := range apiTransports {
		for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			t.Run(tr.name+"/"+tls.VersionName(version), func(t *testing.T) {
				testStalledTLSHandshakes(t, version, partialClientHello, tr)
			})
		}
		// A first byte that begins no TLS handshake (here the record type of application
		// data, then nothing) cannot be a client of a TLS API, whose server then waits for the
		// rest of a record header until its handshake timeout. Found by flooding a secured
		// node's port with such connections: they were handed over as open API connections
		// at once, out of MaxPending's reach, filled MaxConns and every client's new connection
		// was closed (48 of 60 calls refused) while the stalled ones were never cut.
		t.Run(tr.name+"/not-a-handshake", func(t *testing.T) {
			testStalledTLSHandshakes(t, tls.VersionTLS13, []byte{0x17}, tr)
		})
	}
}

// apiServer is a transport's API server, as the tests below start it.
type apiServer interface {
	Serve(net.Listener) error
	Stop(context.Context) error
}

// apiTransport is one transport's server and client.
type apiTransport struct {
	name      string
	newServer func(transport.ServerConfig) (apiServer, error)
	newClient func(string, transport.ClientConfig) (transport.Client, error)
}

// apiTransports are the two transports, for the tests of an API served behind the Mux.
var apiTransports = []apiTransport{
	{"grpc", func(c transport.ServerConfig) (apiServer, error) { return tgrpc.NewServer(c) },
		func(a string, c transport.ClientConfig) (transport.Client, error) { return tgrpc.NewClient(a, c) }},
	{"connect", func(c transport.ServerConfig) (apiServer, error) { return tconnect.NewServer(c) },
		func(a string, c transport.ClientConfig) (transport.Client, error) { return tconnect.NewClient(a, c) }},
}

// serveTLSAPI serves tr's API under TLS (pki's server certificate) on m's API listener until the
// test ends, and returns m's address. The server alone would let a handshake take an hour.
func serveTLSAPI(t *testing.T, m *mux.Mux, tr apiTransport, pki *transporttest.PKI) string {
	t.Helper()
	srv, err := tr.newServer(transport.ServerConfig{Log: transporttest.NewService(), TLS: pki.ServerTLS(),
		Limits: transport.Limits{ReadHeaderTimeout: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(m.API()) }()
	t.Cleanup(func() { srv.Stop(context.Background()); <-done })
	return m.Addr().String()
}

func testStalledTLSHandshakes(t *testing.T, version uint16, first []byte, tr apiTransport) {
	const maxPending, stalled = 4, 20
	pki := transporttest.NewPKI(t)
	// MaxConns below the stalled connections: those that left the waiting ones would crowd
	// the client out.
	m := newMux(t, mux.Config{FirstByteTimeout: time.Hour, MaxPending: maxPending, MaxConns: 2 * maxPending, APITLS: true})
	addr := serveTLSAPI(t, m, tr, pki)

	var conns []net.Conn
	for range stalled {
		conns = append(conns, dialSpeaking(t, addr, first))
	}
	for i, c := range conns[:stalled-maxPending] {
		if !closedByServer(t, c) {
			t.Fatalf("stalled handshake %d of %d still open with MaxPending %d", i+1, stalled, maxPending)
		}
	}
	clientTLS := pki.ClientTLS("root")
	clientTLS.MaxVersion = version
	c, err := tr.newClient(addr, transport.ClientConfig{TLS: clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	if _, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{}); err != nil {
		t.Fatalf("legit client among stalled handshakes: %v", err)
	}
	// The legit connection closed the oldest stalled one, then left the waiting ones.
	if st := m.Stats(); st.Pending != maxPending-1 {
		t.Fatalf("Stats = %+v, want Pending %d", st, maxPending-1)
	}
}

// warnCounter counts the records of level warn or above.
type warnCounter struct {
	mu   sync.Mutex
	msgs []string
}

func (h *warnCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *warnCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}
func (h *warnCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *warnCounter) WithGroup(string) slog.Handler      { return h }

// TestMaxConnsRefusalsLoggedRateLimited: a flood of connections over MaxConns is logged, but
// not once per connection (the log must not become the next thing a stranger fills).
func TestMaxConnsRefusalsLoggedRateLimited(t *testing.T) {
	h := &warnCounter{}
	m := newMux(t, mux.Config{MaxConns: 1, Logger: slog.New(h)})
	addr := m.Addr().String()
	dialSpeaking(t, addr, []byte("P"))
	acceptAPI(t, m)
	const over = 10
	for range over {
		if c := dialSpeaking(t, addr, []byte("P")); !closedByServer(t, c) {
			t.Fatal("API connection over MaxConns still open")
		}
	}
	if st := m.Stats(); st.Refused != over {
		t.Fatalf("Stats = %+v, want Refused %d", st, over)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.msgs) != 1 || !strings.Contains(h.msgs[0], "too many API connections") {
		t.Fatalf("warnings %q, want one about too many API connections", h.msgs)
	}
}

// waitStats polls m's Stats until ok holds, or fails the test.
func waitStats(t *testing.T, m *mux.Mux, ok func(mux.Stats) bool) {
	t.Helper()
	for end := time.Now().Add(waitLimit); ; time.Sleep(5 * time.Millisecond) {
		st := m.Stats()
		if ok(st) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("Stats = %+v", st)
		}
	}
}

// TestAPIOpenAfterAPIListenerCloses: API connections queued for an Accept that never comes are
// closed by the API listener's Close and stop counting, and one sorted after it is closed
// without counting: the count comes back to zero, nothing refused.
func TestAPIOpenAfterAPIListenerCloses(t *testing.T) {
	m := newMux(t, mux.Config{MaxConns: 2})
	addr := m.Addr().String()
	queued := []net.Conn{dialSpeaking(t, addr, []byte("P")), dialSpeaking(t, addr, []byte("P"))}
	waitStats(t, m, func(st mux.Stats) bool { return st.APIOpen == 2 && st.Pending == 0 })
	m.API().Close()
	for i, c := range queued {
		if !closedByServer(t, c) {
			t.Fatalf("queued connection %d still open after the API listener closed", i)
		}
	}
	waitStats(t, m, func(st mux.Stats) bool { return st.APIOpen == 0 })
	// Several: each one's sorter found both the closed listener and room in its queue.
	for i := range 8 {
		if late := dialSpeaking(t, addr, []byte("P")); !closedByServer(t, late) {
			t.Fatalf("connection %d sorted after the API listener closed still open (Stats %+v)", i, m.Stats())
		}
	}
	waitStats(t, m, func(st mux.Stats) bool { return st.APIOpen == 0 && st.Pending == 0 && st.Refused == 0 })
}

// TestStalledTLSHandshakeClosedAsOldestStopsCounting: an API connection in its TLS handshake
// that a newer waiting connection pushes out (MaxPending) is closed under the API server,
// whose Close then ends its count once: nothing stays open or pending.
func TestStalledTLSHandshakeClosedAsOldestStopsCounting(t *testing.T) {
	m := newMux(t, mux.Config{MaxPending: 1, MaxConns: 4})
	addr := m.Addr().String()
	stalled := dialSpeaking(t, addr, partialClientHello)
	server := acceptAPI(t, m)
	waitStats(t, m, func(st mux.Stats) bool { return st.APIOpen == 1 && st.Pending == 1 })
	dialSpeaking(t, addr, nil) // waits for its first byte: the handshake is the oldest
	if !closedByServer(t, stalled) {
		t.Fatal("stalled handshake still open with a newer connection waiting over MaxPending")
	}
	server.SetReadDeadline(time.Now().Add(waitLimit))
	if b, err := io.ReadAll(server); err == nil {
		t.Fatalf("the API server read %x from a connection closed under it, and no error", b)
	}
	server.Close()
	server.Close()
	waitStats(t, m, func(st mux.Stats) bool { return st.APIOpen == 0 && st.Pending == 1 })
}

// TestStalledTLSHandshakeClosedAsOldestFreesItsPlace: an API connection cut as the oldest
// waiting one stops counting against MaxConns when the Mux closes it, not when its server
// notices: here the server never does, and the next client is still taken. Found in CI: a
// client coming just after a flood of stalled handshakes was refused (connection reset) by
// connections already closed that the loaded server had not yet released.
func TestStalledTLSHandshakeClosedAsOldestFreesItsPlace(t *testing.T) {
	m := newMux(t, mux.Config{MaxPending: 1, MaxConns: 1})
	addr := m.Addr().String()
	stalled := dialSpeaking(t, addr, partialClientHello)
	held := acceptAPI(t, m) // the server holds it and never reads or closes it
	waitStats(t, m, func(st mux.Stats) bool { return st.APIOpen == 1 && st.Pending == 1 })
	dialSpeaking(t, addr, partialClientHello)
	if !closedByServer(t, stalled) {
		t.Fatal("stalled handshake still open with a newer one waiting over MaxPending")
	}
	acceptAPI(t, m)
	waitStats(t, m, func(st mux.Stats) bool { return st.APIOpen == 1 && st.Pending == 1 && st.Refused == 0 })
	// The server's late Close of the cut connection does not count it out a second time.
	held.Close()
	if st := m.Stats(); st.APIOpen != 1 {
		t.Fatalf("Stats = %+v after the cut connection's late Close, want APIOpen 1", st)
	}
}

// TestStalledTLSHandshakesCannotFillMaxConns: API connections in their TLS handshake count
// against MaxConns. With MaxConns no more than the established connections plus MaxPending
// (serve's default MaxPending is at most MaxConns: `--max-conns 20` makes both 20), stalled
// handshakes filled what the established ones left while the waiting ones were not full, so no
// new connection closed them, and every client's new connection was refused over MaxConns for
// as long as a stranger without a certificate kept stalling (seen against a secured node: 60
// ClientHellos then silence, and every call refused until the handshake timeout). The oldest
// stalled handshake now gives way.
func TestStalledTLSHandshakesCannotFillMaxConns(t *testing.T) {
	for _, tr := range apiTransports {
		t.Run(tr.name, func(t *testing.T) {
			const maxConns, stalled = 4, 12
			pki := transporttest.NewPKI(t)
			m := newMux(t, mux.Config{FirstByteTimeout: time.Hour, MaxPending: maxConns, MaxConns: maxConns, APITLS: true})
			addr := serveTLSAPI(t, m, tr, pki)
			call := func(what string) {
				t.Helper()
				c, err := tr.newClient(addr, transport.ClientConfig{TLS: pki.ClientTLS("root")})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() }) // kept open: an established connection
				ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
				defer cancel()
				if _, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{}); err != nil {
					t.Fatalf("%s: %v (mux stats %+v)", what, err, m.Stats())
				}
			}
			call("a client before the strangers")
			for range stalled {
				dialSpeaking(t, addr, partialClientHello)
			}
			time.Sleep(200 * time.Millisecond) // sorted: each counted as open, or refused
			call("a client among stalled handshakes filling MaxConns")
		})
	}
}
