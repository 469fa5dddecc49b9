// Package consensustest runs Raft clusters of consensus/raft nodes inside one test process:
// over hashicorp/raft's in-memory transport or real TCP on loopback, with partitions,
// stop/restart on the same data, and polling helpers. It also provides ListSM, a reference
// StateMachine. It is a regular package so that other modules' tests (e.g. a state machine's)
// can use it.
package consensustest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
)

// Factory builds the StateMachine of node i, keeping any files it needs in dir (a directory
// that survives Stop/Restart of that node). It is called again on every Restart(i). If the
// StateMachine implements io.Closer, the harness closes it after its node stops.
type Factory func(i int, dir string) (consensus.StateMachine, error)

// Options configure a Cluster. The zero value runs ListSMs over the in-memory transport.
type Options struct {
	// TCP runs Raft over real TCP on 127.0.0.1 through a FaultNetwork, instead of
	// hashicorp/raft's in-memory transport.
	TCP bool
	// Factory builds each node's StateMachine. Default: a ListSM persisted in the node's dir.
	Factory Factory
	// Config, if set, adjusts node i's Config before it starts (after the harness filled ID,
	// DataDir, transport and timeouts).
	Config func(i int, c *craft.Config)
	// Logger receives every node's logs. Default: discarded.
	Logger *slog.Logger
	// WaitTimeout bounds every Wait helper. Default 15s.
	WaitTimeout time.Duration
	// NoBootstrap starts the nodes without forming a cluster (for join tests).
	NoBootstrap bool
}

// Cluster is a set of Raft nodes in this process. Methods must be called from the test's
// goroutine(s); they are safe for concurrent use, except that Stop/Restart/Partition/Heal of
// the same node must not race.
type Cluster struct {
	t         testing.TB
	opts      Options
	fnet      *FaultNetwork // TCP only
	clusterID string        // the ID every bootstrapping node is given

	mu      sync.Mutex
	members []*member
	blocked map[[2]int]bool
	closed  bool
}

type member struct {
	id, dir, addr string
	node          *craft.Node
	sm            consensus.StateMachine
	inmem         *hraft.InmemTransport
}

// FastConfig sets timeouts suited to tests on a loaded machine: elections within a few
// hundred milliseconds, without spurious ones. Under the race detector (which slows every
// goroutine several times over, on machines with two cores) the timeouts are three times as
// long: a missed heartbeat there is the detector's cost, not a fault.
func FastConfig(c *craft.Config) {
	scale := time.Duration(1)
	if raceEnabled {
		scale = 3
	}
	c.HeartbeatTimeout = scale * 300 * time.Millisecond
	c.ElectionTimeout = scale * 300 * time.Millisecond
	c.LeaderLeaseTimeout = scale * 150 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
}

// NewCluster starts n nodes bootstrapped as one cluster (every node a voter) and registers
// their shutdown with t.Cleanup. It fails the test if a node cannot start.
func NewCluster(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.Factory == nil {
		opts.Factory = func(_ int, dir string) (consensus.StateMachine, error) { return NewListSM(dir) }
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.WaitTimeout == 0 {
		opts.WaitTimeout = 15 * time.Second
	}
	c := &Cluster{t: t, opts: opts, blocked: map[[2]int]bool{}, clusterID: craft.NewClusterID()}
	if opts.TCP {
		c.fnet = NewFaultNetwork()
	}
	// The temp dir first: cleanups run last-registered first, so the nodes stop (c.Close)
	// before the dir they write into is removed.
	root := t.TempDir()
	t.Cleanup(c.Close)
	for i := range n {
		c.members = append(c.members, &member{id: fmt.Sprintf("node-%d", i), dir: filepath.Join(root, fmt.Sprintf("node-%d", i))})
	}
	// Fix every address first, so the bootstrap configuration names them all.
	lns := make([]net.Listener, n)
	for i, m := range c.members {
		if opts.TCP {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatalf("consensustest: listen: %v", err)
			}
			lns[i] = ln
			m.addr = ln.Addr().String()
		} else {
			m.addr = "inmem-" + m.id
		}
	}
	var servers []consensus.Server
	if !opts.NoBootstrap {
		for _, m := range c.members {
			servers = append(servers, consensus.Server{ID: m.id, Address: m.addr})
		}
	}
	for i := range c.members {
		if err := c.start(i, lns[i], servers); err != nil {
			t.Fatalf("consensustest: start node %d: %v", i, err)
		}
	}
	return c
}

// AddNode starts a new, empty node that is not part of the configuration (add it with the
// leader's AddVoter/AddNonvoter) and returns its index.
func (c *Cluster) AddNode() int {
	c.t.Helper()
	c.mu.Lock()
	i := len(c.members)
	m := &member{id: fmt.Sprintf("node-%d", i), dir: filepath.Join(c.t.TempDir(), fmt.Sprintf("node-%d", i))}
	c.members = append(c.members, m)
	c.mu.Unlock()
	var ln net.Listener
	if c.opts.TCP {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			c.t.Fatalf("consensustest: listen: %v", err)
		}
		m.addr = ln.Addr().String()
	} else {
		m.addr = "inmem-" + m.id
	}
	if err := c.start(i, ln, nil); err != nil {
		c.t.Fatalf("consensustest: start node %d: %v", i, err)
	}
	return i
}

