package fsm

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/storage"
)

// TestRestoreFinalChecks drives each check Restore makes after ingesting a stream that is
// well formed (every frame's checksum holds) but does not match its manifest: the last
// record's CRC, the log's end position, and records written after the snapshot's index. Each
// is refused as corruption, and the FSM is not failed (a retry with good data may come).
func TestRestoreFinalChecks(t *testing.T) {
	src, _ := source(t, 20, 5)
	good := persist(t, src)
	stream := streamOf(t, src, good)
	m, err := decodeManifest(good)
	if err != nil {
		t.Fatal(err)
	}
	if !m.HasLastCRC || !m.HasNextPos || m.Index < 2 {
		t.Fatalf("setup: manifest %+v lacks what the checks compare", m)
	}
	tests := []struct {
		name   string
		change func(*manifest)
		want   string
	}{
		{"last record CRC", func(m *manifest) { m.LastCRC ^= 1 }, "last record does not match the manifest"},
		{"end position", func(m *manifest) { m.NextPos++ }, "the manifest at"},
		{"records after the snapshot's index", func(m *manifest) { m.Index = 1 }, "after the snapshot's 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := m
			tt.change(&bad)
			dst, _ := newMemFSM(t, Config{})
			err := dst.Restore(bad.encode(), bytes.NewReader(stream))
			if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Restore: %v, want ErrCorrupt saying %q", err, tt.want)
			}
			if dst.Err() != nil {
				t.Fatalf("a stream that does not match its manifest failed the FSM: %v", dst.Err())
			}
			// The good manifest with the same stream is accepted afterwards.
			if err := dst.Restore(good, bytes.NewReader(stream)); err != nil {
				t.Fatalf("Restore with the good manifest: %v", err)
			}
		})
	}
}

// TestRestoreKeepDetectsAnotherEndPosition: a local log that holds the snapshot's records
// (the last one's CRC matches) but ends at another byte position than the manifest says is
// refused as corruption rather than kept.
func TestRestoreKeepDetectsAnotherEndPosition(t *testing.T) {
	f, _ := source(t, 10, 2)
	good := persist(t, f)
	m, err := decodeManifest(good)
	if err != nil {
		t.Fatal(err)
	}
	if !m.HasNextPos {
		t.Fatalf("setup: manifest %+v has no end position", m)
	}
	m.NextPos += 7
	if err := f.Restore(m.encode(), unreadable{t}); !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), "the log ends at byte") {
		t.Fatalf("Restore over a log whose end position differs: %v, want ErrCorrupt", err)
	}
	// Its own snapshot, unchanged, is kept without reading any data.
	if err := f.Restore(good, unreadable{t}); err != nil {
		t.Fatalf("Restore of its own snapshot: %v", err)
	}
}
