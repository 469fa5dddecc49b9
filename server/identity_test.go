package server

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
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

// TestReconcilerIgnoresAnotherCluster: two single-node clusters whose gossip meets never add
// each other to Raft; each leader logs the refusal with both cluster IDs.
func TestReconcilerIgnoresAnotherCluster(t *testing.T) {
	fast := func(name string) Config {
		return Config{NodeName: name, GossipProfile: "test", ReconcileInterval: 50 * time.Millisecond}
	}
	a, recA := startLogged(t, fast("a"), true)
	b, recB := startLogged(t, fast("b"), true)
	idA, idB := a.node.ClusterID(), b.node.ClusterID()
	if idA == "" || idB == "" || idA == idB {
		t.Fatalf("cluster ids %q, %q", idA, idB)
	}
	waitFor(t, 20*time.Second, "both advertise their cluster id", func() bool {
		return a.serf.LocalMember().Tags[tagClusterID] == idA && b.serf.LocalMember().Tags[tagClusterID] == idB
	})
	if _, err := b.serf.Join(ctxT(t, 10*time.Second), []string{a.GossipAddr()}); err != nil {
		t.Fatalf("join gossip: %v", err)
	}
	waitFor(t, 20*time.Second, "both leaders log the other cluster with both ids", func() bool {
		return recA.has("local_cluster_id", idA, "peer_cluster_id", idB, "id", "b") &&
			recB.has("local_cluster_id", idB, "peer_cluster_id", idA, "id", "a")
	})
	for _, nd := range []*testServer{a, b} {
		servers, err := nd.node.Servers(ctxT(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if len(servers) != 1 || servers[0].ID != nd.ID() {
			t.Fatalf("%s's configuration took in the other cluster: %+v", nd.ID(), servers)
		}
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
