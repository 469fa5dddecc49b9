package raft

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// walFiler works around hashicorp/raft-wal#31, fixed upstream after v0.4.0 (the newest
// release the module proxy serves): a tail truncation (raft clearing a follower's conflicting
// suffix, e.g. after it was a leader killed with uncommitted entries) marks the old tail segment
// sealed in the meta store without writing the segment's index block, and the next Open then
// fails with "sealed segment has no index block" — a node could not restart after an ordinary
// crash. A sealed segment without an index block is opened the way an unsealed tail is
// recovered: by scanning its frames (the WAL only reads the entries its meta store says the
// segment holds).
type walFiler struct {
	*segment.Filer
}

var _ types.SegmentFiler = walFiler{}

// Open implements types.SegmentFiler.
func (f walFiler) Open(info types.SegmentInfo) (types.SegmentReader, error) {
	if info.IndexStart == 0 && !info.SealTime.IsZero() {
		return f.RecoverTail(info)
	}
	return f.Filer.Open(info)
}

// openWAL opens raft-wal in dir with the workarounds of this file, its segment files on vfs (nil:
// the operating system's, new files made private). meta must be closed by the caller after the
// WAL.
func openWAL(dir string, vfs types.VFS, meta types.MetaStore, segmentSize int, logger hclog.Logger) (*wal.WAL, error) {
	if vfs == nil {
		vfs = privateWALFS{fs.New()}
	}
	filer := walFiler{segment.NewFiler(filepath.Clean(dir), vfs)}
	if err := completeRotation(dir, filer, meta, segmentSize, logger); err != nil {
		return nil, err
	}
	return wal.Open(dir,
		wal.WithLogger(logger),
		wal.WithMetaStore(meta),
		wal.WithSegmentSize(segmentSize),
		wal.WithSegmentFiler(filer),
	)
}

// completeRotation finishes a segment rotation that a crash interrupted, a gap of raft-wal
// v0.4.0: the append that fills the tail segment writes its index block too (sealing the file)
// and is fsynced; the rotation that follows — marking the segment sealed in the meta store and
// starting a new tail — runs asynchronously, after StoreLogs returned. A crash in between
// (kill -9 or a power failure) leaves a tail that the meta store says is open while its file
// is sealed; raft-wal reopens it as its tail and then refuses every append with "segment is
// sealed", so the node can never write Raft's log again. completeRotation commits what the
// rotation would have: the tail sealed at its last entry, and a new empty tail after it (its
// file is created by wal.Open, as after a crash that lost a new tail's file).
func completeRotation(dir string, filer types.SegmentFiler, meta types.MetaStore, segmentSize int, logger hclog.Logger) error {
	st, err := meta.Load(dir)
	if err != nil || len(st.Segments) == 0 {
		return err // wal.Open loads it again and reports the error
	}
	tail := st.Segments[len(st.Segments)-1]
	if !tail.SealTime.IsZero() {
		return nil
	}
	w, err := filer.RecoverTail(tail)
	if err != nil {
		return nil // a lost tail file or a bad one: wal.Open handles or reports it
	}
	sealed, indexStart, err := w.Sealed()
	last := w.LastIndex()
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil || !sealed {
		return err
	}
	now := time.Now()
	tail.SealTime, tail.MaxIndex, tail.IndexStart = now, last, indexStart
	st.Segments[len(st.Segments)-1] = tail
	st.Segments = append(st.Segments, types.SegmentInfo{
		ID: st.NextSegmentID, BaseIndex: last + 1, MinIndex: last + 1,
		SizeLimit: uint32(segmentSize), Codec: wal.CodecBinaryV1, CreateTime: now,
	})
	st.NextSegmentID++
	logger.Warn("completing a segment rotation a crash interrupted", "segment", tail.ID, "last_index", last)
	if err := meta.CommitState(st); err != nil {
		return fmt.Errorf("consensus/raft: complete an interrupted wal segment rotation: %w", err)
	}
	return nil
}
