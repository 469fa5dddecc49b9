package server

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestGracefulStopLeavesNoWriteUnknown stops a node gracefully while clients send it produces
// back to back, as the SDK does to a leader or a forwarding follower that an operator stops
// (SIGTERM). Every produce must either be answered or fail in a way that proves it was not
// taken (the connection refused, a NotProposed or NotLeader detail): a produce written on a
// connection that the node then drops unread (reset, EOF) can only be reported as "outcome
// unknown". The API's HTTP/2 GOAWAY makes clients resend the calls it did not take on a new
// connection; while Raft still needs the shared port, such a connection used to be accepted,
// sorted to the stopped API and closed with the request unread.
func TestGracefulStopLeavesNoWriteUnknown(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			for round := range 3 {
				srv := startServer(t, Config{Transport: tr})
				var (
					wg     sync.WaitGroup
					ok     atomic.Int64
					mu     sync.Mutex
					cutOff []string
				)
				for range 8 {
					c := newClient(t, tr, srv.Addr())
					wg.Go(func() {
						for {
							ctx := ctxT(t, 20*time.Second)
							_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("v")}})
							if err == nil {
								ok.Add(1)
								continue
							}
							if !refusedUntaken(err) {
								mu.Lock()
								cutOff = append(cutOff, err.Error())
								mu.Unlock()
							}
							return
						}
					})
				}
				waitFor(t, 20*time.Second, "produces are answered", func() bool { return ok.Load() >= 100 })
				srv.shutdown(t)
				wg.Wait()
				if len(cutOff) > 0 {
					t.Fatalf("round %d: %d of 8 clients had a produce cut off by a graceful stop (outcome unknown to them), e.g. %s",
						round, len(cutOff), cutOff[0])
				}
			}
		})
	}
}

// refusedUntaken reports whether err proves that the server did not take the write.
func refusedUntaken(err error) bool {
	if transport.IsNotProposed(err) {
		return true
	}
	if _, ok := transport.NotLeaderDetail(err); ok {
		return true
	}
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "connection refused") || strings.Contains(m, "while dialing")
}

// TestGracefulStopAnswersStreamedProposals stops a node gracefully while ProduceStreams pipeline
// records to it. A record the node proposed before the stop is answered (its entry commits a
// moment later, or its failure says why); the stop only refuses, as not proposed, what it had
// not proposed yet. The stop's end of the streams' contexts used to cut the wait for proposals
// already in flight, and their records were answered "outcome unknown (context canceled)"
// though the entry committed.
func TestGracefulStopAnswersStreamedProposals(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			for round := range 3 {
				srv := startServer(t, Config{Transport: tr})
				var (
					wg       sync.WaitGroup
					answered atomic.Int64
					mu       sync.Mutex
					unknown  []string
				)
				for range 4 {
					c := newClient(t, tr, srv.Addr())
					ps, err := c.ProduceStream(ctxT(t, 30*time.Second))
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { ps.Close() })
					window, done := make(chan struct{}, 256), make(chan struct{})
					wg.Go(func() {
						for {
							select {
							case window <- struct{}{}:
							case <-done:
								return
							}
							if err := ps.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("v")}}); err != nil {
								return
							}
						}
					})
					wg.Go(func() {
						defer close(done)
						for {
							if _, err := ps.Receive(); err != nil {
								if transport.IsOutcomeUnknown(err) {
									mu.Lock()
									unknown = append(unknown, err.Error())
									mu.Unlock()
								}
								return
							}
							answered.Add(1)
							<-window
						}
					})
				}
				waitFor(t, 20*time.Second, "streamed produces are answered", func() bool { return answered.Load() >= 5000 })
				srv.shutdown(t)
				wg.Wait()
				if len(unknown) > 0 {
					t.Fatalf("round %d: %d of 4 streams ended with a record's outcome unknown after a graceful stop, e.g. %s",
						round, len(unknown), unknown[0])
				}
			}
		})
	}
}
