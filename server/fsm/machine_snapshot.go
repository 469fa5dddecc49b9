package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/memory"
)

// Machine snapshot manifest, what a Machine's Snapshot.Persist writes. All integers
// big-endian; part of the on-disk and wire format: a layout must not be changed; a new layout
// gets a new version. A Machine also restores the single-log manifests of servers before
// topics ("CLSM", snapshot_format.go): they describe the default topic's partition 0 alone.
//
//	+------------+--------+------------+---------------+---------------+-------------+
//	| magic CLST | version| reserved=0 | applied index | applied term  | meta length |
//	|  4 bytes   | u8 = 1 |  3 bytes   |    uint64     |    uint64     |   uint32    |
//	+------------+--------+------------+---------------+---------------+-------------+
//	+----------------------+-----------------+----------------------------------+----------+
//	| metadata (JSON:      | partition count | per partition: topic ID [16],    | CRC-32C  |
//	| topics, producers)   |     uint32      | partition u32, manifest [64]     | uint32   |
//	+----------------------+-----------------+----------------------------------+----------+
//
// Each partition's manifest is a version-2 single-log manifest (snapshot_format.go). The
// default topic's partition 0 comes first, then the others by topic ID and partition. The
// CRC-32C covers every byte before it.
//
// The data stream is the concatenation of each partition's single-log data stream
// (snapshot_format.go), in the manifest's order. A partition whose log already holds what its
// manifest names reads nothing of it; when every partition does (a node restoring its own
// snapshot at startup), the stream is not opened at all.
const (
	machineMagic      = "CLST"
	machineVersion    = 1
	machineHeaderLen  = 4 + 4 + 8 + 8 + 4
	machinePartLen    = targetLen + manifestLen
	machineCRCLen     = 4
	legacyMagic       = manifestMagic
	restoreBufferSize = 256 << 10
)

// MaxManifestBytes is the largest snapshot manifest a Machine is expected to write, for the
// consensus' bound on manifests (consensus/raft's MaxManifestSize, 8 MiB by default, is too
// small): the metadata holds the producer table, up to DefaultMaxProducers producers of ~185
// bytes each for one partition (~18 MiB; more for producers that write several partitions),
// and the consumer groups' committed offsets, up to MaxOffsetMetadata bytes each. A snapshot
// whose manifest is larger fails to persist, and keeps failing: the Raft log is never
// compacted, and a restart replays all of it.
const MaxManifestBytes = 256 << 20

type machineManifest struct {
	Index, Term uint64
	Meta        []byte
	Parts       []partManifest
}

type partManifest struct {
	Target Target
	M      manifest
}

func (mm machineManifest) encode() []byte {
	b := make([]byte, 0, machineHeaderLen+len(mm.Meta)+4+len(mm.Parts)*machinePartLen+machineCRCLen)
	b = append(b, machineMagic...)
	b = append(b, machineVersion, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, mm.Index)
	b = binary.BigEndian.AppendUint64(b, mm.Term)
	b = binary.BigEndian.AppendUint32(b, uint32(len(mm.Meta)))
	b = append(b, mm.Meta...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(mm.Parts)))
	for _, p := range mm.Parts {
		b = appendTarget(b, p.Target)
		b = append(b, p.M.encode()...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeMachineManifest(b []byte) (machineManifest, error) {
	bad := func(format string, args ...any) (machineManifest, error) {
		return machineManifest{}, fmt.Errorf("%w: %s", errBadManifest, fmt.Sprintf(format, args...))
	}
	if len(b) < machineHeaderLen+4+machineCRCLen || string(b[:4]) != machineMagic {
		return bad("%d bytes, bad magic or too short", len(b))
	}
	if b[4] != machineVersion || b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return bad("unknown version %d or reserved bytes set", b[4])
	}
	body, sum := b[:len(b)-machineCRCLen], binary.BigEndian.Uint32(b[len(b)-machineCRCLen:])
	if crc32.Checksum(body, castagnoli) != sum {
		return bad("checksum mismatch")
	}
	mm := machineManifest{Index: binary.BigEndian.Uint64(b[8:]), Term: binary.BigEndian.Uint64(b[16:])}
	metaLen := binary.BigEndian.Uint32(b[24:])
	rest := body[machineHeaderLen:]
	if uint64(metaLen) > uint64(len(rest)) {
		return bad("metadata of %d bytes with %d left", metaLen, len(rest))
	}
	mm.Meta, rest = rest[:metaLen], rest[metaLen:]
	if len(rest) < 4 {
		return bad("no partition count")
	}
	n := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if uint64(n)*machinePartLen != uint64(len(rest)) || n > MaxPartitions+1 {
		return bad("%d partitions in %d bytes", n, len(rest))
	}
	mm.Parts = make([]partManifest, n)
	for i := range mm.Parts {
		mm.Parts[i].Target = readTarget(rest)
		m, err := decodeManifest(rest[targetLen:machinePartLen])
		if err != nil {
			return machineManifest{}, fmt.Errorf("partition %d: %w", i, err)
		}
		mm.Parts[i].M = m
		rest = rest[machinePartLen:]
	}
	return mm, nil
}

// orderedParts returns every partition: the default topic's partition 0 first, then by topic
// ID and partition.
func (m *Machine) orderedParts() []*partition {
	var out []*partition
	for _, e := range m.cat.Load().byID {
		out = append(out, e.parts...)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].target, out[j].target
		if c := bytes.Compare(a.Topic[:], b.Topic[:]); c != 0 {
			return c < 0
		}
		return a.Partition < b.Partition
	})
	return out
}

