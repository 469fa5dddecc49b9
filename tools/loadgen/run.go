package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/tools/latency"
)

// errorPause is how long a worker waits after a failed request before the next one, so that a
// cluster that refuses everything is not hammered in a tight loop. The client has already
// retried what was safe to retry.
const errorPause = 20 * time.Millisecond

// Run connects to the cluster described by cfg, runs the load it describes and returns what was
// measured. Progress lines go to out every cfg.ProgressInterval (nil out: none).
//
// The run has three phases: Warmup (load runs, nothing is counted), the measured phase (ends
// after Duration or once Records records were attempted), and a drain in which readers catch up
// with what producers wrote, bounded by DrainTimeout. Every worker stops by itself at the end of
// its phase. When ctx ends, Run stops every worker, waits for them, and returns what was
// measured so far with Result.Interrupted set and a nil error.
//
// Run fails with an error wrapping ErrInvalidConfig for a bad cfg, with the client's error if it
// cannot connect or read the log's bounds, and with ErrTooManyErrors (and the partial Result)
// once more than cfg.MaxErrors requests failed. Run is safe to call concurrently; every
// goroutine it starts has returned when it returns.
func Run(ctx context.Context, cfg Config, out io.Writer) (Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return Result{}, err
	}
	if out == nil {
		out = io.Discard
	}
	res := Result{
		Target:          cfg.Target,
		Transport:       cfg.Transport,
		Mode:            cfg.Mode,
		Clients:         cfg.Clients,
		Producers:       cfg.Producers,
		Consumers:       cfg.Consumers,
		StreamConsumers: cfg.StreamConsumers,
		RecordSize:      cfg.RecordSize,
		Warmup:          cfg.Warmup,
	}
	if cfg.readOnly() {
		// A read-only run reads a fixed range once: a warmup would read its start uncounted
		// (a short range entirely: "0 records in 0s"), so it has none.
		cfg.Warmup = 0
		res.Warmup = 0
	}
	if cfg.Mode != ModeUnary {
		res.Window = cfg.Window
	}

	r := &runner{
		cfg:     cfg,
		payload: newPayload(cfg.RecordSize),
		produce: newKind("produce"),
		consume: newKind("consume"),
		stream:  newKind("stream"),
		stop:    make(chan struct{}),
	}
	r.budget.Store(int64(min(cfg.Records, 1<<62)))
	var cancelRun context.CancelCauseFunc
	r.runCtx, cancelRun = context.WithCancelCause(ctx)
	defer cancelRun(nil)
	r.cancelRun = cancelRun

	if cfg.Target == TargetNATS {
		if err := r.dialNATS(ctx); err != nil {
			return res, err
		}
		defer r.closeNATS()
	} else {
		if err := r.dial(ctx); err != nil {
			return res, err
		}
		defer r.closeClients()
	}
	if err := r.initWatermark(ctx); err != nil {
		return res, err
	}

	var cpu0 time.Duration
	if len(cfg.ServerPIDs) > 0 {
		var err error
		if cpu0, err = totalCPU(cfg.ServerPIDs); err != nil {
			return res, err
		}
	}
	r.begin = time.Now()
	r.measure = r.begin.Add(cfg.Warmup)
	if cfg.Duration > 0 {
		t := time.AfterFunc(time.Until(r.measure.Add(cfg.Duration)), r.endPhase)
		defer t.Stop()
	}

	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	if cfg.ProgressInterval > 0 {
		progressWG.Go(func() { r.reportProgress(out, progressDone) })
	}

	readCtx, cancelRead := context.WithCancel(r.runCtx)
	defer cancelRead()
	var readers sync.WaitGroup
	r.startReaders(readCtx, &readers)

	if cfg.readOnly() {
		// Readers stop at the end of the measured phase or once they have read the range.
		stopWatch := make(chan struct{})
		var watcher sync.WaitGroup
		watcher.Go(func() {
			select {
			case <-r.stop:
				cancelRead()
			case <-stopWatch:
			}
		})
		readers.Wait()
		close(stopWatch)
		watcher.Wait()
	} else {
		if err := r.runProducers(); err != nil {
			r.endPhase()
			cancelRead()
			readers.Wait()
			close(progressDone)
			progressWG.Wait()
			return res, err
		}
		// Producers are done: high is final; readers drain up to DrainTimeout.
		r.wm.finish()
		t := time.AfterFunc(cfg.DrainTimeout, cancelRead)
		readers.Wait()
		t.Stop()
	}
	r.endPhase()
	close(progressDone)
	progressWG.Wait()

	if cfg.Producers > 0 {
		res.Produce = r.produce.stats(r.measure)
	}
	if len(cfg.ServerPIDs) > 0 {
		if cpu1, err := totalCPU(cfg.ServerPIDs); err == nil {
			c := &ServerCPU{PIDs: cfg.ServerPIDs, CPU: cpu1 - cpu0}
			if res.Produce != nil && res.Produce.AllPhases > 0 {
				c.PerRecordMicros = float64(c.CPU.Microseconds()) / float64(res.Produce.AllPhases)
			}
			res.ServerCPU = c
		}
	}
	if cfg.Consumers > 0 {
		res.Consume = r.consume.stats(r.measure)
	}
	if cfg.StreamConsumers > 0 {
		res.Stream = r.stream.stats(r.measure)
	}
	if cause := context.Cause(r.runCtx); errors.Is(cause, ErrTooManyErrors) {
		return res, cause
	}
	res.Interrupted = ctx.Err() != nil
	return res, nil
}

