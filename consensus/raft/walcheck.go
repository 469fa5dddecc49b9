package raft

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strings"

	hraft "github.com/hashicorp/raft"
)

// repairHint is what an operator does about a node whose Raft files refuse to start (damaged,
// missing or cut): the other servers hold Raft's log, so the node, identified by id, is removed
// and rejoins empty. It is the tail of each such error of New; server/startup.go's
// corruptRepair says the same of the commit log.
func repairHint(id string) string {
	return fmt.Sprintf("this node cannot restart on this data dir: stop it, remove it from the cluster (commitlog cluster remove %s), wipe its data dir and start it to rejoin", id)
}

// checkWALMeta refuses damage to raft-wal's files that the libraries do not survive as
// errors: a meta database (bbolt) cut below the pages its meta page says it holds makes bbolt
// read its mmap past the end of the file (SIGBUS: the process dies with a fault, naming no
// file); a meta database missing beside the WAL's segment files makes raft-wal create a new
// first segment over the old one ("open …: file exists"), or start with no log at all.
func checkWALMeta(walDir, metaPath, id string) error {
	repair := repairHint(id)
	f, err := os.Open(metaPath)
	if os.IsNotExist(err) {
		names, _ := os.ReadDir(walDir)
		for _, n := range names {
			if strings.HasSuffix(n.Name(), ".wal") {
				return fmt.Errorf("consensus/raft: %s is missing but %s holds the WAL's segments (%s): Raft's term, vote and the list of its log's segments are lost; %s",
					metaPath, walDir, n.Name(), repair)
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("consensus/raft: open %s: %w", metaPath, err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("consensus/raft: stat %s: %w", metaPath, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("consensus/raft: %s is not a regular file (%s); %s", metaPath, fi.Mode().Type(), repair)
	}
	// bbolt's two meta pages (page 0, and page 1 one page size further, as bbolt finds it:
	// 4096 bytes when page 0 is unreadable): the valid one with the higher transaction id says
	// how many pages the file holds. With neither valid bbolt fails with "invalid database",
	// "version mismatch" or "checksum error", naming neither the path nor what to do.
	size := fi.Size()
	m0, ok0 := readBoltMeta(f, 0)
	next := int64(4096)
	if ok0 {
		next = int64(m0.pageSize)
	}
	m1, ok1 := readBoltMeta(f, next)
	var best *boltMeta
	switch {
	case ok0 && (!ok1 || m0.txid >= m1.txid):
		best = &m0
	case ok1:
		best = &m1
	default:
		return fmt.Errorf("consensus/raft: %s is damaged: neither of its two meta pages is valid: Raft's term, vote and the list of its log's segments are lost; %s", metaPath, repair)
	}
	if uint64(size) < best.pgid*uint64(best.pageSize) {
		return fmt.Errorf("consensus/raft: %s is cut: it holds %d bytes, but its meta page says %d pages of %d bytes (%d): Raft's term, vote and the list of its log's segments are damaged; %s",
			metaPath, size, best.pgid, best.pageSize, best.pgid*uint64(best.pageSize), repair)
	}
	return nil
}

// boltMeta is what checkWALMeta reads of a bbolt meta page.
type boltMeta struct {
	pageSize uint32
	pgid     uint64 // pages in the file (high water mark)
	txid     uint64
}

// readBoltMeta reads the bbolt meta page at off: a 16-byte page header, then magic, version,
// page size, flags, root bucket (16 bytes), freelist page, pgid, txid and an FNV-64a checksum
// of the fields before it (bbolt's format, version 2; little endian on the platforms Go
// supports here).
func readBoltMeta(r io.ReaderAt, off int64) (boltMeta, bool) {
	var b [16 + 64]byte
	if _, err := r.ReadAt(b[:], off); err != nil {
		return boltMeta{}, false
	}
	m := b[16:]
	if binary.LittleEndian.Uint32(m[0:]) != 0xED0CDAED || binary.LittleEndian.Uint32(m[4:]) != 2 {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	_, _ = h.Write(m[:56])
	if h.Sum64() != binary.LittleEndian.Uint64(m[56:]) {
		return boltMeta{}, false
	}
	ps := binary.LittleEndian.Uint32(m[8:])
	if ps < 512 || ps > 1<<20 {
		return boltMeta{}, false
	}
	return boltMeta{pageSize: ps, pgid: binary.LittleEndian.Uint64(m[40:]), txid: binary.LittleEndian.Uint64(m[48:])}, true
}

// checkLogReadable reads every entry of Raft's log after the newest snapshot, as
// hashicorp/raft's NewRaft does at start to find the latest configuration, which panics on an
// entry that does not read (a damaged byte in the WAL: "Time.UnmarshalBinary: unsupported
// version", the process dying with a stack trace). It returns an error naming the entry and
// the repair instead. A log whose first entry is past the newest snapshot's index + 1 (the
// snapshots deleted after compaction) made NewRaft panic the same way ("log not found"): it is
// refused too.
func checkLogReadable(logs hraft.LogStore, snaps hraft.SnapshotStore, dataDir, id string) error {
	first, err := logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("consensus/raft: Raft's log in %s: first index: %w", dataDir, err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return fmt.Errorf("consensus/raft: Raft's log in %s: last index: %w", dataDir, err)
	}
	var snapIndex uint64 // the newest snapshot's (List sorts newest first); 0: none
	if metas, err := snaps.List(); err == nil && len(metas) > 0 {
		snapIndex = metas[0].Index
	}
	if last > 0 && first > snapIndex+1 {
		// NewRaft reads entries from the snapshot's index on (from 1 without one): the entries
		// compaction removed below the log's first were in a snapshot that is gone.
		return fmt.Errorf("consensus/raft: Raft's log in %s starts at index %d, but no snapshot in %s covers the entries before it (newest: index %d): "+
			"the snapshots were deleted or lost after the log was compacted, and with them the state and configuration below index %d; %s",
			filepath.Join(dataDir, "wal"), first, filepath.Join(dataDir, "snapshots"), snapIndex, first, repairHint(id))
	}
	first = max(first, snapIndex+1)
	for i := max(first, 1); i <= last; i++ {
		var e hraft.Log
		if err := logs.GetLog(i, &e); err != nil {
			return fmt.Errorf("consensus/raft: Raft's log in %s: entry %d of [%d, %d] does not read (%w): the WAL is damaged; %s",
				filepath.Join(dataDir, "wal"), i, first, last, err, repairHint(id))
		}
	}
	return nil
}
