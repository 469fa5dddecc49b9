package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// startCluster starts n in-process servers that form a cluster through Serf: the first
// bootstraps, the others join it.
func startCluster(t *testing.T, n int) []*testServer {
	t.Helper()
	nodes := make([]*testServer, 0, n)
	for i := range n {
		cfg := Config{NodeName: fmt.Sprintf("node-%d", i), GossipProfile: "test", ReconcileInterval: 100 * time.Millisecond}
		if i > 0 {
			cfg.StartJoinAddrs = []string{nodes[0].GossipAddr()}
		}
		nodes = append(nodes, startNode(t, cfg, i == 0))
	}
	waitVoters(t, nodes)
	return nodes
}

// waitVoters waits until every node sees all of nodes as voters of its cluster. When they do
// not in time, it logs what each node sees (Raft's configuration, gossip's members) before
// failing: a CI log is all there is of a cluster that did not form.
func waitVoters(t *testing.T, nodes []*testServer) {
	t.Helper()
	formed := func() bool {
		for _, nd := range nodes {
			servers, err := nd.node.Servers(context.Background())
			if err != nil || len(servers) != len(nodes) {
				return false
			}
			for _, s := range servers {
				if s.Suffrage != consensus.Voter {
					return false
				}
			}
		}
		return true
	}
	for deadline := time.Now().Add(30 * time.Second); !formed(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			for _, nd := range nodes {
				servers, err := nd.node.Servers(context.Background())
				var members []string
				for _, m := range nd.serf.Members() {
					members = append(members, fmt.Sprintf("%s=%v", m.Name, m.Status))
				}
				t.Logf("%s (leader %v): raft servers %+v (err %v); gossip members %v", nd.cfg.NodeName, nd.node.IsLeader(), servers, err, members)
			}
			t.Fatal("timed out after 30s waiting until every node is a voter of one cluster")
		}
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func leaderOf(t *testing.T, nodes []*testServer) *testServer {
	t.Helper()
	var leader *testServer
	waitFor(t, 20*time.Second, "a leader is elected", func() bool {
		for _, nd := range nodes {
			if nd.node.IsLeader() {
				leader = nd
				return true
			}
		}
		return false
	})
	return leader
}

func TestClusterFormsForwardsAndFailsOver(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := ctxT(t, 90*time.Second)
	leader := leaderOf(t, nodes)
	var follower *testServer
	for _, nd := range nodes {
		if nd != leader {
			follower = nd
			break
		}
	}

	// A produce sent to a follower is forwarded to the leader; reads right after an
	// acknowledged produce succeed on every node (they wait for the record to be applied).
	fc := newClient(t, TransportConnect, follower.Addr())
	var acked []string
	for i := range 20 {
		v := fmt.Sprintf("v%d", i)
		res, err := fc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(v)}})
		if err != nil {
			t.Fatalf("Produce through follower: %v", err)
		}
		if res.GetOffset() != uint64(i) {
			t.Fatalf("offset %d, want %d", res.GetOffset(), i)
		}
		acked = append(acked, v)
		for _, nd := range nodes {
			c := newClient(t, TransportConnect, nd.Addr())
			rec, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: res.GetOffset()})
			if err != nil || string(rec.GetRecord().GetValue()) != v {
				t.Fatalf("read-after-ack on %s = %v, %v", nd.ID(), rec, err)
			}
		}
	}

	// A linearizable read on a follower is refused with the leader named.
	_, err := fc.Consume(ctx, &logv1.ConsumeRequest{Offset: 0, Linearizable: true})
	if nl, ok := transport.NotLeaderDetail(err); !ok || nl.LeaderID != leader.ID() || nl.LeaderAddr != leader.Addr() {
		t.Fatalf("linearizable read on a follower: %v, want NotLeader naming %s", err, leader.ID())
	}

	// Stop the leader: a new one is elected, everything acknowledged is still there, and new
	// produces continue at the next offset.
	leader.shutdown(t)
	var rest []*testServer
	for _, nd := range nodes {
		if nd != leader {
			rest = append(rest, nd)
		}
	}
	newLeader := leaderOf(t, rest)
	c := newClient(t, TransportGRPC, newLeader.Addr())
	res, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("after")}})
	if err != nil || res.GetOffset() != uint64(len(acked)) {
		t.Fatalf("Produce on the new leader = %v, %v; want offset %d", res, err, len(acked))
	}
	acked = append(acked, "after")
	for _, nd := range rest {
		checkLog(t, nd, acked)
	}
}