// runner is the state of one Run.
type runner struct {
	cfg       Config
	payload   *payload
	clients   []*client.Client
	nats      *natsTarget // TargetNATS only
	begin     time.Time   // start of the warmup
	measure   time.Time   // start of the measured phase
	wm        *watermark
	produce   *kind
	consume   *kind
	stream    *kind
	runCtx    context.Context // ends on the caller's cancel or too many errors
	cancelRun context.CancelCauseFunc
	stop      chan struct{} // closed at the end of the measured phase
	stopOnce  sync.Once
	budget    atomic.Int64  // measured records still to attempt, when cfg.Records > 0
	errors    atomic.Uint64 // failures of every kind
}

func (r *runner) dial(ctx context.Context) error {
	opts := []client.Option{client.WithTransport(r.cfg.Transport), client.WithLogger(r.cfg.Logger)}
	if r.cfg.TLS != nil {
		opts = append(opts, client.WithTLS(r.cfg.TLS))
	}
	opts = append(opts, r.cfg.ClientOptions...)
	for i := range r.cfg.Clients {
		c, err := client.New(ctx, r.cfg.Addrs, opts...)
		if err != nil {
			r.closeClients()
			return fmt.Errorf("loadgen: connect client %d: %w", i, err)
		}
		r.clients = append(r.clients, c)
	}
	return nil
}

func (r *runner) closeClients() {
	for _, c := range r.clients {
		_ = c.Close() // nothing is left to report to: every worker has returned
	}
	r.clients = nil
}

// client returns the client worker i uses.
func (r *runner) client(i int) *client.Client {
	return r.clients[i%len(r.clients)]
}

// initWatermark sets the range readers read: the records this run will produce (from the log's
// next offset on), or in a read-only run the existing records from cfg.From.
func (r *runner) initWatermark(ctx context.Context) error {
	if r.cfg.Consumers == 0 && r.cfg.StreamConsumers == 0 {
		r.wm = newWatermark(0)
		return nil
	}
	b, err := r.clients[0].Bounds(ctx)
	if err != nil {
		return fmt.Errorf("loadgen: read log bounds: %w", err)
	}
	if !r.cfg.readOnly() {
		r.wm = newWatermark(b.Next)
		return nil
	}
	start := max(r.cfg.From, b.Lowest)
	r.wm = newWatermark(start)
	if b.Next > start {
		end := b.Next
		if r.cfg.Records > 0 {
			end = min(end, start+r.cfg.Records)
		}
		r.wm.ack(start, end-start)
	}
	r.wm.finish()
	return nil
}

// endPhase ends the measured phase: producers stop taking new records.
func (r *runner) endPhase() {
	r.stopOnce.Do(func() { close(r.stop) })
}

