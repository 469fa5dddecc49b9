package server

import (
	"context"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestWipedVoterAtNewAddressRejoinsAsNonvoter: a voter whose data dir was wiped restarts under
// its name at a new address. The leader takes it back as a non-voter (hashicorp/raft's
// AddNonvoter would only re-address the voter, which would then vote with an empty log) and
// promotes it once it has caught up.
func TestWipedVoterAtNewAddressRejoinsAsNonvoter(t *testing.T) {
	ctx := ctxT(t, 90*time.Second)
	leader, w, _ := clusterWith20Records(t, ctx)
	oldAddr := w.Addr()
	w.shutdown(t)
	cfg := w.cfg
	cfg.StartJoinAddrs = []string{leader.GossipAddr()}
	cfg.Bootstrap = false
	var w2 *testServer
	for w2 == nil || w2.Addr() == oldAddr { // the OS may hand the old port out again
		if w2 != nil {
			w2.shutdown(t)
		}
		if err := os.RemoveAll(cfg.DataDir); err != nil {
			t.Fatal(err)
		}
		w2 = startNode(t, cfg, false)
	}
	if seen := suffrages(t, leader, w2.ID(), w2.Addr()); seen[0] != consensus.Nonvoter {
		t.Fatalf("the wiped node at its new address went through %v; want a non-voter first", seen)
	}
}

// TestWipeProcedure: the documented way to wipe a node (stop it, remove it, wipe its data dir,
// start it) brings it back as a non-voter that is promoted once caught up, with every record.
func TestWipeProcedure(t *testing.T) {
	ctx := ctxT(t, 90*time.Second)
	leader, w, lc := clusterWith20Records(t, ctx)
	w.shutdown(t)
	if _, err := lc.RemoveServer(ctx, &logv1.RemoveServerRequest{Id: w.ID()}); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	cfg := w.cfg
	if err := os.RemoveAll(cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	cfg.StartJoinAddrs = []string{leader.GossipAddr()}
	cfg.Bootstrap = false
	w2 := startNode(t, cfg, false)
	if seen := suffrages(t, leader, w2.ID(), ""); seen[0] != consensus.Nonvoter {
		t.Fatalf("the wiped node went through %v; want a non-voter first", seen)
	}
	waitFor(t, 20*time.Second, "the wiped node to hold every record", func() bool {
		lo, next := w2.fsm.Bounds()
		return lo == 0 && next == 20
	})
}

// TestWipedVoterCannotElectLeaderMissingWrite: a voter whose data dir was wiped restarts under its
// name and address while the only other holder of an acknowledged record is down. It is still a
// voter in the configuration, but with no Raft state it refuses its vote to a candidate whose
// log goes past the founding entry (consensus/raft's vote guard): the lagging node cannot win
// with it, the cluster waits for the holder, and the record survives.
func TestWipedVoterCannotElectLeaderMissingWrite(t *testing.T) {
	fc := newFixedCluster(t, 3)
	ctx := ctxT(t, 120*time.Second)
	L, W, C := fc.nodes[0], fc.nodes[1], fc.nodes[2] // L keeps the record, W is wiped, C lags
	if cur := leaderOf(t, fc.nodes); cur != L {
		if err := cur.node.TransferLeadership(ctx, L.ID()); err != nil {
			t.Fatalf("transfer: %v", err)
		}
		waitLeader(t, L.Server)
	}
	lc := newClient(t, TransportConnect, L.Addr())
	if _, err := lc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("before")}}); err != nil {
		t.Fatalf("produce: %v", err)
	}
	waitFor(t, 10*time.Second, "C to apply the first record", func() bool { _, next := C.fsm.Bounds(); return next == 1 })
	C.shutdown(t)
	res, err := lc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("acked")}})
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	off := res.GetOffset() // committed on L and W only
	W.shutdown(t)
	L.shutdown(t)
	if err := os.RemoveAll(fc.cfgs[1].DataDir); err != nil {
		t.Fatal(err)
	}
	start := func(i int) *testServer {
		srv, err := New(fc.cfgs[i])
		if err != nil {
			t.Fatalf("New %s: %v", fc.cfgs[i].NodeName, err)
		}
		c, cancel := context.WithCancel(context.Background())
		ts := &testServer{Server: srv, done: make(chan error, 1), stop: cancel}
		go func() { ts.done <- srv.Run(c) }()
		t.Cleanup(func() { ts.shutdown(t) })
		return ts
	}
	W2, C2 := start(1), start(2)
	for deadline := time.Now().Add(6 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if C2.node.IsLeader() || W2.node.IsLeader() {
			t.Fatalf("a leader was elected without the only live holder of offset %d (C leads: %v)", off, C2.node.IsLeader())
		}
	}
	L2 := start(0)
	nodes := []*testServer{L2, W2, C2}
	waitVoters(t, nodes)
	nl := leaderOf(t, nodes)
	c := newClient(t, TransportConnect, nl.Addr())
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("after")}}); err != nil {
		t.Fatalf("produce after: %v", err)
	}
	got, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: off})
	if err != nil || string(got.GetRecord().GetValue()) != "acked" {
		t.Fatalf("acknowledged record at offset %d: got %q, %v (leader %s); want \"acked\"", off, got.GetRecord().GetValue(), err, nl.ID())
	}
}

