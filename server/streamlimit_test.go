package server

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// limitStream is a ProduceStream client that sends total requests at once, the one at index
// big over the record limit, and blocks its first response until open is closed, so that
// every request is queued behind the first one (one read of the stream takes them together).
type limitStream struct {
	total, big int
	topic      string
	limit      int
	noRecord   bool // the request at big carries no record (instead of one over the limit)
	negativeTS bool // the request at big carries a record with a negative timestamp_ms
	open       chan struct{}

	mu       sync.Mutex
	received int
	offsets  []uint64
}

func (s *limitStream) Receive() (*logv1.ProduceRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.received == s.total {
		return nil, io.EOF
	}
	i := s.received
	s.received++
	v := []byte(fmt.Sprint("valid-", i))
	if i == s.big {
		if s.noRecord {
			return &logv1.ProduceRequest{Topic: s.topic}, nil
		}
		if s.negativeTS {
			return &logv1.ProduceRequest{Topic: s.topic, Record: &logv1.Record{Value: v, TimestampMs: -5}}, nil
		}
		v = make([]byte, 2*s.limit)
	}
	return &logv1.ProduceRequest{Topic: s.topic, Record: &logv1.Record{Value: v}}, nil
}

func (s *limitStream) Send(r *logv1.ProduceResponse) error {
	<-s.open
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offsets = append(s.offsets, r.GetOffset())
	return nil
}

// run serves s on srv's ProduceStream until every request is read, then lets the answers
// through, and returns the offsets answered and the stream's end.
func (s *limitStream) run(t *testing.T, ctx context.Context, srv *testServer) ([]uint64, error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.svc.ProduceStream(ctx, s) }()
	waitFor(t, 20*time.Second, "every request read", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.received == s.total
	})
	close(s.open)
	err := <-done
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.offsets...), err
}

// TestProduceStreamRefusesOnlyTheOverLimitRecord: a ProduceStream request over the record limit
// (the server's --max-record-bytes, or its topic's) is refused alone. The valid requests sent
// before it are stored and answered, whether or not the server read them together with it
// (before, they shared its command and were refused with it, unanswered and unstored, or stored,
// depending on how the stream's reads fell), and nothing at or after it is stored.
func TestProduceStreamRefusesOnlyTheOverLimitRecord(t *testing.T) {
	const limit, total, big = 1024, 20, 12
	srv := startServer(t, Config{MaxRecordBytes: limit})
	ctx := ctxT(t, 60*time.Second)
	c := newClient(t, TransportConnect, srv.Addr())
	tc := c.(transport.TopicsClient)
	if _, err := tc.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "small", Partitions: 1, Config: &logv1.TopicConfig{MaxRecordBytes: 100}}); err != nil {
		t.Fatal(err)
	}
	for _, tcase := range []struct {
		topic string
		limit int
	}{{"", limit}, {"small", 100}} {
		t.Run(fmt.Sprintf("topic=%q", tcase.topic), func(t *testing.T) {
			st := &limitStream{total: total, big: big, topic: tcase.topic, limit: tcase.limit, open: make(chan struct{})}
			offsets, err := st.run(t, ctx, srv)
			if transport.CodeOf(toWire(err)) != transport.ResourceExhausted {
				t.Fatalf("ProduceStream: %v, want ResourceExhausted", err)
			}
			if len(offsets) != big {
				t.Errorf("%d requests answered before the refusal, want the %d valid ones sent before the over-limit one", len(offsets), big)
			}
			b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{Topic: tcase.topic})
			if err != nil {
				t.Fatal(err)
			}
			if b.GetNextOffset() != uint64(len(offsets)) {
				t.Errorf("the log holds %d records, %d were answered", b.GetNextOffset(), len(offsets))
			}
			for i, off := range offsets {
				rec, err := c.Consume(ctx, &logv1.ConsumeRequest{Topic: tcase.topic, Offset: off})
				if err != nil {
					t.Fatalf("Consume(%d): %v", off, err)
				}
				if want := fmt.Sprint("valid-", i); string(rec.GetRecord().GetValue()) != want {
					t.Errorf("offset %d holds %q, want %q", off, rec.GetRecord().GetValue(), want)
				}
			}
		})
	}
}

