package loadgen

import (
	"fmt"
	"sync"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/tools/latency"
)

// runProducers runs cfg.Producers producing goroutines in cfg.Mode until the measured phase
// ends (or the run is cancelled) and returns once every record they started has completed.
func (r *runner) runProducers() error {
	if r.cfg.Target == TargetNATS {
		r.runNATSProducers()
		return nil
	}
	var wg sync.WaitGroup
	switch r.cfg.Mode {
	case ModeUnary:
		for i := range r.cfg.Producers {
			c, rec := r.client(i), r.produce.recorder()
			wg.Go(func() { r.unaryProducer(c, rec) })
		}
		wg.Wait()
	case ModeBatch:
		ps, err := r.newProducers()
		if err != nil {
			return err
		}
		for i := range r.cfg.Producers {
			p, rec := ps[i%len(ps)], r.produce.recorder()
			wg.Go(func() { r.batchProducer(p, rec) })
		}
		wg.Wait()
		// Close sends what is still queued and waits for every callback.
		for _, p := range ps {
			_ = p.Close() // always nil; records' errors went to their callbacks
		}
	case ModeStream:
		for i := range r.cfg.Producers {
			c, rec := r.client(i), r.produce.recorder()
			wg.Go(func() { r.streamProducer(c, rec) })
		}
		wg.Wait()
	}
	return nil
}

// unaryProducer produces one record per request, one request at a time.
func (r *runner) unaryProducer(c *client.Client, rec *latency.Recorder) {
	for {
		t0 := time.Now()
		measured, ok := r.take(t0)
		if !ok {
			return
		}
		v := r.payload.value(t0)
		off, err := c.Produce(r.runCtx, v)
		t1 := time.Now()
		if err != nil {
			if r.fail(r.runCtx, r.produce, 1, err) {
				return
			}
			r.pause(r.runCtx, r.stop)
			continue
		}
		r.wm.ack(off, 1)
		if measured {
			rec.Record(t1.Sub(t0))
		}
		r.produce.done(1, len(v), t1, measured)
	}
}

// newProducers creates one batching client.Producer per client.
func (r *runner) newProducers() ([]*client.Producer, error) {
	var opts []client.ProducerOption
	if r.cfg.BatchRecords > 0 {
		opts = append(opts, client.ProducerBatchRecords(r.cfg.BatchRecords))
	}
	if r.cfg.BatchBytes > 0 {
		opts = append(opts, client.ProducerBatchBytes(r.cfg.BatchBytes))
	}
	if r.cfg.Linger > 0 {
		opts = append(opts, client.ProducerLinger(r.cfg.Linger))
	}
	if r.cfg.MaxInFlight > 0 {
		opts = append(opts, client.ProducerMaxInFlight(r.cfg.MaxInFlight))
	}
	opts = append(opts, client.ProducerIdempotence(r.cfg.Idempotent))
	// Each producer goroutine bounds its own records with the window; the Producer's own bound
	// only has to be large enough not to interfere.
	perClient := (r.cfg.Producers + len(r.clients) - 1) / len(r.clients)
	opts = append(opts, client.ProducerMaxPending(max(perClient*r.cfg.Window, 1)))
	var ps []*client.Producer
	for i, c := range r.clients {
		p, err := c.NewProducer(opts...)
		if err != nil {
			for _, p := range ps {
				_ = p.Close()
			}
			return nil, fmt.Errorf("loadgen: producer for client %d: %w", i, err)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// batchProducer hands records to the shared batching Producer, keeping up to cfg.Window of its
// own outstanding. It returns when the measured phase ends; the Producer's Close waits for the
// records still outstanding.
func (r *runner) batchProducer(p *client.Producer, rec *latency.Recorder) {
	window := make(chan struct{}, r.cfg.Window)
	for {
		select {
		case window <- struct{}{}:
		case <-r.stop:
			return
		case <-r.runCtx.Done():
			return
		}
		t0 := time.Now()
		measured, ok := r.take(t0)
		if !ok {
			return
		}
		v := r.payload.value(t0)
		err := p.SendFunc(r.runCtx, v, func(off uint64, err error) {
			t1 := time.Now()
			<-window
			if err != nil {
				r.fail(r.runCtx, r.produce, 1, err)
				return
			}
			r.wm.ack(off, 1)
			if measured {
				rec.Record(t1.Sub(t0))
			}
			r.produce.done(1, len(v), t1, measured)
		})
		if err != nil {
			<-window
			if r.fail(r.runCtx, r.produce, 1, err) {
				return
			}
			r.pause(r.runCtx, r.stop)
		}
	}
}
