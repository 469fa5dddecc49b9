package raft

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus"
)

// Snapshot frame, written by fsmSnapshot.Persist and read by fsm.Restore. Part of the on-disk
// and wire format: do not change without bumping frameVersion.
//
//	+-------+---------+---------------+-----------------+----------------+-------------------+
//	| magic | version | applied index | manifest length | manifest bytes | data (optional)   |
//	| 4 B   | 4 B BE  | 8 B BE        | 8 B BE          | length bytes   | to end of stream  |
//	+-------+---------+---------------+-----------------+----------------+-------------------+
//
// A snapshot taken locally is stored without data: the data is what the StateMachine's
// SnapshotSource streams for the manifest, appended when the snapshot is opened. A snapshot
// received from a leader is stored with its data. The applied index is stored as the last
// entry index the StateMachine had applied when the snapshot was taken; a stream opened from
// the snapshot store carries the snapshot's raft index instead (see snapshotStore.Open).
const (
	frameMagic      = "CLSN"
	frameVersion    = 1
	frameHeaderSize = 24
)

var (
	// ErrBadSnapshot is wrapped when a snapshot stream is not a valid frame.
	ErrBadSnapshot = errors.New("consensus/raft: bad snapshot")
	// ErrManifestTooLarge is wrapped when a manifest exceeds Config.MaxManifestSize.
	ErrManifestTooLarge = errors.New("consensus/raft: snapshot manifest too large")
)

type frameHeader struct {
	applied     uint64
	manifestLen uint64
}

func (h frameHeader) encode() []byte {
	b := make([]byte, frameHeaderSize)
	copy(b, frameMagic)
	binary.BigEndian.PutUint32(b[4:], frameVersion)
	binary.BigEndian.PutUint64(b[8:], h.applied)
	binary.BigEndian.PutUint64(b[16:], h.manifestLen)
	return b
}

// readFrameHeader reads and validates a frame header, bounding the manifest length by max.
func readFrameHeader(r io.Reader, max int) (frameHeader, error) {
	var b [frameHeaderSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return frameHeader{}, fmt.Errorf("%w: read header: %w", ErrBadSnapshot, err)
	}
	if string(b[:4]) != frameMagic {
		return frameHeader{}, fmt.Errorf("%w: bad magic %q", ErrBadSnapshot, b[:4])
	}
	if v := binary.BigEndian.Uint32(b[4:]); v != frameVersion {
		return frameHeader{}, fmt.Errorf("%w: unsupported version %d", ErrBadSnapshot, v)
	}
	h := frameHeader{applied: binary.BigEndian.Uint64(b[8:]), manifestLen: binary.BigEndian.Uint64(b[16:])}
	if h.manifestLen > uint64(max) {
		return frameHeader{}, fmt.Errorf("%w: %d bytes, limit %d", ErrManifestTooLarge, h.manifestLen, max)
	}
	return h, nil
}

// fsm adapts a consensus.StateMachine to hashicorp/raft's BatchingFSM. raft calls ApplyBatch,
// Apply, Snapshot and Restore from its single FSM goroutine.
type fsm struct {
	sm          consensus.StateMachine
	maxManifest int
	// onClusterID is called with the ID of each committed cluster-ID entry (clusterIDFromLog);
	// such entries are the Node's own and never reach the StateMachine.
	onClusterID func(id string)
	// onConfiguration is called with each committed configuration entry (raft hands a
	// BatchingFSM those too), and onRestore with the raft index of each snapshot restored; both
	// may be nil. Set before raft starts.
	onConfiguration func(index uint64, c hraft.Configuration)
	onRestore       func(index uint64)

	applied atomic.Uint64 // last entry index the StateMachine applied (or restored)

	entries []consensus.Entry // reused across batches (FSM goroutine only)
	pos     []int
}

var _ hraft.BatchingFSM = (*fsm)(nil)

