//go:build measure

package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestMeasureLeaderKillOutcomes measures, for kill -9 of the leader under load, the share of
// writes answered "outcome unknown": by the SDK (8 writers), and by plain clients that send
// each write to one fixed server, as curl does (one writer per node, forwarded by followers).
// Opt-in, built only with the measure tag (it reports, it does not assert):
//
//	cd server/e2e && go test -tags measure -v -run TestMeasureLeaderKillOutcomes .
//
// Run it against another build with COMMITLOG_E2E_BIN to compare.
func TestMeasureLeaderKillOutcomes(t *testing.T) {
	const kills = 3
	c := startCluster(t, 3, "connect")
	led := newLedger()
	leader := c.waitVoters(3)
	sdk := newSDK(t, "connect", c.addrs()...)
	l := startLoad(t, sdk, led, 8, "measure")

	// Plain clients, one per node.
	var plain struct{ acks, unknown, refused, notSent atomic.Int64 }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		addr := n.Addr
		wg.Add(1)
		go func() {
			defer wg.Done()
			tc := c.nodes[i].TransportClient()
			defer tc.Close()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				v := fmt.Sprintf("plain-%s-%05d", addr, seq)
				led.attempt(v)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				res, err := tc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(v)}})
				cancel()
				if err == nil {
					led.ack(res.GetOffset(), v)
					plain.acks.Add(1)
					continue
				}
				msg := strings.ToLower(err.Error())
				_, nl := transport.NotLeaderDetail(err)
				switch {
				case strings.Contains(msg, "connection refused"):
					plain.notSent.Add(1) // this client's own server is down
				case transport.IsNotProposed(err) || nl:
					plain.refused.Add(1)
				case transport.IsOutcomeUnknown(err), strings.Contains(msg, "outcome unknown"), transport.CodeOf(err) == transport.Unavailable:
					plain.unknown.Add(1)
				default:
					plain.refused.Add(1)
				}
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}

	l.waitAcks(t, 200, "before the first kill")
	for k := range kills {
		leader.Kill()
		newLeader := c.waitNewLeader(leader)
		l.waitAcks(t, l.acks.Load()+200, "after the kill")
		t.Logf("kill %d: killed %s, %s leads; SDK so far %s (last error: %v)", k+1, leader.Name(), newLeader.Name(), l, l.lastErr.Load())
		leader.Restart()
		leader = c.waitVoters(3)
		time.Sleep(time.Second)
	}
	l.halt()
	close(stop)
	wg.Wait()
	total := l.acks.Load() + l.unknown.Load() + l.failed.Load()
	t.Logf("RESULT SDK, %d kills: %d writes, %d acknowledged, %d outcome unknown (%.3f%%), %d refused",
		kills, total, l.acks.Load(), l.unknown.Load(), 100*float64(l.unknown.Load())/float64(total), l.failed.Load())
	ptotal := plain.acks.Load() + plain.unknown.Load() + plain.refused.Load()
	t.Logf("RESULT plain clients, %d kills: %d writes answered by a live server, %d acknowledged, %d outcome unknown (%.3f%%), %d refused before proposal; %d to a dead server",
		kills, ptotal, plain.acks.Load(), plain.unknown.Load(), 100*float64(plain.unknown.Load())/float64(ptotal), plain.refused.Load(), plain.notSent.Load())
	requireInvariants(t, led, readAllLogs(t, c.nodes, led.nextAfterAcked()))
}
