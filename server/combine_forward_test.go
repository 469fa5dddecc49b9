package server

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
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

	svc := followerService(t, forwardTarget, func(string, transport.ClientConfig) (transport.Client, error) {
		return combiningLeader{c: lc}, nil
	}, 5*time.Second)
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

// leaderOnly is a consensus.Consensus that is the leader: only what the produce path asks
// before it reaches the combiner is implemented.
type leaderOnly struct{ consensus.Consensus }

func (leaderOnly) IsLeader() bool { return true }

// chanStream is a ProduceStream's server side fed from reqs, until ctx ends.
type chanStream struct {
	ctx  context.Context
	reqs chan *logv1.ProduceRequest
}

func (s chanStream) Receive() (*logv1.ProduceRequest, error) {
	select {
	case r := <-s.reqs:
		return r, nil
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

func (s chanStream) Send(*logv1.ProduceResponse) error { return nil }

// A ProduceStream whose record the combiner takes back because the server stops (the stream's
// context cancelled) ends Unavailable with NotProposed, as a stop ends every stream, not
// Canceled as a caller that cancelled its own call is answered.
func TestProduceStreamStoppedWhileCombinedIsUnavailable(t *testing.T) {
	f := &fakeLog{entered: make(chan struct{}, 100), gate: make(chan struct{})}
	c := newCombiner(fitsUpTo(100), f.propose)
	stop := make(chan struct{})
	m := emptyMachine(t)
	svc := &service{node: leaderOnly{}, fsm: m.Default(), sm: m, cfg: &Config{}, stop: stop, combine: c}
	heldc := make(chan error, 1)
	go func() {
		_, err := svc.Produce(context.Background(), &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("held")}})
		heldc <- err
	}()
	<-f.entered

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := chanStream{ctx: ctx, reqs: make(chan *logv1.ProduceRequest, 1)}
	errc := make(chan error, 1)
	go func() { errc <- svc.ProduceStream(ctx, st) }()
	st.reqs <- &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("waiting")}}
	queued(t, c, 1)
	close(stop) // the server stops: its transport cancels the streams' contexts
	cancel()
	if err := <-errc; transport.CodeOf(err) != transport.Unavailable || !transport.IsNotProposed(err) {
		t.Errorf("ProduceStream stopped with its record waiting: %v (code %v), want Unavailable with the NotProposed detail", err, transport.CodeOf(err))
	}
	f.gate <- struct{}{}
	if err := <-heldc; err != nil {
		t.Fatalf("held: %v", err)
	}
	idle(t, c)
}

// forwardTarget is the leader a followerService of these tests forwards to: its address only
// names the fake client its forwarder makes.
var forwardTarget = consensus.Server{ID: "leader", Address: "leader:1"}

// brokenLeader is a transport.Client standing for a leader whose connection breaks under a
// forwarded Topics call, after the request was sent (it may have been proposed).
type brokenLeader struct {
	transport.Client
	transport.TopicsClient
}

func (brokenLeader) CreateTopic(context.Context, *logv1.CreateTopicRequest) (*logv1.CreateTopicResponse, error) {
	return nil, transport.Errorf(transport.Unavailable, "read: %w", syscall.ECONNRESET)
}

func (brokenLeader) Close() error { return nil }

// TestFollowerForwardedAdminWriteOutcomeUnknown: a write of the Topics (or Groups) service
// forwarded by a follower to a leader whose connection breaks after the request was sent is
// answered Unavailable with the OutcomeUnknown detail, as a forwarded produce is: a plain
// Unavailable let a raw client resend a write that may have happened. A leader that cannot be
// dialled is NotProposed: nothing was sent.
func TestFollowerForwardedAdminWriteOutcomeUnknown(t *testing.T) {
	follower := func(newClient transport.NewClientFunc) *service {
		return followerService(t, forwardTarget, newClient, 300*time.Millisecond)
	}
	ctx := ctxT(t, 10*time.Second)
	req := &logv1.CreateTopicRequest{Name: "t", Partitions: 1}

	svc := follower(func(string, transport.ClientConfig) (transport.Client, error) { return brokenLeader{}, nil })
	_, err := svc.CreateTopic(ctx, req)
	if transport.CodeOf(err) != transport.Unavailable || !transport.IsOutcomeUnknown(err) {
		t.Errorf("forwarded CreateTopic whose connection broke: %v, want Unavailable with the OutcomeUnknown detail", err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	svc = follower(func(_ string, cfg transport.ClientConfig) (transport.Client, error) {
		return tconnect.NewClient(dead, cfg) // every forward is refused at the dial
	})
	_, err = svc.CreateTopic(ctx, req)
	if transport.CodeOf(err) != transport.Unavailable || !transport.IsNotProposed(err) || transport.IsOutcomeUnknown(err) {
		t.Errorf("forwarded CreateTopic to a leader that cannot be dialled: %v, want Unavailable with the NotProposed detail", err)
	}
}