// checkLog asserts nd serves exactly want at offsets 0.. (waiting for it to apply them).
func checkLog(t *testing.T, nd *testServer, want []string) {
	t.Helper()
	c := newClient(t, TransportConnect, nd.Addr())
	ctx := ctxT(t, 30*time.Second)
	for off, v := range want {
		rec, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: uint64(off)})
		if err != nil || string(rec.GetRecord().GetValue()) != v {
			t.Fatalf("%s offset %d = %v, %v; want %q", nd.ID(), off, rec, err, v)
		}
	}
	b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{})
	if err != nil || b.GetNextOffset() != uint64(len(want)) {
		t.Fatalf("%s bounds = %v, %v; want next %d (no extra records)", nd.ID(), b, err, len(want))
	}
}

func TestClusterLeaveAndRemove(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	var a, b *testServer
	for _, nd := range nodes {
		if nd == leader {
			continue
		}
		if a == nil {
			a = nd
		} else {
			b = nd
		}
	}
	ctx := ctxT(t, 60*time.Second)

	// An operator removes a live node: it is not added back by the reconciler, and when it
	// stops it leaves Serf (it asks the leader whether it is still a member), so no later
	// leader adds it back either.
	lc := newClient(t, TransportConnect, leader.Addr())
	if _, err := lc.RemoveServer(ctx, &logv1.RemoveServerRequest{Id: b.ID()}); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // several reconcile intervals
	servers, err := leader.node.Servers(ctx)
	if err != nil || len(servers) != 2 {
		t.Fatalf("after remove: servers = %v, %v; want the leader and %s", servers, err, a.ID())
	}
	b.shutdown(t)
	waitFor(t, 20*time.Second, "the removed node is seen as left in Serf", func() bool {
		for _, m := range leader.serf.Members() {
			if m.Name == b.ID() {
				if m.Status == discovery.StatusFailed {
					t.Fatalf("the removed node stopped without leaving Serf (status %v)", m.Status)
				}
				return m.Status == discovery.StatusLeft
			}
		}
		return false
	})

	// A node that leaves gracefully is removed from Raft by the leader.
	a.cfg.LeaveOnShutdown = true
	a.shutdown(t)
	waitFor(t, 20*time.Second, "the leaving node is removed from raft", func() bool {
		servers, err := leader.node.Servers(ctx)
		return err == nil && len(servers) == 1
	})
	if _, err := lc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("alone")}}); err != nil {
		t.Fatalf("Produce on a one-node cluster: %v", err)
	}
}

// TestRemoveServerUnknownID: removing an ID that is not in the Raft configuration is the
// caller's mistake, InvalidArgument as for TransferLeadership; Raft accepted it and the
// operator's typo was reported as a removal. The configuration is unchanged.
func TestRemoveServerUnknownID(t *testing.T) {
	srv := startServer(t, Config{})
	ctx := ctxT(t, 20*time.Second)
	for _, tr := range []string{TransportConnect, TransportGRPC} {
		c := newClient(t, tr, srv.Addr())
		if _, err := c.RemoveServer(ctx, &logv1.RemoveServerRequest{Id: "nobody"}); transport.CodeOf(err) != transport.InvalidArgument ||
			!strings.Contains(err.Error(), `"nobody" is not in the cluster`) {
			t.Errorf("%s: RemoveServer of an unknown ID: %v, want InvalidArgument naming it", tr, err)
		}
	}
	if servers, err := srv.node.Servers(ctx); err != nil || len(servers) != 1 || servers[0].ID != "node-0" {
		t.Errorf("configuration after the refusals: %v, %v", servers, err)
	}
}

