package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/memory"
	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestPastEndConsumeIsPrompt: a Consume past the end with a 3 s client deadline answers
// OutOfRange (the seed's contract), long before that deadline, even when --max-consume-wait is
// longer than the deadline: the client's deadline never makes the server wait.
func TestPastEndConsumeIsPrompt(t *testing.T) {
	srv := startServer(t, Config{MaxConsumeWait: time.Minute})
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			c := newClient(t, tr, srv.Addr())
			res, err := c.Produce(ctxT(t, 30*time.Second), &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("a")}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			start := time.Now()
			_, err = c.Consume(ctx, &logv1.ConsumeRequest{Offset: res.GetOffset() + 1})
			took := time.Since(start)
			if code := transport.CodeOf(err); code != transport.OutOfRange {
				t.Fatalf("Consume past the end = %v (code %v) after %v, want OutOfRange", err, code, took)
			}
			// Generous for -race on two busy cores; waiting the deadline would take 3 s.
			if took > 2*time.Second {
				t.Errorf("OutOfRange took %v: the server waited on the client's deadline", took)
			}
		})
	}
}

// TestConsumeLongPollCapped: max_wait_ms asks the server to wait for the offset, and
// --max-consume-wait caps the wait whatever the client asks or its deadline allows.
func TestConsumeLongPollCapped(t *testing.T) {
	const maxWait = 400 * time.Millisecond
	srv := startServer(t, Config{MaxConsumeWait: maxWait})
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			c := newClient(t, tr, srv.Addr())
			b, err := c.GetBounds(ctxT(t, 10*time.Second), &logv1.GetBoundsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			start := time.Now()
			_, err = c.Consume(ctx, &logv1.ConsumeRequest{Offset: b.GetNextOffset(), MaxWaitMs: 60_000})
			took := time.Since(start)
			if code := transport.CodeOf(err); code != transport.OutOfRange {
				t.Fatalf("long poll past the end = %v (code %v) after %v, want OutOfRange at the cap", err, code, took)
			}
			if took < maxWait-50*time.Millisecond {
				t.Errorf("long poll answered after %v, before the %v cap: it did not wait", took, maxWait)
			}
			if took > 10*time.Second {
				t.Errorf("long poll took %v: not capped at %v", took, maxWait)
			}
		})
	}
}

// TestLongPollEndsAtStop: a unary Consume long-polling past the end held a graceful stop
// for the API's whole shutdown timeout (5 s), however long its wait. The stop now ends it at
// once, Unavailable (read elsewhere), and the server stops well before that timeout.
func TestLongPollEndsAtStop(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			srv := startServer(t, Config{Transport: tr, MaxConsumeWait: time.Minute})
			c := newClient(t, tr, srv.Addr())
			ctx := ctxT(t, 90*time.Second)
			type answer struct {
				err  error
				when time.Time
			}
			got := make(chan answer, 1)
			go func() {
				_, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 0, MaxWaitMs: 60_000})
				got <- answer{err, time.Now()}
			}()
			time.Sleep(time.Second) // the call reaches the server and waits there
			if len(got) != 0 {
				t.Fatalf("the long poll did not wait: %v", (<-got).err)
			}
			start := time.Now()
			srv.shutdown(t)
			stopped := time.Since(start)
			a := <-got
			if code := transport.CodeOf(a.err); code != transport.Unavailable {
				t.Errorf("long poll at the stop: %v (code %v), want Unavailable", a.err, code)
			}
			if took := a.when.Sub(start); took >= shutdownTimeout/2 {
				t.Errorf("long poll answered %v after the stop began: it held the stop", took)
			}
			if stopped >= shutdownTimeout/2 {
				t.Errorf("the server took %v to stop", stopped)
			}
		})
	}
}

// leaderless is a consensus.Consensus for a follower of a remote leader: only what Consume's
// read path calls is implemented.
type followerOf struct {
	consensus.Consensus
	leader consensus.Server
}

func (f followerOf) LinearizableRead(context.Context) error {
	return &consensus.NotLeaderError{Leader: f.leader}
}