// suffrages watches id in leader's configuration, closely (a non-voter phase lasts one reconcile
// pass when there is little to catch up on), until it is a voter at addr ("" for any address),
// and returns the suffrages it went through there.
func suffrages(t *testing.T, leader *testServer, id, addr string) []consensus.Suffrage {
	t.Helper()
	var seen []consensus.Suffrage
	for deadline := time.Now().Add(40 * time.Second); len(seen) == 0 || seen[len(seen)-1] != consensus.Voter; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s is not a voter at %q after 40s (went through %v)", id, addr, seen)
		}
		servers, err := leader.node.Servers(context.Background())
		if err != nil {
			continue
		}
		for _, s := range servers {
			if s.ID == id && (addr == "" || s.Address == addr) && (len(seen) == 0 || seen[len(seen)-1] != s.Suffrage) {
				seen = append(seen, s.Suffrage)
			}
		}
	}
	return seen
}

// clusterWith20Records starts a 3-node cluster, stores 20 records through its leader and
// returns the leader, a follower and a client of the leader.
func clusterWith20Records(t *testing.T, ctx context.Context) (leader, follower *testServer, lc transport.Client) {
	t.Helper()
	nodes := startCluster(t, 3)
	leader = leaderOf(t, nodes)
	for _, nd := range nodes {
		if nd != leader {
			follower = nd
		}
	}
	lc = newClient(t, TransportConnect, leader.Addr())
	for range 20 {
		if _, err := lc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	return leader, follower, lc
}

// TestLeaderRestartedAtNewAddressIsReaddressed: a node restarted on its data dir at another
// address (a changed --advertise-host or port) that leads, here a single node, updates its own
// entry in Raft's configuration. The leader re-addressed every other server but never itself:
// GetServers (`cluster status`) kept naming the old address, and the SDK, sent there, could not
// write at all.
func TestLeaderRestartedAtNewAddressIsReaddressed(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	cfg := Config{DataDir: t.TempDir(), ReconcileInterval: 100 * time.Millisecond}
	srv := startServer(t, cfg)
	oldAddr := srv.Addr()
	if _, err := newClient(t, TransportConnect, oldAddr).Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("before")}}); err != nil {
		t.Fatal(err)
	}
	srv.shutdown(t)
	var srv2 *testServer
	for i := 0; i < 5 && (srv2 == nil || srv2.Addr() == oldAddr); i++ { // the OS may hand the old port out again
		if srv2 != nil {
			srv2.shutdown(t)
		}
		srv2 = startServer(t, cfg)
	}
	if srv2.Addr() == oldAddr {
		t.Fatalf("the OS handed out the old port %s five times", oldAddr)
	}
	c := newClient(t, TransportConnect, srv2.Addr())
	waitFor(t, 20*time.Second, "GetServers names the new address", func() bool {
		res, err := c.GetServers(ctx, &logv1.GetServersRequest{})
		return err == nil && len(res.GetServers()) == 1 && res.GetServers()[0].GetRpcAddr() == srv2.Addr()
	})
	sdk, err := client.New(ctx, []string{srv2.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	if off, err := sdk.Produce(ctx, []byte("after")); err != nil || off != 1 {
		t.Fatalf("SDK Produce after the restart: %d, %v; want offset 1", off, err)
	}
	if rec, err := sdk.Consume(ctx, 0); err != nil || string(rec.Value) != "before" {
		t.Fatalf("the record acknowledged before the restart: %v, %v", rec, err)
	}
}

// TestServerBackUnderNewNameReplacesOldEntry: a server whose data dir was wiped comes back at
// its address under another name. Raft refuses a second server at one address: the leader
// failed to add the new name at every pass, and the old name stayed in the configuration. As
// Consul does, the entry of a server that is gone and whose Raft address another member now
// proves is removed, the new name is added and promoted, and the cluster is three servers
// that a majority of keeps writing.
func TestServerBackUnderNewNameReplacesOldEntry(t *testing.T) {
	ctx := ctxT(t, 90*time.Second)
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	var w *testServer
	for _, nd := range nodes {
		if nd != leader {
			w = nd
		}
	}
	_, port, err := net.SplitHostPort(w.Addr())
	if err != nil {
		t.Fatal(err)
	}
	w.shutdown(t)
	cfg := w.cfg
	if err := os.RemoveAll(cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	cfg.NodeName = "node-3"
	cfg.StartJoinAddrs = []string{leader.GossipAddr()}
	cfg.BindAddr = "127.0.0.1:0"
	cfg.RPCPort, _ = strconv.Atoi(port)
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New at the old address %s: %v", w.Addr(), err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	n3 := &testServer{Server: srv, done: make(chan error, 1), stop: cancel}
	go func() { n3.done <- srv.Run(runCtx) }()
	t.Cleanup(func() { n3.shutdown(t) })
	if n3.Addr() != w.Addr() {
		t.Fatalf("restarted at %s, want the old address %s", n3.Addr(), w.Addr())
	}
	waitFor(t, 40*time.Second, "node-3 a voter and "+w.ID()+" gone from the configuration", func() bool {
		servers, err := leader.node.Servers(ctx)
		if err != nil {
			return false
		}
		ids := map[string]consensus.Suffrage{}
		for _, s := range servers {
			ids[s.ID] = s.Suffrage
		}
		sf, ok := ids["node-3"]
		_, old := ids[w.ID()]
		return ok && sf == consensus.Voter && !old && len(servers) == 3
	})
	// One server stopped: the two others are a majority and still write.
	n3.shutdown(t)
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	var rest []*testServer
	for _, nd := range nodes {
		if nd != w {
			rest = append(rest, nd)
		}
	}
	for {
		c := newClient(t, TransportConnect, leaderOf(t, rest).Addr())
		_, err := c.Produce(wctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("after")}})
		if err == nil {
			break
		}
		if wctx.Err() != nil {
			t.Fatalf("produce with two of three servers up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
