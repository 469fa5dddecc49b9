package loadgen

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/tools/latency"
	"github.com/commitlog-go/commitlog/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var transports = []string{client.TransportConnect, client.TransportGRPC}

// serve starts a fake log on transport tr and stops it when the test ends.
func serve(t *testing.T, tr string, log *clienttest.Log) string {
	t.Helper()
	srv, err := log.Serve(clienttest.ServeOptions{Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := srv.Addr(), func() { _ = srv.Close() }
	t.Cleanup(stop)
	return addr
}

// testConfig is a small bounded run against addr.
func testConfig(tr, addr string) Config {
	return Config{
		Addrs:            []string{addr},
		Transport:        tr,
		ProgressInterval: -1,
		DrainTimeout:     30 * time.Second, // a bound, not an expectation: readers catch up long before
		ClientOptions:    []client.Option{client.WithRefreshInterval(0)},
	}
}

// checkAllValid fails unless every value in log is one this tool wrote, intact.
func checkAllValid(t *testing.T, log *clienttest.Log) {
	t.Helper()
	for i, v := range log.Values() {
		if vd, _ := inspect(v); vd != valueOK {
			t.Fatalf("record %d: verdict %v", i, vd)
		}
	}
}

func TestRunProducesAndReadsBack(t *testing.T) {
	const records = 300
	for _, tr := range transports {
		for _, mode := range []Mode{ModeUnary, ModeBatch, ModeStream} {
			t.Run(tr+"/"+string(mode), func(t *testing.T) {
				log := clienttest.New()
				cfg := testConfig(tr, serve(t, tr, log))
				cfg.Mode = mode
				cfg.Producers = 3
				cfg.Clients = 2
				cfg.Window = 16
				cfg.BatchRecords = 10
				cfg.Linger = time.Millisecond
				cfg.Consumers = 2
				cfg.StreamConsumers = 2
				cfg.Records = records
				res, err := Run(context.Background(), cfg, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got := log.Len(); got != records {
					t.Fatalf("log holds %d records, want %d", got, records)
				}
				checkAllValid(t, log)
				p := res.Produce
				if p == nil || p.Records != records || p.Errors != 0 || p.Bytes != records*DefaultRecordSize {
					t.Fatalf("produce stats %+v", p)
				}
				if p.Latency.Count != records || p.Latency.P50 <= 0 || p.Latency.Max < p.Latency.P99 {
					t.Fatalf("produce latency %+v", p.Latency)
				}
				if p.RecordsPerSec <= 0 || p.MBPerSec <= 0 || p.Elapsed <= 0 {
					t.Fatalf("produce rates %+v", p)
				}
				if c := res.Consume; c == nil || c.Records != records || c.Corrupt != 0 || c.Foreign != 0 || c.Errors != 0 || c.Latency.Count != records {
					t.Fatalf("consume stats %+v", c)
				}
				// Each stream reader reads every record.
				if s := res.Stream; s == nil || s.Records != 2*records || s.Corrupt != 0 || s.Foreign != 0 || s.Latency.Count != 2*records {
					t.Fatalf("stream stats %+v", s)
				}
				if res.Interrupted || res.Mode != mode || res.Transport != tr {
					t.Fatalf("result %+v", res)
				}
			})
		}
	}
}

func TestRunWithWarmupCountsOnlyMeasuredRecords(t *testing.T) {
	log := clienttest.New()
	cfg := testConfig(client.TransportGRPC, serve(t, client.TransportGRPC, log))
	cfg.Warmup = 300 * time.Millisecond
	cfg.Records = 50
	cfg.Producers = 1
	cfg.Consumers = 1
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Records produced during the warmup are in the log but not in the stats (and there are
	// some: otherwise nothing was excluded).
	if p := res.Produce; p.Records != 50 || p.Latency.Count != 50 || log.Len() <= 50 {
		t.Fatalf("produce %+v with %d records in the log, want 50 measured and some produced in the warmup", p, log.Len())
	}
	// The consumer reads back everything this run produced, warmup included, but counts only
	// what it read in the measured phase.
	if c := res.Consume; c.Records > uint64(log.Len()) || c.Records < 1 {
		t.Fatalf("consume %+v with %d records in the log", c, log.Len())
	}
	if res.Warmup != cfg.Warmup {
		t.Fatalf("Warmup = %v", res.Warmup)
	}
}

func TestTake(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name         string
		measureIn    time.Duration // measured phase start relative to now
		records      uint64
		calls        int
		wantMeasured []bool
		wantOK       []bool
		wantStopped  bool
	}{
		{"warmup does not use the budget", time.Hour, 1, 3, []bool{false, false, false}, []bool{true, true, true}, false},
		{"measured uses the budget and stops at its end", -time.Hour, 2, 3, []bool{true, true, false}, []bool{true, true, false}, true},
		{"no budget: duration bound only", -time.Hour, 0, 3, []bool{true, true, true}, []bool{true, true, true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &runner{cfg: Config{Records: tt.records}, measure: now.Add(tt.measureIn), stop: make(chan struct{}), runCtx: context.Background()}
			r.budget.Store(int64(tt.records))
			for i := range tt.calls {
				m, ok := r.take(now)
				if m != tt.wantMeasured[i] || ok != tt.wantOK[i] {
					t.Fatalf("call %d: take = %v, %v; want %v, %v", i, m, ok, tt.wantMeasured[i], tt.wantOK[i])
				}
			}
			if r.stopped() != tt.wantStopped {
				t.Fatalf("stopped = %v, want %v", r.stopped(), tt.wantStopped)
			}
		})
	}
}

func TestRunDurationBoundAndProgress(t *testing.T) {
	log := clienttest.New()
	cfg := testConfig(client.TransportConnect, serve(t, client.TransportConnect, log))
	cfg.Duration = 300 * time.Millisecond
	cfg.ProgressInterval = 50 * time.Millisecond
	cfg.Mode = ModeBatch
	cfg.Producers = 1
	cfg.StreamConsumers = 1
	var out syncBuffer
	res, err := Run(context.Background(), cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Produce.Records == 0 || res.Produce.Records != uint64(log.Len()) {
		t.Fatalf("produced %d, log holds %d", res.Produce.Records, log.Len())
	}
	if res.Stream.Records != res.Produce.Records {
		t.Fatalf("stream read %d of %d", res.Stream.Records, res.Produce.Records)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) == 0 || !strings.Contains(lines[0], "| produce ") || !strings.Contains(lines[0], "| stream ") || !strings.Contains(lines[0], "errors 0") {
		t.Fatalf("progress output:\n%s", out.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the progress goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestRunReadOnly(t *testing.T) {
	log := clienttest.New()
	p := newPayload(64)
	for range 100 {
		log.Append(p.value(time.Now()))
	}
	log.Append([]byte("not ours"), []byte("nor this"))
	log.CorruptRead = func(off uint64) bool { return off == 7 }
	tests := []struct {
		name          string
		from, records uint64
		wantRead      uint64
		wantForeign   uint64
		wantCorrupt   uint64
	}{
		{"everything", 0, 0, 102, 2, 1},
		{"from an offset", 50, 0, 52, 2, 0},
		{"a count", 0, 10, 10, 0, 1},
		{"past the end", 500, 0, 0, 0, 0},
		// A warmup (the CLI's default is 1s) would read the range uncounted: none is run.
		{"a count with a warmup", 0, 10, 10, 0, 1},
	}
	for _, tr := range transports {
		addr := serve(t, tr, log)
		for _, tt := range tests {
			t.Run(tr+"/"+tt.name, func(t *testing.T) {
				cfg := testConfig(tr, addr)
				cfg.Producers = 0
				cfg.Consumers = 3
				cfg.StreamConsumers = 2
				cfg.From = tt.from
				cfg.Records = tt.records
				cfg.Duration = time.Hour // the range bounds the run
				if strings.Contains(tt.name, "warmup") {
					cfg.Warmup = time.Hour
				}
				res, err := Run(context.Background(), cfg, nil)
				if err != nil {
					t.Fatal(err)
				}
				if res.Produce != nil {
					t.Fatalf("a read-only run produced: %+v", res.Produce)
				}
				c, s := res.Consume, res.Stream
				if c.Records != tt.wantRead || c.Foreign != tt.wantForeign || c.Corrupt != tt.wantCorrupt {
					t.Fatalf("consume %+v", c)
				}
				if s.Records != 2*tt.wantRead || s.Foreign != 2*tt.wantForeign || s.Corrupt != 2*tt.wantCorrupt {
					t.Fatalf("stream %+v", s)
				}
			})
		}
	}
}

func TestRunCountsUnreadRecords(t *testing.T) {
	log := clienttest.New()
	p := newPayload(32)
	for range 100 {
		log.Append(p.value(time.Now()))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log.OnConsume = func(off uint64) {
		if off == 10 {
			cancel() // the run ends while the readers are part way through
		}
	}
	cfg := testConfig(client.TransportConnect, serve(t, client.TransportConnect, log))
	cfg.Producers = 0
	cfg.Consumers = 1
	cfg.StreamConsumers = 1
	cfg.Duration = time.Hour
	res, err := Run(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, s := res.Consume, res.Stream
	if !res.Interrupted || c.Records+c.Unread != 100 || c.Unread < 89 || s.Records+s.Unread != 100 {
		t.Fatalf("interrupted %v, consume %+v, stream %+v", res.Interrupted, c, s)
	}
	var b strings.Builder
	if err := res.WriteText(&b); err != nil || !strings.Contains(b.String(), "unread") || !strings.Contains(b.String(), "(interrupted)") {
		t.Fatalf("summary (%v):\n%s", err, b.String())
	}
}

func TestRunAbandonsStalledStream(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			log := clienttest.New()
			var streams atomic.Int32
			log.StallProduceStream = func() bool { return streams.Add(1) == 1 } // the first one hangs
			cfg := testConfig(tr, serve(t, tr, log))
			cfg.Mode = ModeStream
			cfg.Producers = 1
			cfg.Window = 4
			cfg.Records = 20
			cfg.StallTimeout = time.Second // far above any real pause of a test server under -race
			res, err := Run(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			// The records sent on the stalled stream failed; the rest went through a new stream.
			p := res.Produce
			if p.Errors == 0 || p.Errors > 5 || p.Records+p.Errors != 20 || uint64(log.Len()) != p.Records {
				t.Fatalf("produce %+v, log %d", p, log.Len())
			}
			if p.ErrorSamples[errStalled.Error()] != p.Errors {
				t.Fatalf("error samples %v", p.ErrorSamples)
			}
			if streams.Load() < 2 {
				t.Fatalf("%d streams opened", streams.Load())
			}
		})
	}
}

func TestRunReopensStalledReadStream(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			log := clienttest.New()
			p := newPayload(32)
			for range 50 {
				log.Append(p.value(time.Now()))
			}
			var streams atomic.Int32
			log.StallConsumeStream = func() bool { return streams.Add(1) == 1 } // the first one hangs
			cfg := testConfig(tr, serve(t, tr, log))
			cfg.Producers = 0
			cfg.StreamConsumers = 1
			cfg.Records = 50
			cfg.StallTimeout = time.Second // far above any real pause of a test server under -race
			res, err := Run(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			s := res.Stream
			if s.Records != 50 || s.Errors != 1 || s.ErrorSamples[errReadStalled.Error()] != 1 || s.Unread != 0 {
				t.Fatalf("stream %+v", s)
			}
		})
	}
}

func TestRunStopsAfterTooManyErrors(t *testing.T) {
	for _, mode := range []Mode{ModeUnary, ModeBatch, ModeStream} {
		t.Run(string(mode), func(t *testing.T) {
			log := clienttest.New()
			log.RefuseProduce = func() error { return transport.Errorf(transport.PermissionDenied, "no produce for you") }
			cfg := testConfig(client.TransportConnect, serve(t, client.TransportConnect, log))
			cfg.Mode = mode
			cfg.Duration = time.Hour
			cfg.MaxErrors = 5
			res, err := Run(context.Background(), cfg, nil)
			if !errors.Is(err, ErrTooManyErrors) {
				t.Fatalf("err = %v, want ErrTooManyErrors", err)
			}
			if res.Produce == nil || res.Produce.Errors <= 5 || res.Produce.Records != 0 {
				t.Fatalf("produce %+v", res.Produce)
			}
			found := false
			for msg := range res.Produce.ErrorSamples {
				found = found || strings.Contains(msg, "no produce for you")
			}
			if !found {
				t.Fatalf("error samples %v", res.Produce.ErrorSamples)
			}
		})
	}
}

func TestRunInterrupted(t *testing.T) {
	log := clienttest.New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log.OnAppend = func(n int) {
		if n >= 100 {
			cancel() // Ctrl-C in the middle of an unbounded run
		}
	}
	cfg := testConfig(client.TransportGRPC, serve(t, client.TransportGRPC, log))
	cfg.Duration = time.Hour
	cfg.Producers = 2
	cfg.Consumers = 1
	cfg.StreamConsumers = 1
	res, err := Run(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Requests in flight when ctx ended are neither counted as records nor as errors.
	p := res.Produce
	if !res.Interrupted || p.Records+uint64(cfg.Producers) < 100 || p.Records > uint64(log.Len()) || p.Errors != 0 {
		t.Fatalf("result %+v, produce %+v", res, res.Produce)
	}
}

func TestRunInvalidConfig(t *testing.T) {
	ok := Config{Addrs: []string{"127.0.0.1:1"}}
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"no address", func(c *Config) { c.Addrs = nil }},
		{"bad transport", func(c *Config) { c.Transport = "carrier-pigeon" }},
		{"bad mode", func(c *Config) { c.Mode = "bulk" }},
		{"negative producers", func(c *Config) { c.Producers = -1 }},
		{"negative consumers", func(c *Config) { c.Consumers = -1 }},
		{"negative record size", func(c *Config) { c.RecordSize = -1 }},
		{"negative window", func(c *Config) { c.Window = -1 }},
		{"negative linger", func(c *Config) { c.Linger = -1 }},
		{"negative warmup", func(c *Config) { c.Warmup = -1 }},
		{"bad target", func(c *Config) { c.Target = "kafka" }},
		{"nats with readers", func(c *Config) { c.Target = TargetNATS; c.Consumers = 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mod(&cfg)
			if _, err := Run(context.Background(), cfg, nil); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestResultWriteText(t *testing.T) {
	res := Result{
		Transport: "grpc", Mode: ModeBatch, Clients: 1, Producers: 4, RecordSize: 100, Window: 256,
		Produce: &Stats{Records: 1000, Bytes: 100000, Elapsed: time.Second, RecordsPerSec: 1000, MBPerSec: 0.1,
			Latency: latencySummary(time.Millisecond)},
		Stream: &Stats{Records: 1000, Corrupt: 1, Errors: 2, ErrorSamples: map[string]uint64{"boom": 2}},
	}
	var b strings.Builder
	if err := res.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"transport=grpc mode=batch", "window=256", "produce", "1000.0 records/s", "0.10 MB/s",
		"latency p50 1ms", "stream", "corrupt 1", "error x2: boom"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}

func latencySummary(d time.Duration) latency.Summary {
	return latency.Summary{Count: 1, Min: d, Mean: d, P50: d, P90: d, P99: d, P999: d, Max: d}
}

// TestRunIdempotentBatchSurvivesLostAnswers: with Idempotent, the batch mode's Producers retry
// writes whose answers were lost after the records were stored, and every record is stored
// once and counted once.
func TestRunIdempotentBatchSurvivesLostAnswers(t *testing.T) {
	const records = 200
	log := clienttest.New()
	var writes atomic.Int64
	log.LoseAnswer = func(string, uint32) bool { return writes.Add(1)%4 == 0 }
	cfg := testConfig("connect", serve(t, "connect", log))
	cfg.Mode = ModeBatch
	cfg.Idempotent = true
	cfg.Producers = 2
	cfg.BatchRecords = 10
	cfg.Linger = time.Millisecond
	cfg.Records = records
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := log.Len(); got != records {
		t.Fatalf("log holds %d records, want %d (each once)", got, records)
	}
	checkAllValid(t, log)
	if p := res.Produce; p == nil || p.Records != records || p.Errors != 0 {
		t.Fatalf("produce stats %+v", p)
	}
	if log.Calls("InitProducer") == 0 || writes.Load() < 4 {
		t.Fatalf("InitProducer %d calls, %d writes: the idempotent path did not run", log.Calls("InitProducer"), writes.Load())
	}
}

// TestRunStreamFindsNewLeader: in stream mode a broken produce stream was reopened at the
// SDK's cached leader, which nothing refreshes in this mode: once the leader stopped, the
// producers redialed its address every 20 ms ("connection refused") for as long as it was
// down, even after another server led. The stream is now reopened at the leader the cluster
// names, with a growing pause while reopened streams fail.
func TestRunStreamFindsNewLeader(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			log := clienttest.New()
			standby := serve(t, tr, log) // answers GetServers while the leader is down
			first, err := log.Serve(clienttest.ServeOptions{Transport: tr})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = first.Close() })
			// At the 100th record the leader stops (refusing writes first, so that its open
			// stream ends and it stops at once); for a second the cluster still names it (no
			// election yet), then a new server leads.
			const outage = time.Second
			var down atomic.Bool
			log.RefuseProduce = func() error {
				if down.Load() {
					return transport.Errorf(transport.Unavailable, "server stopping")
				}
				return nil
			}
			var moved sync.Once
			movedDone := make(chan struct{})
			log.OnAppend = func(n int) {
				if n < 100 {
					return
				}
				moved.Do(func() {
					down.Store(true)
					go func() {
						defer close(movedDone)
						_ = first.Close()
						time.Sleep(outage)
						down.Store(false)
						next := serve(t, tr, log)
						t.Logf("leader moved from %s to %s", first.Addr(), next)
					}()
				})
			}
			defer func() { <-movedDone }()
			cfg := testConfig(tr, first.Addr())
			cfg.Addrs = []string{first.Addr(), standby}
			cfg.Mode = ModeStream
			cfg.Producers = 1
			cfg.Window = 1 // a failed stream counts 1 or 2 errors
			cfg.Records = 400
			cfg.MaxErrors = 200
			res, err := Run(context.Background(), cfg, nil)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			// The few streams that failed during the outage (a growing pause: 20 ms, 40 ms, …
			// 500 ms, so about 8 in a second), not one every 20 ms; then the new leader took
			// the rest.
			p := res.Produce
			t.Logf("%d errors: %v", p.Errors, p.ErrorSamples)
			if p.Errors > 30 || p.Records+p.Errors < 400 || uint64(log.Len()) != p.Records {
				t.Fatalf("produce %+v, log %d", p, log.Len())
			}
		})
	}
}