func (r *runner) stopped() bool {
	select {
	case <-r.stop:
		return true
	default:
		return r.runCtx.Err() != nil
	}
}

// take asks for the right to attempt one more record at now. It reports whether the record
// belongs to the measured phase, and ok == false once producers must stop.
func (r *runner) take(now time.Time) (measured, ok bool) {
	if r.stopped() {
		return false, false
	}
	measured = !now.Before(r.measure)
	if measured && r.cfg.Records > 0 {
		left := r.budget.Add(-1)
		if left < 0 {
			r.endPhase()
			return false, false
		}
		if left == 0 {
			r.endPhase() // this record is the last one
		}
	}
	return measured, true
}

// fail counts n failed records of kind k. It returns true when the worker must stop: ctx (the
// worker's) has ended — then nothing is counted, the failure is the run's own cancellation — or
// the run is over its error budget.
func (r *runner) fail(ctx context.Context, k *kind, n uint64, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	k.failed(n, err)
	total := r.errors.Add(n)
	if r.cfg.MaxErrors >= 0 && total > uint64(r.cfg.MaxErrors) {
		r.cancelRun(fmt.Errorf("%w: %d failed requests, last: %w", ErrTooManyErrors, total, err))
		return true
	}
	return false
}

// pause waits errorPause, or less if ctx ends or stop is closed (nil: never).
func (r *runner) pause(ctx context.Context, stop <-chan struct{}) {
	r.pauseFor(ctx, stop, errorPause)
}

// pauseFor waits d, or less if ctx ends or stop is closed (nil: never).
func (r *runner) pauseFor(ctx context.Context, stop <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-stop:
	}
}

// check counts a read value that is corrupt or foreign.
func (r *runner) check(k *kind, v []byte) (verdict, time.Time) {
	vd, sent := inspect(v)
	switch vd {
	case valueCorrupt:
		k.corrupt.Add(1)
	case valueForeign:
		k.foreign.Add(1)
	}
	return vd, sent
}

// reportProgress writes one line per interval until done is closed.
func (r *runner) reportProgress(out io.Writer, done <-chan struct{}) {
	t := time.NewTicker(r.cfg.ProgressInterval)
	defer t.Stop()
	p := progress{r: r, last: time.Now()}
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			p.line(out, now)
		}
	}
}

// progress computes per-interval rates from the kinds' counters.
type progress struct {
	r       *runner
	last    time.Time
	lastOps [3]uint64
	hist    latency.Histogram
}

func (p *progress) line(out io.Writer, now time.Time) {
	r := p.r
	streamLat := "e2e"
	if r.cfg.Producers == 0 {
		streamLat = "age"
	}
	secs := now.Sub(p.last).Seconds()
	p.last = now
	phase := ""
	switch {
	case now.Before(r.measure):
		phase = " warmup"
	case r.stopped():
		phase = " drain"
	}
	parts := []string{fmt.Sprintf("[%7.1fs]%s", now.Sub(r.begin).Seconds(), phase)}
	for i, k := range []struct {
		k      *kind
		active bool
		lat    string
	}{
		{r.produce, r.cfg.Producers > 0, "lat"},
		{r.consume, r.cfg.Consumers > 0, "lat"},
		{r.stream, r.cfg.StreamConsumers > 0, streamLat},
	} {
		if !k.active {
			continue
		}
		ops := k.k.ops.Load()
		rate := float64(ops-p.lastOps[i]) / secs
		p.lastOps[i] = ops
		p.hist.Reset()
		k.k.interval(&p.hist)
		part := fmt.Sprintf("%s %8.0f rec/s %7.2f MB/s", k.k.name, rate, rate*float64(r.cfg.RecordSize)/1e6)
		if p.hist.Count() > 0 {
			part += fmt.Sprintf(" %s p50 %s p99 %s", k.lat, fmtDur(p.hist.Quantile(0.5)), fmtDur(p.hist.Quantile(0.99)))
		}
		parts = append(parts, part)
	}
	parts = append(parts, fmt.Sprintf("errors %d", r.errors.Load()))
	line := strings.Join(parts, " | ") + "\n"
	_, _ = io.WriteString(out, line) // progress is best effort
}
