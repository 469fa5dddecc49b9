package loadgen

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/tools/latency"
)

// startReaders starts the unary and streaming readers; each returns once it has read everything
// up to the final watermark, or when ctx ends.
func (r *runner) startReaders(ctx context.Context, wg *sync.WaitGroup) {
	n := uint64(r.cfg.Consumers)
	for i := range r.cfg.Consumers {
		c, rec := r.client(r.cfg.Producers+i), r.consume.recorder()
		first := r.wm.start + uint64(i)
		wg.Go(func() { r.unaryConsumer(ctx, c, rec, first, n) })
	}
	for i := range r.cfg.StreamConsumers {
		c, rec := r.client(r.cfg.Producers+r.cfg.Consumers+i), r.stream.recorder()
		wg.Go(func() { r.streamConsumer(ctx, c, rec) })
	}
}

// unaryConsumer reads offsets first, first+step, … with Consume, waiting for producers when it
// has caught up with them.
func (r *runner) unaryConsumer(ctx context.Context, c *client.Client, rec *latency.Recorder, first, step uint64) {
	off := first
	defer func() {
		if high, _, _ := r.wm.state(); off < high {
			r.consume.unread.Add((high - off + step - 1) / step)
		}
	}()
	for {
		high, final, changed := r.wm.state()
		if off >= high {
			if final {
				return
			}
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return
			}
		}
		t0 := time.Now()
		got, err := c.Consume(ctx, off)
		t1 := time.Now()
		if err != nil {
			if r.fail(ctx, r.consume, 1, err) {
				return
			}
			r.pause(ctx, nil)
			continue
		}
		measured := !t0.Before(r.measure)
		r.check(r.consume, got.Value)
		if measured {
			rec.Record(t1.Sub(t0))
		}
		r.consume.done(1, len(got.Value), t1, measured)
		off += step
	}
}

// Causes with which a stream reader ends one Client.Stream.
var (
	// errCaughtUp: the reader has read everything up to the final watermark.
	errCaughtUp = errors.New("loadgen: stream reader caught up")
	// errReadStalled: records were known to exist but none arrived within the stall timeout.
	errReadStalled = errors.New("loadgen: read stream stalled: no record within the stall timeout")
)

// streamConsumer reads every record from the watermark's start through Client.Stream, reopening
// the stream where it broke or stalled, until it has read up to the final watermark or ctx ends.
func (r *runner) streamConsumer(ctx context.Context, c *client.Client, rec *latency.Recorder) {
	var next atomic.Uint64 // next offset to read
	next.Store(r.wm.start)
	defer func() {
		if high, _, _ := r.wm.state(); next.Load() < high {
			r.stream.unread.Add(high - next.Load())
		}
	}()
	for ctx.Err() == nil && !r.caughtUp(next.Load()) {
		done, err := r.streamOnce(ctx, c, rec, &next)
		if done {
			return
		}
		if err != nil && r.fail(ctx, r.stream, 1, err) {
			return
		}
		r.pause(ctx, nil)
	}
}

// caughtUp reports whether a reader whose next offset is n has read everything it will read.
func (r *runner) caughtUp(n uint64) bool {
	high, final, _ := r.wm.state()
	return final && n >= high
}

// streamOnce reads one Client.Stream from *next on. It returns done once the reader has caught
// up with the final watermark; otherwise the error that ended the stream (ctx's when ctx ended,
// errReadStalled after a stall).
func (r *runner) streamOnce(ctx context.Context, c *client.Client, rec *latency.Recorder, next *atomic.Uint64) (done bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	var lastProgress atomic.Int64 // unix ns of the last record, or of the last check while caught up
	lastProgress.Store(time.Now().UnixNano())
	// The watcher ends the stream when it will yield nothing more: the producers are done and
	// the reader is caught up (a tailing stream would otherwise wait forever), or it stalled.
	watcher := make(chan struct{})
	go func() {
		defer close(watcher)
		t := time.NewTicker(max(r.cfg.StallTimeout/4, time.Millisecond))
		defer t.Stop()
		isFinal := r.wm.isFinal
		for {
			select {
			case <-ctx.Done():
				return
			case <-isFinal:
				isFinal = nil
				if r.caughtUp(next.Load()) {
					cancel(errCaughtUp)
					return
				}
			case now := <-t.C:
				if high, _, _ := r.wm.state(); next.Load() >= high {
					lastProgress.Store(now.UnixNano()) // nothing to read yet: not a stall
				} else if now.Sub(time.Unix(0, lastProgress.Load())) > r.cfg.StallTimeout {
					cancel(errReadStalled)
					return
				}
			}
		}
	}()
	defer func() {
		cancel(nil)
		<-watcher
	}()

	var streamErr error
	for got, err := range c.Stream(ctx, next.Load()) {
		if err != nil {
			streamErr = err
			break
		}
		now := time.Now()
		measured := !now.Before(r.measure)
		if vd, sent := r.check(r.stream, got.Value); vd == valueOK && measured {
			rec.Record(now.Sub(sent))
		}
		r.stream.done(1, len(got.Value), now, measured)
		next.Store(got.Offset + 1)
		lastProgress.Store(now.UnixNano())
		if r.caughtUp(got.Offset + 1) {
			return true, nil
		}
	}
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errCaughtUp):
		return true, nil
	case errors.Is(cause, errReadStalled):
		return false, errReadStalled
	}
	return false, streamErr
}