// TestLaggingFollowerReadIndex: a follower whose state machine lags (its applies stalled)
// learns the leader's commit point before answering: an acknowledged offset is never
// OutOfRange there — it is served once the follower catches up, or Unavailable (retry
// elsewhere) if it cannot within --max-consume-wait — and only an offset beyond every
// committed record is OutOfRange, at once.
func TestLaggingFollowerReadIndex(t *testing.T) {
	leader := startServer(t, Config{})
	lc := newClient(t, TransportConnect, leader.Addr())
	ctx := ctxT(t, 60*time.Second)
	const n = 10
	for i := range n {
		if _, err := lc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: fmt.Appendf(nil, "v%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}

	// The follower: a state machine that applied only the first half.
	f := emptyFSM(t)
	apply := func(from, to int) {
		for i := from; i < to; i++ {
			cmd, err := f.EncodeAppend(fsm.AppendRecord{Value: fmt.Appendf(nil, "v%d", i)})
			if err != nil {
				t.Error(err)
				return
			}
			if res := f.Apply([]consensus.Entry{{Index: uint64(i + 1), Term: 1, Data: cmd}}); res[0] != nil {
				if _, ok := res[0].(fsm.AppendResult); !ok {
					t.Errorf("apply %d: %v", i, res[0])
				}
			}
		}
	}
	apply(0, n/2)
	fwd := newForwarder(tconnect.NewClient, transport.ClientConfig{}, DefaultMaxForwardClients)
	t.Cleanup(func() { _ = fwd.Close() })
	cfg := &Config{MaxConsumeWait: 300 * time.Millisecond}
	svc := &service{
		node:       followerOf{leader: consensus.Server{ID: leader.ID(), Address: leader.Addr()}},
		fsm:        f,
		forward:    fwd,
		cfg:        cfg,
		stop:       make(chan struct{}),
		leaderWait: 2 * time.Second,
	}

	// Stalled: an acknowledged offset is Unavailable (another replica can serve it), never
	// OutOfRange.
	_, err := svc.Consume(ctx, &logv1.ConsumeRequest{Offset: n - 2})
	if code := transport.CodeOf(err); code != transport.Unavailable {
		t.Fatalf("stalled follower, acknowledged offset: %v (code %v), want Unavailable", err, code)
	}
	// Beyond every committed record: OutOfRange.
	_, err = svc.Consume(ctx, &logv1.ConsumeRequest{Offset: n})
	if code := transport.CodeOf(err); code != transport.OutOfRange {
		t.Fatalf("offset beyond the commit point: %v (code %v), want OutOfRange", err, code)
	}

	// Catching up while the read waits: the record is served.
	cfg.MaxConsumeWait = 30 * time.Second
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(100 * time.Millisecond)
		apply(n/2, n)
	}()
	res, err := svc.Consume(ctx, &logv1.ConsumeRequest{Offset: n - 2})
	<-done
	if err != nil || string(res.GetRecord().GetValue()) != fmt.Sprintf("v%d", n-2) {
		t.Fatalf("lagging follower, acknowledged offset = %v, %v; want v%d", res, err, n-2)
	}
	if _, err := f.Read(ctx, n-1); err != nil || errors.Is(err, storage.ErrOutOfRange) {
		t.Fatalf("follower read %d after catching up: %v", n-1, err)
	}
}

// TestLaggingFollowerReadBeforeDeadline: a follower that cannot apply, within the caller's
// deadline, an offset the leader has committed answers Unavailable (read elsewhere) before that
// deadline; it answered OutOfRange once the deadline had passed (the record is acknowledged),
// or nothing the caller could still hear. With and without a long poll (max_wait_ms beyond
// the deadline).
func TestLaggingFollowerReadBeforeDeadline(t *testing.T) {
	leader := startServer(t, Config{})
	lc := newClient(t, TransportConnect, leader.Addr())
	if _, err := lc.Produce(ctxT(t, 30*time.Second), &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	// The follower: a state machine that applied nothing (its applies stalled).
	f := emptyFSM(t)
	fwd := newForwarder(tconnect.NewClient, transport.ClientConfig{}, DefaultMaxForwardClients)
	t.Cleanup(func() { _ = fwd.Close() })
	svc := &service{
		node:       followerOf{leader: consensus.Server{ID: leader.ID(), Address: leader.Addr()}},
		fsm:        f,
		forward:    fwd,
		cfg:        &Config{MaxConsumeWait: time.Minute},
		stop:       make(chan struct{}),
		leaderWait: 2 * time.Second,
	}
	for _, maxWaitMs := range []uint32{0, 60_000} {
		const deadline = 2500 * time.Millisecond // the server answers 200 ms before it
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		start := time.Now()
		_, err := svc.Consume(ctx, &logv1.ConsumeRequest{Offset: 0, MaxWaitMs: maxWaitMs})
		took := time.Since(start)
		cancel()
		if code := transport.CodeOf(err); code != transport.Unavailable || took >= deadline {
			t.Errorf("max_wait_ms %d: acknowledged offset on a stalled follower: %v (code %v) after %v, want Unavailable before the %v deadline",
				maxWaitMs, err, code, took, deadline)
		}
	}
}

// TestLeaderlessReadBeforeDeadline: a read that must learn the cluster's commit point (an
// offset past this node's end) or catch up with it (a topic this node does not know), on a
// node that knows no leader, waits for one only until its caller's deadline is near, then
// answers Unavailable (read elsewhere) while the caller still listens, as a produce waiting
// for a leader does: it waited up to an election whatever the deadline, and answered at the
// deadline, when the caller could only see its own DeadlineExceeded (for a past-end read,
// DESIGN.md §3 says: OutOfRange promptly, never DeadlineExceeded).
func TestLeaderlessReadBeforeDeadline(t *testing.T) {
	svc := followerService(t, consensus.Server{}, tconnect.NewClient, time.Minute)
	svc.cfg.MaxConsumeWait = time.Minute
	svc.node = followerOf{}
	reads := map[string]*logv1.ConsumeRequest{
		"past the end":  {Offset: 0},
		"unknown topic": {Topic: "fresh"},
	}
	for name, req := range reads {
		const deadline = 1500 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		start := time.Now()
		_, err := svc.Consume(ctx, req)
		took := time.Since(start)
		cancel()
		if code := transport.CodeOf(err); code != transport.Unavailable || took >= deadline {
			t.Errorf("%s, no leader: %v (code %v) after %v, want Unavailable before the %v deadline", name, err, code, took, deadline)
		}
	}
}

// captureStream is a ConsumeStream's stream that keeps the offsets it is sent.
type captureStream struct{ offsets []uint64 }

func (c *captureStream) Send(r *logv1.ConsumeResponse) error {
	for _, rec := range append(r.GetRecords(), r.GetRecord()) {
		if rec != nil {
			c.offsets = append(c.offsets, rec.GetOffset())
		}
	}
	return nil
}

// TestReadsAfterMachineStopped: a node whose state machine stopped applying at a topic command
// (it could not open the new topic's partition logs) applies no later entry to any partition,
// though the cluster commits them. A read past what it holds answered OutOfRange "beyond every
// committed record" on it as leader (its own stale next offset taken for the commit point), and
// a ConsumeStream there tailed forever, silently, while the other replicas went on; as when a
// partition itself stops applying, they answer the state machine's error (Unavailable: read
// elsewhere), after every record it holds.
func TestReadsAfterMachineStopped(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	def, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = def.Close() })
	m, err := fsm.NewMachine(fsm.MachineConfig{Config: fsm.Config{Log: def}, Dir: t.TempDir(),
		OpenLog: func(string) (storage.Log, error) { return nil, errors.New("too many open files") }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	p := &directProposer{m: m}
	node := laggingLeader{p: p, once: &sync.Once{}, catchUp: func() {}}
	svc := &service{node: node, fsm: m.Default(), sm: m, cfg: &Config{MaxConsumeWait: time.Second}, stop: make(chan struct{}), leaderWait: time.Second}
	if _, err := svc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("a")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateTopic(ctx, p, "t", 1, fsm.TopicConfig{}); err == nil || m.Err() == nil {
		t.Fatalf("CreateTopic with partition logs that cannot open: %v (machine error %v), want the machine stopped", err, m.Err())
	}
	// The cluster commits a record at offset 1 that this node does not apply.
	if _, err := svc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("b")}}); err == nil {
		t.Fatal("a produce on a stopped state machine succeeded")
	}
	if _, err := svc.Consume(ctx, &logv1.ConsumeRequest{Offset: 1}); transport.CodeOf(err) != transport.Unavailable {
		t.Errorf("Consume past what a stopped state machine holds: %v (code %v), want Unavailable", err, transport.CodeOf(err))
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var got captureStream
	err = svc.ConsumeStream(sctx, &logv1.ConsumeRequest{Offset: 0, MaxBatch: 16}, &got)
	if transport.CodeOf(err) != transport.Unavailable || sctx.Err() != nil || !slices.Equal(got.offsets, []uint64{0}) {
		t.Errorf("ConsumeStream on a stopped state machine: sent %v, ended with %v (code %v, waited out its deadline: %v); want offset 0, then Unavailable",
			got.offsets, err, transport.CodeOf(err), sctx.Err() != nil)
	}
}

