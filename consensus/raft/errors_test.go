package raft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus"
)

func TestMapError(t *testing.T) {
	known := func() (consensus.Server, bool) {
		return consensus.Server{ID: "n2", Address: "10.0.0.2:8400", Suffrage: consensus.Voter}, true
	}
	unknown := func() (consensus.Server, bool) { return consensus.Server{}, false }
	tests := []struct {
		name     string
		err      error
		proposed bool
		leader   func() (consensus.Server, bool)
		is       []error // errors.Is must hold for each
		isNot    []error // and must not hold for these
		leaderID string  // *NotLeaderError's leader, when expected
	}{
		{name: "nil", err: nil, leader: known},
		{name: "not leader, leader known", err: hraft.ErrNotLeader, proposed: true, leader: known,
			is: []error{consensus.ErrNotLeader}, isNot: []error{consensus.ErrOutcomeUnknown, consensus.ErrNoLeader}, leaderID: "n2"},
		{name: "not leader, leader unknown", err: hraft.ErrNotLeader, proposed: true, leader: unknown,
			is: []error{consensus.ErrNoLeader}, isNot: []error{consensus.ErrNotLeader, consensus.ErrOutcomeUnknown}},
		{name: "transfer in progress: refused before dispatch", err: hraft.ErrLeadershipTransferInProgress, proposed: true, leader: known,
			is: []error{consensus.ErrNoLeader}, isNot: []error{consensus.ErrOutcomeUnknown}},
		{name: "leadership lost after append", err: hraft.ErrLeadershipLost, proposed: true, leader: known,
			is: []error{consensus.ErrOutcomeUnknown}, isNot: []error{consensus.ErrNotLeader, consensus.ErrClosed}},
		{name: "aborted by restore", err: hraft.ErrAbortedByRestore, proposed: true, leader: known,
			is: []error{consensus.ErrOutcomeUnknown}},
		{name: "leader's log write failed", err: fmt.Errorf("%w: %w", errLogWrite, syscall.ENOSPC), proposed: true, leader: known,
			is: []error{consensus.ErrOutcomeUnknown}, isNot: []error{consensus.ErrNotLeader, consensus.ErrClosed}},
		{name: "enqueue timeout: not proposed", err: hraft.ErrEnqueueTimeout, proposed: true, leader: known,
			is: []error{context.DeadlineExceeded}, isNot: []error{consensus.ErrOutcomeUnknown}},
		{name: "shutdown before enqueue", err: hraft.ErrRaftShutdown, proposed: false, leader: known,
			is: []error{consensus.ErrClosed}, isNot: []error{consensus.ErrOutcomeUnknown}},
		{name: "shutdown after enqueue", err: hraft.ErrRaftShutdown, proposed: true, leader: known,
			is: []error{consensus.ErrClosed, consensus.ErrOutcomeUnknown}},
		{name: "other errors are wrapped", err: io.ErrUnexpectedEOF, leader: known,
			is: []error{io.ErrUnexpectedEOF}, isNot: []error{consensus.ErrOutcomeUnknown, consensus.ErrNotLeader}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mapError(tt.err, tt.proposed, tt.leader)
			if tt.err == nil {
				if got != nil {
					t.Fatalf("mapError(nil) = %v", got)
				}
				return
			}
			for _, want := range tt.is {
				if !errors.Is(got, want) {
					t.Errorf("mapError(%v) = %v: not %v", tt.err, got, want)
				}
			}
			for _, not := range tt.isNot {
				if errors.Is(got, not) {
					t.Errorf("mapError(%v) = %v: unexpectedly %v", tt.err, got, not)
				}
			}
			var nle *consensus.NotLeaderError
			if errors.As(got, &nle) != (tt.leaderID != "") {
				t.Fatalf("mapError(%v) = %T %v; NotLeaderError expected: %v", tt.err, got, got, tt.leaderID != "")
			}
			if nle != nil && nle.Leader.ID != tt.leaderID {
				t.Errorf("leader = %q, want %q", nle.Leader.ID, tt.leaderID)
			}
		})
	}
}
