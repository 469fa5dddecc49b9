package raft_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus/consensustest"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
)

// logRecorder is a slog.Handler keeping every record's message and string attributes.
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

// refused reports whether a refusal naming both cluster IDs was logged.
func (l *logRecorder) refused(local, peer string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range *l.recs {
		if r["local_cluster_id"] == local && r["peer_cluster_id"] == peer {
			return true
		}
	}
	return false
}

// TestClusterIDSharedAndAdopted: a bootstrapped cluster has one cluster ID on every node; a
// node added later adopts it through the Raft handshake and keeps it across a restart.
func TestClusterIDSharedAndAdopted(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{TCP: true})
	l := c.WaitLeader()
	id := c.Node(l).ClusterID()
	if id == "" {
		t.Fatal("bootstrapped cluster has no cluster id")
	}
	for i := range 3 {
		if got := c.Node(i).Status().ClusterID; got != id {
			t.Fatalf("node %d cluster id %q, leader's %q", i, got, id)
		}
	}
	j := c.AddNode()
	if got := c.Node(j).ClusterID(); got != "" {
		t.Fatalf("a new node has cluster id %q before joining", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Node(l).AddVoter(ctx, c.ID(j), c.Addr(j)); err != nil {
		t.Fatalf("add voter: %v", err)
	}
	c.WaitFor("the new node adopts the cluster id", func() bool { return c.Node(j).ClusterID() == id })
	c.Stop(j)
	c.Restart(j)
	if got := c.Node(j).ClusterID(); got != id {
		t.Fatalf("after restart cluster id %q, want %q", got, id)
	}
	if err := c.Node(j).Bootstrap(nil); !errors.Is(err, craft.ErrAlreadyBootstrapped) {
		t.Fatalf("Bootstrap on a member: %v, want ErrAlreadyBootstrapped", err)
	}
}

// TestClustersRefuseEachOther: a leader told to add a server of another cluster (e.g. a node
// that was wiped and bootstrapped anew at a known address) never gets it to accept its
// AppendEntries: both sides refuse the connection and log both cluster IDs, and neither
// configuration nor log of the other cluster changes.
func TestClustersRefuseEachOther(t *testing.T) {
	logA, logB := newLogRecorder(), newLogRecorder()
	a := consensustest.NewCluster(t, 1, consensustest.Options{TCP: true, Logger: slog.New(logA)})
	b := consensustest.NewCluster(t, 1, consensustest.Options{TCP: true, Logger: slog.New(logB)})
	a.WaitLeader()
	b.WaitLeader()
	a.Propose([]byte("a-1"))
	b.Propose([]byte("b-1"))
	idA, idB := a.Node(0).ClusterID(), b.Node(0).ClusterID()
	if idA == "" || idB == "" || idA == idB {
		t.Fatalf("cluster ids %q and %q", idA, idB)
	}
	bLast := b.Node(0).Status().LastIndex

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Node(0).AddNonvoter(ctx, "intruder", b.Addr(0)); err != nil {
		t.Fatalf("add nonvoter: %v", err)
	}
	a.WaitFor("both sides to log the refusal with both ids", func() bool {
		return logA.refused(idA, idB) && logB.refused(idB, idA)
	})
	servers, err := b.Node(0).Servers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 1 || servers[0].ID != b.ID(0) {
		t.Fatalf("cluster B's configuration changed: %+v", servers)
	}
	if st := b.Node(0).Status(); st.ClusterID != idB || st.LastIndex != bLast || st.State != "leader" {
		t.Fatalf("cluster B changed: %+v (last index before %d)", st, bLast)
	}
	if s, ok := serverByID(t, a.Node(0), "intruder"); !ok || s.MatchIndex != 0 {
		t.Fatalf("cluster A's view of the intruder: %+v, %v", s, ok)
	}
}

// TestClusterWithoutIDGetsOne: a cluster whose state predates cluster IDs gets one from its
// first leader, and every member learns it.
func TestClusterWithoutIDGetsOne(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{TCP: true})
	c.Propose([]byte("before"))
	old := c.Node(c.WaitLeader()).ClusterID()
	for i := range 3 {
		c.Stop(i)
		if err := craft.ClearClusterID(filepath.Join(c.Dir(i), "raft")); err != nil {
			t.Fatalf("clear node %d's cluster id: %v", i, err)
		}
	}
	for i := range 3 {
		c.Restart(i)
	}
	c.Propose([]byte("after"))
	c.WaitFor("every node has the same new cluster id", func() bool {
		id := c.Node(0).ClusterID()
		return id != "" && id != old && c.Node(1).ClusterID() == id && c.Node(2).ClusterID() == id
	})
}
