package server

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/telemetry/telemetrytest"
	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestMaxConnsKeepsClusterWorking: strangers holding every API connection --max-conns allows
// on every node get no more (one more is closed at once), and the cluster goes on: writes
// commit (Raft's connections are not counted) and a leadership transfer, whose new leader
// dials its peers anew, succeeds and the new leader takes writes.
func TestMaxConnsKeepsClusterWorking(t *testing.T) {
	const maxConns = 4
	nodes := startClusterWith(t, 3, func(i int, cfg *Config) {
		cfg.MaxConns = maxConns
		cfg.ReadHeaderTimeout = time.Hour // the held connections stay until the test ends
		cfg.MetricsAddr = "127.0.0.1:0"
	})
	ctx := ctxT(t, 90*time.Second)
	// Each node's one legit client, connected before the strangers come.
	clients := map[*testServer]transport.Client{}
	for _, nd := range nodes {
		c := newClient(t, TransportConnect, nd.Addr())
		if _, err := c.GetServers(ctx, &logv1.GetServersRequest{}); err != nil {
			t.Fatalf("GetServers on %s: %v", nd.ID(), err)
		}
		clients[nd] = c
	}
	hold := func(addr string) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte("P")); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, nd := range nodes {
		// One more than --max-conns: at least one is refused, whatever slots the peers'
		// own API connections (forwarding, bounds) already take.
		for range maxConns + 1 {
			hold(nd.Addr())
		}
		waitFor(t, 10*time.Second, "node "+nd.ID()+" refuses a connection over --max-conns", func() bool { return nd.mux.Stats().Refused > 0 })
		if st := nd.mux.Stats(); st.APIOpen > maxConns {
			t.Fatalf("node %s: mux stats %+v, want at most %d open", nd.ID(), st, maxConns)
		}
		fams := telemetrytest.Scrape(t, nd.MetricsAddr())
		if m, err := telemetrytest.Find(fams, "commitlog_api_connections_refused_total", nil); err != nil || m.GetCounter().GetValue() < 1 {
			t.Fatalf("commitlog_api_connections_refused_total on %s = %v, %v; want at least 1", nd.ID(), m, err)
		}
		if m, err := telemetrytest.Find(fams, "commitlog_api_connections", nil); err != nil || m.GetGauge().GetValue() > maxConns || m.GetGauge().GetValue() < 1 {
			t.Fatalf("commitlog_api_connections on %s = %v, %v; want 1 to %d", nd.ID(), m, err, maxConns)
		}
	}
	leader := leaderOf(t, nodes)
	if _, err := clients[leader].Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("before")}}); err != nil {
		t.Fatalf("Produce with every API full: %v", err)
	}
	if err := leader.node.TransferLeadership(ctx, ""); err != nil {
		t.Fatalf("TransferLeadership with every API full: %v", err)
	}
	waitFor(t, 20*time.Second, "another node leads", func() bool { return !leader.node.IsLeader() && leaderOf(t, nodes) != leader })
	next := leaderOf(t, nodes)
	if _, err := clients[next].Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("after")}}); err != nil {
		t.Fatalf("Produce on the new leader with every API full: %v", err)
	}
}

// TestStrangersNotSpeakingTLSCannotFillMaxConns: on a TLS API, connections that send one byte
// that begins no TLS handshake and then nothing wait among --max-pending-conns like stalled
// handshakes (the oldest is closed), so they cannot hold every --max-conns slot. Found by
// flooding a secured node's port with such connections: they were counted as open at once,
// beyond the pending cap, and while the TLS server waited for the rest of a record header
// (--read-header-timeout) every new client connection was closed over --max-conns.
func TestStrangersNotSpeakingTLSCannotFillMaxConns(t *testing.T) {
	const maxConns, maxPending = 4, 2
	pki := newTestPKI(t)
	cfg := pki.secureConfig(TransportConnect, filepath.Join(seedACLDir, "policy.csv"))
	cfg.MaxConns, cfg.MaxPendingConns = maxConns, maxPending
	cfg.ReadHeaderTimeout = time.Hour // the strangers' connections would stay until the test ends
	srv := startServer(t, cfg)
	for range 3 * maxConns {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte{0x17}); err != nil { // a TLS record type, not a handshake's
			t.Fatal(err)
		}
	}
	// Sorted: all open (before), or the newest waiting and the others closed. The client's
	// connection comes after every stranger's, so none of theirs closes it as the oldest.
	waitFor(t, 10*time.Second, "the strangers' connections sorted", func() bool {
		st := srv.mux.Stats()
		return st.APIOpen == maxConns || (st.Pending == maxPending && st.APIOpen == maxPending)
	})
	root := tlsClient(t, TransportConnect, srv.Addr(), pki.client(pki.cert("root", certgen.Client, certgen.Options{CommonName: "root"})))
	ctx := ctxT(t, 30*time.Second)
	if _, err := root.GetBounds(ctx, &logv1.GetBoundsRequest{}); err != nil {
		t.Fatalf("a client among strangers that sent one non-TLS byte each: %v (mux stats %+v)", err, srv.mux.Stats())
	}
}
