package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// cutLayer is a Raft stream layer that a test cuts off: while cut, every connection it holds is
// closed, a connection it accepts is closed at once and it dials nothing. Gossip and the API
// still work: only Raft is cut.
type cutLayer struct {
	craft.StreamLayer
	mu      sync.Mutex
	cut     bool
	conns   map[net.Conn]bool
	refused time.Time // when it last closed a connection it accepted while cut
}

var errCut = errors.New("test: raft cut off")

func (l *cutLayer) set(cut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = cut
	if cut {
		for c := range l.conns {
			_ = c.Close()
		}
		clear(l.conns)
	}
}

// track keeps c, or closes it while cut (nil).
func (l *cutLayer) track(c net.Conn) net.Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		_ = c.Close()
		l.refused = time.Now()
		return nil
	}
	if l.conns == nil {
		l.conns = map[net.Conn]bool{}
	}
	l.conns[c] = true
	return &cutConn{Conn: c, l: l}
}

// quietFor reports whether no connection was refused for d.
func (l *cutLayer) quietFor(d time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Since(l.refused) >= d
}

func (l *cutLayer) Accept() (net.Conn, error) {
	for {
		c, err := l.StreamLayer.Accept()
		if err != nil {
			return nil, err
		}
		if c = l.track(c); c != nil {
			return c, nil
		}
	}
}

func (l *cutLayer) Dial(addr hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	l.mu.Lock()
	cut := l.cut
	l.mu.Unlock()
	if cut {
		return nil, errCut
	}
	c, err := l.StreamLayer.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	if c = l.track(c); c == nil {
		return nil, errCut
	}
	return c, nil
}

type cutConn struct {
	net.Conn
	l *cutLayer
}

func (c *cutConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c.Conn)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// startCuttableCluster is startCluster whose nodes' Raft a test can cut off (layers[i] is
// nodes[i]'s).
func startCuttableCluster(t *testing.T, n int) (nodes []*testServer, layers []*cutLayer) {
	t.Helper()
	for i := range n {
		l := &cutLayer{}
		cfg := Config{NodeName: fmt.Sprintf("node-%d", i), GossipProfile: "test", ReconcileInterval: 100 * time.Millisecond,
			raftLayer: func(s craft.StreamLayer) craft.StreamLayer { l.StreamLayer = s; return l }}
		if i > 0 {
			cfg.StartJoinAddrs = []string{nodes[0].GossipAddr()}
		}
		nodes = append(nodes, startNode(t, cfg, i == 0))
		layers = append(layers, l)
	}
	waitVoters(t, nodes)
	return nodes, layers
}

// advertisedRaftAddr is the Raft address that observer's gossip shows for id ("" when none).
func advertisedRaftAddr(observer *testServer, id string) string {
	for _, m := range observer.serf.Members() {
		if m.Name == id {
			return m.Tags[tagRaftAddr]
		}
	}
	return ""
}

func lists(servers []consensus.ServerStatus, id string) bool {
	return slices.ContainsFunc(servers, func(s consensus.ServerStatus) bool { return s.ID == id })
}

