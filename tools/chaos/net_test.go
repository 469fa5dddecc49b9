package chaos

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
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
	// A loaded machine (CI shares two cores with everything else) can miss one short dial to a
	// reachable address; an unreachable one misses every attempt.
	for range 6 {
		var c net.Conn
		var err error
		dial := func() { c, err = net.DialTimeout("tcp", addr, 500*time.Millisecond) }
		if ns == "" {
			dial()
		} else {
			inNetns(t, ns, dial)
		}
		if err == nil {
			c.Close()
			return true
		}
	}
	return false
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

// TestNetSlow: Slow holds a node's link to its rate (a transfer takes at least its size over
// the rate: a lower bound, which load cannot break), in both directions; Heal removes the
// shaping.
func TestNetSlow(t *testing.T) {
	needRoot(t)
	nt, err := NewNet(2)
	if err != nil {
		t.Fatal(err)
	}
	defer nt.Close()
	const size = 48 << 10
	var ln net.Listener
	inNetns(t, nt.NS(1), func() {
		ln, err = net.Listen("tcp", nt.IP(1)+":7000")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // echo size bytes back
				defer c.Close()
				buf := make([]byte, size)
				if _, err := io.ReadFull(c, buf); err == nil {
					_, _ = c.Write(buf)
				}
			}()
		}
	}()
	roundTrip := func() time.Duration {
		t.Helper()
		var d time.Duration
		inNetns(t, nt.NS(2), func() {
			start := time.Now()
			c, err := net.DialTimeout("tcp", nt.IP(1)+":7000", 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			if _, err := c.Write(make([]byte, size)); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, make([]byte, size)); err != nil {
				t.Fatal(err)
			}
			d = time.Since(start)
		})
		return d
	}
	if err := nt.Slow(1, 512, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	// 48 KiB each way through a 512 kbit/s link, less an 8 KiB burst: at least 1.2 s.
	if d := roundTrip(); d < 1200*time.Millisecond {
		t.Fatalf("96 KiB through a 512 kbit/s link in %s", d)
	}
	if err := nt.Heal(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "exec", nt.NS(1), "tc", "qdisc", "show", "dev", "eth0").CombinedOutput()
	if err != nil || strings.Contains(string(out), "tbf") {
		t.Fatalf("after Heal: %s %v", out, err)
	}
	roundTrip()
}
