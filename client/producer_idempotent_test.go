package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/transport"
)

// values returns the values of topic/partition of l as strings.
func values(t *testing.T, l *clienttest.Log, topic string, partition uint32) []string {
	t.Helper()
	recs, ok := l.Records(topic, partition)
	if !ok {
		t.Fatalf("no partition %s/%d", topic, partition)
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.GetValue())
	}
	return out
}

// TestProducerIdempotentRetriesLostAnswers: answers lost after the records
// were stored (outcome unknown) are retried by the idempotent producer, and
// every record is stored exactly once, in order, with the offset its Future
// reports.
func TestProducerIdempotentRetriesLostAnswers(t *testing.T) {
	forEachFake(t, func(t *testing.T, l *clienttest.Log, cl *client.Client) {
		var writes atomic.Int64
		l.LoseAnswer = func(string, uint32) bool { return writes.Add(1)%3 != 0 } // 2 of 3 answers lost
		p, err := cl.NewProducer(client.ProducerBatchRecords(7), client.ProducerLinger(time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		const n = 100
		fs := make([]*client.Future, n)
		for i := range n {
			if fs[i], err = p.Send(ctx, fmt.Appendf(nil, "r%03d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		var want []string
		for i, f := range fs {
			off, err := f.Wait(ctx)
			if err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			if off != uint64(i) {
				t.Errorf("record %d got offset %d", i, off)
			}
			want = append(want, fmt.Sprintf("r%03d", i))
		}
		if got := values(t, l, "", 0); !slices.Equal(got, want) {
			t.Fatalf("log holds %d records %q, want each of %d once, in order", len(got), got, n)
		}
		if got := l.Calls("InitProducer"); got != 1 {
			t.Errorf("InitProducer calls = %d, want 1", got)
		}
		st := p.Stats()
		if st.Inits != 1 || st.Retries == 0 || st.Duplicates == 0 || st.Batches == 0 ||
			st.Batches+st.Retries != uint64(l.Calls("ProduceBatch")) {
			t.Errorf("stats %+v with %d ProduceBatch calls: want retries and duplicates, one init, every call counted once", st, l.Calls("ProduceBatch"))
		}
	})
}

// TestProducerWithoutIdempotenceNeverRetriesUnknown: with idempotence off a
// batch whose answer was lost fails with ErrOutcomeUnknown and is not resent.
func TestProducerWithoutIdempotenceNeverRetriesUnknown(t *testing.T) {
	forEachFake(t, func(t *testing.T, l *clienttest.Log, cl *client.Client) {
		var lost atomic.Bool
		l.LoseAnswer = func(string, uint32) bool { return lost.CompareAndSwap(false, true) } // the first only
		p := newProducer(t, cl)
		ctx := context.Background()
		f, err := p.Send(ctx, []byte("once"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Wait(ctx); !errors.Is(err, client.ErrOutcomeUnknown) {
			t.Fatalf("lost answer: %v, want ErrOutcomeUnknown", err)
		}
		if got := values(t, l, "", 0); !slices.Equal(got, []string{"once"}) {
			t.Fatalf("log holds %q, want the record once", got)
		}
		if l.Calls("InitProducer") != 0 || l.Calls("ProduceBatch") != 1 {
			t.Errorf("InitProducer %d, ProduceBatch %d calls; want 0 and 1", l.Calls("InitProducer"), l.Calls("ProduceBatch"))
		}
	})
}

// TestProducerPartitionsByKey: keyed records go to KeyPartition's partition,
// in Send order per partition; records without a key fill one partition at a
// time.
func TestProducerPartitionsByKey(t *testing.T) {
	forEachFake(t, func(t *testing.T, l *clienttest.Log, cl *client.Client) {
		ctx := context.Background()
		for _, topic := range []string{"orders", "clicks"} {
			if _, err := cl.CreateTopic(ctx, topic, 4, client.TopicConfig{}); err != nil {
				t.Fatal(err)
			}
		}
		p, err := cl.NewProducer(client.ProducerMaxInFlight(4), client.ProducerLinger(time.Hour), client.ProducerBatchRecords(10))
		if err != nil {
			t.Fatal(err)
		}
		want := make([][]string, 4)
		var fs []*client.Future
		for i := range 200 {
			key := fmt.Appendf(nil, "customer-%d", i%17)
			v := fmt.Sprintf("%s/%d", key, i)
			f, err := p.SendRecord(ctx, client.Record{Topic: "orders", Key: key, Value: []byte(v)})
			if err != nil {
				t.Fatal(err)
			}
			part := client.KeyPartition(key, 4)
			if f.Partition() != part {
				t.Fatalf("record %d placed in %d, KeyPartition says %d", i, f.Partition(), part)
			}
			want[part] = append(want[part], v)
			fs = append(fs, f)
		}
		// Eleven keyless records of another topic: the first ten fill one
		// batch of one partition; its cut moves the eleventh elsewhere.
		var keyless []*client.Future
		for i := range 11 {
			f, err := p.SendRecord(ctx, client.Record{Topic: "clicks", Value: fmt.Appendf(nil, "nokey-%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			keyless = append(keyless, f)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		for _, f := range append(fs, keyless...) {
			if _, err := f.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		sticky := keyless[0].Partition()
		var wantSticky []string
		for i, f := range keyless[:10] {
			if f.Partition() != sticky {
				t.Fatalf("keyless record %d in partition %d, the first in %d: want one batch", i, f.Partition(), sticky)
			}
			wantSticky = append(wantSticky, fmt.Sprintf("nokey-%d", i))
		}
		if keyless[10].Partition() == sticky {
			t.Errorf("the record after a full batch stayed in partition %d", sticky)
		}
		if got := values(t, l, "clicks", sticky); !slices.Equal(got, wantSticky) {
			t.Errorf("clicks/%d holds %q, want %q", sticky, got, wantSticky)
		}
		for part := range uint32(4) {
			if got := values(t, l, "orders", part); !slices.Equal(got, want[part]) {
				t.Errorf("partition %d holds %q, want %q", part, got, want[part])
			}
		}
	})
}

// TestProducerManualPartitioning: the record's Partition is used as given;
// a partition that does not exist fails the record with ErrUnknownTopic.
func TestProducerManualPartitioning(t *testing.T) {
	forEachFake(t, func(t *testing.T, l *clienttest.Log, cl *client.Client) {
		ctx := context.Background()
		if _, err := cl.CreateTopic(ctx, "t", 3, client.TopicConfig{}); err != nil {
			t.Fatal(err)
		}
		p, err := cl.NewProducer(client.ProducerManualPartitioning(), client.ProducerLinger(0))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		f, err := p.SendRecord(ctx, client.Record{Topic: "t", Partition: 2, Key: []byte("ignored"), Value: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		if off, err := f.Wait(ctx); err != nil || off != 0 || f.Partition() != 2 {
			t.Fatalf("manual record: offset %d partition %d err %v", off, f.Partition(), err)
		}
		if got := values(t, l, "t", 2); !slices.Equal(got, []string{"x"}) {
			t.Fatalf("partition 2 holds %q", got)
		}
		f, err = p.SendRecord(ctx, client.Record{Topic: "t", Partition: 9, Value: []byte("y")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Wait(ctx); !errors.Is(err, client.ErrUnknownTopic) {
			t.Fatalf("missing partition: %v, want ErrUnknownTopic", err)
		}
		// The refused batch gave its sequence numbers back: the next one
		// to partition 2 is accepted.
		f, err = p.SendRecord(ctx, client.Record{Topic: "t", Partition: 2, Value: []byte("z")})
		if err != nil {
			t.Fatal(err)
		}
		if off, err := f.Wait(ctx); err != nil || off != 1 {
			t.Fatalf("after a refusal: offset %d err %v", off, err)
		}
		// A topic that does not exist fails Send itself with the partitioner on.
		auto, err := cl.NewProducer()
		if err != nil {
			t.Fatal(err)
		}
		defer auto.Close()
		if _, err := auto.SendRecord(ctx, client.Record{Topic: "nope", Value: []byte("v")}); !errors.Is(err, client.ErrUnknownTopic) {
			t.Fatalf("Send to a missing topic: %v, want ErrUnknownTopic", err)
		}
	})
}

// TestProducerFenced: once another instance bumped the producer's epoch,
// the producer's records fail with ErrProducerFenced, and so do later ones.
func TestProducerFenced(t *testing.T) {
	forEachFake(t, func(t *testing.T, l *clienttest.Log, cl *client.Client) {
		ctx := context.Background()
		p, err := cl.NewProducer(client.ProducerLinger(0))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		f, err := p.Send(ctx, []byte("a"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		l.FenceProducers()
		for _, v := range []string{"b", "c"} {
			f, err := p.Send(ctx, []byte(v))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Wait(ctx); !errors.Is(err, client.ErrProducerFenced) {
				t.Fatalf("record %s: %v, want ErrProducerFenced", v, err)
			}
		}
		if got := values(t, l, "", 0); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("log holds %q", got)
		}
	})
}

// TestProducerUnknownProducerGetsANewID: a producer the server forgot (it
// expired) asks for a new ID and resends, storing the record once.
func TestProducerUnknownProducerGetsANewID(t *testing.T) {
	forEachFake(t, func(t *testing.T, l *clienttest.Log, cl *client.Client) {
		ctx := context.Background()
		p, err := cl.NewProducer(client.ProducerLinger(0))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		for i, v := range []string{"a", "b", "c"} {
			if i == 1 {
				l.ForgetProducers()
			}
			f, err := p.Send(ctx, []byte(v))
			if err != nil {
				t.Fatal(err)
			}
			if off, err := f.Wait(ctx); err != nil || off != uint64(i) {
				t.Fatalf("record %s: offset %d err %v", v, off, err)
			}
		}
		if got := values(t, l, "", 0); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Fatalf("log holds %q", got)
		}
		if got := l.Calls("InitProducer"); got != 2 {
			t.Errorf("InitProducer calls = %d, want 2", got)
		}
	})
}

// TestProducerDeliveryTimeout: a record the cluster keeps refusing before
// proposal is retried until the delivery timeout, then fails with
// ErrDeliveryTimeout.
func TestProducerDeliveryTimeout(t *testing.T) {
	forEachFake(t, func(t *testing.T, l *clienttest.Log, cl *client.Client) {
		l.RefuseProduce = func() error { return errNoLeader }
		p, err := cl.NewProducer(client.ProducerDeliveryTimeout(300*time.Millisecond), client.ProducerLinger(0))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		ctx := context.Background()
		f, err := p.Send(ctx, []byte("never"))
		if err != nil {
			t.Fatal(err)
		}
		// (ErrOutcomeUnknown too when the deadline ended an attempt in
		// flight: the client cannot know the server refused it.)
		if _, err = f.Wait(ctx); !errors.Is(err, client.ErrDeliveryTimeout) {
			t.Fatalf("refused record: %v, want ErrDeliveryTimeout", err)
		}
		if l.Len() != 0 {
			t.Fatalf("log holds %q", l.Values())
		}
	})
}

// TestProducerIdempotenceNeedsTopicsSupport: against a server without
// InitProducer, an idempotent producer's records fail with
// ErrTopicsUnsupported instead of silently losing the guarantee.
func TestProducerIdempotenceNeedsTopicsSupport(t *testing.T) {
	forEachTransport(t, func(t *testing.T, c *fakeCluster) {
		cl := newClient(t, c, nil)
		p, err := cl.NewProducer(client.ProducerLinger(0))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		ctx := context.Background()
		f, err := p.Send(ctx, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Wait(ctx); !errors.Is(err, client.ErrTopicsUnsupported) {
			t.Fatalf("record: %v, want ErrTopicsUnsupported", err)
		}
		if len(c.values()) != 0 {
			t.Fatalf("log holds %q", c.values())
		}
	})
}

// errNoLeader is a refusal before proposal, as a server in an election sends it.
var errNoLeader = transport.Errorf(transport.Unavailable, "no leader").WithNotLeader(transport.NotLeader{}).WithNotProposed("no leader")

// TestProducerNewEpochAfterUnknownDeliveryTimeout: a batch whose answers are lost until its
// delivery timeout fails with ErrDeliveryTimeout and ErrOutcomeUnknown (it was stored, once:
// every retry was recognised); the producer then starts a new epoch, and the next record is
// stored after it.
func TestProducerNewEpochAfterUnknownDeliveryTimeout(t *testing.T) {
	forEachFake(t, func(t *testing.T, l *clienttest.Log, cl *client.Client) {
		var lose atomic.Bool
		lose.Store(true)
		l.LoseAnswer = func(string, uint32) bool { return lose.Load() }
		p, err := cl.NewProducer(client.ProducerDeliveryTimeout(200*time.Millisecond), client.ProducerLinger(0))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		ctx := context.Background()
		f, err := p.Send(ctx, []byte("lost"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Wait(ctx); !errors.Is(err, client.ErrDeliveryTimeout) || !errors.Is(err, client.ErrOutcomeUnknown) {
			t.Fatalf("record whose answers were lost: %v, want ErrDeliveryTimeout and ErrOutcomeUnknown", err)
		}
		if l.Calls("ProduceBatch") < 2 {
			t.Fatalf("ProduceBatch calls = %d: the unknown outcome was not retried", l.Calls("ProduceBatch"))
		}
		lose.Store(false)
		f, err = p.Send(ctx, []byte("next"))
		if err != nil {
			t.Fatal(err)
		}
		if off, err := f.Wait(ctx); err != nil || off != 1 {
			t.Fatalf("next record: offset %d err %v, want 1", off, err)
		}
		if got := values(t, l, "", 0); !slices.Equal(got, []string{"lost", "next"}) {
			t.Fatalf("log holds %q, want each record once", got)
		}
		if got := l.Calls("InitProducer"); got != 2 {
			t.Errorf("InitProducer calls = %d, want 2 (a new epoch after the unknown outcome)", got)
		}
	})
}

// TestProducerIdempotentUnknownThenRefused: the first attempt of an
// idempotent batch is stored but its answer is lost (outcome unknown); the
// retry is refused with an answer a retry would not change (here
// PermissionDenied, e.g. the policy changed). The record IS stored, so its
// Future must report ErrOutcomeUnknown; a plain failure invites the caller
// to resend it (a duplicate).
func TestProducerIdempotentUnknownThenRefused(t *testing.T) {
	forEachFake(t, func(t *testing.T, l *clienttest.Log, cl *client.Client) {
		var writes atomic.Int64
		l.LoseAnswer = func(string, uint32) bool { return writes.Load() == 1 }
		l.RefuseProduce = func() error {
			if writes.Add(1) >= 2 {
				return transport.Errorf(transport.PermissionDenied, "denied")
			}
			return nil
		}
		p, err := cl.NewProducer(client.ProducerLinger(0))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		ctx := context.Background()
		f, err := p.Send(ctx, []byte("once"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Wait(ctx)
		if got := values(t, l, "", 0); !slices.Equal(got, []string{"once"}) {
			t.Fatalf("log holds %q", got)
		}
		if !errors.Is(err, client.ErrOutcomeUnknown) {
			t.Fatalf("record stored by the first attempt, yet its Future says %v (not ErrOutcomeUnknown)", err)
		}
	})
}

// TestProducerIdempotentUnknownThenClientClosed: the first attempt is
// stored, answer lost; the retries are refused before proposal (no leader);
// the client is closed. The Future must say ErrOutcomeUnknown.
func TestProducerIdempotentUnknownThenClientClosed(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			l, addr := clienttest.Start(t, tr)
			cl, err := client.New(context.Background(), []string{addr}, client.WithTransport(tr), client.WithBackoff(300*time.Millisecond, 300*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			var writes atomic.Int64
			l.LoseAnswer = func(string, uint32) bool { return writes.Load() == 1 }
			l.RefuseProduce = func() error {
				if writes.Add(1) >= 2 {
					return errNoLeader
				}
				return nil
			}
			p, err := cl.NewProducer(client.ProducerLinger(0))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			f, err := p.Send(ctx, []byte("once"))
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "a refused retry", func() bool { return writes.Load() >= 2 })
			time.Sleep(50 * time.Millisecond) // inside the backoff after the refused retry
			cl.Close()
			_, err = f.Wait(ctx)
			p.Close()
			if got := values(t, l, "", 0); !slices.Equal(got, []string{"once"}) {
				t.Fatalf("log holds %q", got)
			}
			if !errors.Is(err, client.ErrOutcomeUnknown) {
				t.Fatalf("record stored by the first attempt, yet its Future says %v (not ErrOutcomeUnknown)", err)
			}
		})
	}
}

// TestProducerDeliveryTimeoutWithoutLingerWhileInitFails: with ProducerLinger(0) a record
// waits in its partition's current batch until a sender takes it. While the cluster cannot be
// reached the sender keeps asking for a producer ID, and the record must still fail with
// ErrDeliveryTimeout once its delivery timeout passed, not wait for the cluster to come back.
func TestProducerDeliveryTimeoutWithoutLingerWhileInitFails(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			l := clienttest.New()
			srv, err := l.Serve(clienttest.ServeOptions{Transport: tr})
			if err != nil {
				t.Fatal(err)
			}
			cl, err := client.New(context.Background(), []string{srv.Addr()}, client.WithTransport(tr),
				client.WithBackoff(time.Millisecond, 20*time.Millisecond), client.WithMaxRetries(2))
			if err != nil {
				_ = srv.Close()
				t.Fatal(err)
			}
			defer cl.Close()
			// The cluster goes away before the producer asks for its ID.
			if err := srv.Close(); err != nil {
				t.Fatal(err)
			}
			p, err := cl.NewProducer(client.ProducerDeliveryTimeout(200*time.Millisecond), client.ProducerLinger(0))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			f, err := p.Send(context.Background(), []byte("never"))
			if err != nil {
				t.Fatal(err)
			}
			// A bound far above the delivery timeout, only so that the test ends: the record
			// must fail on its own, while the producer is open.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := f.Wait(ctx); !errors.Is(err, client.ErrDeliveryTimeout) {
				t.Fatalf("record sent while the cluster is unreachable: %v, want ErrDeliveryTimeout", err)
			}
		})
	}
}

// TestProducerForgottenAfterUnknownOutcome: a batch whose answer was lost is retried after the
// server forgot the producer (expired): it fails with ErrOutcomeUnknown (it may be stored under
// the forgotten ID), and the producer asks for a new epoch of that ID, which a server that no
// longer knows it answers with a new ID, as the cluster's state machine does. The next
// records are stored: the producer is not left failing every record.
func TestProducerForgottenAfterUnknownOutcome(t *testing.T) {
	forEachFake(t, func(t *testing.T, l *clienttest.Log, cl *client.Client) {
		var lose atomic.Bool
		lose.Store(true)
		l.LoseAnswer = func(string, uint32) bool {
			if lose.Load() {
				// The answer of this write is lost, and the producer expires before
				// its retry.
				lose.Store(false)
				l.ForgetProducers()
				return true
			}
			return false
		}
		ctx := context.Background()
		p, err := cl.NewProducer(client.ProducerLinger(0))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		f, err := p.Send(ctx, []byte("a"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Wait(ctx); !errors.Is(err, client.ErrOutcomeUnknown) {
			t.Fatalf("record a, retried after its producer was forgotten: %v, want ErrOutcomeUnknown", err)
		}
		f, err = p.Send(ctx, []byte("b"))
		if err != nil {
			t.Fatal(err)
		}
		if off, err := f.Wait(ctx); err != nil || off != 1 {
			t.Fatalf("record b: offset %d err %v, want offset 1", off, err)
		}
		if got := values(t, l, "", 0); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("log holds %q", got)
		}
	})
}
