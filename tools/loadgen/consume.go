package loadgen

import (
	"context"
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
			r.pause(ctx)
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

// streamConsumer reads every record from the watermark's start through Client.Stream, reopening
// the stream where it broke, until it has read up to the final watermark or ctx ends.
func (r *runner) streamConsumer(ctx context.Context, c *client.Client, rec *latency.Recorder) {
	ctx, cancel := context.WithCancel(ctx)
	var next atomic.Uint64 // next offset to read
	next.Store(r.wm.start)
	// A stream that has read everything blocks waiting for more: once the producers are done,
	// end it if it is already caught up (otherwise the loop below ends it on the last record).
	watcher := make(chan struct{})
	go func() {
		defer close(watcher)
		select {
		case <-r.wm.isFinal:
			if high, _, _ := r.wm.state(); next.Load() >= high {
				cancel()
			}
		case <-ctx.Done():
		}
	}()
	defer func() {
		cancel()
		<-watcher
		if high, _, _ := r.wm.state(); next.Load() < high {
			r.stream.unread.Add(high - next.Load())
		}
	}()

	caughtUp := func(n uint64) bool {
		high, final, _ := r.wm.state()
		return final && n >= high
	}
	for ctx.Err() == nil && !caughtUp(next.Load()) {
		for got, err := range c.Stream(ctx, next.Load()) {
			if err != nil {
				if r.fail(ctx, r.stream, 1, err) {
					return
				}
				break
			}
			now := time.Now()
			measured := !now.Before(r.measure)
			if vd, sent := r.check(r.stream, got.Value); vd == valueOK && measured {
				rec.Record(now.Sub(sent))
			}
			r.stream.done(1, len(got.Value), now, measured)
			next.Store(got.Offset + 1)
			if caughtUp(got.Offset + 1) {
				return
			}
		}
		r.pause(ctx)
	}
}