func (c *Cluster) start(i int, ln net.Listener, bootstrap []consensus.Server) error {
	c.mu.Lock()
	m := c.members[i]
	c.mu.Unlock()
	sm, err := c.opts.Factory(i, filepath.Join(m.dir, "sm"))
	if err != nil {
		return fmt.Errorf("state machine: %w", err)
	}
	cfg := craft.Config{
		ID:               m.id,
		DataDir:          filepath.Join(m.dir, "raft"),
		Address:          m.addr,
		Bootstrap:        len(bootstrap) > 0,
		BootstrapServers: bootstrap,
		ClusterID:        c.clusterID,
		Logger:           c.opts.Logger.With("node", i),
	}
	FastConfig(&cfg)
	var inmem *hraft.InmemTransport
	if c.opts.TCP {
		if ln == nil {
			if ln, err = net.Listen("tcp", m.addr); err != nil {
				closeSM(sm)
				return fmt.Errorf("listen again on %s: %w", m.addr, err)
			}
		}
		cfg.StreamLayer = c.fnet.Layer(m.id, ln)
	} else {
		_, inmem = hraft.NewInmemTransportWithTimeout(hraft.ServerAddress(m.addr), time.Second)
		cfg.Transport = inmem
	}
	if c.opts.Config != nil {
		c.opts.Config(i, &cfg)
	}
	node, err := craft.New(cfg, sm)
	if err != nil { // New closed the stream layer
		closeSM(sm)
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m.node, m.sm, m.inmem = node, sm, inmem
	c.connectLocked()
	return nil
}

// connectLocked wires the in-memory transports of running nodes, except across partitions.
func (c *Cluster) connectLocked() {
	for i, a := range c.members {
		if a.inmem == nil {
			continue
		}
		for j, b := range c.members {
			if i == j || b.inmem == nil {
				continue
			}
			if c.blocked[[2]int{i, j}] {
				a.inmem.Disconnect(hraft.ServerAddress(b.addr))
			} else {
				a.inmem.Connect(hraft.ServerAddress(b.addr), b.inmem)
			}
		}
	}
}

func closeSM(sm consensus.StateMachine) {
	if c, ok := sm.(io.Closer); ok {
		_ = c.Close()
	}
}

// N returns the number of nodes (running or stopped).
func (c *Cluster) N() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.members)
}

func (c *Cluster) member(i int) *member {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.members) {
		c.t.Fatalf("consensustest: no node %d", i)
	}
	return c.members[i]
}

// Node returns node i, or nil while it is stopped.
func (c *Cluster) Node(i int) *craft.Node {
	m := c.member(i)
	c.mu.Lock()
	defer c.mu.Unlock()
	return m.node
}

// SM returns node i's current StateMachine (a new one after each Restart).
func (c *Cluster) SM(i int) consensus.StateMachine {
	m := c.member(i)
	c.mu.Lock()
	defer c.mu.Unlock()
	return m.sm
}

// List returns node i's StateMachine as a *ListSM; it fails the test if it is not one.
func (c *Cluster) List(i int) *ListSM {
	switch sm := c.SM(i).(type) {
	case *ListSM:
		return sm
	case manifestOnly:
		return sm.l
	}
	c.t.Fatalf("consensustest: node %d's StateMachine is %T, not a ListSM", i, c.SM(i))
	return nil
}

// ID returns node i's server ID.
func (c *Cluster) ID(i int) string { return c.member(i).id }

// Addr returns node i's Raft address.
func (c *Cluster) Addr(i int) string { return c.member(i).addr }

// Dir returns node i's data directory (its StateMachine's dir is Dir(i)/sm).
func (c *Cluster) Dir(i int) string { return c.member(i).dir }

// Index returns the index of the node with the given ID, or -1.
func (c *Cluster) Index(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.members {
		if m.id == id {
			return i
		}
	}
	return -1
}

// Running returns the indexes of the running nodes.
func (c *Cluster) Running() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for i, m := range c.members {
		if m.node != nil {
			out = append(out, i)
		}
	}
	return out
}

// Stop closes node i, keeping its data. Stopping a stopped node does nothing.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	m := c.member(i)
	c.mu.Lock()
	node, sm, inmem := m.node, m.sm, m.inmem
	m.node, m.inmem = nil, nil
	if inmem != nil {
		for _, o := range c.members {
			if o.inmem != nil {
				o.inmem.Disconnect(hraft.ServerAddress(m.addr))
			}
		}
	}
	c.mu.Unlock()
	if node == nil {
		return
	}
	if err := node.Close(); err != nil {
		c.t.Errorf("consensustest: close node %d: %v", i, err)
	}
	if inmem != nil {
		_ = inmem.Close()
	}
	closeSM(sm)
}

