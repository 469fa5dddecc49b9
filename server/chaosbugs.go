package server

import (
	"context"
	"errors"
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

// plantedLeaderBelief is the stale-leader-read bug's idea of whether this node leads: set by
// its last proposal's outcome, so a leader deposed while paused keeps believing it leads until
// a write fails on it (a belief cached from writes, as systems that piggyback leases on appends
// have).
var plantedLeaderBelief atomic.Bool
