package raft

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus"
)

// A snapshot received from a leader (InstallSnapshot) is stored whole: frame, manifest and the
// leader's data stream, as large as the state itself. Once the StateMachine has restored it,
// that data is a second copy of what the StateMachine keeps, and FileSnapshotStore would keep
// it until RetainSnapshots newer snapshots push it out (SnapshotThreshold entries later: on a
// quiet cluster, possibly never): a node that caught up on 100 GB used 200 GB. So, right after
// such a restore, replaceReceived stores the state as a local snapshot is stored (frame and
// manifest only, the data served by the StateMachine's SnapshotSource) at the received one's
// index, term and configuration, and only then deletes the received one. Each step leaves the
// node able to start:
//
//   - The StateMachine's own snapshot is taken and persisted first: Persist makes the state it
//     describes durable (consensus.Snapshot), as raft relies on for every local snapshot
//     before compacting its log. Until it has, the received copy is the only durable one.
//   - The new snapshot is written by FileSnapshotStore (temporary directory, fsync of
//     state.bin and meta.json, rename, fsync of the directory). A crash before the rename
//     leaves a temporary directory, removed at the next start, and the received snapshot,
//     restored again at that start and replaced then.
//   - Its size is asked of the StateMachine (SnapshotDataSize, or by reading the stream):
//     one that cannot serve its own manifest is removed again, and the received one stays.
//   - The new snapshot sorts after the received one (same term and index, a later ID), so
//     raft restores it first at the next start. A crash before the received one is removed
//     leaves both: valid, the older reaped by the next local snapshot (RetainSnapshots 2).
//   - The received snapshot is removed last. A transfer to a follower that had opened it reads
//     on (its open files stay readable); one that lists the snapshots afterwards sends the new
//     one, whose stream SnapshotData serves.
//
// A failure at any step is logged and leaves the received snapshot in place: the node works
// as before, with the extra copy.

// receivedOpen is a received snapshot the store opened last: raft restores a snapshot by
// opening it and handing the stream to fsm.Restore, on one goroutine, and fsm.Restore reports
// the index it restored (the stream's frame carries the snapshot's index; see Open).
type receivedOpen struct {
	meta hraft.SnapshotMeta
}

// noteOpen records which snapshot was opened last at its index: received (stored with data)
// or not. Called by Open.
func (s *snapshotStore) noteOpen(meta *hraft.SnapshotMeta, received bool) {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	if !received {
		s.lastReceived = nil
		return
	}
	s.lastReceived = &receivedOpen{meta: *meta}
}

// takeReceived returns the received snapshot opened last if it is at index, and forgets it.
func (s *snapshotStore) takeReceived(index uint64) (hraft.SnapshotMeta, bool) {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	r := s.lastReceived
	s.lastReceived = nil
	if r == nil || r.meta.Index != index {
		return hraft.SnapshotMeta{}, false
	}
	return r.meta, true
}

// afterRestore is called from the FSM goroutine once the StateMachine restored the snapshot
// at index (fsm.Restore, through Node's onRestore). If that snapshot was received from a
// leader, it is replaced by a manifest-only one (replaceReceived); failures are logged.
func (s *snapshotStore) afterRestore(index uint64) {
	meta, ok := s.takeReceived(index)
	if !ok || s.dir == "" {
		return
	}
	if _, ok := s.sm.(consensus.SnapshotSource); !ok {
		return // stored whole either way
	}
	if err := s.replaceReceived(meta); err != nil {
		s.log().Warn("cannot replace the snapshot received from the leader by one served from the state machine's data: "+
			"it stays, with its copy of the data, until newer snapshots replace it", "id", meta.ID, "index", meta.Index, "err", err)
	}
}

// replaceReceived stores the StateMachine's snapshot, which must describe the state restored
// from the received snapshot meta (nothing applied since), as a manifest-only snapshot at
// meta's index, term and configuration, then removes the received one. See above.
func (s *snapshotStore) replaceReceived(meta hraft.SnapshotMeta) error {
	src := s.sm.(consensus.SnapshotSource)
	snap, err := s.sm.Snapshot()
	if err != nil {
		return fmt.Errorf("state machine snapshot: %w", err)
	}
	defer snap.Release()
	buf := &limitedBuffer{max: s.maxManifest}
	if err := snap.Persist(buf); err != nil { // makes the restored state durable
		return fmt.Errorf("persist state machine snapshot: %w", err)
	}
	manifest := buf.Bytes()
	if err := replaceStep("persisted"); err != nil {
		return err
	}
	// The StateMachine must serve the manifest before the received data may go.
	if _, err := s.dataSize(src, manifest); err != nil {
		return fmt.Errorf("the state machine cannot serve its own snapshot: %w", err)
	}
	var sink hraft.SnapshotSink
	for try := 0; ; try++ {
		if sink, err = s.Create(meta.Version, meta.Index, meta.Term, meta.Configuration, meta.ConfigurationIndex, peerEncoder{}); err != nil {
			return fmt.Errorf("create snapshot: %w", err)
		}
		if sink.ID() > meta.ID {
			break
		}
		// Made within the same millisecond as the received one (an ID ends in the time in
		// ms): it would not sort after it, or would take its name. Once the clock has moved
		// on it does (a clock stepped back may take longer: give up, keeping the received).
		_ = sink.Cancel()
		if try == 3 {
			return fmt.Errorf("new snapshot %s does not sort after %s", sink.ID(), meta.ID)
		}
		time.Sleep(time.Millisecond)
	}
	h := frameHeader{applied: meta.Index, manifestLen: uint64(len(manifest))}
	if _, err := sink.Write(h.encode()); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	if _, err := sink.Write(manifest); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("close snapshot: %w", err)
	}
	if err := replaceStep("created"); err != nil {
		return err
	}
	if err := s.removeSnapshot(meta.ID); err != nil {
		return fmt.Errorf("remove the received snapshot (%s replaces it): %w", sink.ID(), err)
	}
	s.log().Info("replaced the snapshot received from the leader by one served from the state machine's data",
		"received", meta.ID, "bytes_freed", meta.Size, "snapshot", sink.ID())
	return nil
}

// replaceStep is called by replaceReceived after each step that changes what is durable; an
// error stops it there. Tests use it to stop a replacement as a crash would.
var replaceStep = func(string) error { return nil }

// removeSnapshot removes the snapshot directory id and syncs the snapshots directory.
func (s *snapshotStore) removeSnapshot(id string) error {
	if err := os.RemoveAll(filepath.Join(s.dir, id)); err != nil {
		return err
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// peerEncoder is the Transport FileSnapshotStore.Create needs to fill the legacy Peers field of
// a snapshot's metadata (read only for version 0 snapshots): hashicorp/raft's network and
// in-memory transports encode a peer as its address, as this does. Only EncodePeer is used.
type peerEncoder struct{ hraft.Transport }

func (peerEncoder) EncodePeer(_ hraft.ServerID, addr hraft.ServerAddress) []byte { return []byte(addr) }