// machineSnapshot is a Machine's consensus.Snapshot: the manifest, the logs to sync, and the
// deletion markers it counts for once persisted (see collectMarkers).
type machineSnapshot struct {
	m        *Machine
	logs     []storage.Log
	manifest []byte
	index    uint64
	markers  map[string]bool
}

// Persist syncs every partition's log, then writes the manifest.
func (s *machineSnapshot) Persist(w io.Writer) error {
	for _, l := range s.logs {
		if err := l.Sync(); err != nil && !errors.Is(err, storage.ErrClosed) {
			return fmt.Errorf("fsm: persist snapshot at index %d: sync log: %w", s.index, err)
		}
	}
	if _, err := w.Write(s.manifest); err != nil {
		return fmt.Errorf("fsm: persist snapshot at index %d: %w", s.index, err)
	}
	s.m.collectMarkers(s.markers)
	return nil
}

// Release implements consensus.Snapshot.
func (s *machineSnapshot) Release() {}

// Snapshot implements consensus.StateMachine: the metadata and every partition's manifest,
// reading no record. It also removes the directories of topics the metadata no longer names.
// Errors: the sticky ErrFailed.
func (m *Machine) Snapshot() (consensus.Snapshot, error) {
	if err := m.Err(); err != nil {
		return nil, err
	}
	for _, p := range m.orderedParts() {
		if p.hollow {
			return nil, errors.New("fsm: snapshot: a topic deleted after the restored snapshot is still being replayed; try later")
		}
	}
	markers := m.removeUnknown()
	meta, err := m.metaJSON()
	if err != nil {
		return nil, fmt.Errorf("fsm: snapshot metadata: %w", err)
	}
	idx, term := m.applied.Load(), m.term
	mm := machineManifest{Index: idx, Term: term, Meta: meta}
	s := &machineSnapshot{m: m, index: idx, markers: markers}
	for _, p := range m.orderedParts() {
		if err := p.Err(); err != nil {
			return nil, m.fail(err)
		}
		// A partition restarted ahead of the machine (its log holds entries the consensus is
		// replaying) is captured as it is, at its own index.
		pi, pt := idx, term
		if a := p.applied.Load(); a > idx {
			pi, pt = a, p.term
		}
		mm.Parts = append(mm.Parts, partManifest{Target: p.target, M: p.manifestAt(pi, pt)})
		s.logs = append(s.logs, p.log)
	}
	s.manifest = mm.encode()
	return s, nil
}

// sections returns the partitions a manifest names with their manifests.
func (m *Machine) sections(manifestBytes []byte) ([]*partition, []partManifest, error) {
	mm, err := decodeMachineManifest(manifestBytes)
	if err != nil {
		return nil, nil, err
	}
	ps := make([]*partition, len(mm.Parts))
	for i, pm := range mm.Parts {
		p, err := m.lookup(pm.Target)
		if err != nil {
			return nil, nil, fmt.Errorf("fsm: snapshot data for index %d: %w", mm.Index, err)
		}
		ps[i] = p
	}
	return ps, mm.Parts, nil
}

