package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/tools/latency"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// errNoLeader is the failure recorded when the client knows no leader to open a stream to.
var errNoLeader = errors.New("loadgen: no leader known")

// errStalled is the failure recorded when a ProduceStream left records unanswered for longer
// than Config.StallTimeout; the stream is then abandoned and reopened.
var errStalled = errors.New("loadgen: produce stream stalled: no answer within the stall timeout")

// errStrayResponse is the failure recorded when a ProduceStream answers more than was sent.
var errStrayResponse = errors.New("loadgen: produce stream answered a request it was not sent")

// streamProducer pipelines records on a ProduceStream to the leader, keeping up to cfg.Window
// unanswered. The SDK has no streaming produce, so this goes to the transport directly, at the
// leader the SDK found; its unanswered records count as failed. A broken stream is reopened at
// the leader the cluster names then (the SDK's cached leader may be the server that just
// stopped: nothing else refreshes it in this mode), after a pause that grows, up to
// maxReopenPause, while reopened streams fail without an answer.
func (r *runner) streamProducer(c *client.Client, rec *latency.Recorder) {
	failures := 0 // streams failed in a row without an answer
	for !r.stopped() {
		n, answered, err := r.produceOnStream(c, rec, failures > 0)
		if answered {
			failures = 0
		}
		if err == nil {
			continue
		}
		if r.fail(r.runCtx, r.produce, max(n, 1), err) {
			return
		}
		r.pauseFor(r.runCtx, r.stop, reopenPause(failures))
		failures++
	}
}

// maxReopenPause bounds the pause before a produce stream is reopened.
const maxReopenPause = 500 * time.Millisecond

// reopenPause is the pause after the failures-th stream in a row (0-based) failed without an
// answer: errorPause, doubled at each failure, at most maxReopenPause.
func reopenPause(failures int) time.Duration {
	return min(errorPause<<min(failures, 10), maxReopenPause)
}

// sentRecord is a record sent on a stream and not yet answered.
type sentRecord struct {
	at       time.Time
	measured bool
	size     int
}

// produceOnStream runs one ProduceStream until the measured phase ends or the stream breaks. It
// returns the number of records left unanswered, whether the server answered any, and the error
// that broke the stream (nil after a clean end). With refresh it asks the cluster for its leader
// first instead of trusting the SDK's cached one.
func (r *runner) produceOnStream(c *client.Client, rec *latency.Recorder, refresh bool) (unanswered uint64, answered bool, err error) {
	tc, err := r.dialLeader(c, refresh)
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = tc.Close() }() // nothing to report: the stream's own status is returned
	ctx, cancel := context.WithCancelCause(r.runCtx)
	defer cancel(nil)
	stream, err := tc.ProduceStream(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("loadgen: open produce stream: %w", err)
	}
	defer func() { _ = stream.Close() }()

	inflight := make(chan sentRecord, r.cfg.Window)
	var lastAck atomic.Int64 // unix ns of the last answer, or of a send when none was outstanding
	lastAck.Store(time.Now().UnixNano())
	var acked atomic.Bool
	recvDone := make(chan error, 1)
	go func() { recvDone <- r.receiveAcks(stream, inflight, rec, &lastAck, &acked) }()
	// The watchdog abandons a stream whose server stopped answering: the stream has no per-request
	// deadline, so without it a hung server would hold this producer forever.
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		t := time.NewTicker(max(r.cfg.StallTimeout/4, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				if len(inflight) > 0 && now.Sub(time.Unix(0, lastAck.Load())) > r.cfg.StallTimeout {
					cancel(errStalled)
					return
				}
			}
		}
	}()
	defer func() {
		cancel(nil)
		<-watchDone
	}()

	var recvErr error
	received := false
	var unsent uint64 // a record taken from the budget but never sent: it failed too
send:
	for {
		t0 := time.Now()
		measured, ok := r.take(t0)
		if !ok {
			break
		}
		v := r.payload.value(t0)
		if len(inflight) == 0 {
			lastAck.Store(t0.UnixNano()) // nothing outstanding: the stall clock starts now
		}
		select {
		case inflight <- sentRecord{at: t0, measured: measured, size: len(v)}:
		case recvErr = <-recvDone:
			received = true
			unsent = 1
			break send
		}
		if err := stream.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: v}}); err != nil {
			break // the stream's status comes from Receive
		}
	}
	_ = stream.CloseSend() // an error here means the stream broke; Receive reports why
	if !received {
		recvErr = <-recvDone
	}
	if recvErr != nil {
		if errors.Is(context.Cause(ctx), errStalled) {
			recvErr = errStalled
		}
		return uint64(len(inflight)) + unsent, acked.Load(), recvErr
	}
	if n := len(inflight); n > 0 {
		return uint64(n), acked.Load(), fmt.Errorf("loadgen: produce stream ended with %d records unanswered", n)
	}
	return 0, acked.Load(), nil
}

// receiveAcks reads the stream's responses, each answering the oldest unanswered record, until
// the stream ends, setting acked at the first; it returns nil when the server ended it cleanly.
func (r *runner) receiveAcks(stream transport.BidiClientStream[logv1.ProduceRequest, logv1.ProduceResponse], inflight chan sentRecord, rec *latency.Recorder, lastAck *atomic.Int64, acked *atomic.Bool) error {
	for {
		resp, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("loadgen: produce stream: %w", err)
		}
		t1 := time.Now()
		lastAck.Store(t1.UnixNano())
		var s sentRecord
		select {
		case s = <-inflight:
		default:
			return errStrayResponse
		}
		acked.Store(true)
		r.wm.ack(resp.GetOffset(), 1)
		if s.measured {
			rec.Record(t1.Sub(s.at))
		}
		r.produce.done(1, s.size, t1, s.measured)
	}
}

// dialLeader opens a transport client to the leader the SDK client knows, asking the cluster
// (Servers, which also updates the SDK's view) when it knows none or refresh is set.
func (r *runner) dialLeader(c *client.Client, refresh bool) (transport.Client, error) {
	addr := ""
	if !refresh {
		addr = c.Leader()
	}
	if addr == "" {
		servers, err := c.Servers(r.runCtx)
		if err != nil {
			return nil, fmt.Errorf("loadgen: find leader: %w", err)
		}
		for _, s := range servers {
			if s.IsLeader {
				addr = s.Addr
			}
		}
		if addr == "" {
			return nil, errNoLeader
		}
	}
	tc, err := client.NewTransportClient(r.cfg.Transport)(addr, transport.ClientConfig{TLS: r.cfg.TLS})
	if err != nil {
		return nil, fmt.Errorf("loadgen: dial leader %s: %w", addr, err)
	}
	return tc, nil
}
