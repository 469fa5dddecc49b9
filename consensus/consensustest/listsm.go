package consensustest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/commitlog-go/commitlog/consensus"
)

// Record is one entry a ListSM applied.
type Record struct {
	Index uint64
	Term  uint64
	Data  []byte
}

// record encoding, in the ListSM's file and its snapshot data stream:
//
//	[index 8 B BE][term 8 B BE][length 4 B BE][data]
const recordHeader = 20

// maxRecord bounds a record's data length read back from a file or stream.
const maxRecord = 64 << 20

func appendRecord(b []byte, r Record) []byte {
	b = binary.BigEndian.AppendUint64(b, r.Index)
	b = binary.BigEndian.AppendUint64(b, r.Term)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Data)))
	return append(b, r.Data...)
}

func readRecord(r io.Reader) (Record, error) {
	var h [recordHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Record{}, err
	}
	n := binary.BigEndian.Uint32(h[16:])
	if n > maxRecord {
		return Record{}, fmt.Errorf("consensustest: record length %d exceeds %d", n, maxRecord)
	}
	rec := Record{Index: binary.BigEndian.Uint64(h[:]), Term: binary.BigEndian.Uint64(h[8:]), Data: make([]byte, n)}
	if _, err := io.ReadFull(r, rec.Data); err != nil {
		return Record{}, fmt.Errorf("consensustest: short record: %w", io.ErrUnexpectedEOF)
	}
	return rec, nil
}

// ListSM is a reference consensus.StateMachine: an append-only list of the entries it applied,
// optionally kept in a file so that it survives a restart like a real log does. It implements
// consensus.SnapshotSource and consensus.SnapshotSizer: its snapshot manifest only names how
// many records the snapshot covers, and the records themselves are streamed from its own list
// when a follower needs them.
//
// It never applies an entry twice: an entry at or below the last applied index (re-delivered
// by Raft after a restart) is skipped and counted (Skipped). Apply returns the record's
// position in the list (uint64), or ErrDuplicate for a skipped entry.
//
// Safe for concurrent use.
type ListSM struct {
	dir string

	mu      sync.RWMutex
	f       *os.File // nil when in memory
	recs    []Record
	skipped int

	restores  atomic.Int64
	dataOpens atomic.Int64
}

// ErrDuplicate is the Apply result for an entry the ListSM had already applied.
var ErrDuplicate = errors.New("consensustest: entry already applied")

var (
	_ consensus.StateMachine   = (*ListSM)(nil)
	_ consensus.SnapshotSource = (*ListSM)(nil)
	_ consensus.SnapshotSizer  = (*ListSM)(nil)
)

const listFile = "list.dat"

// NewListSM returns a ListSM kept in dir/list.dat (loaded if it exists), or only in memory when
// dir is "". The file is not fsynced: a process crash may lose its tail, which Raft replays.
func NewListSM(dir string) (*ListSM, error) {
	l := &ListSM{dir: dir}
	if dir == "" {
		return l, nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("consensustest: %w", err)
	}
	path := filepath.Join(dir, listFile)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("consensustest: %w", err)
	}
	r := bytes.NewReader(data)
	for r.Len() > 0 {
		rec, err := readRecord(r)
		if err != nil {
			return nil, fmt.Errorf("consensustest: load %s: %w", path, err)
		}
		l.recs = append(l.recs, rec)
	}
	l.f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("consensustest: %w", err)
	}
	return l, nil
}

func (l *ListSM) lastIndexLocked() uint64 {
	if len(l.recs) == 0 {
		return 0
	}
	return l.recs[len(l.recs)-1].Index
}

// Apply appends the entries not yet applied. See consensus.StateMachine.
func (l *ListSM) Apply(entries []consensus.Entry) []any {
	l.mu.Lock()
	defer l.mu.Unlock()
	res := make([]any, len(entries))
	var buf []byte
	for i, e := range entries {
		if e.Index <= l.lastIndexLocked() {
			l.skipped++
			res[i] = ErrDuplicate
			continue
		}
		rec := Record{Index: e.Index, Term: e.Term, Data: bytes.Clone(e.Data)}
		l.recs = append(l.recs, rec)
		res[i] = uint64(len(l.recs) - 1)
		if l.f != nil {
			buf = appendRecord(buf, rec)
		}
	}
	if l.f != nil && len(buf) > 0 {
		if _, err := l.f.Write(buf); err != nil {
			// A test state machine: failing loudly beats diverging silently.
			panic(fmt.Sprintf("consensustest: write %s: %v", l.dir, err))
		}
	}
	return res
}

type listManifest struct {
	Count int    `json:"count"`
	Index uint64 `json:"index"`
}

type listSnapshot struct{ m listManifest }

func (s listSnapshot) Persist(w io.Writer) error { return json.NewEncoder(w).Encode(s.m) }
func (s listSnapshot) Release()                  {}

// Snapshot captures the number of records and the last index: O(1).
func (l *ListSM) Snapshot() (consensus.Snapshot, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return listSnapshot{m: listManifest{Count: len(l.recs), Index: l.lastIndexLocked()}}, nil
}

func parseManifest(b []byte) (listManifest, error) {
	var m listManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("consensustest: bad manifest: %w", err)
	}
	if m.Count < 0 {
		return m, fmt.Errorf("consensustest: bad manifest count %d", m.Count)
	}
	return m, nil
}

