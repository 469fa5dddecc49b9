package server

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/discovery"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// logRecorder is a slog.Handler keeping every record's message and attributes as strings.
type logRecorder struct {
	mu   *sync.Mutex
	recs *[]map[string]string
	with []slog.Attr
}

func newLogRecorder() *logRecorder {
	return &logRecorder{mu: &sync.Mutex{}, recs: &[]map[string]string{}}
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message}
	for _, a := range l.with {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	l.mu.Lock()
	*l.recs = append(*l.recs, m)
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{mu: l.mu, recs: l.recs, with: append(slices.Clone(l.with), as...)}
}
func (l *logRecorder) WithGroup(string) slog.Handler { return l }

// has reports whether a record with all of kv (key, value, key, value...) was logged.
func (l *logRecorder) has(kv ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, r := range *l.recs {
		for i := 0; i+1 < len(kv); i += 2 {
			if r[kv[i]] != kv[i+1] {
				continue next
			}
		}
		return true
	}
	return false
}

// startLogged starts a node whose logs go to a recorder.
func startLogged(t *testing.T, cfg Config, wantLeader bool) (*testServer, *logRecorder) {
	t.Helper()
	rec := newLogRecorder()
	cfg.Logger = slog.New(rec)
	ts := startNode(t, cfg, wantLeader)
	return ts, rec
}

// TestClusterIDInGetServersAndGossip: every server of a cluster reports the same cluster ID in
// GetServers and advertises it in its Serf tags.
func TestClusterIDInGetServersAndGossip(t *testing.T) {
	nodes := startCluster(t, 3)
	id := nodes[0].node.ClusterID()
	if id == "" {
		t.Fatal("no cluster id after bootstrap")
	}
	for _, nd := range nodes {
		c := newClient(t, TransportConnect, nd.Addr())
		res, err := c.GetServers(ctxT(t, 10*time.Second), &logv1.GetServersRequest{})
		if err != nil {
			t.Fatalf("GetServers from %s: %v", nd.ID(), err)
		}
		if res.GetClusterId() != id {
			t.Fatalf("%s answers cluster id %q, want %q", nd.ID(), res.GetClusterId(), id)
		}
	}
	waitFor(t, 20*time.Second, "every member advertises the cluster id in gossip", func() bool {
		for _, m := range nodes[0].serf.Members() {
			if m.Tags[tagClusterID] != id {
				return false
			}
		}
		return true
	})
}

// TestReconcilerIgnoresAnotherCluster: a member of another cluster (its cluster_id tag differs)
// that gossip reports alive is never added to Raft; the leader logs the refusal with both
// cluster IDs. (Gossip refuses such members itself, TestGossipRefusesAnotherCluster: this is the
// reconciler's own check behind it.)
func TestReconcilerIgnoresAnotherCluster(t *testing.T) {
	a, rec := startLogged(t, Config{NodeName: "a", GossipProfile: "test"}, true)
	ctx := ctxT(t, 30*time.Second)
	idA := a.node.ClusterID()
	const idB = "00000000-0000-4000-8000-00000000000b"
	if idA == "" || idA == idB {
		t.Fatalf("cluster id %q", idA)
	}
	stranger := fakeMembers{members: []discovery.Member{{Name: "b", Addr: "127.0.0.1:2", Status: discovery.StatusAlive,
		Tags: map[string]string{tagRaftAddr: "127.0.0.1:1", tagRPCAddr: "127.0.0.1:1", tagClusterID: idB, tagStart: "1"}}}}
	var admitted []string
	r := newReconciler(reconcilerConfig{self: "a", node: a.node, cluster: a.node.ClusterID, members: stranger,
		logger: slog.New(rec), admit: func(_ context.Context, id, _ string) error {
			admitted = append(admitted, id)
			return nil
		}})
	if err := r.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	servers, err := a.node.Servers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 1 || servers[0].ID != "a" || len(admitted) != 0 {
		t.Fatalf("the configuration took in the other cluster: %+v (admission asked about %q)", servers, admitted)
	}
	if !rec.has("local_cluster_id", idA, "peer_cluster_id", idB, "id", "b") {
		t.Fatal("the refusal was not logged with both cluster ids")
	}
}

