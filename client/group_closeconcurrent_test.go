package client_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// hungBeatGroups is beatGroups whose heartbeats, once hang is set, hang until the caller gives
// up (the consumer's heartbeat timeout, 10 s); commits are stored.
type hungBeatGroups struct {
	*beatGroups

	hang    atomic.Bool
	once    sync.Once
	hanging chan struct{} // closed when a heartbeat first hangs
}

func (g *hungBeatGroups) Heartbeat(ctx context.Context, req *logv1.HeartbeatRequest) (*logv1.HeartbeatResponse, error) {
	if req.GetMemberEpoch() > 0 && g.hang.Load() {
		g.once.Do(func() { close(g.hanging) })
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return g.beatGroups.Heartbeat(ctx, req)
}

func (g *hungBeatGroups) CommitOffsets(context.Context, *logv1.CommitOffsetsRequest) (*logv1.CommitOffsetsResponse, error) {
	return &logv1.CommitOffsetsResponse{}, nil
}

// TestGroupConsumerCloseEndsRecordsAtOnce: Close called from another goroutine while Records
// is iterating (under -race) ends the iteration with ErrClosed at once. Records used to end
// only once the heartbeat loop had, and a heartbeat in flight (its coordinator slow or out of
// reach) held it for up to the heartbeat's 10 s timeout, while the records already fetched were
// still yielded after Close had committed and given the partitions up.
func TestGroupConsumerCloseEndsRecordsAtOnce(t *testing.T) {
	for _, tr := range []string{"connect", "grpc"} {
		t.Run(tr, func(t *testing.T) {
			g := &hungBeatGroups{beatGroups: &beatGroups{}, hanging: make(chan struct{})}
			cl := groupsTestClient(t, tr, g)
			ctx := context.Background()
			for i := range 3 {
				if _, err := cl.Produce(ctx, []byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
			}
			gc, err := cl.NewGroupConsumer(ctx, "g", []string{"default"}, client.WithAutoCommit(0))
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan client.Record, 16)
			ended := make(chan error, 1)
			go func() {
				for rec, err := range gc.Records(ctx) {
					if err != nil {
						ended <- err
						return
					}
					got <- rec
				}
				ended <- nil
			}()
			select {
			case <-got:
			case <-time.After(10 * time.Second):
				t.Fatal("no record within 10s")
			}
			g.hang.Store(true)
			select {
			case <-g.hanging:
			case <-time.After(10 * time.Second):
				t.Fatal("no heartbeat within 10s")
			}

			closed := make(chan error, 1)
			go func() { closed <- gc.Close() }()
			select {
			case err := <-ended:
				if !errors.Is(err, client.ErrClosed) {
					t.Fatalf("Records ended with %v, want ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				// The heartbeat in flight gives up after 10 s: Records waited for it.
				t.Fatal("Records went on for 5s after Close, while a heartbeat was in flight")
			}
			select {
			case err := <-closed:
				if err != nil {
					t.Fatalf("Close: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Close did not return within 30s")
			}
		})
	}
}
