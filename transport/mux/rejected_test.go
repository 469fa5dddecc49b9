package mux_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
	"github.com/commitlog-go/commitlog/transport/mux"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

// logRecord is a record kept by recordHandler, its attributes as text.
type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// recordHandler keeps the records of level warn or above.
type recordHandler struct {
	mu      sync.Mutex
	records []logRecord
}

func (h *recordHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: make(map[string]string)}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, rec)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordHandler) all() []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]logRecord(nil), h.records...)
}

// tlsSide is a TLS server on a Mux's port: the API's on one transport, or Raft's.
type tlsSide struct {
	name string
	raft bool // connections begin with mux.RaftByte
	// good makes a connection that passes the handshake and uses it.
	good func(t *testing.T)
}

// startTLSSide serves side name (grpc, connect: the API; raft: the peers) with TLS from pki on
// a Mux whose logs, and the API server's, go to h.
func startTLSSide(t *testing.T, name string, pki *transporttest.PKI, h *recordHandler) (*mux.Mux, tlsSide) {
	t.Helper()
	logger := slog.New(h)
	if name == "raft" {
		srvTLS, cliTLS := pki.PeerTLS("node-1")
		m := newMux(t, mux.Config{PeerServerTLS: srvTLS, PeerClientTLS: cliTLS, Logger: logger})
		return m, tlsSide{name: name, raft: true, good: func(t *testing.T) {
			accepted := acceptRaft(m)
			conn, err := m.Raft().Dial(m.Addr().String(), waitLimit)
			if err != nil {
				t.Fatalf("peer Dial: %v", err)
			}
			defer conn.Close()
			select {
			case c := <-accepted:
				if c == nil {
					t.Fatal("raft Accept failed")
				}
				c.Close()
			case <-time.After(waitLimit):
				t.Fatal("peer connection not accepted")
			}
		}}
	}
	m := newMux(t, mux.Config{Logger: logger})
	cfg := transport.ServerConfig{Log: transporttest.NewService(), TLS: pki.ServerTLS(), Logger: logger}
	var (
		srv interface {
			Serve(net.Listener) error
			Stop(context.Context) error
		}
		newClient func(string, transport.ClientConfig) (transport.Client, error)
		err       error
	)
	if name == "grpc" {
		srv, err = tgrpc.NewServer(cfg)
		newClient = func(a string, c transport.ClientConfig) (transport.Client, error) { return tgrpc.NewClient(a, c) }
	} else {
		srv, err = tconnect.NewServer(cfg)
		newClient = func(a string, c transport.ClientConfig) (transport.Client, error) { return tconnect.NewClient(a, c) }
	}
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(m.API()) }()
	t.Cleanup(func() { srv.Stop(context.Background()); <-done })
	return m, tlsSide{name: name, good: func(t *testing.T) {
		c, err := newClient(m.Addr().String(), transport.ClientConfig{TLS: pki.ClientTLS("root")})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
		defer cancel()
		if _, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{}); err != nil {
			t.Fatalf("client with a good certificate: %v", err)
		}
	}}
}

// attempt connects to addr (sending mux.RaftByte first for raft), sends first, or runs a TLS
// handshake with cfg when first is nil, and waits for the server to close the connection. It
// returns the connection's local address: the remote address the server sees.
func attempt(t *testing.T, addr string, raft bool, cfg *tls.Config, first []byte) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLimit))
	if raft {
		if _, err := c.Write([]byte{mux.RaftByte}); err != nil {
			t.Fatal(err)
		}
	}
	if first != nil {
		if _, err := c.Write(first); err != nil {
			t.Fatal(err)
		}
	} else {
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err == nil {
			// TLS 1.3: the client is done before the server has checked its certificate;
			// the server's verdict comes as an alert.
			if _, err := tc.Read(make([]byte, 1)); err == nil {
				t.Fatal("the server accepted the handshake")
			}
		}
	}
	// The server logs a refused handshake before it closes the connection.
	buf := make([]byte, 512)
	for {
		if _, err := c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the server did not close the connection")
			}
			break
		}
	}
	return c.LocalAddr().String()
}

