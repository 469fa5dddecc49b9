package chaos

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if err := CheckRoot(); err != nil {
		t.Skipf("needs root with ip and nft (CI runs as root): %v", err)
	}
}

// inNetns runs f with the calling thread in namespace ns: sockets f creates stay there.
func inNetns(t *testing.T, ns string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			panic(err) // the thread must not go back to the pool in the wrong namespace
		}
	}()
	f()
}

// reach reports whether a TCP connection to addr opens from namespace ns ("" for the root).
func reach(t *testing.T, ns, addr string) bool {
	t.Helper()
	var c net.Conn
	var err error
	dial := func() { c, err = net.DialTimeout("tcp", addr, 500*time.Millisecond) }
	if ns == "" {
		dial()
	} else {
		inNetns(t, ns, dial)
	}
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestNetPartitionsAndCleanup: the root namespace reaches every node; nodes reach each other
// through the bridge; drop rules cut exactly the listed direction; Heal restores it; Close
// removes every namespace and link.
func TestNetPartitionsAndCleanup(t *testing.T) {
	needRoot(t)
	nt, err := NewNet(2)
	if err != nil {
		t.Fatal(err)
	}
	defer nt.Close()
	var lns []net.Listener
	for i := 1; i <= 2; i++ {
		inNetns(t, nt.NS(i), func() {
			ln, err := net.Listen("tcp", nt.IP(i)+":7000")
			if err != nil {
				t.Fatal(err)
			}
			lns = append(lns, ln)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		})
	}
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	a1, a2 := nt.IP(1)+":7000", nt.IP(2)+":7000"
	if !reach(t, "", a1) || !reach(t, "", a2) {
		t.Fatal("the root namespace does not reach the nodes")
	}
	if !reach(t, nt.NS(2), a1) || !reach(t, nt.NS(1), a2) {
		t.Fatal("the nodes do not reach each other through the bridge")
	}
	// Node 1 drops what node 2 sends: 2 cannot connect to 1 (its SYN is dropped), and 1
	// cannot connect to 2 either (2's SYN-ACK is dropped); the client still reaches both.
	if err := nt.Apply(1, Rules{DropFrom: []int{2}}); err != nil {
		t.Fatal(err)
	}
	if reach(t, nt.NS(2), a1) || reach(t, nt.NS(1), a2) {
		t.Fatal("node 1 still hears node 2")
	}
	if !reach(t, "", a1) {
		t.Fatal("the partition cut the client off")
	}
	if err := nt.Apply(1, Rules{LossPct: 100}); err != nil {
		t.Fatal(err)
	}
	if reach(t, nt.NS(2), a1) || !reach(t, "", a1) {
		t.Fatal("100% node-to-node loss: node 2 still reaches node 1, or the client does not")
	}
	if err := nt.Heal(); err != nil {
		t.Fatal(err)
	}
	if !reach(t, nt.NS(2), a1) {
		t.Fatal("Heal left node 2 cut off from node 1")
	}
	for _, ln := range lns {
		ln.Close()
	}
	if err := nt.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if nsExists(nt.NS(i)) {
			t.Fatalf("namespace %s left after Close", nt.NS(i))
		}
	}
	if nsExists(nt.hub()) || linkExists(nt.rootVeth()) {
		t.Fatal("hub namespace or root veth left after Close")
	}
}

// TestCleanupLeftovers: namespaces named for a pid that no longer runs are removed, with the
// processes in them; those of a live pid are not.
func TestCleanupLeftovers(t *testing.T) {
	needRoot(t)
	dead := 4194304 + 17 // above pid_max's ceiling: never a live pid
	deadNS := fmt.Sprintf("%s%dn1", NamePrefix, dead)
	liveNS := fmt.Sprintf("%s%dn9", NamePrefix, os.Getpid())
	for _, ns := range []string{deadNS, liveNS} {
		if err := run("ip", "netns", "add", ns); err != nil {
			t.Fatal(err)
		}
	}
	defer func() { _ = run("ip", "netns", "del", liveNS) }()
	removed := CleanupLeftovers()
	if !slices.Contains(removed, "netns "+deadNS) || nsExists(deadNS) {
		t.Fatalf("the dead run's namespace %s was not removed (removed %v)", deadNS, removed)
	}
	if !nsExists(liveNS) {
		t.Fatalf("the live run's namespace %s was removed", liveNS)
	}
}
