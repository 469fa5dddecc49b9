package raft_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/consensus/consensustest"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
)

// nopSM applies nothing: the benchmark measures consensus, not a state machine.
type nopSM struct{ applied atomic.Uint64 }

func (s *nopSM) Apply(e []consensus.Entry) []any {
	s.applied.Add(uint64(len(e)))
	return make([]any, len(e))
}
func (s *nopSM) Snapshot() (consensus.Snapshot, error) { return nopSnapshot{}, nil }
func (s *nopSM) Restore([]byte, io.Reader) error       { return nil }

type nopSnapshot struct{}

func (nopSnapshot) Persist(io.Writer) error { return nil }
func (nopSnapshot) Release()                {}

// benchCluster starts 3 nodes over TCP on loopback, with raft-wal or (inmem) raft's
// InmemStore as the log store.
func benchCluster(b *testing.B, inmem bool) *craft.Node {
	c := consensustest.NewCluster(b, 3, consensustest.Options{
		TCP: true,
		Factory: func(int, string) (consensus.StateMachine, error) {
			return &nopSM{}, nil
		},
		Config: func(_ int, cfg *craft.Config) {
			cfg.UnsafeInmemLog = inmem
			cfg.HeartbeatTimeout = time.Second
			cfg.ElectionTimeout = time.Second
			cfg.LeaderLeaseTimeout = 500 * time.Millisecond
			cfg.CommitTimeout = 5 * time.Millisecond
		},
	})
	return c.Node(c.WaitLeader())
}

// runProposals proposes b.N commands of size cmdSize from callers goroutines and reports
// records/s (records per command × commands/s) and commit latency percentiles.
func runProposals(b *testing.B, n *craft.Node, callers, cmdSize, records int) float64 {
	cmd := make([]byte, cmdSize)
	lat := make([][]time.Duration, callers)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.SetBytes(int64(cmdSize))
	b.ResetTimer()
	start := time.Now()
	for w := range callers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := n.Propose(ctx, cmd)
				cancel()
				if err != nil {
					b.Errorf("propose: %v", err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	rps := float64(b.N*records) / elapsed.Seconds()
	b.ReportMetric(rps, "records/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	return rps
}

// BenchmarkPropose: 3 nodes in one process over TCP on loopback, raft-wal (fsync per
// append) against raft's InmemStore (the consensus floor), in the same run.
//
//	batch51KiB: one command carries a batch of 512 records of 100 B.
//	single: one 100 B record per command, 64 concurrent callers and 1 caller.
func BenchmarkPropose(b *testing.B) {
	cases := []struct {
		name             string
		callers, size, k int
	}{
		{"batch51KiB/callers=1", 1, 512 * 100, 512},
		{"batch51KiB/callers=4", 4, 512 * 100, 512},
		{"single/callers=64", 64, 100, 1},
		{"single/callers=1", 1, 100, 1},
	}
	results := map[string]map[string]float64{}
	for _, store := range []string{"wal", "inmem"} {
		n := benchCluster(b, store == "inmem")
		results[store] = map[string]float64{}
		for _, tc := range cases {
			b.Run(store+"/"+tc.name, func(b *testing.B) {
				results[store][tc.name] = runProposals(b, n, tc.callers, tc.size, tc.k)
			})
		}
	}
	for _, tc := range cases {
		w, m := results["wal"][tc.name], results["inmem"][tc.name]
		if m > 0 {
			fmt.Printf("ratio wal/inmem %-22s %10.0f / %10.0f records/s = %.2f\n", tc.name, w, m, w/m)
		}
	}
}
