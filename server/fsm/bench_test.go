package fsm

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/memory"
	"github.com/commitlog-go/commitlog/storage/segment"
)

// benchLogs opens the storage engines the benchmarks compare.
var benchLogs = []struct {
	name string
	open func(b *testing.B) storage.Log
}{
	{"memory", func(b *testing.B) storage.Log { return newMemLog(b, memory.Config{}) }},
	{"segment", func(b *testing.B) storage.Log {
		l, err := segment.Open(b.TempDir(), segment.Config{Sync: segment.SyncNever})
		if err != nil {
			b.Fatal(err)
		}
		return l
	}},
}

// BenchmarkApply measures Apply with 64 entries per call (what raft's batching hands over),
// each a batch of records of 100 B values. Reported: records/s and value bytes/s.
func BenchmarkApply(b *testing.B) {
	for _, bl := range benchLogs {
		for _, perEntry := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("%s/records=%d", bl.name, perEntry), func(b *testing.B) {
				log := bl.open(b)
				defer log.Close()
				f, err := New(Config{Log: log})
				if err != nil {
					b.Fatal(err)
				}
				recs := make([]AppendRecord, perEntry)
				for i := range recs {
					recs[i] = AppendRecord{Value: bytes.Repeat([]byte{'x'}, 100), Type: 1}
				}
				data, err := EncodeAppend(Limits{}, recs...)
				if err != nil {
					b.Fatal(err)
				}
				const perCall = 64
				entries := make([]consensus.Entry, perCall)
				b.SetBytes(int64(perCall * perEntry * 100))
				idx := uint64(0)
				b.ResetTimer()
				for b.Loop() {
					for i := range entries {
						idx++
						entries[i] = consensus.Entry{Index: idx, Term: 1, Data: data}
					}
					for _, r := range f.Apply(entries) {
						if _, ok := r.(AppendResult); !ok {
							b.Fatalf("result %v", r)
						}
					}
				}
				b.ReportMetric(float64(b.N*perCall*perEntry)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// fillFSM applies n records of size-byte values to f, 1000 per entry.
func fillFSM(b *testing.B, f *FSM, n, size int) {
	b.Helper()
	value := bytes.Repeat([]byte{'v'}, size)
	idx := uint64(1)
	for i := 0; i < n; i += 1000 {
		recs := make([]AppendRecord, min(1000, n-i))
		for k := range recs {
			recs[k] = AppendRecord{Value: value}
		}
		data, err := EncodeAppend(Limits{MaxCommandBytes: MaxCommandBytes, MaxBatchRecords: MaxBatchRecords}, recs...)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := f.Apply([]consensus.Entry{{Index: idx, Term: 1, Data: data}})[0].(AppendResult); !ok {
			b.Fatal("apply failed")
		}
		idx++
	}
}

// BenchmarkSnapshotTransfer measures streaming a 20k-record (1 KiB values) log out of one FSM
// (SnapshotData) and ingesting it into an empty one (Restore). Reported bytes are the stream's.
func BenchmarkSnapshotTransfer(b *testing.B) {
	for _, bl := range benchLogs {
		b.Run(bl.name, func(b *testing.B) {
			srcLog := bl.open(b)
			defer srcLog.Close()
			src, err := New(Config{Log: srcLog})
			if err != nil {
				b.Fatal(err)
			}
			fillFSM(b, src, 20_000, 1024)
			s, err := src.Snapshot()
			if err != nil {
				b.Fatal(err)
			}
			var m bytes.Buffer
			if err := s.Persist(&m); err != nil {
				b.Fatal(err)
			}
			size, err := src.SnapshotDataSize(m.Bytes())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			b.Run("stream", func(b *testing.B) {
				b.SetBytes(size)
				for b.Loop() {
					rc, err := src.SnapshotData(m.Bytes())
					if err != nil {
						b.Fatal(err)
					}
					if n, err := io.Copy(io.Discard, rc); err != nil || n != size {
						b.Fatalf("streamed %d bytes, %v", n, err)
					}
					_ = rc.Close()
				}
			})
			b.Run("stream+restore", func(b *testing.B) {
				b.SetBytes(size)
				for b.Loop() {
					b.StopTimer()
					dstLog := bl.open(b)
					dst, err := New(Config{Log: dstLog})
					if err != nil {
						b.Fatal(err)
					}
					rc, err := src.SnapshotData(m.Bytes())
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					if err := dst.Restore(m.Bytes(), rc); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					_ = rc.Close()
					_ = dstLog.Close()
					b.StartTimer()
				}
			})
		})
	}
}

// BenchmarkRecords measures reading the log back through the FSM's iterator (100 B values).
func BenchmarkRecords(b *testing.B) {
	for _, bl := range benchLogs {
		b.Run(bl.name, func(b *testing.B) {
			log := bl.open(b)
			defer log.Close()
			f, err := New(Config{Log: log})
			if err != nil {
				b.Fatal(err)
			}
			const n = 100_000
			fillFSM(b, f, n, 100)
			b.SetBytes(n * 100)
			for b.Loop() {
				got := 0
				for _, err := range f.Records(b.Context(), 0) {
					if err != nil {
						b.Fatal(err)
					}
					if got++; got == n {
						break
					}
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

func BenchmarkDecodeCommand(b *testing.B) {
	recs := make([]AppendRecord, 256)
	for i := range recs {
		recs[i] = AppendRecord{Value: bytes.Repeat([]byte{'x'}, 100)}
	}
	data, err := EncodeAppend(Limits{}, recs...)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeCommand(data); err != nil {
			b.Fatal(err)
		}
	}
}
