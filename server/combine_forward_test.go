package server

import (
	"context"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// combiningLeader is a transport.Client standing for a leader whose combiner takes the
// forwarded single-record batches, as proposeTo does on a leader, answering through toWire.
type combiningLeader struct {
	transport.Client
	c *combiner
}

func (l combiningLeader) ProduceBatch(ctx context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	res, err := l.c.append(ctx, produceTarget{}, appendRecord(req.GetRecords()[0]))
	if err != nil {
		return nil, toWire(err)
	}
	return &logv1.ProduceBatchResponse{BaseOffset: res.First}, nil
}

func (l combiningLeader) Close() error { return nil }

// A produce forwarded by a follower to a leader whose combiner takes it back (still waiting
// behind a proposal in flight as the deadline nears) is answered NotProposed by the follower
// too, before the caller's deadline: the follower does not swallow the leader's answer and try
// again until the deadline has passed, when its caller could only take the outcome as unknown.
func TestFollowerForwardAnswersNotProposedBeforeTheDeadline(t *testing.T) {
	f := &fakeLog{entered: make(chan struct{}, 100), gate: make(chan struct{})}
	lc := newCombiner(fitsUpTo(100), f.propose)
	heldc := make(chan error, 1)
	go func() {
		_, err := lc.append(context.Background(), produceTarget{}, fsm.AppendRecord{Value: []byte("held")})
		heldc <- err
	}()
	<-f.entered
	defer func() {
		f.gate <- struct{}{}
		if err := <-heldc; err != nil {
			t.Errorf("held: %v", err)
		}
		idle(t, lc)
	}()

	fwd := newForwarder(func(string, transport.ClientConfig) (transport.Client, error) {
		return combiningLeader{c: lc}, nil
	}, transport.ClientConfig{}, DefaultMaxForwardClients)
	t.Cleanup(func() { _ = fwd.Close() })
	m := emptyMachine(t)
	svc := &service{
		node:       followerNode{leader: consensus.Server{ID: "leader", Address: "leader:1"}},
		fsm:        m.Default(),
		sm:         m,
		forward:    fwd,
		cfg:        &Config{},
		stop:       make(chan struct{}),
		leaderWait: 5 * time.Second,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := svc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("waiting")}})
	if ctx.Err() != nil {
		t.Fatalf("answered %v only once the deadline had passed", err)
	}
	if !transport.IsNotProposed(err) || transport.CodeOf(err) != transport.Unavailable {
		t.Fatalf("answered %v, want Unavailable with the NotProposed detail", err)
	}
}
