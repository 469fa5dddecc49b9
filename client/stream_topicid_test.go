package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestStreamPartitionPinsTopicIDAfterDescribeTopicFailed: a StreamPartition whose first
// DescribeTopic failed transiently (Unavailable) still learns its topic's ID before its first
// record, so that a topic deleted and created again under its name while the stream
// reconnects ends the stream with ErrUnknownTopic. The stream read on without the ID, never
// asked again, and after a reconnection went on in the new topic at the old one's offset.
func TestStreamPartitionPinsTopicIDAfterDescribeTopicFailed(t *testing.T) {
	for _, tr := range []string{"connect", "grpc"} {
		t.Run(tr, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			l := clienttest.New()
			var describes atomic.Int32
			l.RefuseDescribeTopic = func(string) error {
				if describes.Add(1) == 1 {
					return transport.Errorf(transport.Unavailable, "clienttest: cannot tell now")
				}
				return nil
			}
			srv, err := l.Serve(clienttest.ServeOptions{Transport: tr})
			if err != nil {
				t.Fatal(err)
			}
			addr := srv.Addr()
			defer func() { _ = srv.Close() }()
			cl, err := client.New(ctx, []string{addr}, client.WithTransport(tr), client.WithBackoff(10*time.Millisecond, 100*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if _, err := cl.CreateTopic(ctx, "t", 1, client.TopicConfig{}); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if _, err := cl.ProduceRecords(ctx, "t", 0, client.Record{Value: fmt.Appendf(nil, "old-%d", i)}); err != nil {
					t.Fatal(err)
				}
			}
			got := make(chan string, 16)
			gate := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				for rec, err := range cl.StreamPartition(ctx, "t", 0, 0) {
					if err != nil {
						done <- err
						return
					}
					got <- fmt.Sprintf("%d:%s", rec.Offset, rec.Value)
					if rec.Offset == 2 {
						<-gate // not read while its server restarts and the topic changes
					}
				}
				done <- nil
			}()
			for i := range 3 {
				select {
				case s := <-got:
					if s != fmt.Sprintf("%d:old-%d", i, i) {
						t.Fatalf("record %d: %s", i, s)
					}
				case err := <-done:
					t.Fatalf("the stream ended before record %d: %v", i, err)
				}
			}
			if n := describes.Load(); n < 2 {
				t.Errorf("DescribeTopic asked %d times before the first record, want again after the refusal", n)
			}
			// The stream breaks (its server stops); meanwhile the topic is deleted and
			// created again, and the server comes back on the same address.
			_ = srv.Close()
			if _, err := l.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "t"}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "t", Partitions: 1}); err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if _, err := l.Produce(ctx, &logv1.ProduceRequest{Topic: "t", Record: &logv1.Record{Value: fmt.Appendf(nil, "new-%d", i)}}); err != nil {
					t.Fatal(err)
				}
			}
			srv2, err := l.Serve(clienttest.ServeOptions{Transport: tr, Addr: addr})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = srv2.Close() }()
			close(gate)
			select {
			case s := <-got:
				t.Fatalf("the stream of the deleted topic went on in the new one: %s", s)
			case err := <-done:
				if !errors.Is(err, client.ErrUnknownTopic) {
					t.Fatalf("the stream ended with %v, want ErrUnknownTopic", err)
				}
			case <-ctx.Done():
				t.Fatal("the stream neither ended nor yielded")
			}
		})
	}
}