// TestRemoveServerLastVoter: Raft refuses to remove the last voter; its refusal came out as
// Internal, which the SDK reports as an unknown outcome, for a removal that never happened.
// It is FailedPrecondition, naming the server, and the configuration is unchanged.
func TestRemoveServerLastVoter(t *testing.T) {
	srv := startServer(t, Config{})
	ctx := ctxT(t, 20*time.Second)
	for _, tr := range []string{TransportConnect, TransportGRPC} {
		c := newClient(t, tr, srv.Addr())
		if _, err := c.RemoveServer(ctx, &logv1.RemoveServerRequest{Id: "node-0"}); transport.CodeOf(err) != transport.FailedPrecondition ||
			!strings.Contains(err.Error(), `"node-0" is the cluster's last voter`) {
			t.Errorf("%s: RemoveServer of the last voter: %v, want FailedPrecondition naming it", tr, err)
		}
	}
	sdk, err := client.New(ctx, []string{srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	if err := sdk.RemoveServer(ctx, "node-0"); err == nil || errors.Is(err, client.ErrOutcomeUnknown) {
		t.Errorf("SDK RemoveServer of the last voter: %v, want the server's refusal", err)
	}
	if servers, err := srv.node.Servers(ctx); err != nil || len(servers) != 1 || servers[0].ID != "node-0" || !srv.node.IsLeader() {
		t.Errorf("configuration after the refusals: %v, %v", servers, err)
	}
}

// TestRemoveLeaderAskedOfItself: a leader asked to remove itself (cluster remove's hand-over
// raced an election that made the server it removes leader again; an older CLI; the SDK) hands
// leadership to another voter and refuses the removal as not proposed; the SDK sends it again
// to the new leader, which removes it and, remembering the removal, does not add it back while
// it still runs. The leader removed itself: the next leader, which knew nothing of the removal,
// saw the server alive in gossip and added it back (a scale-down's removed pod back in the
// configuration until the StatefulSet stopped it, then a voter down).
func TestRemoveLeaderAskedOfItself(t *testing.T) {
	nodes := startCluster(t, 3)
	old := leaderOf(t, nodes)
	ctx := ctxT(t, 60*time.Second)
	_, err := newClient(t, TransportConnect, old.Addr()).RemoveServer(ctx, &logv1.RemoveServerRequest{Id: old.ID()})
	if transport.CodeOf(err) != transport.Unavailable || !transport.IsNotProposed(err) || !strings.Contains(err.Error(), "does not remove itself") {
		t.Fatalf("RemoveServer of the leader asked of it: %v, want Unavailable, not proposed", err)
	}
	var others []*testServer
	for _, nd := range nodes {
		if nd != old {
			others = append(others, nd)
		}
	}
	leader := leaderOf(t, others)
	if servers, err := leader.node.Servers(ctx); err != nil || len(servers) != 3 {
		t.Fatalf("configuration after the refusal: %v, %v", servers, err)
	}
	sdk, err := client.New(ctx, []string{old.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	if err := sdk.RemoveServer(ctx, old.ID()); err != nil {
		t.Fatalf("SDK RemoveServer of the former leader: %v", err)
	}
	// Three reconcile passes (every 2 s, and on every leadership change): it stays out.
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, nd := range others {
			servers, err := nd.node.Servers(ctx)
			if err == nil && slices.ContainsFunc(servers, func(s consensus.ServerStatus) bool { return s.ID == old.ID() }) {
				t.Fatalf("the removed %s, still running, is back in %s's configuration: %v", old.ID(), nd.ID(), servers)
			}
		}
	}
}

// TestRemovedServerNotAddedBackByTheNextLeader: a server removed while it still runs (a
// scale-down removes pods before the StatefulSet stops them) stays out of the configuration
// when leadership moves afterwards. The leader that removed it remembered the removal, but the
// next one knew nothing of it, saw it alive in gossip and added it back. The removed server,
// seeing its removal, now stops advertising its Raft address.
func TestRemovedServerNotAddedBackByTheNextLeader(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	var gone, next *testServer
	for _, nd := range nodes {
		switch {
		case nd == leader:
		case gone == nil:
			gone = nd
		default:
			next = nd
		}
	}
	ctx := ctxT(t, 60*time.Second)
	if _, err := newClient(t, TransportConnect, leader.Addr()).RemoveServer(ctx, &logv1.RemoveServerRequest{Id: gone.ID()}); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	// Until the next leader's gossip shows the removed server without a Raft address (10 s at
	// most: the old code never withdrew it; the test goes on to show what follows).
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if i := slices.IndexFunc(next.serf.Members(), func(m discovery.Member) bool { return m.Name == gone.ID() }); i >= 0 && next.serf.Members()[i].Tags[tagRaftAddr] == "" {
			break
		}
	}
	if err := leader.node.TransferLeadership(ctx, next.ID()); err != nil {
		t.Fatalf("TransferLeadership to %s: %v", next.ID(), err)
	}
	waitFor(t, 20*time.Second, next.ID()+" leads", next.node.IsLeader)
	// 30 reconcile passes of the new leader (every 100 ms here).
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		servers, err := next.node.Servers(ctx)
		if err == nil && slices.ContainsFunc(servers, func(s consensus.ServerStatus) bool { return s.ID == gone.ID() }) {
			t.Fatalf("the removed %s, still running, is back in the new leader's configuration: %v", gone.ID(), servers)
		}
	}
}

// TestGetServersReportsUnreachableFollower: GetServers on the leader reports a follower it
// cannot reach as unhealthy, with the time since it last heard from it (Server.healthy and
// last_contact, which the SDK's Servers and `cluster status` show). The consensus layer knew
// (ServerStatus.LastContact), but the answer said healthy, with no last contact, for every
// other server whatever its state.
func TestGetServersReportsUnreachableFollower(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	var follower *testServer
	for _, nd := range nodes {
		if nd != leader {
			follower = nd
			break
		}
	}
	c := newClient(t, TransportConnect, leader.Addr())
	ctx := ctxT(t, 60*time.Second)
	server := func(id string) *logv1.Server {
		res, err := c.GetServers(ctx, &logv1.GetServersRequest{})
		if err != nil {
			t.Fatalf("GetServers: %v", err)
		}
		for _, s := range res.GetServers() {
			if s.GetId() == id {
				return s
			}
		}
		t.Fatalf("GetServers does not list %s: %v", id, res)
		return nil
	}
	id := follower.cfg.NodeName
	if s := server(id); !s.GetHealthy() || s.GetLastContact() != nil {
		t.Fatalf("a follower in contact: %v, want healthy without a last contact", s)
	}
	follower.shutdown(t)
	waitFor(t, 30*time.Second, "the leader reports the stopped follower unhealthy", func() bool {
		s := server(id)
		return !s.GetHealthy() && s.GetLastContact() != nil
	})
	if d := server(id).GetLastContact().AsDuration(); d <= 0 || d > time.Minute {
		t.Fatalf("last contact %v ago, want a plausible time", d)
	}
}

// TestMixedTransports: servers of one cluster started with different --transport flags (a
// cluster moving from one to the other a node at a time). A connect-go server accepts the gRPC
// protocol; a grpc-go server speaks nothing else. The calls servers make to each other spoke
// the Connect protocol from a Connect server: a grpc-go server answered 415, so a Connect
// leader never promoted a gRPC server it added (it could not ask how far it was), and a
// Connect follower could not forward a write to a gRPC leader (reported as an unknown outcome).
// They speak gRPC, which both understand.
func TestMixedTransports(t *testing.T) {
	for _, tc := range []struct{ leader, other string }{{TransportConnect, TransportGRPC}, {TransportGRPC, TransportConnect}} {
		t.Run(tc.leader+" leader", func(t *testing.T) {
			ctx := ctxT(t, 60*time.Second)
			leader := startNode(t, Config{NodeName: "node-0", GossipProfile: "test", ReconcileInterval: 100 * time.Millisecond, Transport: tc.leader}, true)
			other := startNode(t, Config{NodeName: "node-1", GossipProfile: "test", ReconcileInterval: 100 * time.Millisecond, Transport: tc.other,
				StartJoinAddrs: []string{leader.GossipAddr()}}, false)
			waitVoters(t, []*testServer{leader, other})
			if !leader.node.IsLeader() {
				t.Fatal("leadership moved to the server that joined")
			}
			res, err := newClient(t, tc.other, other.Addr()).Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("forwarded")}})
			if err != nil {
				t.Fatalf("produce through the %s follower: %v", tc.other, err)
			}
			if rec, err := newClient(t, tc.leader, leader.Addr()).Consume(ctx, &logv1.ConsumeRequest{Offset: res.GetOffset()}); err != nil || string(rec.GetRecord().GetValue()) != "forwarded" {
				t.Fatalf("consume on the leader: %v, %v", rec, err)
			}
		})
	}
}