// TestRemovedWhileCutOffStaysOut: a follower removed while the leader cannot reach it never
// receives its removal: its own configuration still lists it. Healed, it went on advertising
// its Raft address in gossip and campaigning (its own term rising at every election timeout;
// the members refuse its votes, as it is not in their configuration), and once leadership moved
// the next leader, which knew nothing of the removal, added it back. Having heard from no
// leader for several election timeouts, it now asks the leader, learns that it was removed and
// withdraws its Raft address, so that no leader adds it back.
func TestRemovedWhileCutOffStaysOut(t *testing.T) {
	nodes, layers := startCuttableCluster(t, 3)
	leader := leaderOf(t, nodes)
	var gone, next *testServer
	var goneLayer *cutLayer
	for i, nd := range nodes {
		switch {
		case nd == leader:
		case gone == nil:
			gone, goneLayer = nd, layers[i]
		default:
			next = nd
		}
	}
	ctx := ctxT(t, 120*time.Second)
	goneLayer.set(true)
	waitFor(t, 30*time.Second, "the leader sees the cut-off follower fail", func() bool {
		servers, err := leader.node.Servers(ctx)
		return err == nil && slices.ContainsFunc(servers, func(s consensus.ServerStatus) bool {
			return s.ID == gone.ID() && !s.LastContact.IsZero()
		})
	})
	if _, err := newClient(t, TransportConnect, leader.Addr()).RemoveServer(ctx, &logv1.RemoveServerRequest{Id: gone.ID()}); err != nil {
		t.Fatalf("RemoveServer of the cut-off %s: %v", gone.ID(), err)
	}
	// The leader makes a last attempt to send the removal once it stops replicating to the
	// removed server, after its retry backoff (up to 10.24 s in hashicorp/raft v1.8): the cut
	// lasts until the leader has tried nothing for longer than that.
	waitFor(t, 60*time.Second, "the leader stops trying to reach the removed server", func() bool { return goneLayer.quietFor(11 * time.Second) })
	if servers, err := gone.node.Servers(ctx); err != nil || !lists(servers, gone.ID()) {
		t.Fatalf("the cut-off %s received its removal (configuration %v, %v): the test did not cut it off", gone.ID(), servers, err)
	}
	termBefore := next.node.Status().Term
	goneLayer.set(false)

	// Until the others' gossip shows the removed server without a Raft address (20 s at most:
	// the old code never withdrew it; the test goes on to show what follows).
	withdrawn := false
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end) && !withdrawn; time.Sleep(50 * time.Millisecond) {
		withdrawn = advertisedRaftAddr(next, gone.ID()) == "" && advertisedRaftAddr(leader, gone.ID()) == ""
	}
	own, _ := gone.node.Servers(ctx)
	t.Logf("after the heal: %s withdrew its Raft address: %v; its own configuration %v, its term %d (%s); %s's term %d, was %d; leader %s",
		gone.ID(), withdrawn, own, gone.node.Status().Term, gone.node.Status().State, next.ID(), next.node.Status().Term, termBefore, leader.ID())
	if !leader.node.IsLeader() {
		t.Errorf("the removed server's campaigning deposed the leader %s", leader.ID())
	}

	if err := leader.node.TransferLeadership(ctx, next.ID()); err != nil {
		t.Fatalf("TransferLeadership to %s: %v", next.ID(), err)
	}
	waitFor(t, 20*time.Second, next.ID()+" leads", next.node.IsLeader)
	// 30 reconcile passes of the new leader (every 100 ms here).
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		servers, err := next.node.Servers(ctx)
		if err == nil && lists(servers, gone.ID()) {
			t.Fatalf("the removed %s, which missed its removal, is back in the new leader's configuration: %v (its Raft address withdrawn: %v)",
				gone.ID(), servers, withdrawn)
		}
	}
	if !withdrawn {
		t.Errorf("the removed %s, which missed its removal, still advertises its Raft address", gone.ID())
	}
}

// TestCutOffServerNotTakenAsRemoved: a follower cut off from Raft for longer than it takes a
// removed one to find out (it asks the leader, which still lists it) keeps advertising its Raft
// address, and healed, is a voter of the cluster again.
func TestCutOffServerNotTakenAsRemoved(t *testing.T) {
	nodes, layers := startCuttableCluster(t, 3)
	leader := leaderOf(t, nodes)
	var cut *testServer
	var cutL *cutLayer
	for i, nd := range nodes {
		if nd != leader {
			cut, cutL = nd, layers[i]
			break
		}
	}
	ctx := ctxT(t, 120*time.Second)
	cutL.set(true)
	// Until it has known no leader for leaderUnheardAfter, then removedGrace, then a margin.
	waitFor(t, 30*time.Second, cut.ID()+" knows no leader", func() bool { return cut.node.Status().Leader.ID == "" })
	for end := time.Now().Add(leaderUnheardAfter + 5*cut.recon.interval + 3*time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if advertisedRaftAddr(leader, cut.ID()) == "" {
			t.Fatalf("%s, cut off but not removed, withdrew its Raft address", cut.ID())
		}
	}
	termBefore := leader.node.Status().Term
	cutL.set(false)
	waitFor(t, 60*time.Second, cut.ID()+" hears from a leader again", func() bool { return cut.node.Status().Leader.ID != "" })
	t.Logf("healed: %s's term %d, leader %s (was %s at term %d)", cut.ID(), cut.node.Status().Term, cut.node.Status().Leader.ID, leader.ID(), termBefore)
	leader = leaderOf(t, nodes)
	if _, err := newClient(t, TransportConnect, leader.Addr()).Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("healed")}}); err != nil {
		t.Fatalf("Produce after the heal: %v", err)
	}
	waitVoters(t, nodes)
	// With pre-vote the healed follower does not force an election: the leader's replication
	// to it resumes after its own backoff (hashicorp/raft: up to ~10 s), not at once.
	commit := leader.node.Status().CommitIndex
	waitFor(t, 30*time.Second, cut.ID()+" applies the leader's commit index", func() bool { return cut.node.Status().AppliedIndex >= commit })
	checkLog(t, cut, []string{"healed"})
	if advertisedRaftAddr(leader, cut.ID()) == "" {
		t.Fatalf("%s withdrew its Raft address", cut.ID())
	}
}

