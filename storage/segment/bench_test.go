package segment_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/vfs"
)

// Benchmarks report our figure and, measured right after it on the same disk, the
// machine's raw floor: write+fdatasync of the same batches on a plain file (for SyncAlways)
// and plain buffered write(2)s (for SyncNever). "ratio_to_floor" is ours / floor.
//
//	go test -run '^$' -bench . ./segment/
//	COMMITLOG_BENCH_OPEN_MIB=1024 go test -run '^$' -bench Open ./segment/   # recovery of 1 GiB

var recordSizes = []struct {
	name string
	size int
}{{"100B", 100}, {"1KiB", 1024}}

// benchDir is where benchmarks put their files: $COMMITLOG_BENCH_DIR or the temp dir (which
// should be on the disk being measured, not tmpfs).
func benchDir() string {
	if d := os.Getenv("COMMITLOG_BENCH_DIR"); d != "" {
		return d
	}
	return os.TempDir()
}

// rawFile creates a plain file for a floor measurement, removed at the end of the benchmark.
func rawFile(b *testing.B) *os.File {
	dir, err := os.MkdirTemp(benchDir(), "floor")
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "raw"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close(); os.RemoveAll(dir) })
	return f
}

// rawSyncFloor returns records/s of iters iterations of writing batch records of size
// bytes with one write(2) and one fdatasync, on a plain file. Benchmarks run it right after
// their own loop, for about as long, so that both see the same (shared, noisy) disk.
func rawSyncFloor(b *testing.B, size, batch, iters int) float64 {
	f := rawFile(b)
	buf := make([]byte, size*batch)
	iters = max(20, min(iters, 5000))
	start := time.Now()
	for range iters {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
	}
	return float64(iters*batch) / time.Since(start).Seconds()
}

// rawWriteFloor returns bytes/s of n plain buffered write(2)s of size bytes each.
func rawWriteFloor(b *testing.B, size, n int) float64 {
	f := rawFile(b)
	buf := make([]byte, size)
	n = max(n, 10000)
	start := time.Now()
	for range n {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n*size) / time.Since(start).Seconds()
}

func openBench(b *testing.B, cfg segment.Config) *segment.Log {
	b.Helper()
	dir, err := os.MkdirTemp(benchDir(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	l, err := segment.Open(dir, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	return l
}

// BenchmarkAppendSyncAlways: one appender, batches of 1, 64 and 512 records, fsync per
// batch, against the raw write+fdatasync floor of the same batches.
func BenchmarkAppendSyncAlways(b *testing.B) {
	for _, rs := range recordSizes {
		for _, batch := range []int{1, 64, 512} {
			b.Run(fmt.Sprintf("%s/batch=%d", rs.name, batch), func(b *testing.B) {
				l := openBench(b, segment.Config{Sync: segment.SyncAlways})
				recs := make([][]byte, batch)
				for i := range recs {
					recs[i] = make([]byte, rs.size)
				}
				b.SetBytes(int64(rs.size * batch))
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, err := l.Append(recs...); err != nil {
						b.Fatal(err)
					}
				}
				ours := float64(b.N*batch) / b.Elapsed().Seconds()
				fl := rawSyncFloor(b, rs.size, batch, b.N)
				b.ReportMetric(ours, "records/s")
				b.ReportMetric(fl, "floor_records/s")
				b.ReportMetric(ours/fl, "ratio_to_floor")
			})
		}
	}
}

// countingFS counts fsyncs of the OS file system.
type countingFS struct {
	vfs.OS
	syncs *atomic.Int64
}

func (c countingFS) Create(name string) (vfs.File, error) {
	f, err := c.OS.Create(name)
	return countingFile{f, c.syncs}, err
}

func (c countingFS) Open(name string) (vfs.File, error) {
	f, err := c.OS.Open(name)
	return countingFile{f, c.syncs}, err
}

type countingFile struct {
	vfs.File
	syncs *atomic.Int64
}

func (c countingFile) Sync() error {
	c.syncs.Add(1)
	return c.File.Sync()
}

// BenchmarkAppendConcurrent: 16 goroutines append single records under SyncAlways; group
// commit makes records/s well above fsyncs/s.
func BenchmarkAppendConcurrent(b *testing.B) {
	for _, rs := range recordSizes {
		b.Run(rs.name+"/appenders=16", func(b *testing.B) {
			var syncs atomic.Int64
			l := openBench(b, segment.Config{Sync: segment.SyncAlways, FS: countingFS{syncs: &syncs}})
			rec := make([]byte, rs.size)
			syncs.Store(0)
			b.SetBytes(int64(rs.size))
			b.SetParallelism(16 / max(1, runtimeProcs()))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := l.Append(rec); err != nil {
						b.Error(err)
						return
					}
				}
			})
			secs := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)/secs, "records/s")
			b.ReportMetric(float64(syncs.Load())/secs, "fsyncs/s")
			b.ReportMetric(float64(b.N)/float64(max(1, syncs.Load())), "records/fsync")
			b.ReportMetric(float64(b.N)/secs/rawSyncFloor(b, rs.size, 1, int(syncs.Load())), "ratio_to_1_per_fsync_floor")
		})
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkAppendSyncNever: single-record appends without fsync, MB/s against plain
// write(2)s of the same records.
func BenchmarkAppendSyncNever(b *testing.B) {
	for _, rs := range recordSizes {
		b.Run(rs.name, func(b *testing.B) {
			l := openBench(b, segment.Config{Sync: segment.SyncNever})
			rec := make([]byte, rs.size)
			b.SetBytes(int64(rs.size))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := l.Append(rec); err != nil {
					b.Fatal(err)
				}
			}
			ours := float64(b.N*rs.size) / b.Elapsed().Seconds()
			fl := rawWriteFloor(b, rs.size, b.N)
			b.ReportMetric(ours/1e6, "MB/s_payload")
			b.ReportMetric(fl/1e6, "floor_MB/s")
			b.ReportMetric(ours/fl, "ratio_to_floor")
		})
	}
}