// newFSM returns the hraft.FSM that applies to sm; onClusterID (may be nil) receives the
// committed cluster-ID entries.
func newFSM(sm consensus.StateMachine, maxManifest int, onClusterID func(id string)) *fsm {
	return &fsm{sm: sm, maxManifest: maxManifest, onClusterID: onClusterID}
}

func (f *fsm) setApplied(index uint64) { f.applied.Store(index) }

// ApplyBatch hands the command entries of logs to the StateMachine as one batch, and the
// configuration entries to onConfiguration.
func (f *fsm) ApplyBatch(logs []*hraft.Log) []any {
	results := make([]any, len(logs))
	f.entries, f.pos = f.entries[:0], f.pos[:0]
	for i, l := range logs {
		if l.Type == hraft.LogConfiguration && f.onConfiguration != nil {
			f.onConfiguration(l.Index, hraft.DecodeConfiguration(l.Data))
		}
		if l.Type != hraft.LogCommand {
			continue
		}
		if id, ok := clusterIDFromLog(l); ok {
			if f.onClusterID != nil {
				f.onClusterID(id)
			}
			continue
		}
		f.entries = append(f.entries, consensus.Entry{Index: l.Index, Term: l.Term, Data: l.Data})
		f.pos = append(f.pos, i)
	}
	if len(f.entries) > 0 {
		res := f.sm.Apply(f.entries)
		if len(res) != len(f.entries) {
			panic(fmt.Sprintf("consensus/raft: StateMachine.Apply returned %d results for %d entries", len(res), len(f.entries)))
		}
		for j, i := range f.pos {
			results[i] = res[j]
		}
		clear(f.entries) // drop references to log data
	}
	if len(logs) > 0 {
		f.setApplied(logs[len(logs)-1].Index)
	}
	return results
}

// Apply applies one log (used by raft only without batching).
func (f *fsm) Apply(l *hraft.Log) any { return f.ApplyBatch([]*hraft.Log{l})[0] }

// Snapshot captures the StateMachine's snapshot and the index it reflects.
func (f *fsm) Snapshot() (hraft.FSMSnapshot, error) {
	s, err := f.sm.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("consensus/raft: state machine snapshot: %w", err)
	}
	return &fsmSnapshot{s: s, applied: f.applied.Load(), max: f.maxManifest}, nil
}

// Restore parses the frame and hands the manifest and the rest of the stream to the
// StateMachine.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 64<<10)
	h, err := readFrameHeader(br, f.maxManifest)
	if err != nil {
		return err
	}
	manifest := make([]byte, h.manifestLen)
	if _, err := io.ReadFull(br, manifest); err != nil {
		return fmt.Errorf("%w: read manifest: %w", ErrBadSnapshot, err)
	}
	if err := f.sm.Restore(manifest, br); err != nil {
		return fmt.Errorf("consensus/raft: state machine restore: %w", err)
	}
	f.setApplied(h.applied)
	if f.onRestore != nil {
		f.onRestore(h.applied)
	}
	return nil
}

type fsmSnapshot struct {
	s       consensus.Snapshot
	applied uint64
	max     int
}

// limitedBuffer fails writes beyond max bytes.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, fmt.Errorf("%w: limit %d", ErrManifestTooLarge, b.max)
	}
	return b.Buffer.Write(p)
}

func (s *fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	buf := &limitedBuffer{max: s.max}
	if err := s.s.Persist(buf); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("consensus/raft: persist snapshot: %w", err)
	}
	h := frameHeader{applied: s.applied, manifestLen: uint64(buf.Len())}
	if _, err := sink.Write(h.encode()); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("consensus/raft: write snapshot: %w", err)
	}
	if _, err := sink.Write(buf.Bytes()); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("consensus/raft: write snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("consensus/raft: close snapshot: %w", err)
	}
	return nil
}

func (s *fsmSnapshot) Release() { s.s.Release() }
