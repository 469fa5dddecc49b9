package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/transport"
)

// TestToWireDetails: the one mapping function gives each write failure the detail that says
// what became of it, so clients never decide from message text.
func TestToWireDetails(t *testing.T) {
	type want struct {
		code        transport.Code
		unknown     bool
		notProposed bool
		emptyLeader bool
	}
	tests := []struct {
		name string
		err  error
		want want
	}{
		{"no leader", fmt.Errorf("%w (node is not the leader)", consensus.ErrNoLeader), want{transport.Unavailable, false, true, true}},
		{"leadership transfer", fmt.Errorf("%w: leadership transfer in progress", consensus.ErrNoLeader), want{transport.Unavailable, false, true, true}},
		{"not leader, leader unknown", &consensus.NotLeaderError{}, want{transport.Unavailable, false, true, true}},
		{"outcome unknown", fmt.Errorf("%w (leadership lost)", consensus.ErrOutcomeUnknown), want{transport.Unavailable, true, false, false}},
		{"closed after proposing", fmt.Errorf("%w: %w", consensus.ErrClosed, consensus.ErrOutcomeUnknown), want{transport.Unavailable, true, false, false}},
		{"closed before proposing", consensus.ErrClosed, want{transport.Unavailable, false, true, false}},
		{"server stopping", errStopping, want{transport.Unavailable, false, true, false}},
		{"taken back, deadline near", fmt.Errorf("%w: its deadline is near", errWithdrawn), want{transport.Unavailable, false, true, false}},
		// The caller cancelled: counted (request metrics by code) as its own, not as the
		// server's unavailability, as it was before the combiner took records back.
		{"taken back, caller cancelled", fmt.Errorf("%w: %w", errWithdrawn, context.Canceled), want{transport.Canceled, false, true, false}},
		{"replica lagging", fmt.Errorf("%w: offset 8", errLagging), want{transport.Unavailable, false, false, false}},
		{"out of range", fmt.Errorf("read 9: %w", storage.ErrOutOfRange), want{transport.OutOfRange, false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := toWire(tt.err)
			e, ok := errors.AsType[*transport.Error](err)
			if !ok {
				t.Fatalf("toWire = %T %v, want *transport.Error", err, err)
			}
			nl, hasNL := e.NotLeader()
			got := want{e.Code(), transport.IsOutcomeUnknown(err), transport.IsNotProposed(err), hasNL && nl == (transport.NotLeader{})}
			if got != tt.want {
				t.Errorf("toWire(%v) = %v: %+v, want %+v", tt.err, err, got, tt.want)
			}
			if tt.want.unknown && !strings.Contains(e.Message(), ErrOutcomeUnknownMessage) {
				t.Errorf("message %q lost the text older SDKs match", e.Message())
			}
		})
	}
	// A known leader: FailedPrecondition naming it.
	err := toWire(&consensus.NotLeaderError{Leader: consensus.Server{ID: "b", Address: "127.0.0.1:2"}})
	if nl, ok := transport.NotLeaderDetail(err); !ok || nl.LeaderID != "b" || transport.CodeOf(err) != transport.FailedPrecondition {
		t.Errorf("not leader, leader known: %v, want FailedPrecondition naming b", err)
	}
}
