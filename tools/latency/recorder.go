package latency

import (
	"sync"
	"time"
)

// Recorder is a [Histogram] that several goroutines may record into while another reads it. It
// keeps two histograms: the cumulative one, and one for the current interval that
// [Recorder.TakeInterval] hands over and empties (for per-second progress reports).
//
// All methods are safe for concurrent use. Recording takes a mutex: give each busy goroutine its
// own Recorder so the mutex is uncontended, and merge them when reporting. The zero value is
// ready to use; a Recorder must not be copied after first use.
type Recorder struct {
	mu       sync.Mutex
	total    Histogram
	interval Histogram
}

// Record adds one observation of d to both the cumulative and the interval histogram.
func (r *Recorder) Record(d time.Duration) {
	r.RecordN(d, 1)
}

// RecordN adds n observations of d to both the cumulative and the interval histogram.
func (r *Recorder) RecordN(d time.Duration, n uint64) {
	r.mu.Lock()
	r.total.RecordN(d, n)
	r.interval.RecordN(d, n)
	r.mu.Unlock()
}

// TakeInterval merges the observations recorded since the previous TakeInterval (or since the
// Recorder was created) into dst, and starts a new interval.
func (r *Recorder) TakeInterval(dst *Histogram) {
	r.mu.Lock()
	dst.Merge(&r.interval)
	r.interval.Reset()
	r.mu.Unlock()
}

// MergeTotal merges every observation ever recorded into dst.
func (r *Recorder) MergeTotal(dst *Histogram) {
	r.mu.Lock()
	dst.Merge(&r.total)
	r.mu.Unlock()
}
