// Package latency records durations in a bounded-memory, log-linear histogram and answers
// percentile queries on it, in the manner of HdrHistogram.
//
// Values are recorded in nanoseconds. Values below 2^(SubBucketBits+1) ns are kept exactly;
// above that, each power-of-two range is split into 2^SubBucketBits equal sub-buckets, so any
// recorded value is reported with a relative error below 2^-SubBucketBits (under 0.8 %). The whole
// int64 range is covered by a fixed array of counters (57 KiB), whatever the number of
// values recorded: memory never grows with the run's length.
//
// A [Histogram] is not safe for concurrent use; a [Recorder] wraps one for use by several
// goroutines and keeps a resettable per-interval histogram beside the cumulative one.
package latency

import (
	"math"
	"math/bits"
	"time"
)

// SubBucketBits is the number of bits of precision kept for every recorded value: values are
// grouped in buckets no wider than 2^-SubBucketBits of their own magnitude.
const SubBucketBits = 7

const (
	subBuckets = 1 << SubBucketBits
	// exactLimit: values below it have a bucket of their own.
	exactLimit = 1 << (SubBucketBits + 1)
	// numBuckets covers every non-negative int64 exactly: the largest value has bits.Len64 = 63,
	// so the largest shift is 63-(SubBucketBits+1) and the last index is
	// shift*subBuckets + 2*subBuckets - 1.
	numBuckets = (63-SubBucketBits-1)*subBuckets + exactLimit
)

// Histogram counts durations in log-linear buckets. The zero value is an empty histogram ready
// to use. It is not safe for concurrent use: give each goroutine its own, or use a [Recorder],
// and combine them with [Histogram.Merge].
type Histogram struct {
	counts [numBuckets]uint64
	count  uint64
	sum    float64 // nanoseconds; float so that long runs cannot overflow
	min    int64
	max    int64
}

// bucketOf returns the index of the bucket that holds v (v >= 0).
func bucketOf(v int64) int {
	u := uint64(v)
	if u < exactLimit {
		return int(u)
	}
	shift := bits.Len64(u) - (SubBucketBits + 1)
	top := u >> uint(shift) // in [subBuckets, 2*subBuckets)
	return shift*subBuckets + int(top)
}

// bucketRange returns the smallest and largest values that fall in bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < exactLimit {
		return int64(i), int64(i)
	}
	shift := i/subBuckets - 1
	top := uint64(i - shift*subBuckets)
	lo64 := top << uint(shift)
	hi64 := lo64 + (uint64(1) << uint(shift)) - 1
	if hi64 > math.MaxInt64 {
		hi64 = math.MaxInt64
	}
	return int64(lo64), int64(hi64)
}

// Record adds one observation of d. Negative durations are recorded as 0.
func (h *Histogram) Record(d time.Duration) {
	h.RecordN(d, 1)
}

// RecordN adds n observations of d at once (n == 0 does nothing). Negative durations are
// recorded as 0.
func (h *Histogram) RecordN(d time.Duration, n uint64) {
	if n == 0 {
		return
	}
	v := max(int64(d), 0)
	h.counts[bucketOf(v)] += n
	if h.count == 0 || v < h.min {
		h.min = v
	}
	if h.count == 0 || v > h.max {
		h.max = v
	}
	h.count += n
	h.sum += float64(v) * float64(n)
}

// Merge adds every observation of o to h. o is not modified; h and o must not be the same
// histogram.
func (h *Histogram) Merge(o *Histogram) {
	if o.count == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.count == 0 || o.min < h.min {
		h.min = o.min
	}
	if h.count == 0 || o.max > h.max {
		h.max = o.max
	}
	h.count += o.count
	h.sum += o.sum
}

// Reset empties h.
func (h *Histogram) Reset() {
	*h = Histogram{}
}

// Count returns the number of observations recorded.
func (h *Histogram) Count() uint64 { return h.count }

// Min returns the smallest observation, exactly, or 0 if h is empty.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max returns the largest observation, exactly, or 0 if h is empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the arithmetic mean of the observations, or 0 if h is empty.
func (h *Histogram) Mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.count))
}

// Quantile returns the value below or at which a fraction q of the observations lie: the
// smallest recorded value v such that at least ceil(q*Count) observations are <= v, reported as
// the upper end of v's bucket (so never below the true value, and above it by less than
// 2^-SubBucketBits of it), clamped to [Min, Max]. q is clamped to [0, 1]; Quantile(0) is Min and
// Quantile(1) is Max. It returns 0 if h is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	if math.IsNaN(q) || q <= 0 {
		return time.Duration(h.min)
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(q * float64(h.count)))
	rank = min(max(rank, 1), h.count)
	var seen uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		if seen >= rank {
			_, hi := bucketRange(i)
			return time.Duration(min(max(hi, h.min), h.max))
		}
	}
	return time.Duration(h.max) // unreachable while counts and count agree
}

// Summary is a compact description of a histogram: count, extremes, mean and the usual
// percentiles. Durations are marshalled to JSON as integer nanoseconds.
type Summary struct {
	Count uint64        `json:"count"`
	Min   time.Duration `json:"min_ns"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summarize returns h's [Summary]. All fields are zero if h is empty.
func (h *Histogram) Summarize() Summary {
	return Summary{
		Count: h.count,
		Min:   h.Min(),
		Mean:  h.Mean(),
		P50:   h.Quantile(0.50),
		P90:   h.Quantile(0.90),
		P99:   h.Quantile(0.99),
		P999:  h.Quantile(0.999),
		Max:   h.Max(),
	}
}