// Restart starts stopped node i again on its data dir, with a StateMachine from the
// factory.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.Node(i) != nil {
		c.t.Fatalf("consensustest: node %d is running", i)
	}
	if err := c.start(i, nil, nil); err != nil {
		c.t.Fatalf("consensustest: restart node %d: %v", i, err)
	}
}

// Partition isolates the given nodes from the others (both directions); links inside each
// side keep working. It adds to any partition already in place.
func (c *Cluster) Partition(nodes ...int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.members {
		for j := range c.members {
			if slices.Contains(nodes, i) != slices.Contains(nodes, j) {
				c.blocked[[2]int{i, j}] = true
				if c.fnet != nil {
					c.fnet.Block(c.members[i].id, c.members[j].id)
				}
			}
		}
	}
	c.connectLocked()
}

// Heal removes every partition.
func (c *Cluster) Heal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.blocked)
	if c.fnet != nil {
		c.fnet.HealAll()
	}
	c.connectLocked()
}

// Close stops every node. It runs on t.Cleanup; calling it earlier is allowed. Idempotent.
func (c *Cluster) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	n := len(c.members)
	c.mu.Unlock()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { c.Stop(i) })
	}
	wg.Wait()
}

// WaitFor polls cond until it holds, failing the test with what after the wait timeout.
func (c *Cluster) WaitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(c.opts.WaitTimeout)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("consensustest: timed out after %v waiting for %s", c.opts.WaitTimeout, what)
		}
		time.Sleep(delay)
	}
}

// WaitLeader waits until one of the given nodes (default: all running nodes) is leader and
// every one of them that is running agrees, and returns its index.
func (c *Cluster) WaitLeader(among ...int) int {
	c.t.Helper()
	leader := -1
	c.WaitFor("a leader", func() bool {
		set := among
		if len(set) == 0 {
			set = c.Running()
		}
		leader = -1
		for _, i := range set {
			if n := c.Node(i); n != nil && n.IsLeader() {
				leader = i
			}
		}
		if leader < 0 {
			return false
		}
		id := c.ID(leader)
		for _, i := range set {
			n := c.Node(i)
			if n == nil {
				continue
			}
			if l, ok := n.Leader(); !ok || l.ID != id {
				return false
			}
		}
		return true
	})
	return leader
}

// WaitApplied waits until every running node (or the given ones) has applied through index.
func (c *Cluster) WaitApplied(index uint64, nodes ...int) {
	c.t.Helper()
	c.WaitFor(fmt.Sprintf("index %d applied", index), func() bool {
		set := nodes
		if len(set) == 0 {
			set = c.Running()
		}
		for _, i := range set {
			n := c.Node(i)
			if n == nil || n.Status().AppliedIndex < index {
				return false
			}
		}
		return true
	})
}

// Propose proposes cmd on the current leader, following NotLeader/NoLeader answers until
// the wait timeout, and returns the leader's Apply result. An unknown outcome
// (ErrOutcomeUnknown: leadership was lost after proposing) is resolved as a careful client
// would: when the state machines are ListSMs, it waits for a leader, makes a linearizable read
// there, and returns cmd's position if the leader's list holds it, or proposes again if it does
// not (so commands must be unique, as every test's are). It fails the test on any other error,
// and on an unknown outcome with another state machine.
func (c *Cluster) Propose(cmd []byte) any {
	c.t.Helper()
	var (
		res any
		err error
	)
	c.WaitFor("a successful proposal", func() bool {
		i := c.WaitLeader()
		n := c.Node(i)
		if n == nil {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err = n.Propose(ctx, cmd)
		switch {
		case err == nil:
			return true
		case errors.Is(err, consensus.ErrNotLeader), errors.Is(err, consensus.ErrNoLeader):
			return false
		case errors.Is(err, consensus.ErrOutcomeUnknown):
			pos, found, ok := c.resolve(cmd)
			if !ok {
				c.t.Fatalf("consensustest: propose on node %d: %v (cannot resolve: the state machine is not a ListSM)", i, err)
			}
			res = pos
			return found
		default:
			c.t.Fatalf("consensustest: propose on node %d: %v", i, err)
			return false
		}
	})
	return res
}

// resolve tells whether cmd was applied, after an unknown outcome: on the current leader, after
// a linearizable read (everything committed before it is applied there), it looks for cmd in
// the leader's ListSM and returns its position. ok is false when the state machine is not a
// ListSM or no linearizable read succeeded within the wait timeout.
func (c *Cluster) resolve(cmd []byte) (pos uint64, found, ok bool) {
	c.t.Helper()
	deadline := time.Now().Add(c.opts.WaitTimeout)
	for time.Now().Before(deadline) {
		i := c.WaitLeader()
		n := c.Node(i)
		var l *ListSM
		switch sm := c.SM(i).(type) {
		case *ListSM:
			l = sm
		case manifestOnly:
			l = sm.l
		default:
			return 0, false, false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := n.LinearizableRead(ctx)
		cancel()
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for k, r := range l.Records() {
			if bytes.Equal(r.Data, cmd) {
				return uint64(k), true, true
			}
		}
		return 0, false, true
	}
	return 0, false, false
}
