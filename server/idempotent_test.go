package server

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// answerDropper is a TCP proxy in front of a server that passes requests on and throws every
// answer away: a client's write reaches the server, is committed, and the client never learns
// it. cut closes every connection, so the client sees its call fail.
type answerDropper struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

func newAnswerDropper(t *testing.T, target string) *answerDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &answerDropper{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *answerDropper) addr() string { return p.ln.Addr().String() }

func (p *answerDropper) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(s, c) })          // requests pass
		p.wg.Go(func() { _, _ = io.Copy(io.Discard, s) }) // answers are dropped
	}
}

// cut closes every proxied connection, both ends.
func (p *answerDropper) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// TestIdempotentRetryAcrossLeaderChange: over the wire, an idempotent producer's batch reaches
// the leader through a proxy that drops the answer after the batch is committed; the leader
// is then stopped (or hands leadership over), and the client retries the same batch (same
// producer ID, epoch and base sequence) against the new leader. The retry answers the original
// offsets, marked duplicate, and every node holds exactly one copy.
func TestIdempotentRetryAcrossLeaderChange(t *testing.T) {
	for _, how := range []string{"stopped", "demoted"} {
		t.Run(how, func(t *testing.T) {
			nodes := startCluster(t, 3)
			ctx := ctxT(t, 120*time.Second)
			leader := leaderOf(t, nodes)
			lc := newClient(t, TransportConnect, leader.Addr())
			topics := lc.(transport.TopicsClient)
			if _, err := topics.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders", Partitions: 2}); err != nil {
				t.Fatal(err)
			}
			if _, err := lc.Produce(ctx, &logv1.ProduceRequest{Topic: "orders", Partition: 1, Record: &logv1.Record{Value: []byte("before")}}); err != nil {
				t.Fatal(err)
			}
			p, err := topics.InitProducer(ctx, &logv1.InitProducerRequest{})
			if err != nil {
				t.Fatal(err)
			}
			ref := &logv1.ProducerRef{Id: p.GetProducerId(), Epoch: p.GetEpoch(), BaseSequence: 0}
			batch := &logv1.ProduceBatchRequest{Topic: "orders", Partition: 1, Producer: ref,
				Records: []*logv1.Record{{Value: []byte("a"), Key: []byte("k")}, {Value: []byte("b")}}}

			// The first try: committed, its answer lost.
			proxy := newAnswerDropper(t, leader.Addr())
			pc := newClient(t, TransportConnect, proxy.addr())
			first := make(chan error, 1)
			go func() {
				_, err := pc.ProduceBatch(ctx, batch)
				first <- err
			}()
			committed := func() bool {
				for _, nd := range nodes {
					f, _, err := nd.sm.Partition("orders", 1)
					if err != nil {
						return false
					}
					if _, next := f.Bounds(); next != 3 {
						return false
					}
				}
				return true
			}
			waitFor(t, 30*time.Second, "the batch is applied on every node", committed)
			proxy.cut()
			if err := <-first; err == nil {
				t.Fatal("the first try succeeded through a proxy that drops every answer")
			}

			// The leader changes.
			var rest []*testServer
			for _, nd := range nodes {
				if nd != leader {
					rest = append(rest, nd)
				}
			}
			check := nodes
			switch how {
			case "stopped":
				leader.shutdown(t)
				check = rest
			case "demoted":
				if _, err := lc.TransferLeadership(ctx, &logv1.TransferLeadershipRequest{}); err != nil {
					t.Fatalf("TransferLeadership: %v", err)
				}
			}
			newLeader := leaderOf(t, rest)
			if newLeader == leader {
				t.Fatal("the leader did not change")
			}

			// The retry: the same batch, to the new leader, answers the original offsets.
			nc := newClient(t, TransportGRPC, newLeader.Addr())
			res, err := nc.ProduceBatch(ctx, batch)
			if err != nil {
				t.Fatalf("retry on the new leader: %v", err)
			}
			if !res.GetDuplicate() || res.GetBaseOffset() != 1 || res.GetCount() != 2 {
				t.Fatalf("retry = %v, want the original offsets (base 1, 2 records) marked duplicate", res)
			}
			// Retried once more through a follower (forwarded): the same answer.
			var follower *testServer
			for _, nd := range rest {
				if nd != newLeader {
					follower = nd
				}
			}
			res, err = newClient(t, TransportConnect, follower.Addr()).ProduceBatch(ctx, batch)
			if err != nil || !res.GetDuplicate() || res.GetBaseOffset() != 1 {
				t.Fatalf("retry through a follower = %v, %v; want base 1, duplicate", res, err)
			}
			// The producer goes on with its next sequence.
			next := &logv1.ProduceBatchRequest{Topic: "orders", Partition: 1, Records: []*logv1.Record{{Value: []byte("c")}},
				Producer: &logv1.ProducerRef{Id: ref.Id, Epoch: ref.Epoch, BaseSequence: 2}}
			if res, err := nc.ProduceBatch(ctx, next); err != nil || res.GetDuplicate() || res.GetBaseOffset() != 3 {
				t.Fatalf("next batch = %v, %v; want offset 3, not a duplicate", res, err)
			}

			want := []string{"before", "a", "b", "c"}
			for _, nd := range check {
				waitFor(t, 20*time.Second, nd.ID()+" applies the next batch", func() bool {
					f, _, err := nd.sm.Partition("orders", 1)
					if err != nil {
						return false
					}
					_, n := f.Bounds()
					return n >= uint64(len(want))
				})
				got := partitionValues(t, ctx, nd, "orders", 1)
				if !slices.Equal(got, want) {
					t.Errorf("%s holds %q in orders/1, want %q (one copy of the retried batch)", nd.ID(), got, want)
				}
			}
		})
	}
}

// partitionValues returns the values nd stores in a topic's partition, read from its state
// machine.
func partitionValues(t *testing.T, ctx context.Context, nd *testServer, topic string, partition uint32) []string {
	t.Helper()
	f, _, err := nd.sm.Partition(topic, partition)
	if err != nil {
		t.Fatalf("%s: %s/%d: %v", nd.ID(), topic, partition, err)
	}
	lowest, next := f.Bounds()
	var out []string
	for off := lowest; off < next; off++ {
		r, err := f.Read(ctx, off)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			t.Fatalf("%s: read %s/%d@%d: %v", nd.ID(), topic, partition, off, err)
		}
		out = append(out, string(r.Value))
	}
	return out
}