// TestRemoveServerKeepsQuorum: removing a voter while the voters that stay and answer the
// leader are not a majority of those that stay is refused (FailedPrecondition) and the
// configuration is unchanged. Raft counts votes by the new configuration from the moment the
// leader appends it: with one of three servers down, removing another running one left two
// voters, one of them down, and the removal (and every write after it) never committed. The
// chart's scale-down removes running servers one at a time; a server already down must stop
// it, not the cluster.
func TestRemoveServerKeepsQuorum(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	var down, other *testServer
	for _, nd := range nodes {
		switch {
		case nd == leader:
		case down == nil:
			down = nd
		default:
			other = nd
		}
	}
	ctx := ctxT(t, 60*time.Second)
	c := newClient(t, TransportConnect, leader.Addr())
	down.shutdown(t)
	waitFor(t, 30*time.Second, "the leader sees the stopped follower fail", func() bool {
		servers, err := leader.node.Servers(ctx)
		return err == nil && slices.ContainsFunc(servers, func(s consensus.ServerStatus) bool {
			return s.ID == down.ID() && !s.LastContact.IsZero()
		})
	})
	_, err := c.RemoveServer(ctx, &logv1.RemoveServerRequest{Id: other.ID()})
	if transport.CodeOf(err) != transport.FailedPrecondition || !strings.Contains(err.Error(), "fewer than their quorum") {
		t.Fatalf("RemoveServer of a running voter with another down: %v, want FailedPrecondition (quorum)", err)
	}
	if servers, err := leader.node.Servers(ctx); err != nil || len(servers) != 3 {
		t.Errorf("configuration after the refusal: %v, %v", servers, err)
	}
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("still")}}); err != nil {
		t.Errorf("Produce after the refusal: %v", err)
	}
	// The down server itself may go: the two that stay both answer.
	if _, err := c.RemoveServer(ctx, &logv1.RemoveServerRequest{Id: down.ID()}); err != nil {
		t.Errorf("RemoveServer of the down server: %v", err)
	}
}

