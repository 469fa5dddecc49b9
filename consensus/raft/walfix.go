package raft

import (
	"encoding/binary"
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
//
// It also opens by scanning a sealed segment whose index frame does not list exactly its
// entries: a seal torn by a full disk that an earlier version committed to the meta store
// (see completeRotation), whose reads all failed ("failed to read segment index: EOF", a panic in
// hashicorp/raft) at every restart.
type walFiler struct {
	*segment.Filer
	dir string
	vfs types.VFS
}

var _ types.SegmentFiler = walFiler{}

// Open implements types.SegmentFiler.
func (f walFiler) Open(info types.SegmentInfo) (types.SegmentReader, error) {
	if info.IndexStart == 0 && !info.SealTime.IsZero() {
		return f.RecoverTail(info)
	}
	if !info.SealTime.IsZero() && !indexWhole(f.dir, f.vfs, info, info.IndexStart, info.MaxIndex) {
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
	filer := walFiler{segment.NewFiler(filepath.Clean(dir), vfs), filepath.Clean(dir), vfs}
	if err := completeRotation(dir, vfs, filer, meta, segmentSize, logger); err != nil {
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
//
// Only a seal that committed is completed. On a full disk the append that fills the segment may
// write its entries and the start of the index frame, then fail before its commit frame:
// raft-wal's recovery scan still reports such a tail sealed (it takes any index frame it
// meets), at an index block that is not whole on disk, and a segment sealed there fails every
// read ("failed to read segment index: EOF"). A seal committed only if the index frame lists
// exactly the entries the recovered tail holds (a torn seal lists the failed batch's entries
// too, which recovery drops); otherwise the index frame's header is zeroed, so that raft-wal
// recovers the segment as an open tail ending at its last commit, and appends go on there.
func completeRotation(dir string, vfs types.VFS, filer types.SegmentFiler, meta types.MetaStore, segmentSize int, logger hclog.Logger) error {
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
	if committed, err := sealCommitted(dir, vfs, tail, indexStart, last, logger); err != nil || !committed {
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

// sealCommitted reports whether the index frame at indexStart (the start of its offsets) in
// the tail segment lists exactly its entries up to last; if not, the seal was torn by a failed
// write, and its frame header is zeroed and fsynced (see completeRotation).
func sealCommitted(dir string, vfs types.VFS, tail types.SegmentInfo, indexStart, last uint64, logger hclog.Logger) (bool, error) {
	const frameHeaderLen = 8 // raft-wal's segment format: type, 3 reserved bytes, length
	if indexStart < frameHeaderLen {
		return false, fmt.Errorf("consensus/raft: wal segment %d sealed at offset %d", tail.ID, indexStart)
	}
	if indexWhole(dir, vfs, tail, indexStart, last) {
		return true, nil
	}
	name := segment.FileName(tail)
	logger.Warn("dropping a segment seal whose write failed (torn index frame)", "segment", tail.ID, "last_index", last)
	wf, err := vfs.OpenWriter(dir, name)
	if err != nil {
		return false, err
	}
	defer wf.Close()
	if _, err := wf.WriteAt(make([]byte, frameHeaderLen), int64(indexStart-frameHeaderLen)); err != nil {
		return false, fmt.Errorf("consensus/raft: drop a torn seal of wal segment %d: %w", tail.ID, err)
	}
	if err := wf.Sync(); err != nil {
		return false, fmt.Errorf("consensus/raft: drop a torn seal of wal segment %d: %w", tail.ID, err)
	}
	return false, nil
}

// indexWhole reports whether segment info's file holds, at indexStart (the start of its
// offsets), a whole index frame listing exactly its entries from its base index to last.
func indexWhole(dir string, vfs types.VFS, info types.SegmentInfo, indexStart, last uint64) bool {
	const frameHeaderLen, frameIndex = 8, 2 // raft-wal's segment format
	if indexStart < frameHeaderLen || last < info.BaseIndex {
		return false
	}
	rf, err := vfs.OpenReader(dir, segment.FileName(info))
	if err != nil {
		return false
	}
	defer rf.Close()
	var h [frameHeaderLen]byte
	if _, err := rf.ReadAt(h[:], int64(indexStart-frameHeaderLen)); err != nil || h[0] != frameIndex {
		return false
	}
	n := uint64(binary.LittleEndian.Uint32(h[4:8]))
	if n/4 != last-info.BaseIndex+1 {
		return false
	}
	var tailOfs [4]byte // the last offset of the index is on disk
	_, err = rf.ReadAt(tailOfs[:], int64(indexStart+n-4))
	return err == nil
}
