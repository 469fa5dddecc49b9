package segment_test

import (
	"fmt"
	"testing"

	"go.uber.org/goleak"

	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/storagetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestConformance runs the storage.Log suite against several configurations: every sync
// policy, and segments small enough that the suite's logs roll many times.
func TestConformance(t *testing.T) {
	configs := []segment.Config{
		{Sync: segment.SyncAlways, SegmentBytes: 512},
		{Sync: segment.SyncNever},
		{Sync: segment.SyncInterval, SyncInterval: 1e6, SegmentBytes: 4096},
	}
	for _, cfg := range configs {
		cfg.MaxRecordBytes = 1024
		name := fmt.Sprintf("%v/segment=%d", cfg.Sync, cfg.SegmentBytes)
		t.Run(name, func(t *testing.T) {
			storagetest.Run(t, storagetest.Harness{
				New: func(t *testing.T) storage.Log {
					l, err := segment.Open(t.TempDir(), cfg)
					if err != nil {
						t.Fatal(err)
					}
					return l
				},
				MaxRecordBytes: cfg.MaxRecordBytes,
				Reopen: func(t *testing.T, l storage.Log) storage.Log {
					dir := l.(*segment.Log).Dir()
					if err := l.Close(); err != nil {
						t.Fatalf("Close: %v", err)
					}
					l2, err := segment.Open(dir, cfg)
					if err != nil {
						t.Fatalf("reopen: %v", err)
					}
					return l2
				},
			})
		})
	}
}