// TestGossipRefusesAnotherCluster: a server of another cluster given this cluster's gossip
// address (--start-join-addrs) cannot join its gossip: the join fails, naming the other
// cluster, and neither pool holds the other's server. The pools merged before: each leader
// ignored the other's servers, but a new server joining either cluster was seen by both
// leaders, added by both, and stayed an unreachable non-voter in one of them.
func TestGossipRefusesAnotherCluster(t *testing.T) {
	fast := func(name string) Config {
		return Config{NodeName: name, GossipProfile: "test", ReconcileInterval: 50 * time.Millisecond}
	}
	a := startNode(t, fast("a"), true)
	b := startNode(t, fast("b"), true)
	idA, idB := a.node.ClusterID(), b.node.ClusterID()
	if idA == "" || idB == "" || idA == idB {
		t.Fatalf("cluster ids %q, %q", idA, idB)
	}
	waitFor(t, 20*time.Second, "both advertise their cluster id", func() bool {
		return a.serf.LocalMember().Tags[tagClusterID] == idA && b.serf.LocalMember().Tags[tagClusterID] == idB
	})
	_, err := b.serf.Join(ctxT(t, 10*time.Second), []string{a.GossipAddr()})
	if err == nil || !strings.Contains(err.Error(), "another cluster") {
		t.Fatalf("a server of another cluster joined this one's gossip: Join = %v, want a refusal naming the other cluster", err)
	}
	holds := func(nd *testServer, name string) bool {
		return slices.ContainsFunc(nd.serf.Members(), func(m discovery.Member) bool { return m.Name == name })
	}
	if holds(a, "b") || holds(b, "a") {
		t.Fatalf("the gossip pools merged: a holds b %v, b holds a %v", holds(a, "b"), holds(b, "a"))
	}

	// A new server joining b's gossip is b's alone.
	cfg := fast("c")
	cfg.StartJoinAddrs = []string{b.GossipAddr()}
	c := startNode(t, cfg, false)
	waitVoters(t, []*testServer{b, c})
	if got := c.node.ClusterID(); got != idB {
		t.Fatalf("c's cluster id %q, want b's %q", got, idB)
	}
	if holds(a, "c") {
		t.Fatal("c, joining b's gossip, is in a's")
	}
	servers, err := a.node.Servers(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 1 || servers[0].ID != "a" {
		t.Fatalf("a's configuration took in another cluster's server: %+v", servers)
	}
}

// TestBootstrapExpect: three servers started with BootstrapExpect 3 form one cluster of three
// voters; only the lowest name bootstraps, the others adopt its cluster ID.
func TestBootstrapExpect(t *testing.T) {
	var nodes []*testServer
	for _, name := range []string{"n-b", "n-a", "n-c"} { // the bootstrapper is not the first up
		cfg := Config{NodeName: name, GossipProfile: "test", ReconcileInterval: 100 * time.Millisecond, BootstrapExpect: 3}
		if len(nodes) > 0 {
			cfg.StartJoinAddrs = []string{nodes[0].GossipAddr()}
		}
		nodes = append(nodes, startNode(t, cfg, false))
	}
	waitFor(t, 30*time.Second, "one cluster of three voters with one cluster id", func() bool {
		id := nodes[0].node.ClusterID()
		for _, nd := range nodes {
			if id == "" || nd.node.ClusterID() != id {
				return false
			}
			servers, err := nd.node.Servers(context.Background())
			if err != nil || len(servers) != 3 {
				return false
			}
			for _, s := range servers {
				if s.Suffrage != consensus.Voter {
					return false
				}
			}
		}
		return true
	})
}

// TestBootstrapWaitJoinsExistingCluster: a node that would bootstrap alone (Bootstrap, with a
// BootstrapWait) but finds a server of an existing cluster in gossip does not found a second
// cluster: the leader adds it and it takes that cluster's ID.
func TestBootstrapWaitJoinsExistingCluster(t *testing.T) {
	a := startNode(t, Config{NodeName: "a", GossipProfile: "test", ReconcileInterval: 100 * time.Millisecond}, true)
	waitFor(t, 20*time.Second, "a advertises its cluster id", func() bool { return a.serf.LocalMember().Tags[tagClusterID] != "" })
	b := startNode(t, Config{NodeName: "b", GossipProfile: "test", Bootstrap: true, BootstrapWait: time.Hour,
		StartJoinAddrs: []string{a.GossipAddr()}}, false)
	waitFor(t, 30*time.Second, "b joins a's cluster", func() bool {
		servers, err := a.node.Servers(context.Background())
		return err == nil && len(servers) == 2 && b.node.ClusterID() == a.node.ClusterID()
	})
	waitFor(t, 20*time.Second, "b holds the cluster's Raft state", func() bool {
		has, _ := b.node.HasState()
		return has
	})
}