// TestProduceStreamRefusesOnlyTheRequestWithoutRecord: a ProduceStream request without a
// record (`{}` from grpcurl, an empty message) ends the stream with InvalidArgument, and the
// valid requests sent before it are stored and answered, whether or not the server read them
// together with it. They shared its command, which was refused as a whole ("record 12 is
// missing"): the records before it were neither stored nor answered, and the message named an
// index the client never sent.
func TestProduceStreamRefusesOnlyTheRequestWithoutRecord(t *testing.T) {
	const total, big = 20, 12
	srv := startServer(t, Config{})
	ctx := ctxT(t, 60*time.Second)
	c := newClient(t, TransportConnect, srv.Addr())
	st := &limitStream{total: total, big: big, noRecord: true, open: make(chan struct{})}
	offsets, err := st.run(t, ctx, srv)
	if transport.CodeOf(toWire(err)) != transport.InvalidArgument || !strings.Contains(err.Error(), "no record") {
		t.Errorf("ProduceStream: %v, want InvalidArgument saying the request has no record", err)
	}
	if len(offsets) != big {
		t.Errorf("%d requests answered before the refusal, want the %d valid ones sent before the one without a record", len(offsets), big)
	}
	b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if b.GetNextOffset() != uint64(len(offsets)) {
		t.Errorf("the log holds %d records, %d were answered", b.GetNextOffset(), len(offsets))
	}
}

// TestProduceStreamOnFollowerRefusesOnlyTheOverLimitRecord: a follower whose --max-record-bytes
// is above the leader's (a rolling change of the flag, which the follower's forwarding makes
// safe) groups a ProduceStream's records by its own limit, so a record over the leader's limit
// shares a command with the valid records read with it. The leader refused that command as a
// whole: the valid records before the large one were neither stored nor answered, and each was
// refused ResourceExhausted, as though it were too large itself. As on the leader, the valid
// records before it are stored and answered, the large one alone is refused, and nothing after it
// is stored.
func TestProduceStreamOnFollowerRefusesOnlyTheOverLimitRecord(t *testing.T) {
	const limit, total, big = 1024, 20, 12
	nodes := startClusterWith(t, 2, func(i int, cfg *Config) {
		cfg.MaxRecordBytes = limit // the leader's
		if i == 1 {
			cfg.MaxRecordBytes = 64 << 10
		}
	})
	ctx := ctxT(t, 60*time.Second)
	st := &limitStream{total: total, big: big, limit: limit, open: make(chan struct{})}
	offsets, err := st.run(t, ctx, nodes[1])
	if transport.CodeOf(toWire(err)) != transport.ResourceExhausted {
		t.Fatalf("ProduceStream through the follower: %v, want ResourceExhausted", err)
	}
	if len(offsets) != big {
		t.Errorf("%d requests answered before the refusal (%v), want the %d valid ones sent before the over-limit one", len(offsets), err, big)
	}
	c := newClient(t, TransportConnect, nodes[0].Addr())
	b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{Linearizable: true})
	if err != nil {
		t.Fatal(err)
	}
	if b.GetNextOffset() != uint64(len(offsets)) {
		t.Errorf("the log holds %d records, %d were answered", b.GetNextOffset(), len(offsets))
	}
	for i, off := range offsets {
		rec, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: off})
		if err != nil {
			t.Fatalf("Consume(%d): %v", off, err)
		}
		if want := fmt.Sprint("valid-", i); string(rec.GetRecord().GetValue()) != want {
			t.Errorf("offset %d holds %q, want %q", off, rec.GetRecord().GetValue(), want)
		}
	}
}

// TestRefusedAsAWhole: a ProduceStream and the unary combiner propose a group's records again
// one by one only after a refusal that comes before anything is proposed. A committed entry this node's log refused as
// too large wraps storage.ErrTooLarge too, but under fsm.ErrFailed: proposing its records again
// would store them twice on every replica that stored them once.
func TestRefusedAsAWhole(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"over this node's limit", fmt.Errorf("record 3: %w", fsm.ErrTooLarge), true},
		{"over the leader's limit, forwarded", transport.Errorf(transport.ResourceExhausted, "record 1 is 800 bytes, limit 500"), true},
		{"committed, then refused by this node's log", fmt.Errorf("%w: %w", fsm.ErrFailed, storage.ErrTooLarge), false},
		{"the leader's state machine failed, forwarded", toWire(fmt.Errorf("%w: %w: %w", fsm.ErrNotStored, fsm.ErrFailed, storage.ErrTooLarge)), false},
		{"empty", fmt.Errorf("record 0: %w", fsm.ErrEmptyBatch), true},
		{"one record invalid", fmt.Errorf("%w: negative timestamp", errInvalid), false},
		{"committed, then found empty by this node's log", fmt.Errorf("%w: %w", fsm.ErrFailed, fsm.ErrEmptyBatch), false},
		{"outcome unknown", consensus.ErrOutcomeUnknown, false},
		{"no leader", consensus.ErrNoLeader, false},
	} {
		if got := refusedAsAWhole(c.err); got != c.want {
			t.Errorf("%s: refusedAsAWhole(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