// prefix returns the first m.Count records, checking they end at m.Index.
func (l *ListSM) prefix(m listManifest) ([]Record, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if m.Count > len(l.recs) {
		return nil, fmt.Errorf("consensustest: snapshot of %d records, have %d", m.Count, len(l.recs))
	}
	recs := l.recs[:m.Count:m.Count]
	if m.Count > 0 && recs[m.Count-1].Index != m.Index {
		return nil, fmt.Errorf("consensustest: snapshot ends at index %d, have %d", m.Index, recs[m.Count-1].Index)
	}
	return recs, nil
}

// SnapshotData streams the records the manifest covers from the list.
func (l *ListSM) SnapshotData(manifest []byte) (io.ReadCloser, error) {
	m, err := parseManifest(manifest)
	if err != nil {
		return nil, err
	}
	recs, err := l.prefix(m)
	if err != nil {
		return nil, err
	}
	l.dataOpens.Add(1)
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriter(pw)
		var buf []byte
		for _, r := range recs {
			buf = appendRecord(buf[:0], r)
			if _, err := bw.Write(buf); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(bw.Flush())
	}()
	return pr, nil
}

// SnapshotDataSize reports the length of SnapshotData(manifest) without reading it.
func (l *ListSM) SnapshotDataSize(manifest []byte) (int64, error) {
	m, err := parseManifest(manifest)
	if err != nil {
		return 0, err
	}
	recs, err := l.prefix(m)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range recs {
		n += recordHeader + int64(len(r.Data))
	}
	return n, nil
}

// Restore keeps the local list when it already holds the snapshot's records (a node restoring
// its own snapshot reads nothing); otherwise it replaces the list with the records read from
// data.
func (l *ListSM) Restore(manifest []byte, data io.Reader) error {
	m, err := parseManifest(manifest)
	if err != nil {
		return err
	}
	l.restores.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if m.Count <= len(l.recs) && (m.Count == 0 || l.recs[m.Count-1].Index == m.Index) {
		return nil
	}
	br := bufio.NewReader(data)
	recs := make([]Record, 0, m.Count)
	for range m.Count {
		rec, err := readRecord(br)
		if err != nil {
			return fmt.Errorf("consensustest: restore record %d of %d: %w", len(recs), m.Count, err)
		}
		recs = append(recs, rec)
	}
	return l.replaceLocked(recs)
}

func (l *ListSM) replaceLocked(recs []Record) error {
	l.recs = recs
	if l.f == nil {
		return nil
	}
	var buf []byte
	for _, r := range recs {
		buf = appendRecord(buf, r)
	}
	path := filepath.Join(l.dir, listFile)
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("consensustest: %w", err)
	}
	if err := os.WriteFile(path, buf, 0o640); err != nil {
		return fmt.Errorf("consensustest: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("consensustest: %w", err)
	}
	l.f = f
	return nil
}

// Records returns a copy of the applied records, in order.
func (l *ListSM) Records() []Record {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return slices.Clone(l.recs)
}

// Len returns the number of applied records.
func (l *ListSM) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.recs)
}

// Skipped returns how many re-delivered entries Apply skipped.
func (l *ListSM) Skipped() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.skipped
}

// Restores returns how many times Restore was called.
func (l *ListSM) Restores() int { return int(l.restores.Load()) }

// DataOpens returns how many times SnapshotData was called (i.e. a snapshot's data was
// actually streamed from this node).
func (l *ListSM) DataOpens() int { return int(l.dataOpens.Load()) }

// Close closes the list's file. Idempotent.
func (l *ListSM) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// ManifestOnly wraps l as a StateMachine that does not implement SnapshotSource: its snapshot
// manifest carries every record, and Restore reads them from the manifest.
func ManifestOnly(l *ListSM) consensus.StateMachine { return manifestOnly{l} }

type manifestOnly struct{ l *ListSM }

func (m manifestOnly) Apply(entries []consensus.Entry) []any { return m.l.Apply(entries) }

type fullSnapshot struct{ recs []Record }

func (s fullSnapshot) Persist(w io.Writer) error {
	var buf []byte
	for _, r := range s.recs {
		buf = appendRecord(buf, r)
	}
	_, err := w.Write(buf)
	return err
}
func (s fullSnapshot) Release() {}

func (m manifestOnly) Snapshot() (consensus.Snapshot, error) {
	m.l.mu.RLock()
	defer m.l.mu.RUnlock()
	return fullSnapshot{recs: m.l.recs[:len(m.l.recs):len(m.l.recs)]}, nil
}

func (m manifestOnly) Restore(manifest []byte, data io.Reader) error {
	n, err := data.Read(make([]byte, 1))
	if n > 0 || (err != nil && !errors.Is(err, io.EOF)) {
		return fmt.Errorf("consensustest: unexpected snapshot data (n=%d, err=%v)", n, err)
	}
	m.l.restores.Add(1)
	r := bytes.NewReader(manifest)
	var recs []Record
	for r.Len() > 0 {
		rec, err := readRecord(r)
		if err != nil {
			return fmt.Errorf("consensustest: restore: %w", err)
		}
		recs = append(recs, rec)
	}
	m.l.mu.Lock()
	defer m.l.mu.Unlock()
	return m.l.replaceLocked(recs)
}

// Close closes the underlying ListSM.
func (m manifestOnly) Close() error { return m.l.Close() }
