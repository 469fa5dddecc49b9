package serf_test

import (
	"bytes"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/discoverytest"
	"github.com/commitlog-go/commitlog/discovery/serf"
)

// A member that failed (stopped without leaving) and comes back under its name at another
// address, as a restarted Kubernetes pod does with its new IP, is seen alive there at once.
// memberlist refused it ("Conflicting address") until it had forgotten the dead member,
// GossipToTheDeadTime after its death (15 s with TimingLocal, 30 s on a LAN), and the others saw
// the restarted server failed meanwhile.
func TestFailedMemberBackAtNewAddress(t *testing.T) {
	// Registered first, so run last: after the members' Close.
	t.Cleanup(func() { waitMemberlistProbesEnded() })
	start := func(name string, port int, join ...string) (*serf.Membership, *discoverytest.Recorder) {
		t.Helper()
		rec := &discoverytest.Recorder{}
		m, err := serf.New(serf.Config{NodeName: name, BindAddr: "127.0.0.1:" + strconv.Itoa(port),
			StartJoinAddrs: join, Timing: serf.TimingLocal, Handler: rec, RetryJoinInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() { _ = m.Close() })
		return m, rec
	}
	a, arec := start("a", freePort(t))
	b, _ := start("b", freePort(t), a.LocalMember().Addr)
	waitFor(t, arec, discovery.EventJoin, "b")
	if err := b.Close(); err != nil { // stops without leaving, as a killed pod does
		t.Fatal(err)
	}
	waitFor(t, arec, discovery.EventFailed, "b")
	time.Sleep(1500 * time.Millisecond) // dead for longer than deadNodeReclaimTime

	b2, _ := start("b", freePort(t), a.LocalMember().Addr)
	want := b2.LocalMember().Addr
	deadline := time.Now().Add(5 * time.Second) // well under TimingLocal's GossipToTheDeadTime
	for {
		for _, m := range a.Members() {
			if m.Name == "b" && m.Status == discovery.StatusAlive && m.Addr == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("a does not see b alive at its new address %s within 5 s: %+v", want, a.Members())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitMemberlistProbesEnded waits, up to 10 s, until no goroutine runs a memberlist probe. A
// probe under way when a Membership closes runs its course after Close (memberlist's Shutdown
// does not wait for it): up to its ProbeInterval, 1 s with TimingLocal, about as long as
// goleak waits at the end of the package's tests, which then failed about every other run
// under -race.
func waitMemberlistProbesEnded() {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		if n := runtime.Stack(buf, true); !bytes.Contains(buf[:n], []byte("memberlist.(*Memberlist).probeNode")) {
			return
		}
	}
}