// TestRemoveServerKeepsQuorumOnANewLeader: the quorum check holds on a leader elected moments
// ago, which has seen none of its heartbeats fail yet, as cluster remove makes one when it
// hands leadership away from a server it removes. With one of three servers down (its address
// accepts connections and never answers, as a host that hangs: heartbeats to it neither
// succeed nor fail for the transport's timeout), leadership moved to the other running one,
// and the former leader's removal asked of it, the new leader counted the down server as
// answering: the removal left two voters, one down, and the cluster stopped. The down server
// itself may still go.
func TestRemoveServerKeepsQuorumOnANewLeader(t *testing.T) {
	nodes := startCluster(t, 3)
	old := leaderOf(t, nodes)
	var down, next *testServer
	for _, nd := range nodes {
		switch {
		case nd == old:
		case down == nil:
			down = nd
		default:
			next = nd
		}
	}
	ctx := ctxT(t, 90*time.Second)
	addr := down.Addr()
	down.shutdown(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on the stopped server's address: %v", err)
	}
	var (
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
		wg     sync.WaitGroup
	)
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		closed = true
		for _, conn := range conns {
			_ = conn.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			if closed {
				_ = conn.Close()
			}
			mu.Unlock()
			wg.Add(1)
			go func() { // read and never answer
				defer wg.Done()
				_, _ = io.Copy(io.Discard, conn)
			}()
		}
	}()

	if _, err := newClient(t, TransportConnect, old.Addr()).TransferLeadership(ctx, &logv1.TransferLeadershipRequest{Id: next.ID()}); err != nil {
		t.Fatalf("TransferLeadership to %s: %v", next.ID(), err)
	}
	waitLeader(t, next.Server)
	c := newClient(t, TransportConnect, next.Addr())
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	_, err = c.RemoveServer(rctx, &logv1.RemoveServerRequest{Id: old.ID()})
	cancel()
	if transport.CodeOf(err) != transport.FailedPrecondition || !strings.Contains(err.Error(), "fewer than their quorum") {
		t.Fatalf("RemoveServer of the former leader on the new one, another server down: %v, want FailedPrecondition (quorum)", err)
	}
	if servers, err := next.node.Servers(ctx); err != nil || len(servers) != 3 {
		t.Errorf("configuration after the refusal: %v, %v", servers, err)
	}
	if _, err := c.RemoveServer(ctx, &logv1.RemoveServerRequest{Id: down.ID()}); err != nil {
		t.Errorf("RemoveServer of the down server: %v", err)
	}
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("still")}}); err != nil {
		t.Errorf("Produce after the removals: %v", err)
	}
}

