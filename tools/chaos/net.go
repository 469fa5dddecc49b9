package chaos

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Names and addresses. Every namespace and link the tool makes is named NamePrefix + the
// tool's pid + a suffix ("clx1234h" the namespace of the bridge, "clx1234r" the root
// namespace's veth, "clx1234n2" node 2's namespace, "clx1234v2" its veth on the bridge), so that a later run can find and remove what a killed run
// left behind (CleanupLeftovers). Interface names stay within Linux's 15 bytes.
const (
	NamePrefix = "clx"
	nftTable   = "clchaos" // the nftables table (family inet) inside each node's namespace
	subnetBase = "10.213"  // nodes get 10.213.<k>.(10+i)/24; the root namespace 10.213.<k>.1
)

// Net is a bridge in the root namespace and one network namespace per node, joined to the
// bridge by a veth pair. Addresses are only on the bridge and inside the namespaces: nothing
// is routed anywhere else.
type Net struct {
	id     string // NamePrefix + pid
	subnet string // "10.213.<k>"
	n      int

	mu   sync.Mutex
	slow map[int]bool // nodes whose links Slow shaped
}

// run runs a command and returns its error with its output.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// CheckRoot returns an error unless the tool runs as root with ip and nft available.
func CheckRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("chaos: must run as root (it creates network namespaces and nftables rules)")
	}
	for _, tool := range []string{"ip", "nft", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("chaos: %s not found (apt-get install -y iproute2 nftables): %w", tool, err)
		}
	}
	return nil
}

// NewNet creates the bridge and n namespaces. On error it removes what it made.
func NewNet(n int) (*Net, error) {
	pid := os.Getpid()
	nt := &Net{id: fmt.Sprintf("%s%d", NamePrefix, pid), n: n}
	// A /24 under 10.213 that no interface of this machine uses yet.
	used, _ := exec.Command("ip", "-4", "-o", "addr", "show").Output()
	for k := 0; k < 250; k++ {
		s := fmt.Sprintf("%s.%d", subnetBase, (pid+k)%250+1)
		if !bytes.Contains(used, []byte(" "+s+".")) {
			nt.subnet = s
			break
		}
	}
	if nt.subnet == "" {
		return nil, errors.New("chaos: no free 10.213.x.0/24 subnet")
	}
	if err := nt.setup(); err != nil {
		nt.Close()
		return nil, err
	}
	return nt, nil
}

func (nt *Net) hub() string          { return nt.id + "h" } // namespace holding the bridge
func (nt *Net) rootVeth() string     { return nt.id + "r" } // the client's end, in the root namespace
func (nt *Net) rootPeer() string     { return nt.id + "q" } // its peer, on the bridge
func (nt *Net) veth(i int) string    { return fmt.Sprintf("%sv%d", nt.id, i) }
func (nt *Net) vethTmp(i int) string { return fmt.Sprintf("%sp%d", nt.id, i) }

// NS returns node i's namespace name (i from 1).
func (nt *Net) NS(i int) string { return fmt.Sprintf("%sn%d", nt.id, i) }

// IP returns node i's address.
func (nt *Net) IP(i int) string { return fmt.Sprintf("%s.%d", nt.subnet, 10+i) }

// HostIP is the root namespace's address on the nodes' network, the client's source address.
func (nt *Net) HostIP() string { return nt.subnet + ".1" }

// setup builds the network. The bridge lives in a namespace of its own (the hub), not in the
// root namespace: there, br_netfilter would pass bridged packets through the root's FORWARD
// chains (Docker's has policy drop). The root namespace joins the bridge by a veth pair whose
// root end holds HostIP; its traffic to the nodes is local, never forwarded.
func (nt *Net) setup() error {
	hub := nt.hub()
	steps := [][]string{
		{"netns", "add", hub},
		{"-n", hub, "link", "add", "br0", "type", "bridge"},
		{"-n", hub, "link", "set", "br0", "up"},
		{"-n", hub, "link", "set", "lo", "up"},
		{"link", "add", nt.rootVeth(), "type", "veth", "peer", "name", nt.rootPeer()},
		{"link", "set", nt.rootPeer(), "netns", hub},
		{"-n", hub, "link", "set", nt.rootPeer(), "master", "br0"},
		{"-n", hub, "link", "set", nt.rootPeer(), "up"},
		{"addr", "add", nt.HostIP() + "/24", "dev", nt.rootVeth()},
		{"link", "set", nt.rootVeth(), "up"},
	}
	for i := 1; i <= nt.n; i++ {
		ns := nt.NS(i)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"link", "add", nt.veth(i), "type", "veth", "peer", "name", nt.vethTmp(i)},
			[]string{"link", "set", nt.vethTmp(i), "netns", ns},
			[]string{"link", "set", nt.veth(i), "netns", hub},
			[]string{"-n", ns, "link", "set", nt.vethTmp(i), "name", "eth0"},
			[]string{"-n", ns, "addr", "add", nt.IP(i) + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", hub, "link", "set", nt.veth(i), "master", "br0"},
			[]string{"-n", hub, "link", "set", nt.veth(i), "up"},
		)
	}
	for _, s := range steps {
		if err := run("ip", s...); err != nil {
			return fmt.Errorf("chaos: network setup: %w", err)
		}
	}
	return nil
}

// Rules are the packet drops of one node's namespace: inbound packets from the listed nodes
// are dropped (a partition is the drops of both sides), and LossPct percent of the packets
// from any other node are dropped at random.
type Rules struct {
	DropFrom []int
	LossPct  int
}

