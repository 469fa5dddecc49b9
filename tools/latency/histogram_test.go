package latency

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestBucketsCoverEveryValueContiguously(t *testing.T) {
	prevHi := int64(-1)
	for i := range numBuckets {
		lo, hi := bucketRange(i)
		if lo > hi || lo != prevHi+1 {
			t.Fatalf("bucket %d is [%d,%d], previous ended at %d", i, lo, hi, prevHi)
		}
		if got := bucketOf(lo); got != i {
			t.Fatalf("bucketOf(%d) = %d, want %d", lo, got, i)
		}
		if got := bucketOf(hi); got != i {
			t.Fatalf("bucketOf(%d) = %d, want %d", hi, got, i)
		}
		if lo >= exactLimit {
			if width := float64(hi - lo + 1); width/float64(lo) > 1.0/subBuckets {
				t.Fatalf("bucket %d [%d,%d] wider than 1/%d of its value", i, lo, hi, subBuckets)
			}
		}
		prevHi = hi
	}
	if prevHi != math.MaxInt64 {
		t.Fatalf("buckets end at %d, want MaxInt64", prevHi)
	}
}

func TestBucketOf(t *testing.T) {
	tests := []struct {
		v    int64
		want int
	}{
		{0, 0},
		{1, 1},
		{exactLimit - 1, exactLimit - 1},
		{exactLimit, exactLimit},
		{exactLimit + 1, exactLimit},     // width-2 buckets start at exactLimit
		{exactLimit + 2, exactLimit + 1}, // next one
		{2 * exactLimit, exactLimit + subBuckets},
		{math.MaxInt64, numBuckets - 1},
	}
	for _, tt := range tests {
		if got := bucketOf(tt.v); got != tt.want {
			t.Errorf("bucketOf(%d) = %d, want %d", tt.v, got, tt.want)
		}
	}
}

func TestQuantileTable(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
		tol    float64 // allowed relative error above want
	}{
		{"empty", nil, 0.5, 0, 0},
		{"single p50", []time.Duration{7 * ms}, 0.5, 7 * ms, 0},
		{"single p0", []time.Duration{7 * ms}, 0, 7 * ms, 0},
		{"single p100", []time.Duration{7 * ms}, 1, 7 * ms, 0},
		{"exact small p50", []time.Duration{1, 2, 3, 4}, 0.5, 2, 0},
		{"exact small p75", []time.Duration{1, 2, 3, 4}, 0.75, 3, 0},
		{"exact small p76", []time.Duration{1, 2, 3, 4}, 0.76, 4, 0},
		{"q below 0 is min", []time.Duration{5, 9}, -1, 5, 0},
		{"q above 1 is max", []time.Duration{5, 9}, 2, 9, 0},
		{"NaN is min", []time.Duration{5, 9}, math.NaN(), 5, 0},
		{"p99 of 1..100ms", seq(1, 100, ms), 0.99, 99 * ms, 1.0 / subBuckets},
		{"p50 of 1..100ms", seq(1, 100, ms), 0.50, 50 * ms, 1.0 / subBuckets},
		{"p90 of 1..100ms", seq(1, 100, ms), 0.90, 90 * ms, 1.0 / subBuckets},
		{"p100 is exact max", seq(1, 100, ms), 1, 100 * ms, 0},
		{"negative recorded as 0", []time.Duration{-5, 10}, 0.5, 0, 0},
		{"outlier max exact", []time.Duration{ms, ms, ms, 3 * time.Hour}, 1, 3 * time.Hour, 0},
		{"outlier p75", []time.Duration{ms, ms, ms, 3 * time.Hour}, 0.75, ms, 1.0 / subBuckets},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tt.values {
				h.Record(v)
			}
			got := h.Quantile(tt.q)
			if got < tt.want || float64(got-tt.want) > tt.tol*float64(tt.want) {
				t.Fatalf("Quantile(%v) = %v, want %v (+%.2f%%)", tt.q, got, tt.want, tt.tol*100)
			}
		})
	}
}

func seq(from, to int, unit time.Duration) []time.Duration {
	var out []time.Duration
	for i := from; i <= to; i++ {
		out = append(out, time.Duration(i)*unit)
	}
	return out
}

