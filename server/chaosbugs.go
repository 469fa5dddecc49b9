package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
)

// The behaviour of planted bugs (server/internal/chaosbugs). Called only when chaosbugs.On
// says the bug is on, which never happens in a build without the chaosbugs tag.

// plantedAckBeforeCommit proposes cmd and, when the commit takes longer than 100 ms or fails
// (other than "not the leader"), acknowledges it anyway with the log's end as its offset.
func (s *service) plantedAckBeforeCommit(ctx context.Context, cmd []byte) (uint64, error) {
	_, guess := s.fsm.Bounds()
	type result struct {
		res any
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := s.node.Propose(context.WithoutCancel(ctx), cmd)
		done <- result{res, err}
	}()
	select {
	case r := <-done:
		if _, ok := errors.AsType[*consensus.NotLeaderError](r.err); ok {
			return 0, r.err
		}
		if res, ok := r.res.(fsm.AppendResult); ok && r.err == nil {
			return res.First, nil
		}
		return guess, nil
	case <-time.After(100 * time.Millisecond):
		return guess, nil
	}
}

// plantedUnappliedRead answers a read of an offset this node has not applied with its last
// applied record, relabelled with the offset asked.
func (s *service) plantedUnappliedRead(ctx context.Context, off uint64) (fsm.Record, bool) {
	_, next := s.fsm.Bounds()
	if off < next || next == 0 {
		return fsm.Record{}, false
	}
	rec, err := s.fsm.Read(ctx, next-1)
	if err != nil {
		return fsm.Record{}, false
	}
	rec.Offset = off
	return rec, true
}

// The stale-leader-read bug's leader lease: each committed proposal grants the node a lease
// of plantedLeaseTicks ticks of a clock that counts ticker events, so it stops while the process
// is paused (a resumed ticker delivers one tick, not the missed ones). While the lease holds,
// the node serves linearizable reads without confirming its leadership: a leader deposed
// while paused serves the reads queued meanwhile from its stale state.
var (
	plantedTicks      atomic.Int64
	plantedLeaseUntil atomic.Int64
	plantedClockOnce  sync.Once
)

const plantedLeaseTicks = 50 // of 10 ms

func plantedLeaseGranted() {
	plantedClockOnce.Do(func() {
		go func() {
			for range time.Tick(10 * time.Millisecond) {
				plantedTicks.Add(1)
			}
		}()
	})
	plantedLeaseUntil.Store(plantedTicks.Load() + plantedLeaseTicks)
}

func plantedLeaseValid() bool { return plantedTicks.Load() < plantedLeaseUntil.Load() }