// Apply replaces node i's rules atomically (one nft transaction).
func (nt *Net) Apply(i int, r Rules) error {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {}\ndelete table inet %s\n", nftTable, nftTable)
	fmt.Fprintf(&b, "table inet %s {\n chain input {\n  type filter hook input priority 0; policy accept;\n", nftTable)
	for _, j := range r.DropFrom {
		fmt.Fprintf(&b, "  ip saddr %s drop\n", nt.IP(j))
	}
	// Node-to-node traffic only: the client (the root namespace's address) is not slowed.
	switch {
	case r.LossPct >= 100:
		fmt.Fprintf(&b, "  ip saddr %s.0/24 ip saddr != %s drop\n", nt.subnet, nt.HostIP())
	case r.LossPct > 0:
		fmt.Fprintf(&b, "  ip saddr %s.0/24 ip saddr != %s numgen random mod 100 < %d drop\n", nt.subnet, nt.HostIP(), r.LossPct)
	}
	b.WriteString(" }\n}\n")
	cmd := exec.Command("ip", "netns", "exec", nt.NS(i), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("chaos: nft rules of node %d: %w: %s", i, err, bytes.TrimSpace(out))
	}
	return nil
}

// Slow makes node i's link slow in both directions: a token-bucket filter (tc tbf) on the
// node's eth0 (what it sends) and on its veth on the bridge (what it receives) lets rateKbit
// kbit/s through and queues up to latency of packets, dropping what exceeds that. A packet
// then waits its queue's backlog (up to latency, far past Raft's heartbeats under load), and
// a burst beyond the queue is lost: a slow and, under load, lossy link. (tc netem, the usual
// tool for fixed delay and jitter, is missing from many kernels, this machine's among them;
// tbf is in every one.)
func (nt *Net) Slow(i, rateKbit int, latency time.Duration) error {
	nt.mu.Lock()
	if nt.slow == nil {
		nt.slow = map[int]bool{}
	}
	nt.slow[i] = true
	nt.mu.Unlock()
	tbf := []string{"tbf", "rate", fmt.Sprintf("%dkbit", rateKbit), "burst", "8kb", "latency", fmt.Sprintf("%dms", latency.Milliseconds())}
	return errors.Join(
		run("ip", append([]string{"netns", "exec", nt.NS(i), "tc", "qdisc", "replace", "dev", "eth0", "root"}, tbf...)...),
		run("ip", append([]string{"netns", "exec", nt.hub(), "tc", "qdisc", "replace", "dev", nt.veth(i), "root"}, tbf...)...),
	)
}

// unslow removes what Slow did to node i.
func (nt *Net) unslow(i int) error {
	return errors.Join(
		run("ip", "netns", "exec", nt.NS(i), "tc", "qdisc", "del", "dev", "eth0", "root"),
		run("ip", "netns", "exec", nt.hub(), "tc", "qdisc", "del", "dev", nt.veth(i), "root"),
	)
}

// Heal removes every node's rules and slow links.
func (nt *Net) Heal() error {
	var errs []error
	for i := 1; i <= nt.n; i++ {
		errs = append(errs, nt.Apply(i, Rules{}))
	}
	nt.mu.Lock()
	slow := nt.slow
	nt.slow = nil
	nt.mu.Unlock()
	for i := range slow {
		errs = append(errs, nt.unslow(i))
	}
	return errors.Join(errs...)
}

// Close kills what still runs in the namespaces and removes them (the veth pairs and the
// bridge go with them; nftables tables inside them too).
func (nt *Net) Close() error {
	var errs []error
	for i := 1; i <= nt.n; i++ {
		killNetnsPids(nt.NS(i))
		if nsExists(nt.NS(i)) {
			errs = append(errs, run("ip", "netns", "del", nt.NS(i)))
		}
	}
	if nsExists(nt.hub()) {
		errs = append(errs, run("ip", "netns", "del", nt.hub()))
	}
	// The root end of the hub's veth pair goes with the hub namespace (asynchronously).
	if linkExists(nt.rootVeth()) {
		if err := run("ip", "link", "del", nt.rootVeth()); err != nil && linkExists(nt.rootVeth()) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func nsExists(ns string) bool {
	_, err := os.Stat("/run/netns/" + ns)
	return err == nil
}

func linkExists(name string) bool {
	return exec.Command("ip", "link", "show", "dev", name).Run() == nil
}

// killNetnsPids SIGKILLs every process in namespace ns (only processes this tool started run
// there).
func killNetnsPids(ns string) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGCONT)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

var leftoverName = regexp.MustCompile(`^` + NamePrefix + `(\d+)[hrqvpn]\d*$`)

// CleanupLeftovers removes the namespaces and links (and kills the processes in them) that an
// earlier run of this tool left behind when it was killed: names with the tool's prefix whose
// pid no longer runs. It returns what it removed.
func CleanupLeftovers() []string {
	var removed []string
	alive := func(name string) bool {
		m := leftoverName.FindStringSubmatch(name)
		if m == nil {
			return true // not ours
		}
		pid, _ := strconv.Atoi(m[1])
		return pid == os.Getpid() || syscall.Kill(pid, 0) == nil
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) == 0 || !strings.HasPrefix(f[0], NamePrefix) || alive(f[0]) {
				continue
			}
			killNetnsPids(f[0])
			if run("ip", "netns", "del", f[0]) == nil {
				removed = append(removed, "netns "+f[0])
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if !strings.HasPrefix(name, NamePrefix) || alive(name) {
				continue
			}
			if run("ip", "link", "del", name) == nil {
				removed = append(removed, "link "+name)
			}
		}
	}
	return removed
}
