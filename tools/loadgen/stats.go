package loadgen

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commitlog-go/commitlog/tools/latency"
)

// maxErrorSamples bounds the distinct error messages a run keeps per kind of operation.
const maxErrorSamples = 8

// Stats is what one kind of operation (produce, consume, stream) did in the measured phase.
type Stats struct {
	// Records is the number of records written (produce) or read (consume, stream).
	Records uint64 `json:"records"`
	// AllPhases is the number of records completed in every phase (warmup and drain included):
	// what the servers did during the whole run, e.g. to divide their CPU time by.
	AllPhases uint64 `json:"all_phases_records"`
	// Bytes is the sum of those records' value sizes.
	Bytes uint64 `json:"bytes"`
	// Errors is the number of failed requests (a failed batch counts each of its records).
	Errors uint64 `json:"errors"`
	// Corrupt counts records read back whose checksum did not match (readers only; must be 0).
	Corrupt uint64 `json:"corrupt,omitempty"`
	// Foreign counts records read back that this tool did not write (readers only).
	Foreign uint64 `json:"foreign,omitempty"`
	// Unread counts, for readers, the records of the run's range they had not read when they
	// stopped: the drain timed out (readers slower than producers), the run was interrupted, or
	// a read-only run's duration ended first. Counted once per stream reader.
	Unread uint64 `json:"unread,omitempty"`
	// Elapsed is the time from the start of the measured phase to the last completed operation.
	Elapsed time.Duration `json:"elapsed_ns"`
	// RecordsPerSec is Records / Elapsed.
	RecordsPerSec float64 `json:"records_per_sec"`
	// MBPerSec is Bytes / Elapsed in megabytes (10^6 bytes) per second.
	MBPerSec float64 `json:"mb_per_sec"`
	// Latency summarizes the per-record latencies (see Mode and Config for what each measures).
	Latency latency.Summary `json:"latency"`
	// ErrorSamples are up to 8 distinct error messages with their counts.
	ErrorSamples map[string]uint64 `json:"error_samples,omitempty"`
}

// Result is the outcome of a run: the settings that shape the numbers, and one Stats per kind of
// operation that ran.
type Result struct {
	Target          string        `json:"target"`
	Transport       string        `json:"transport"`
	Mode            Mode          `json:"mode"`
	Clients         int           `json:"clients"`
	Producers       int           `json:"producers"`
	Consumers       int           `json:"consumers"`
	StreamConsumers int           `json:"stream_consumers"`
	RecordSize      int           `json:"record_size"`
	Window          int           `json:"window,omitempty"`
	Warmup          time.Duration `json:"warmup_ns"`
	// Interrupted is true when the run's context ended before the run did.
	Interrupted bool `json:"interrupted,omitempty"`
	// Produce, Consume and Stream are nil for kinds of operation that did not run.
	Produce *Stats `json:"produce,omitempty"`
	Consume *Stats `json:"consume,omitempty"`
	Stream  *Stats `json:"stream,omitempty"`
	// ServerCPU is set when Config.ServerPIDs was.
	ServerCPU *ServerCPU `json:"server_cpu,omitempty"`
}

