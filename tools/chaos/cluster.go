package chaos

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// Ports every node uses inside its own namespace.
const (
	apiPort    = 8400
	gossipPort = 8401
)

// Node is one `commitlog serve` process in its namespace. Its methods are called by one
// goroutine at a time (the nemesis), except Addr, Name and Running.
type Node struct {
	I           int
	name        string
	ns, ip      string
	dataDir     string
	logPath     string
	bin         string
	env         []string
	joins       []string // gossip addresses of the other nodes
	clusterSize int

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	paused bool
}

// Name is the node's Raft id.
func (n *Node) Name() string { return n.name }

// Addr is the node's API address.
func (n *Node) Addr() string { return net.JoinHostPort(n.ip, strconv.Itoa(apiPort)) }

func (n *Node) gossipAddr() string { return net.JoinHostPort(n.ip, strconv.Itoa(gossipPort)) }

// Running reports whether the process runs (paused counts as running).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Start starts the process (no-op when it runs).
func (n *Node) Start() error {
	if n.Running() {
		return nil
	}
	args := []string{"netns", "exec", n.ns, n.bin, "serve",
		"--data-dir", n.dataDir,
		"--node-name", n.name,
		"--bind-addr", n.gossipAddr(),
		"--rpc-port", strconv.Itoa(apiPort),
		"--gossip-profile", "local",
		// Small segments and a retention check every second: the retention topic of the topic
		// workload is cut during the faults.
		"--segment-bytes", "4096", "--retention-check-interval", "1s",
	}
	// Every node knows every other's gossip address, and --bootstrap-expect makes the
	// lowest-named one found the cluster once all are in gossip; a node with Raft state, or one
	// that sees a formed cluster (a wiped node), never bootstraps.
	args = append(args, "--bootstrap-expect", strconv.Itoa(n.clusterSize), "--start-join-addrs", strings.Join(n.joins, ","))
	f, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("chaos: node %s log: %w", n.name, err)
	}
	fmt.Fprintf(f, "=== chaos %s: ip %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command("ip", args...) // ip netns exec execs the binary: the pid is the server's
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), n.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches the tool only
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("chaos: start node %s: %w", n.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	n.mu.Lock()
	n.cmd, n.done, n.paused = cmd, done, false
	n.mu.Unlock()
	return nil
}

func (n *Node) signal(sig syscall.Signal) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Signal(sig)
	}
}

func (n *Node) wait(d time.Duration) bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// Kill SIGKILLs the process and waits for it.
func (n *Node) Kill() {
	if !n.Running() {
		return
	}
	n.signal(syscall.SIGKILL)
	n.wait(30 * time.Second)
}

// Stop SIGTERMs the process (resuming it first if paused) and waits; SIGKILL after 10 s.
func (n *Node) Stop() {
	if !n.Running() {
		return
	}
	n.signal(syscall.SIGCONT)
	n.signal(syscall.SIGTERM)
	if !n.wait(10 * time.Second) {
		n.Kill()
	}
}

// Pause SIGSTOPs the process.
func (n *Node) Pause() {
	n.signal(syscall.SIGSTOP)
	n.mu.Lock()
	n.paused = true
	n.mu.Unlock()
}

// Resume SIGCONTs the process.
func (n *Node) Resume() {
	n.signal(syscall.SIGCONT)
	n.mu.Lock()
	n.paused = false
	n.mu.Unlock()
}

// Paused reports whether the process is stopped by Pause.
func (n *Node) Paused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

// Wipe removes the node's data (it must not run): it then joins as a new member.
func (n *Node) Wipe() error { return os.RemoveAll(n.dataDir) }

// Cluster is the nodes of one run on a Net.
type Cluster struct {
	Net   *Net
	Nodes []*Node
	dial  transport.NewClientFunc
}

// NewCluster prepares n nodes (not started) in dir.
func NewCluster(nt *Net, n int, bin, dir string, env []string) *Cluster {
	c := &Cluster{Net: nt, dial: client.NewTransportClient(client.TransportConnect)}
	for i := 1; i <= n; i++ {
		node := &Node{I: i, name: fmt.Sprintf("n%d", i), ns: nt.NS(i), ip: nt.IP(i), bin: bin, env: env,
			dataDir: filepath.Join(dir, fmt.Sprintf("n%d", i)), logPath: filepath.Join(dir, fmt.Sprintf("n%d.log", i))}
		c.Nodes = append(c.Nodes, node)
	}
	for _, node := range c.Nodes {
		node.clusterSize = n
		for _, o := range c.Nodes {
			if o != node {
				node.joins = append(node.joins, o.gossipAddr())
			}
		}
	}
	return c
}

