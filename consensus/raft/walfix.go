package raft

import (
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
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

// openWAL opens raft-wal in dir with the index-block workaround. meta must be closed by the
// caller after the WAL.
func openWAL(dir string, meta *metadb.BoltMetaDB, segmentSize int, logger hclog.Logger) (*wal.WAL, error) {
	return wal.Open(dir,
		wal.WithLogger(logger),
		wal.WithMetaStore(meta),
		wal.WithSegmentSize(segmentSize),
		wal.WithSegmentFiler(walFiler{segment.NewFiler(filepath.Clean(dir), privateWALFS{fs.New()})}),
	)
}
