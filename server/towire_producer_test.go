package server

import (
	"fmt"
	"testing"

	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/transport"
)

// TestToWireProducerRejections: each refusal of the idempotent producer checks travels as
// FailedPrecondition with the ProducerRejected detail naming it, so the SDK tells a fenced
// producer from a sequence gap without reading the message.
func TestToWireProducerRejections(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want transport.ProducerRejection
	}{
		{fmt.Errorf("%w: 7", fsm.ErrUnknownProducer), transport.ProducerUnknown},
		{fmt.Errorf("%w: producer 7 epoch 0, current 1", fsm.ErrProducerFenced), transport.ProducerFenced},
		{fmt.Errorf("%w: sequence 9, want 4", fsm.ErrOutOfOrderSequence), transport.ProducerOutOfOrder},
		{fsm.ErrDuplicateSequence, transport.ProducerDuplicate},
	} {
		err := toWire(tt.err)
		if transport.CodeOf(err) != transport.FailedPrecondition {
			t.Errorf("toWire(%v) = %v, want FailedPrecondition", tt.err, err)
		}
		if got, ok := transport.ProducerRejectedDetail(err); !ok || got != tt.want {
			t.Errorf("toWire(%v): ProducerRejected = %v, %v; want %v", tt.err, got, ok, tt.want)
		}
		if _, ok := transport.NotLeaderDetail(err); ok || transport.IsOutcomeUnknown(err) || transport.IsNotProposed(err) {
			t.Errorf("toWire(%v) carries another detail", tt.err)
		}
	}
	if _, ok := transport.ProducerRejectedDetail(toWire(fsm.ErrUnknownTopic)); ok {
		t.Error("an unknown topic carries a ProducerRejected detail")
	}
}