// SnapshotData implements consensus.SnapshotSource: the concatenation of every partition's
// data stream (see FSM.SnapshotData), each read lazily. Errors: as FSM.SnapshotData's;
// ErrUnknownTopic or ErrUnknownPartition (wrapped) for a partition deleted since the
// snapshot (the transfer then fails and the consensus takes a newer one).
func (m *Machine) SnapshotData(manifestBytes []byte) (io.ReadCloser, error) {
	if len(manifestBytes) >= 4 && string(manifestBytes[:4]) == legacyMagic {
		return m.def.SnapshotData(manifestBytes)
	}
	ps, pms, err := m.sections(manifestBytes)
	if err != nil {
		return nil, err
	}
	mr := &multiReader{}
	for i, p := range ps {
		r, err := p.SnapshotData(pms[i].M.encode())
		if err != nil {
			_ = mr.Close()
			return nil, err
		}
		mr.rs = append(mr.rs, r)
	}
	return mr, nil
}

// SnapshotDataSize implements consensus.SnapshotSizer: the sum of the partitions' sizes.
func (m *Machine) SnapshotDataSize(manifestBytes []byte) (int64, error) {
	if len(manifestBytes) >= 4 && string(manifestBytes[:4]) == legacyMagic {
		return m.def.SnapshotDataSize(manifestBytes)
	}
	ps, pms, err := m.sections(manifestBytes)
	if err != nil {
		return 0, err
	}
	var total int64
	for i, p := range ps {
		n, err := p.SnapshotDataSize(pms[i].M.encode())
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// multiReader reads its readers one after the other and closes them all.
type multiReader struct {
	rs []io.ReadCloser
	i  int
}

func (r *multiReader) Read(p []byte) (int, error) {
	for r.i < len(r.rs) {
		n, err := r.rs[r.i].Read(p)
		if errors.Is(err, io.EOF) {
			r.i++
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
	return 0, io.EOF
}

func (r *multiReader) Close() error {
	var errs []error
	for _, c := range r.rs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Restore implements consensus.StateMachine. A single-log manifest (servers before topics)
// restores the default topic's partition 0 and leaves no other topic. A machine manifest sets
// the metadata (topics missing locally are created, topics the snapshot lacks are deleted)
// and restores every partition as FSM.Restore does: a partition whose log holds its manifest
// is kept and reads nothing; when all do, data is not read at all. The files of topics deleted
// at or before the snapshot that this node's catalog did not name (it was down, and restarted
// with the default topic only) are removed too (removeDeletedBefore).
//
// Errors: as FSM.Restore's; a bad manifest or metadata (wrapping storage.ErrCorrupt).
func (m *Machine) Restore(manifestBytes []byte, data io.Reader) error {
	if err := m.Err(); err != nil {
		return err
	}
	if len(manifestBytes) >= 4 && string(manifestBytes[:4]) == legacyMagic {
		lm, err := decodeManifest(manifestBytes)
		if err != nil {
			return fmt.Errorf("fsm: restore: %w", err)
		}
		if err := m.def.Restore(manifestBytes, data); err != nil {
			if ferr := m.def.Err(); ferr != nil {
				m.fail(ferr)
			}
			return err
		}
		if err := m.reconcile(metaState{Topics: []Topic{{Name: DefaultTopic, Partitions: 1}}}); err != nil {
			return err
		}
		m.ownersMu.Lock()
		m.producers = producerTable{}
		m.ownersMu.Unlock()
		m.nProducers.Store(0)
		m.restoreGroups(nil)
		m.applied.Store(lm.Index)
		m.term = lm.Term
		return nil
	}
	mm, err := decodeMachineManifest(manifestBytes)
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	var st metaState
	if err := decodeStrict(mm.Meta, &st); err != nil {
		return fmt.Errorf("fsm: restore snapshot at index %d: metadata: %w: %w", mm.Index, storage.ErrCorrupt, err)
	}
	if err := m.reconcile(st); err != nil {
		return err
	}
	ps := make([]*partition, len(mm.Parts))
	allHold := true
	for i, pm := range mm.Parts {
		p, err := m.lookup(pm.Target)
		if err != nil {
			return fmt.Errorf("fsm: restore snapshot at index %d: the manifest names a partition its metadata lacks: %w: %w", mm.Index, storage.ErrCorrupt, err)
		}
		ps[i] = p
		allHold = allHold && (p.hollow || p.holds(pm.M))
	}
	var br *bufio.Reader
	if !allHold {
		if data == nil {
			return fmt.Errorf("fsm: restore snapshot at index %d: no data for the partitions this log lacks: %w", mm.Index, storage.ErrOutOfRange)
		}
		br = bufio.NewReaderSize(data, restoreBufferSize)
	}
	for i, pm := range mm.Parts {
		p, enc := ps[i], pm.M.encode()
		if p.hollow || p.holds(pm.M) {
			if !p.hollow {
				if err := p.Restore(enc, nil); err != nil {
					return m.partErr(p, err)
				}
			}
			if br != nil {
				if err := drainSection(br); err != nil {
					return fmt.Errorf("fsm: restore snapshot at index %d: partition %s/%d: %w", mm.Index, pm.Target.Topic, pm.Target.Partition, err)
				}
			}
			continue
		}
		if err := p.Restore(enc, br); err != nil {
			return m.partErr(p, err)
		}
	}
	// A snapshot written before deletes dropped a topic's producer windows may hold those of
	// topics deleted since (see producerTable.dropTopic): they go now.
	known := make(map[TopicID]bool, len(st.Topics))
	for _, t := range st.Topics {
		known[t.ID] = true
	}
	st.Producers.dropTopicsExcept(known)
	m.ownersMu.Lock()
	m.producers = st.Producers
	m.ownersMu.Unlock()
	m.nProducers.Store(int64(m.producers.Len()))
	m.restoreGroups(st.Groups)
	m.removeDeletedBefore(mm.Index)
	m.applied.Store(mm.Index)
	m.term = mm.Term
	m.logger.Debug("restored snapshot", "index", mm.Index, "partitions", len(mm.Parts), "read_data", !allHold)
	return nil
}

func (m *Machine) partErr(p *partition, err error) error {
	if ferr := p.Err(); ferr != nil {
		return m.fail(ferr)
	}
	return err
}

// reconcile makes the catalog st's: topics it lacks are deleted, the others opened, created
// or extended.
func (m *Machine) reconcile(st metaState) error {
	cat := m.cat.Load()
	keep := map[TopicID]bool{}
	var entries []*topicEntry
	sawDefault := false
	for _, t := range st.Topics {
		isDefault := t.ID == (TopicID{})
		if isDefault != (t.Name == DefaultTopic) || t.Partitions < 1 || t.Partitions > MaxPartitionsPerTopic || keep[t.ID] {
			return fmt.Errorf("fsm: restore: bad topic %q (ID %s, %d partitions) in the snapshot metadata: %w", t.Name, t.ID, t.Partitions, storage.ErrCorrupt)
		}
		sawDefault = sawDefault || isDefault
		keep[t.ID] = true
		e := &topicEntry{Topic: t}
		if old := cat.byID[t.ID]; old == nil && !isDefault && m.deletedMarker(t.ID) {
			// Deleted after this snapshot (a restart replays the delete): nothing to open.
			for p := range t.Partitions {
				hollow, err := memory.New(memory.Config{})
				if err != nil {
					return err
				}
				f, err := New(Config{Log: hollow, Logger: m.logger})
				if err != nil {
					return err
				}
				e.parts = append(e.parts, &partition{FSM: f, target: Target{Topic: t.ID, Partition: p}, hollow: true})
			}
			entries = append(entries, e)
			continue
		}
		if old := cat.byID[t.ID]; old != nil {
			e.parts = append(e.parts, old.parts[:min(len(old.parts), int(t.Partitions))]...)
			for _, p := range old.parts[len(e.parts):] {
				if p.owned {
					_ = p.log.Close()
				}
			}
		}
		if err := m.openParts(e, uint32(len(e.parts)), t.Partitions); err != nil {
			return m.fail(err)
		}
		entries = append(entries, e)
	}
	if !sawDefault {
		return fmt.Errorf("fsm: restore: the snapshot metadata has no default topic: %w", storage.ErrCorrupt)
	}
	for id, old := range cat.byID {
		if !keep[id] {
			if err := m.removeTopic(old); err != nil {
				return m.fail(err)
			}
		}
	}
	m.cat.Store(newCatalog(entries))
	return nil
}
