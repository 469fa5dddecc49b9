package serf_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/discovery/discoverytest"
	"github.com/commitlog-go/commitlog/discovery/serf"
)

// TestSquatterCannotShutDownARealMember: a process that knows only the gossip key takes the
// name of a server that is down (a crash, a restart), as any member may take a dead member's
// name (see TestFailedMemberBackAtNewAddress). When the real server comes back, its gossip must
// keep running. With serf's name conflict resolution the real server was the minority (every
// other member had the squatter's address for the name) and shut its own gossip down for good:
// a stranger with the key could cut any server that restarts out of gossip until it restarted
// again, with the squatter gone. Once the squatter stops, the real server is seen at its
// address again.
func TestSquatterCannotShutDownARealMember(t *testing.T) {
	t.Cleanup(func() { waitMemberlistProbesEnded() })
	key := mustKey(t)
	start := func(name string, port int, join ...string) (*serf.Membership, *discoverytest.Recorder) {
		t.Helper()
		rec := &discoverytest.Recorder{}
		m, err := serf.New(serf.Config{NodeName: name, BindAddr: "127.0.0.1:" + strconv.Itoa(port), EncryptKey: key,
			StartJoinAddrs: join, Timing: serf.TimingTest, Handler: rec, RetryJoinInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() { _ = m.Close() })
		return m, rec
	}
	a, arec := start("a", freePort(t))
	b, _ := start("b", freePort(t), a.LocalMember().Addr)
	waitFor(t, arec, discovery.EventJoin, "b")
	if err := b.Close(); err != nil { // the real b stops without leaving
		t.Fatal(err)
	}
	waitFor(t, arec, discovery.EventFailed, "b")
	time.Sleep(1500 * time.Millisecond) // dead for longer than deadNodeReclaimTime

	squatter, _ := start("b", freePort(t), a.LocalMember().Addr)
	seenAt := func(addr string) bool {
		for _, m := range a.Members() {
			if m.Name == "b" && m.Status == discovery.StatusAlive && m.Addr == addr {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); !seenAt(squatter.LocalMember().Addr); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a does not see the squatter as b: %+v", a.Members())
		}
	}

	// The real b comes back while the squatter holds its name.
	realB, _ := start("b", freePort(t), a.LocalMember().Addr)
	time.Sleep(3 * time.Second) // serf's name conflict resolution takes about a second
	if realB.GossipShutDown() {
		t.Fatal("the real b shut its gossip down: a squatter with only the gossip key won the name conflict")
	}
	// The squatter stops: the real b is seen at its address again, without a restart.
	if err := squatter.Close(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !seenAt(realB.LocalMember().Addr); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the squatter stopped, and a does not see the real b at %s: %+v", realB.LocalMember().Addr, a.Members())
		}
	}
}
