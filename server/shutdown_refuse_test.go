package server

import (
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
	stopUnderLoad(t, 8, 100, "a produce cut off by a graceful stop (outcome unknown to them)",
		func(t *testing.T, c transport.Client, answered *atomic.Int64) error {
			for {
				_, err := c.Produce(ctxT(t, 20*time.Second), &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("v")}})
				if err != nil {
					if refusedUntaken(err) {
						return nil
					}
					return err
				}
				answered.Add(1)
			}
		})
}

// stopUnderLoad runs, on each transport, three rounds of: a server, clients clients each
// running load until it returns, a graceful stop once want calls were answered (load counts
// them in answered), and a check that no load returned an error (what says what such an
// error means, for the failure message).
func stopUnderLoad(t *testing.T, clients int, want int64, what string,
	load func(t *testing.T, c transport.Client, answered *atomic.Int64) error) {
	t.Helper()
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			for round := range 3 {
				srv := startServer(t, Config{Transport: tr})
				var (
					wg       sync.WaitGroup
					answered atomic.Int64
					mu       sync.Mutex
					bad      []string
				)
				for range clients {
					c := newClient(t, tr, srv.Addr())
					wg.Go(func() {
						if err := load(t, c, &answered); err != nil {
							mu.Lock()
							bad = append(bad, err.Error())
							mu.Unlock()
						}
					})
				}
				waitFor(t, 20*time.Second, "calls are answered", func() bool { return answered.Load() >= want })
				srv.shutdown(t)
				wg.Wait()
				if len(bad) > 0 {
					t.Fatalf("round %d: %d of %d clients had %s, e.g. %s", round, len(bad), clients, what, bad[0])
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
	return transport.NeverSent(err)
}

// TestGracefulStopAnswersStreamedProposals stops a node gracefully while ProduceStreams pipeline
// records to it. A record the node proposed before the stop is answered (its entry commits a
// moment later, or its failure says why); the stop only refuses, as not proposed, what it had
// not proposed yet. The stop's end of the streams' contexts used to cut the wait for proposals
// already in flight, and their records were answered "outcome unknown (context canceled)"
// though the entry committed.
func TestGracefulStopAnswersStreamedProposals(t *testing.T) {
	stopUnderLoad(t, 4, 5000, "a stream ended with a record's outcome unknown after a graceful stop",
		func(t *testing.T, c transport.Client, answered *atomic.Int64) error {
			ps, err := c.ProduceStream(ctxT(t, 30*time.Second))
			if err != nil {
				t.Error(err)
				return nil
			}
			defer ps.Close()
			window, done := make(chan struct{}, 256), make(chan struct{})
			var sender sync.WaitGroup
			defer sender.Wait()
			defer close(done)
			sender.Go(func() {
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
			for {
				if _, err := ps.Receive(); err != nil {
					if transport.IsOutcomeUnknown(err) {
						return err
					}
					return nil
				}
				answered.Add(1)
				<-window
			}
		})
}