// WriteText writes a human-readable summary of r to w.
func (r Result) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "commitlog-bench: target=%s transport=%s mode=%s clients=%d producers=%d consumers=%d stream-consumers=%d record-size=%dB",
		r.Target, r.Transport, r.Mode, r.Clients, r.Producers, r.Consumers, r.StreamConsumers, r.RecordSize)
	if r.Mode != ModeUnary && r.Producers > 0 {
		fmt.Fprintf(&b, " window=%d", r.Window)
	}
	fmt.Fprintf(&b, " warmup=%s", r.Warmup)
	if r.Interrupted {
		b.WriteString(" (interrupted)")
	}
	b.WriteByte('\n')
	// A stream reader's latency is from the record's send time: end to end when it tails the
	// producers, the records' age in a read-only run.
	streamLat := "end-to-end"
	if r.Producers == 0 {
		streamLat = "age"
	}
	for _, k := range []struct {
		name string
		s    *Stats
		lat  string
	}{
		{"produce", r.Produce, "latency"},
		{"consume", r.Consume, "latency"},
		{"stream", r.Stream, streamLat},
	} {
		if k.s == nil {
			continue
		}
		s := k.s
		fmt.Fprintf(&b, "%-8s %10d records in %s: %12.1f records/s %9.2f MB/s  errors %d",
			k.name, s.Records, s.Elapsed.Round(time.Millisecond), s.RecordsPerSec, s.MBPerSec, s.Errors)
		if s.Corrupt > 0 || s.Foreign > 0 {
			fmt.Fprintf(&b, "  corrupt %d  foreign %d", s.Corrupt, s.Foreign)
		}
		if s.Unread > 0 {
			fmt.Fprintf(&b, "  unread %d", s.Unread)
		}
		b.WriteByte('\n')
		l := s.Latency
		if l.Count > 0 {
			fmt.Fprintf(&b, "         %s p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s\n", k.lat,
				fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.P999), fmtDur(l.Max), fmtDur(l.Mean))
		}
		msgs := make([]string, 0, len(s.ErrorSamples))
		for m := range s.ErrorSamples {
			msgs = append(msgs, m)
		}
		sort.Strings(msgs)
		for _, m := range msgs {
			fmt.Fprintf(&b, "         error x%d: %s\n", s.ErrorSamples[m], m)
		}
	}
	if c := r.ServerCPU; c != nil {
		fmt.Fprintf(&b, "server   CPU %s over %d processes: %.1f µs per produced record (warmup and drain included)\n",
			c.CPU.Round(10*time.Millisecond), len(c.PIDs), c.PerRecordMicros)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fmtDur prints a latency with three significant digits in ms (or µs below 1 ms).
func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.3gs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3gms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.3gµs", float64(d)/float64(time.Microsecond))
	}
}

// kind accumulates one kind of operation's measurements. Counters are atomic; each worker
// records latencies into its own Recorder (from recorder), so workers never contend.
type kind struct {
	name string

	records atomic.Uint64 // measured
	bytes   atomic.Uint64 // measured
	errors  atomic.Uint64 // all phases: MaxErrors counts every failure
	corrupt atomic.Uint64
	foreign atomic.Uint64
	unread  atomic.Uint64
	ops     atomic.Uint64 // all phases, for progress rates
	last    atomic.Int64  // unix ns of the last measured completion

	mu      sync.Mutex
	recs    []*latency.Recorder
	samples map[string]uint64
}

func newKind(name string) *kind {
	return &kind{name: name, samples: make(map[string]uint64)}
}

// recorder returns a new Recorder owned by one worker.
func (k *kind) recorder() *latency.Recorder {
	r := new(latency.Recorder)
	k.mu.Lock()
	k.recs = append(k.recs, r)
	k.mu.Unlock()
	return r
}

// done records n records of size bytes each completed at now; measured says whether they
// belong to the measured phase.
func (k *kind) done(n uint64, size int, now time.Time, measured bool) {
	k.ops.Add(n)
	if !measured {
		return
	}
	k.records.Add(n)
	k.bytes.Add(n * uint64(size))
	k.last.Store(now.UnixNano())
}

// failed counts n failed records and samples err's message.
func (k *kind) failed(n uint64, err error) uint64 {
	total := k.errors.Add(n)
	msg := err.Error()
	k.mu.Lock()
	if _, ok := k.samples[msg]; ok || len(k.samples) < maxErrorSamples {
		k.samples[msg] += n
	}
	k.mu.Unlock()
	return total
}

// interval merges every worker's interval histogram into dst.
func (k *kind) interval(dst *latency.Histogram) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, r := range k.recs {
		r.TakeInterval(dst)
	}
}

// stats summarizes the measured phase that started at start.
func (k *kind) stats(start time.Time) *Stats {
	var h latency.Histogram
	k.mu.Lock()
	for _, r := range k.recs {
		r.MergeTotal(&h)
	}
	var samples map[string]uint64
	if len(k.samples) > 0 {
		samples = make(map[string]uint64, len(k.samples))
		for m, n := range k.samples {
			samples[m] = n
		}
	}
	k.mu.Unlock()
	s := &Stats{
		Records:      k.records.Load(),
		AllPhases:    k.ops.Load(),
		Bytes:        k.bytes.Load(),
		Errors:       k.errors.Load(),
		Corrupt:      k.corrupt.Load(),
		Foreign:      k.foreign.Load(),
		Unread:       k.unread.Load(),
		Latency:      h.Summarize(),
		ErrorSamples: samples,
	}
	if last := k.last.Load(); last > start.UnixNano() {
		s.Elapsed = time.Duration(last - start.UnixNano())
		s.RecordsPerSec = float64(s.Records) / s.Elapsed.Seconds()
		s.MBPerSec = float64(s.Bytes) / 1e6 / s.Elapsed.Seconds()
	}
	return s
}
