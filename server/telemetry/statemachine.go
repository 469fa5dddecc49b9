package telemetry

import (
	"context"
	"io"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
)

// InstrumentStateMachine returns sm with its snapshots counted and timed in m (from Snapshot
// to the end of Persist). The result implements consensus.SnapshotSource and
// consensus.SnapshotSizer exactly when sm does, and otherwise behaves as sm. A nil m returns
// sm.
func InstrumentStateMachine(sm consensus.StateMachine, m *Metrics) consensus.StateMachine {
	if m == nil {
		return sm
	}
	base := timedSM{StateMachine: sm, m: m}
	src, isSource := sm.(consensus.SnapshotSource)
	sizer, isSizer := sm.(consensus.SnapshotSizer)
	switch {
	case isSource && isSizer:
		return &timedSizedSourceSM{timedSM: base, SnapshotSource: src, SnapshotSizer: sizer}
	case isSource:
		return &timedSourceSM{timedSM: base, SnapshotSource: src}
	default:
		return &base
	}
}

type timedSM struct {
	consensus.StateMachine
	m *Metrics
}

type timedSourceSM struct {
	timedSM
	consensus.SnapshotSource
}

type timedSizedSourceSM struct {
	timedSM
	consensus.SnapshotSource
	consensus.SnapshotSizer
}

func (t *timedSM) Snapshot() (consensus.Snapshot, error) {
	start := time.Now()
	snap, err := t.StateMachine.Snapshot()
	if err != nil {
		return nil, err
	}
	return &timedSnapshot{Snapshot: snap, start: start, m: t.m}, nil
}

// timedSnapshot records the snapshot when Persist succeeds.
type timedSnapshot struct {
	consensus.Snapshot
	start time.Time
	m     *Metrics
}

func (s *timedSnapshot) Persist(w io.Writer) error {
	if err := s.Snapshot.Persist(w); err != nil {
		return err
	}
	s.m.SnapshotTaken(context.Background(), time.Since(s.start))
	return nil
}