// TestLeaderAnswer: only the leader's own answer, of this cluster, from a server this node's
// configuration lists, tells whether this node was removed.
func TestLeaderAnswer(t *testing.T) {
	known := map[string]bool{"a": true, "b": true, "me": true}
	answer := func(cluster, leader string, ids ...string) *logv1.GetServersResponse {
		res := &logv1.GetServersResponse{ClusterId: cluster}
		for _, id := range ids {
			res.Servers = append(res.Servers, &logv1.Server{Id: id, IsLeader: id == leader})
		}
		return res
	}
	for _, tc := range []struct {
		name         string
		member       string
		res          *logv1.GetServersResponse
		listed, isOK bool
	}{
		{"the leader lists this node", "a", answer("c1", "a", "a", "b", "me"), true, true},
		{"the leader does not list this node", "a", answer("c1", "a", "a", "b"), false, true},
		{"an older leader (no cluster ID) does not list it", "a", answer("", "a", "a", "b"), false, true},
		{"a follower naming another leader", "b", answer("c1", "a", "a", "b"), false, false},
		{"a follower that knows no leader", "b", answer("c1", "", "b"), false, false},
		{"a leader of another cluster", "a", answer("c2", "a", "a", "b"), false, false},
		{"a stranger claiming to lead", "x", answer("c1", "x", "x"), false, false},
	} {
		listed, ok := leaderAnswer("me", tc.member, "c1", known, tc.res)
		if listed != tc.listed || ok != tc.isOK {
			t.Errorf("%s: listed %v, answered %v; want %v, %v", tc.name, listed, ok, tc.listed, tc.isOK)
		}
	}
}

// TestWatchSelfAsksTheLeaderWhenUnheard: a node whose own configuration lists it but that has
// heard from no leader for unheardAfter goes by the leader's answer: removed after the grace
// when the leader does not list it; nothing changes when no leader answers, or while it hears
// from one (it is not asked then).
func TestWatchSelfAsksTheLeaderWhenUnheard(t *testing.T) {
	node := &selfNode{ids: []string{"n1", "n2", "n3"}}
	var announced []bool
	var unheard time.Duration
	leaderListed, answered, asks := true, true, 0
	r := newReconciler(reconcilerConfig{self: "n1", node: node, unheardAfter: time.Minute,
		unheard: func() time.Duration { return unheard },
		askLeader: func(context.Context) (bool, bool) {
			asks++
			return leaderListed, answered
		},
		announceRemoved: func(_ context.Context, removed bool) error {
			announced = append(announced, removed)
			return nil
		}})
	step := func(elapsed bool, want ...bool) {
		t.Helper()
		r.asked = time.Time{} // not rate-limited here
		if elapsed && !r.unlisted.IsZero() {
			r.unlisted = r.unlisted.Add(-r.removedGrace())
		}
		r.watchSelf(t.Context())
		if !slices.Equal(announced, want) {
			t.Fatalf("unheard %v, leader lists it %v, answered %v (grace over: %v): announced %v, want %v",
				unheard, leaderListed, answered, elapsed, announced, want)
		}
	}
	leaderListed = false
	step(true) // hears from a leader: its own configuration counts, the leader is not asked
	if asks != 0 {
		t.Fatalf("asked the leader %d times while hearing from one", asks)
	}
	unheard = time.Minute
	leaderListed = true
	step(true) // cut off, still listed by the leader
	answered = false
	step(true) // no answer: nothing
	answered, leaderListed = true, false
	step(false)      // the leader no longer lists it...
	step(true, true) // ...after the grace: announced
	answered = false
	step(true, true) // no answer now: stays removed
	unheard, leaderListed, answered = 0, true, true
	node.ids = []string{"n2", "n3"}
	step(true, true) // its configuration caught up with the removal: stays removed
	node.ids = []string{"n1", "n2", "n3"}
	step(false, true, false) // added back, a leader reaches it: back
}