// TestQuantileMatchesSortedSample checks the histogram against exact percentiles of random
// samples drawn from several distributions.
func TestQuantileMatchesSortedSample(t *testing.T) {
	dists := []struct {
		name string
		gen  func(r *rand.Rand) time.Duration
	}{
		{"uniform 0-10ms", func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(int64(10 * time.Millisecond))) }},
		{"exponential mean 300us", func(r *rand.Rand) time.Duration { return time.Duration(r.ExpFloat64() * 300e3) }},
		{"lognormal", func(r *rand.Rand) time.Duration { return time.Duration(math.Exp(r.NormFloat64()*1.5 + 12)) }},
		{"tiny exact", func(r *rand.Rand) time.Duration { return time.Duration(r.IntN(exactLimit)) }},
	}
	for _, d := range dists {
		t.Run(d.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var h Histogram
			sample := make([]time.Duration, 20000)
			var sum float64
			for i := range sample {
				sample[i] = d.gen(r)
				h.Record(sample[i])
				sum += float64(sample[i])
			}
			slices.Sort(sample)
			for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999} {
				rank := int(math.Ceil(q * float64(len(sample))))
				want := sample[rank-1]
				got := h.Quantile(q)
				if got < want || float64(got-want) > float64(want)/subBuckets {
					t.Errorf("Quantile(%v) = %v, exact %v", q, got, want)
				}
			}
			if h.Min() != sample[0] || h.Max() != sample[len(sample)-1] {
				t.Errorf("Min/Max = %v/%v, want %v/%v", h.Min(), h.Max(), sample[0], sample[len(sample)-1])
			}
			if want := time.Duration(sum / float64(len(sample))); absDiff(h.Mean(), want) > 1 {
				t.Errorf("Mean = %v, want %v", h.Mean(), want)
			}
			if h.Count() != uint64(len(sample)) {
				t.Errorf("Count = %d, want %d", h.Count(), len(sample))
			}
		})
	}
}

func absDiff(a, b time.Duration) time.Duration {
	if a > b {
		return a - b
	}
	return b - a
}

func TestMergeEqualsRecordingEverything(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var a, b, all Histogram
	for i := range 5000 {
		v := time.Duration(r.Int64N(int64(time.Second)))
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{}) // merging an empty histogram changes nothing
	if m.Summarize() != all.Summarize() {
		t.Fatalf("merged %+v, want %+v", m.Summarize(), all.Summarize())
	}
	if m.counts != all.counts {
		t.Fatal("merged bucket counts differ")
	}
}

func TestRecordNAndReset(t *testing.T) {
	var h Histogram
	h.RecordN(time.Millisecond, 0)
	if h.Count() != 0 || h.Min() != 0 {
		t.Fatalf("RecordN(_, 0) recorded something: %+v", h.Summarize())
	}
	h.RecordN(time.Millisecond, 10)
	h.Record(time.Second)
	if got := h.Quantile(10.0 / 11); got < time.Millisecond || got > time.Millisecond+time.Millisecond/subBuckets {
		t.Fatalf("p(10/11) = %v, want ~1ms", got)
	}
	if h.Count() != 11 {
		t.Fatalf("Count = %d, want 11", h.Count())
	}
	h.Reset()
	if (h.Summarize() != Summary{}) {
		t.Fatalf("after Reset: %+v", h.Summarize())
	}
}

func TestRecorderIntervals(t *testing.T) {
	var r Recorder
	r.Record(time.Millisecond)
	r.RecordN(2*time.Millisecond, 2)
	var iv Histogram
	r.TakeInterval(&iv)
	if iv.Count() != 3 || iv.Max() != 2*time.Millisecond {
		t.Fatalf("first interval: %+v", iv.Summarize())
	}
	r.Record(5 * time.Millisecond)
	iv.Reset()
	r.TakeInterval(&iv)
	if iv.Count() != 1 || iv.Min() != 5*time.Millisecond {
		t.Fatalf("second interval: %+v", iv.Summarize())
	}
	iv.Reset()
	r.TakeInterval(&iv)
	if iv.Count() != 0 {
		t.Fatalf("empty interval: %+v", iv.Summarize())
	}
	var tot Histogram
	r.MergeTotal(&tot)
	if tot.Count() != 4 || tot.Min() != time.Millisecond || tot.Max() != 5*time.Millisecond {
		t.Fatalf("total: %+v", tot.Summarize())
	}
}

func TestRecorderConcurrent(t *testing.T) {
	var r Recorder
	const workers, each = 4, 1000
	done := make(chan struct{})
	for w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range each {
				r.Record(time.Duration(w*each + i))
			}
		}()
	}
	var iv Histogram
	for range workers {
		r.TakeInterval(&iv) // concurrently with the writers
		<-done
	}
	r.TakeInterval(&iv)
	var tot Histogram
	r.MergeTotal(&tot)
	if tot.Count() != workers*each || iv.Count() != workers*each {
		t.Fatalf("total %d, intervals %d, want %d", tot.Count(), iv.Count(), workers*each)
	}
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	for i := 0; b.Loop(); i++ {
		h.Record(time.Duration(i&0xFFFFF) * time.Microsecond)
	}
}

func BenchmarkQuantile(b *testing.B) {
	var h Histogram
	r := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		h.Record(time.Duration(r.ExpFloat64() * 1e6))
	}
	for b.Loop() {
		_ = h.Quantile(0.99)
	}
}