// failingLog is a storage.Log whose appends fail once fail is set.
type failingLog struct {
	storage.Log
	fail *atomic.Bool
}

func (l failingLog) Append(records ...[]byte) (uint64, error) {
	if l.fail.Load() {
		return 0, fmt.Errorf("%w: disk on fire", storage.ErrFailed)
	}
	return l.Log.Append(records...)
}

// TestPastEndReadWhileLeaderStopsApplying: a leader whose state machine stops applying (its
// storage fails on a committed entry) while a read past its end learns the commit point
// (LinearizableRead applies every committed entry, the failing one included) answers the
// state machine's error, not OutOfRange "beyond every committed record": it took the next
// offset where its failure left it for the cluster's commit point, though the entry it failed
// on was committed.
func TestPastEndReadWhileLeaderStopsApplying(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	mem, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mem.Close() })
	fail := &atomic.Bool{}
	m, err := fsm.NewMachine(fsm.MachineConfig{Config: fsm.Config{Log: failingLog{Log: mem, fail: fail}}, Dir: t.TempDir(),
		OpenLog: func(string) (storage.Log, error) { return memory.New(memory.Config{}) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	p := &directProposer{m: m}
	node := laggingLeader{p: p, once: &sync.Once{}, catchUp: func() {
		// Committed before the read's barrier, applied while it waits: the storage fails.
		cmd, err := m.Default().EncodeAppend(fsm.AppendRecord{Value: []byte("b")})
		if err != nil {
			t.Error(err)
			return
		}
		fail.Store(true)
		_, _ = p.Propose(ctx, cmd)
	}}
	svc := &service{node: node, fsm: m.Default(), sm: m, cfg: &Config{MaxConsumeWait: time.Second}, stop: make(chan struct{}), leaderWait: time.Second}
	if _, err := svc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("a")}}); err != nil {
		t.Fatal(err)
	}
	_, err = svc.Consume(ctx, &logv1.ConsumeRequest{Offset: 1})
	if m.Default().Err() == nil {
		t.Fatal("the state machine did not stop applying")
	}
	if code := transport.CodeOf(err); code != transport.Unavailable {
		t.Fatalf("past-end Consume on a leader that stopped applying meanwhile: %v (code %v), want Unavailable", err, code)
	}
}

// emptyFSM is a state machine over an empty segment log, closed when the test ends.
func emptyFSM(t *testing.T) *fsm.FSM {
	t.Helper()
	lg, err := segment.Open(t.TempDir(), segment.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lg.Close() })
	f, err := fsm.New(fsm.Config{Log: lg})
	if err != nil {
		t.Fatal(err)
	}
	return f
}