// TestUnheardFor: how long a node has known no leader counts only once it knew one since it
// started (a new node, or one restarted that no leader reaches yet, does not ask), and is 0
// while it knows one.
func TestUnheardFor(t *testing.T) {
	l := &leaderLoss{since: time.Now().Add(-time.Hour), changed: make(chan struct{})}
	if d := l.unheardFor(); d != 0 {
		t.Fatalf("never knew a leader: %v, want 0", d)
	}
	l.observe(consensus.LeaderEvent{Leader: consensus.Server{ID: "a"}})
	if d := l.unheardFor(); d != 0 {
		t.Fatalf("knows a leader: %v, want 0", d)
	}
	l.observe(consensus.LeaderEvent{})
	l.since = l.since.Add(-time.Minute)
	if d := l.unheardFor(); d < time.Minute {
		t.Fatalf("lost its leader a minute ago: %v", d)
	}
}

// TestAskListingPastASilentMember: the members are asked at once. A member that never answers
// (cut off, paused) does not keep the leader, asked after it, from being heard: in turn, the
// silent member used up the whole deadline and a removed node never learnt that it was removed.
// Every call is over when askListing returns.
func TestAskListingPastASilentMember(t *testing.T) {
	known := map[string]bool{"a": true, "b": true, "me": true}
	leaderRes := &logv1.GetServersResponse{ClusterId: "c1", Servers: []*logv1.Server{{Id: "a"}, {Id: "b", IsLeader: true}}}
	var mu sync.Mutex
	running := 0
	get := func(ctx context.Context, addr string) (*logv1.GetServersResponse, error) {
		mu.Lock()
		running++
		mu.Unlock()
		defer func() { mu.Lock(); running--; mu.Unlock() }()
		switch addr {
		case "silent":
			<-ctx.Done()
			return nil, ctx.Err()
		case "down":
			return nil, errors.New("connection refused")
		case "follower":
			return &logv1.GetServersResponse{ClusterId: "c1", Servers: []*logv1.Server{{Id: "a"}, {Id: "b"}}}, nil
		}
		return leaderRes, nil
	}
	for _, tc := range []struct {
		name             string
		members          []listingMember
		listed, answered bool
	}{
		{"a silent member before the leader", []listingMember{{"a", "silent"}, {"b", "leader"}}, false, true},
		{"a follower and a down member before the leader", []listingMember{{"a", "follower"}, {"a", "down"}, {"b", "leader"}}, false, true},
		{"only a silent member and a follower", []listingMember{{"a", "silent"}, {"b", "follower"}}, false, false},
		{"no member", nil, false, false},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		start := time.Now()
		listed, answered := askListing(ctx, "me", "c1", known, tc.members, get)
		took, expired := time.Since(start), ctx.Err() != nil
		cancel()
		if listed != tc.listed || answered != tc.answered {
			t.Errorf("%s: listed %v, answered %v (after %v); want %v, %v", tc.name, listed, answered, took, tc.listed, tc.answered)
		}
		if tc.answered && expired {
			t.Errorf("%s: the leader's answer came only when the deadline had passed (%v)", tc.name, took)
		}
		mu.Lock()
		if running != 0 {
			t.Errorf("%s: %d calls still running after askListing returned", tc.name, running)
		}
		mu.Unlock()
	}
}
