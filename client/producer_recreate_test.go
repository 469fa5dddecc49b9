package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestProducerRetryAfterTopicRecreatedFailsUnknown: a batch whose answer was lost, and whose
// topic was deleted and created again under its name before the retry, is not resent into the
// new topic: the retry names the first topic's ID and the record fails with ErrUnknownTopic
// wrapped with ErrOutcomeUnknown (it may be stored, in the deleted topic). The retry, by name
// only, was stored in the new topic and the record acknowledged there.
func TestProducerRetryAfterTopicRecreatedFailsUnknown(t *testing.T) {
	forEachFake(t, func(t *testing.T, l *clienttest.Log, cl *client.Client) {
		ctx := context.Background()
		if _, err := cl.CreateTopic(ctx, "t", 1, client.TopicConfig{}); err != nil {
			t.Fatal(err)
		}
		var lost atomic.Bool
		l.LoseAnswer = func(topic string, _ uint32) bool {
			if topic != "t" || lost.Swap(true) {
				return false
			}
			// The answer to the first batch is lost, and the topic changes before the retry.
			if _, err := l.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "t"}); err != nil {
				t.Error(err)
			}
			if _, err := l.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "t", Partitions: 1}); err != nil {
				t.Error(err)
			}
			return true
		}
		p, err := cl.NewProducer()
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		f, err := p.SendRecord(ctx, client.Record{Topic: "t", Value: []byte("old")})
		if err != nil {
			t.Fatal(err)
		}
		off, err := f.Wait(ctx)
		if !errors.Is(err, client.ErrUnknownTopic) || !errors.Is(err, client.ErrOutcomeUnknown) {
			t.Errorf("record whose retry followed the re-creation: %d, %v; want ErrUnknownTopic and ErrOutcomeUnknown", off, err)
		}
		if got := values(t, l, "t", 0); len(got) != 0 {
			t.Errorf("the new topic holds %q", got)
		}
	})
}

// TestProducerManualUnpinnableTopicAskedOnce: a manually partitioning Producer that may not
// describe its topic (PermissionDenied) sends its batches by name, as before topic IDs, and asks
// once, not before every batch.
func TestProducerManualUnpinnableTopicAskedOnce(t *testing.T) {
	forEachFake(t, func(t *testing.T, l *clienttest.Log, cl *client.Client) {
		ctx := context.Background()
		if _, err := cl.CreateTopic(ctx, "t", 1, client.TopicConfig{}); err != nil {
			t.Fatal(err)
		}
		l.RefuseDescribeTopic = func(string) error {
			return transport.Errorf(transport.PermissionDenied, "clienttest: no consume on t")
		}
		p, err := cl.NewProducer(client.ProducerManualPartitioning())
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		for i := range 3 {
			f, err := p.SendRecord(ctx, client.Record{Topic: "t", Value: []byte("v")})
			if err != nil {
				t.Fatal(err)
			}
			if off, err := f.Wait(ctx); err != nil || off != uint64(i) {
				t.Fatalf("record %d: %d, %v", i, off, err)
			}
		}
		if n := l.Calls("DescribeTopic"); n != 1 {
			t.Errorf("DescribeTopic calls: %d, want 1", n)
		}
	})
}

// TestProducerServerWithoutTopicIDsAskedOnce: a Producer whose server predates topic IDs (its
// topics are described without one) sends its batches by name and describes each topic once
// (and every 30 s for its partition count), not before every batch.
func TestProducerServerWithoutTopicIDsAskedOnce(t *testing.T) {
	for _, manual := range []bool{false, true} {
		t.Run(fmt.Sprintf("manual=%v", manual), func(t *testing.T) {
			forEachFake(t, func(t *testing.T, l *clienttest.Log, cl *client.Client) {
				ctx := context.Background()
				l.NoTopicIDs = true
				if _, err := cl.CreateTopic(ctx, "t", 1, client.TopicConfig{}); err != nil {
					t.Fatal(err)
				}
				var opts []client.ProducerOption
				if manual {
					opts = append(opts, client.ProducerManualPartitioning())
				}
				p, err := cl.NewProducer(opts...)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				for i := range 3 {
					f, err := p.SendRecord(ctx, client.Record{Topic: "t", Value: []byte("v")})
					if err != nil {
						t.Fatal(err)
					}
					if off, err := f.Wait(ctx); err != nil || off != uint64(i) {
						t.Fatalf("record %d: %d, %v", i, off, err)
					}
				}
				if n := l.Calls("DescribeTopic"); n != 1 {
					t.Errorf("DescribeTopic calls: %d, want 1", n)
				}
			})
		})
	}
}
