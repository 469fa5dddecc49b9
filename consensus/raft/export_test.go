package raft

import (
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	wal "github.com/hashicorp/raft-wal"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
)

// ClearClusterID erases the cluster ID in the stable store of a stopped node's Raft data dir,
// as a node from before cluster IDs has it.
func ClearClusterID(dataDir string) error {
	meta := &metadb.BoltMetaDB{}
	defer meta.Close()
	w, err := openWAL(filepath.Join(dataDir, "wal"), nil, meta, wal.DefaultSegmentSize, hclog.NewNullLogger())
	if err != nil {
		return err
	}
	defer w.Close()
	return w.Set(keyClusterID, []byte{})
}

// DropObservations stops raft's observations reaching n's leader watch, as if every one were
// dropped for a full buffer.
func (n *Node) DropObservations() {
	n.leaders.r.DeregisterObserver(n.leaders.observer)
}

// Fault modes of FaultFS.
const (
	FaultNone  = faultNone
	FaultFull  = faultFull
	FaultFsync = faultFsync
)

// FaultFS is a WALFS with a switchable fault (see faultFS).
type FaultFS = faultFS

// NewFaultFS returns the OS file system, without a fault yet.
func NewFaultFS() *FaultFS { return &faultFS{FS: walfs.New()} }

// Set switches the fault mode.
func (f *faultFS) Set(mode int32) { f.mode.Store(mode) }

// Hits returns how many operations failed.
func (f *faultFS) Hits() int { return int(f.hits.Load()) }
