package server

import (
	"net"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/telemetry/telemetrytest"
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
