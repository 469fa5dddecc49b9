package e2e

import (
	"os"
	"testing"
	"time"
)

// TestMeasureLeaderKillOutcomes measures, for kill -9 of the leader under SDK load, the share
// of writes answered "outcome unknown". Opt-in (COMMITLOG_MEASURE=1): it reports, it does not
// assert. Run it against another build with COMMITLOG_E2E_BIN to compare.
func TestMeasureLeaderKillOutcomes(t *testing.T) {
	if os.Getenv("COMMITLOG_MEASURE") == "" {
		t.Skip("a measurement: set COMMITLOG_MEASURE=1")
	}
	const kills = 3
	c := startCluster(t, 3, "connect")
	led := newLedger()
	leader := c.waitVoters(3)
	sdk := newSDK(t, "connect", c.addrs()...)
	l := startLoad(t, sdk, led, 8, "measure")
	l.waitAcks(t, 200, "before the first kill")
	for k := range kills {
		leader.Kill()
		newLeader := c.waitNewLeader(leader)
		l.waitAcks(t, l.acks.Load()+200, "after the kill")
		t.Logf("kill %d: killed %s, %s leads; so far %s", k+1, leader.Name(), newLeader.Name(), l)
		leader.Restart()
		leader = c.waitVoters(3)
		time.Sleep(time.Second)
	}
	l.halt()
	total := l.acks.Load() + l.unknown.Load() + l.failed.Load()
	t.Logf("RESULT %d kills: %d writes, %d acknowledged, %d outcome unknown (%.3f%%), %d refused",
		kills, total, l.acks.Load(), l.unknown.Load(), 100*float64(l.unknown.Load())/float64(total), l.failed.Load())
	requireInvariants(t, led, readAllLogs(t, c.nodes, led.nextAfterAcked()))
}