// TestRejectedTLSHandshakeLogged: a TLS handshake the server refuses (no client certificate,
// one of an unknown CA, an expired one) is logged once at warn level with the remote address and the reason,
// on the API (both transports) and on Raft's side of the port; a good client's is not.
func TestRejectedTLSHandshakeLogged(t *testing.T) {
	pki := transporttest.NewPKI(t)
	stranger := transporttest.NewPKI(t)
	for _, name := range []string{"grpc", "connect", "raft"} {
		t.Run(name, func(t *testing.T) {
			h := &recordHandler{}
			m, side := startTLSSide(t, name, pki, h)
			addr := m.Addr().String()

			side.good(t)
			if recs := h.all(); len(recs) != 0 {
				t.Fatalf("good client: %d warnings, want none: %+v", len(recs), recs)
			}

			noCert := &tls.Config{RootCAs: pki.Pool(), ServerName: "localhost", NextProtos: []string{"h2"}}
			unknownCA := stranger.ClientTLS("root")
			unknownCA.RootCAs, unknownCA.ServerName, unknownCA.NextProtos = pki.Pool(), "localhost", []string{"h2"}
			expired := pki.ExpiredClientTLS("root")
			expired.ServerName, expired.NextProtos = "localhost", []string{"h2"}
			if side.raft {
				_, unknownCA = stranger.PeerTLS("node-2")
				unknownCA.RootCAs, unknownCA.ServerName = pki.Pool(), "localhost"
			}
			cases := []struct {
				name   string
				cfg    *tls.Config
				reason string
			}{
				{"no certificate", noCert, "certificate required"},
				{"unknown CA", unknownCA, "unknown certificate authority"},
				{"expired", expired, "certificate expired or not yet valid"},
			}
			for _, tc := range cases {
				before := len(h.all())
				remote := attempt(t, addr, side.raft, tc.cfg, nil)
				recs := h.all()[before:]
				if len(recs) != 1 {
					t.Errorf("%s: %d warnings, want 1: %+v", tc.name, len(recs), recs)
					continue
				}
				r := recs[0]
				if !strings.Contains(r.msg, "rejected") || !strings.Contains(r.msg, "TLS handshake") ||
					r.attrs["remote"] != remote || r.attrs["reason"] != tc.reason || r.attrs["err"] == "" {
					t.Errorf("%s: warning %q %v, want one naming the TLS handshake rejected, remote=%s reason=%q and the error",
						tc.name, r.msg, r.attrs, remote, tc.reason)
				}
			}
		})
	}
}

// TestRejectedTLSHandshakeFloodBounded: a thousand refused handshakes write a bounded number
// of lines (10 at once, then one a second per reason), and the next line logged counts those
// dropped ("suppressed"), so that every refusal is accounted for.
func TestRejectedTLSHandshakeFloodBounded(t *testing.T) {
	const n = 1000
	pki := transporttest.NewPKI(t)
	garbage := []byte("xxxxxxxxxxxxxxxxxxxxxxxx") // not a TLS record (nor HTTP)
	for _, name := range []string{"grpc", "connect", "raft"} {
		t.Run(name, func(t *testing.T) {
			h := &recordHandler{}
			m, side := startTLSSide(t, name, pki, h)
			addr := m.Addr().String()
			start := time.Now()
			for range n {
				attempt(t, addr, side.raft, nil, garbage)
			}
			elapsed := time.Since(start)
			flood := len(h.all())
			// Bounded: the burst, then one a second (and one for a second begun).
			if limit := 10 + int(elapsed/time.Second) + 1; flood > limit || flood < 10 {
				t.Fatalf("%d refused handshakes in %v wrote %d lines, want 10 to %d", n, elapsed, flood, limit)
			}
			// Once the allowance is back, the next refusal is logged and counts the dropped ones.
			attempts := n
			for len(h.all()) == flood {
				if time.Since(start) > elapsed+waitLimit {
					t.Fatal("no line logged a second after the flood")
				}
				time.Sleep(50 * time.Millisecond)
				attempt(t, addr, side.raft, nil, garbage)
				attempts++
			}
			lines, suppressed := 0, 0
			for _, r := range h.all() {
				if r.attrs["reason"] != "not TLS" || r.level != slog.LevelWarn {
					t.Fatalf("line %q %v, want a warning with reason \"not TLS\"", r.msg, r.attrs)
				}
				lines++
				if s := r.attrs["suppressed"]; s != "" {
					k, err := strconv.Atoi(s)
					if err != nil {
						t.Fatalf("suppressed=%q: %v", s, err)
					}
					suppressed += k
				}
			}
			if lines+suppressed != attempts || suppressed == 0 {
				t.Fatalf("%d lines counting %d suppressed, want them to account for the %d refusals", lines, suppressed, attempts)
			}
		})
	}
}

// TestPendingCapLogged: a connection closed to make room under MaxPending is logged at warn
// level with its remote address.
func TestPendingCapLogged(t *testing.T) {
	h := &recordHandler{}
	m := newMux(t, mux.Config{FirstByteTimeout: time.Hour, MaxPending: 2, Logger: slog.New(h)})
	addr := m.Addr().String()
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	if !closedByServer(t, conns[0]) {
		t.Fatal("the oldest of 3 silent connections still open with MaxPending 2")
	}
	recs := h.all()
	if len(recs) != 1 || !strings.Contains(recs[0].msg, "closed the oldest") || recs[0].attrs["remote"] != conns[0].LocalAddr().String() {
		t.Fatalf("warnings %+v, want one saying the oldest (%s) was closed", recs, conns[0].LocalAddr())
	}
}
