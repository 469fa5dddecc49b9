package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// recreate deletes topic and creates it again (one partition) through cl.
func recreate(ctx context.Context, t *testing.T, cl *client.Client, topic string) {
	t.Helper()
	if err := cl.DeleteTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateTopic(ctx, topic, 1, client.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
}

// sendWait sends value to topic/0 through p, flushes, and returns the record's result.
func sendWait(ctx context.Context, t *testing.T, p *client.Producer, topic, value string) (uint64, error) {
	t.Helper()
	f, err := p.SendRecord(ctx, client.Record{Topic: topic, Value: []byte(value)})
	if err != nil {
		t.Fatalf("SendRecord %s: %v", value, err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return f.Wait(ctx)
}

// TestProducerNeverWritesToRecreatedTopic: an idempotent SDK Producer pins the ID each topic had
// when it first learnt it; after the topic is deleted and created again under its name, every
// record sent to it, including one accepted before the re-creation and sent after, fails with
// ErrUnknownTopic and nothing lands in the new topic. The Producer used to send by name only: a
// record accepted (and numbered 0) before the re-creation was stored in the new topic and
// acknowledged; with records acknowledged before, the next batch failed with
// ErrOutOfOrderSequence and the ones after it, under a new epoch, went to the new topic. With
// ProducerManualPartitioning (Send describes no topic) the ID is learnt before the first batch.
func TestProducerNeverWritesToRecreatedTopic(t *testing.T) {
	srv := startServer(t, Config{})
	ctx := ctxT(t, 60*time.Second)
	cl, err := client.New(ctx, []string{srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, c := range []struct {
		name string
		opts []client.ProducerOption
		// acked: a record is acknowledged in the first topic before it is deleted.
		acked bool
	}{
		{"accepted-before", []client.ProducerOption{client.ProducerLinger(time.Hour)}, false},
		{"acked-before", nil, true},
		{"manual-acked-before", []client.ProducerOption{client.ProducerManualPartitioning()}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			topic := "t-" + c.name
			if _, err := cl.CreateTopic(ctx, topic, 1, client.TopicConfig{}); err != nil {
				t.Fatal(err)
			}
			p, err := cl.NewProducer(append(c.opts, client.ProducerDeliveryTimeout(20*time.Second))...)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			var pending *client.Future
			if c.acked {
				if off, err := sendWait(ctx, t, p, topic, "old"); err != nil || off != 0 {
					t.Fatalf("record to the first topic: %d, %v", off, err)
				}
			} else if pending, err = p.SendRecord(ctx, client.Record{Topic: topic, Value: []byte("old")}); err != nil {
				t.Fatal(err)
			}
			recreate(ctx, t, cl, topic)
			if pending != nil {
				if err := p.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				if off, err := pending.Wait(ctx); !errors.Is(err, client.ErrUnknownTopic) {
					t.Errorf("record accepted before the re-creation: %d, %v; want ErrUnknownTopic", off, err)
				}
			}
			for _, v := range []string{"after-1", "after-2"} {
				if off, err := sendWait(ctx, t, p, topic, v); !errors.Is(err, client.ErrUnknownTopic) {
					t.Errorf("record %s after the re-creation: %d, %v; want ErrUnknownTopic", v, off, err)
				}
			}
			b, err := cl.PartitionBounds(ctx, topic, 0)
			if err != nil || b.Next != 0 {
				t.Errorf("the new topic's bounds: %+v, %v; want it empty", b, err)
			}
			// A new Producer writes to the new topic.
			q, err := cl.NewProducer(c.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			if off, err := sendWait(ctx, t, q, topic, "new"); err != nil || off != 0 {
				t.Errorf("a new producer's record to the new topic: %d, %v", off, err)
			}
		})
	}
}