// Addrs are the nodes' API addresses.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Addr())
	}
	return out
}

// Start starts every node and waits until a leader lists them all as voters.
func (c *Cluster) Start(ctx context.Context) error {
	for _, n := range c.Nodes {
		if err := n.Start(); err != nil {
			return err
		}
	}
	return c.WaitVoters(ctx, 90*time.Second)
}

// Stop stops every node (SIGKILL: the data is not checked after it).
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.Resume()
			n.Kill()
		}()
	}
	wg.Wait()
}

// conn opens a transport client to a node.
func (c *Cluster) conn(n *Node) (transport.Client, error) {
	return c.dial(n.Addr(), transport.ClientConfig{})
}

// servers asks node n for the server list.
func (c *Cluster) servers(ctx context.Context, n *Node) ([]*logv1.Server, error) {
	tc, err := c.conn(n)
	if err != nil {
		return nil, err
	}
	defer tc.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := tc.GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetServers(), nil
}

// removed reports whether the server named name is out of the leader's configuration, asking
// the leader until one answers or d passes (known false: none did).
func (c *Cluster) removed(ctx context.Context, name string, d time.Duration) (removed, known bool) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		if l := c.Leader(ctx); l != nil {
			if srv, err := c.servers(ctx, l); err == nil {
				return !slices.ContainsFunc(srv, func(s *logv1.Server) bool { return s.GetId() == name }), true
			}
		}
		if sleepCtx(ctx, 250*time.Millisecond) != nil {
			break
		}
	}
	return false, false
}

// waitUp waits until node n answers GetServers, leader or not.
func (c *Cluster) waitUp(ctx context.Context, n *Node, d time.Duration) error {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		if !n.Running() {
			return fmt.Errorf("chaos: node %s exited (see %s)", n.name, n.logPath)
		}
		if _, last = c.servers(ctx, n); last == nil {
			return nil
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("chaos: node %s does not answer after %s: %v", n.name, d, last)
}

// waitCaughtUp waits until node n holds the default log up to the end the leader held once n
// answered (what was committed before n came back), and a leader lists n as a voter.
func (c *Cluster) waitCaughtUp(ctx context.Context, n *Node, d time.Duration) error {
	if err := c.waitUp(ctx, n, d); err != nil {
		return err
	}
	deadline := time.Now().Add(d)
	var target uint64
	known := false
	last := "no leader"
	for time.Now().Before(deadline) {
		if l := c.Leader(ctx); l != nil {
			if !known {
				if b, err := c.bounds(ctx, l); err == nil {
					target, known = b.GetNextOffset(), true
				}
			}
			srv, err := c.servers(ctx, l)
			voter := err == nil && slices.ContainsFunc(srv, func(s *logv1.Server) bool {
				return s.GetId() == n.name && s.GetSuffrage() == logv1.Suffrage_SUFFRAGE_VOTER
			})
			if b, err := c.bounds(ctx, n); known && err == nil {
				if b.GetNextOffset() >= target && voter {
					return nil
				}
				last = fmt.Sprintf("holds %d of %d records, voter %v", b.GetNextOffset(), target, voter)
			}
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("chaos: node %s not caught up after %s: %s", n.name, d, last)
}

// WaitVoters waits until a leader lists every node as a voter.
func (c *Cluster) WaitVoters(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		if l := c.Leader(ctx); l != nil {
			srv, err := c.servers(ctx, l)
			if err == nil {
				voters := 0
				for _, s := range srv {
					if s.GetSuffrage() == logv1.Suffrage_SUFFRAGE_VOTER {
						voters++
					}
				}
				if voters == len(c.Nodes) {
					return nil
				}
				last = fmt.Sprintf("%d voters of %d", voters, len(c.Nodes))
			}
		} else {
			last = "no leader"
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("chaos: cluster not formed after %s: %s", d, last)
}

// Leader returns the node that the most running, unpaused nodes name as leader; nil if none.
func (c *Cluster) Leader(ctx context.Context) *Node {
	votes := map[string]int{}
	for _, n := range c.Nodes {
		if !n.Running() || n.Paused() {
			continue
		}
		srv, err := c.servers(ctx, n)
		if err != nil {
			continue
		}
		for _, s := range srv {
			if s.GetIsLeader() {
				votes[s.GetId()]++
			}
		}
	}
	best, bestN := "", 0
	for id, v := range votes {
		if v > bestN {
			best, bestN = id, v
		}
	}
	return c.byName(best)
}

func (c *Cluster) byName(name string) *Node {
	for _, n := range c.Nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