// fill appends n records of size bytes in batches of 512, without fsync.
func fill(b *testing.B, l *segment.Log, n, size int) {
	b.Helper()
	rec := make([]byte, size)
	batch := make([][]byte, 512)
	for i := range batch {
		batch[i] = rec
	}
	for n > 0 {
		k := min(n, len(batch))
		if _, err := l.Append(batch[:k]...); err != nil {
			b.Fatal(err)
		}
		n -= k
	}
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRead: random reads by offset, from the page cache.
func BenchmarkRead(b *testing.B) {
	for _, rs := range recordSizes {
		b.Run(rs.name, func(b *testing.B) {
			l := openBench(b, segment.Config{Sync: segment.SyncNever, SegmentBytes: 8 << 20})
			const n = 200_000
			fill(b, l, n, rs.size)
			rng := rand.New(rand.NewPCG(1, 2))
			b.SetBytes(int64(rs.size))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := l.Read(rng.Uint64N(n)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkRecords: sequential scan with Records, from the page cache.
func BenchmarkRecords(b *testing.B) {
	for _, rs := range recordSizes {
		b.Run(rs.name, func(b *testing.B) {
			l := openBench(b, segment.Config{Sync: segment.SyncNever, SegmentBytes: 8 << 20})
			const n = 200_000
			fill(b, l, n, rs.size)
			b.SetBytes(int64(rs.size))
			b.ReportAllocs()
			b.ResetTimer()
			count := 0
			for count < b.N {
				for _, err := range l.Records(0, uint64(min(n, b.N-count))) {
					if err != nil {
						b.Fatal(err)
					}
					count++
				}
			}
			b.ReportMetric(float64(count)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkOpen measures Open (recovery) of a large log: sealed segments checked through
// their indexes, the active one fully scanned. It builds the log first, so it runs only when
// COMMITLOG_BENCH_OPEN_MIB is set (e.g. 1024 for 1 GiB).
func BenchmarkOpen(b *testing.B) {
	mib, _ := strconv.Atoi(os.Getenv("COMMITLOG_BENCH_OPEN_MIB"))
	if mib <= 0 {
		b.Skip("set COMMITLOG_BENCH_OPEN_MIB=1024 to measure recovery of a 1 GiB log")
	}
	dir, err := os.MkdirTemp(benchDir(), "bench-open")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := segment.Config{Sync: segment.SyncNever}
	l, err := segment.Open(dir, cfg)
	if err != nil {
		b.Fatal(err)
	}
	const size = 1024
	fill(b, l, mib<<20/(size+16), size)
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(mib) << 20)
	b.ResetTimer()
	for b.Loop() {
		l, err := segment.Open(dir, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/open")
}