// TestRemovalQuorumArithmetic: which removals the quorum check allows, on a leader that knows
// each voter's state (a failing voter carries a LastContact; one that answered this leader a
// match index). A dead voter may always go while the rest answer (3 voters one dead, 2 voters
// one dead: the way to recover), a running one only while the voters that stay and answer are
// a majority of those that stay; a non-voter's removal does not count. A voter this leader has
// not heard from yet counts as not answering once the check stops waiting for it.
func TestRemovalQuorumArithmetic(t *testing.T) {
	up := func(id string) consensus.ServerStatus {
		return consensus.ServerStatus{Server: consensus.Server{ID: id, Suffrage: consensus.Voter}, MatchIndex: 7}
	}
	leader := consensus.ServerStatus{Server: consensus.Server{ID: "L", Suffrage: consensus.Voter}, Leader: true}
	dead := func(id string) consensus.ServerStatus {
		s := up(id)
		s.LastContact = time.Now().Add(-time.Minute)
		return s
	}
	unknown := func(id string) consensus.ServerStatus {
		s := up(id)
		s.MatchIndex = 0
		return s
	}
	nonvoter := consensus.ServerStatus{Server: consensus.Server{ID: "n", Suffrage: consensus.Nonvoter}}
	for _, tc := range []struct {
		name    string
		servers []consensus.ServerStatus
		remove  string
		allowed bool
	}{
		{"3 voters, remove the dead one", []consensus.ServerStatus{leader, up("a"), dead("d")}, "d", true},
		{"3 voters one dead, remove a running follower", []consensus.ServerStatus{leader, up("a"), dead("d")}, "a", false},
		{"3 voters one dead, remove the leader", []consensus.ServerStatus{leader, up("a"), dead("d")}, "L", false},
		{"2 voters, remove the dead one", []consensus.ServerStatus{leader, dead("d")}, "d", true},
		{"4 voters one dead, remove a running follower", []consensus.ServerStatus{leader, up("a"), up("b"), dead("d")}, "a", true},
		{"5 voters two dead, remove a dead one", []consensus.ServerStatus{leader, up("a"), up("b"), dead("d"), dead("e")}, "d", true},
		{"5 voters two dead, remove a running follower", []consensus.ServerStatus{leader, up("a"), up("b"), dead("d"), dead("e")}, "a", false},
		{"a non-voter, a voter dead", []consensus.ServerStatus{leader, up("a"), dead("d"), nonvoter}, "n", true},
		{"3 voters one not heard from yet, remove a running follower", []consensus.ServerStatus{leader, up("a"), unknown("u")}, "a", false},
	} {
		svc := &service{node: staticLeader{servers: tc.servers}}
		err := svc.checkRemovalQuorum(ctxT(t, 30*time.Second), tc.remove, tc.servers)
		if tc.allowed && err != nil {
			t.Errorf("%s: %v, want it allowed", tc.name, err)
		}
		if !tc.allowed && transport.CodeOf(err) != transport.FailedPrecondition {
			t.Errorf("%s: %v, want FailedPrecondition", tc.name, err)
		}
	}
}

// staticLeader is a consensus.Consensus that leads and answers Servers with servers: what the
// removal's quorum check asks.
type staticLeader struct {
	consensus.Consensus
	servers []consensus.ServerStatus
}

func (staticLeader) IsLeader() bool { return true }

func (l staticLeader) Servers(context.Context) ([]consensus.ServerStatus, error) {
	return slices.Clone(l.servers), nil
}
