package raft

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus"
)

// snapshotStore wraps raft.FileSnapshotStore so that a snapshot taken locally stores only the
// frame header and manifest (see fsm.go), while what Open returns — what raft streams to a
// follower in InstallSnapshot — is that manifest followed by the StateMachine's SnapshotData
// stream, opened lazily on first Read. A snapshot received from a leader is stored whole
// (header, manifest, data) and Open returns it as is. The two are told apart by the stored
// size: a local snapshot's file is exactly header + manifest long.
//
// Safe for concurrent use (FileSnapshotStore is; readers are per Open).
type snapshotStore struct {
	*hraft.FileSnapshotStore
	sm          consensus.StateMachine
	maxManifest int
	dir         string // the snapshots directory, whose new snapshots Create makes private ("": left as created)
	logger      *slog.Logger

	mu   sync.Mutex      // serializes Create
	live map[string]bool // IDs of the sinks Create returned that are not closed or cancelled yet

	openMu       sync.Mutex
	lastReceived *receivedOpen // the last snapshot opened, if it was received (see afterRestore)
}

var _ hraft.SnapshotStore = (*snapshotStore)(nil)

// Open returns the snapshot's metadata, with Size the number of bytes the reader yields, and
// its stream.
func (s *snapshotStore) Open(id string) (*hraft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.FileSnapshotStore.Open(id)
	if err != nil {
		return nil, nil, err
	}
	if err := checkSnapshotMeta(id, meta); err != nil {
		_ = rc.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(rc)
	h, err := readFrameHeader(br, s.maxManifest)
	if err != nil {
		_ = rc.Close()
		return nil, nil, fmt.Errorf("open snapshot %s: %w", id, err)
	}
	// The stream announces the snapshot's raft index as the applied index: the state reflects
	// every entry through it (those the StateMachine never saw needed nothing from it).
	h.applied = meta.Index
	framed := int64(frameHeaderSize) + int64(h.manifestLen)
	switch {
	case meta.Size < framed:
		_ = rc.Close()
		return nil, nil, fmt.Errorf("open snapshot %s: %w: %d bytes stored, frame needs %d", id, ErrBadSnapshot, meta.Size, framed)
	case meta.Size > framed:
		// Received from a leader: the data is stored; return the stream unchanged.
		s.noteOpen(meta, true)
		return meta, &joinedReader{r: io.MultiReader(bytesReader(h.encode()), br), closers: []io.Closer{rc}}, nil
	}
	manifest := make([]byte, h.manifestLen)
	if _, err := io.ReadFull(br, manifest); err != nil {
		_ = rc.Close()
		return nil, nil, fmt.Errorf("open snapshot %s: %w: read manifest: %w", id, ErrBadSnapshot, err)
	}
	_ = rc.Close()
	s.noteOpen(meta, false)
	head := append(h.encode(), manifest...)
	src, ok := s.sm.(consensus.SnapshotSource)
	if !ok {
		return meta, io.NopCloser(bytesReader(head)), nil
	}
	size, err := s.dataSize(src, manifest)
	if err != nil {
		// Restoring this node's own snapshot needs only the manifest, so do not fail Open
		// (that would stop the node from starting): announce no data, and fail whoever tries
		// to read it — a transfer to a follower then fails instead of sending a partial state.
		err = fmt.Errorf("open snapshot %s: %w", id, err)
		m := *meta
		m.Size = framed
		return &m, &joinedReader{r: io.MultiReader(bytesReader(head), &errorReader{err: err})}, nil
	}
	m := *meta
	m.Size = framed + size
	lazy := &lazyData{open: func() (io.ReadCloser, error) { return src.SnapshotData(manifest) }, remaining: size}
	return &m, &joinedReader{r: io.MultiReader(bytesReader(head), lazy), closers: []io.Closer{lazy}}, nil
}

// checkSnapshotMeta checks a snapshot's meta.json against its ID, "<term>-<index>-<ms>", which
// FileSnapshotStore makes from the term and index and also names the directory with. meta.json
// has no checksum of its own (its CRC covers state.bin only): a bit flipped in its Index or
// Term was taken at its word, and the node restored the snapshot as covering entries it does
// not (a higher index: raft skips applying them) or with a term it never had. A meta.json that
// disagrees with its name is refused like a damaged state.bin: raft then tries an older
// snapshot, or the node refuses to start naming the repair.
func checkSnapshotMeta(id string, meta *hraft.SnapshotMeta) error {
	var term, index, ms uint64
	if n, err := fmt.Sscanf(id, "%d-%d-%d", &term, &index, &ms); err != nil || n != 3 ||
		meta.ID != id || meta.Term != term || meta.Index != index {
		return fmt.Errorf("open snapshot %s: %w: its meta.json (ID %q, term %d, index %d) disagrees with its name",
			id, ErrBadSnapshot, meta.ID, meta.Term, meta.Index)
	}
	return nil
}

// dataSize returns the exact length of src's data stream for manifest: from SnapshotSizer when
// implemented, otherwise by reading the stream once.
func (s *snapshotStore) dataSize(src consensus.SnapshotSource, manifest []byte) (int64, error) {
	if sz, ok := src.(consensus.SnapshotSizer); ok {
		n, err := sz.SnapshotDataSize(manifest)
		if err != nil {
			return 0, fmt.Errorf("snapshot data size: %w", err)
		}
		if n < 0 {
			return 0, fmt.Errorf("%w: negative data size %d", ErrBadSnapshot, n)
		}
		return n, nil
	}
	rc, err := src.SnapshotData(manifest)
	if err != nil {
		return 0, fmt.Errorf("snapshot data: %w", err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if err != nil {
		return 0, fmt.Errorf("snapshot data: count: %w", err)
	}
	return n, nil
}

func bytesReader(b []byte) io.Reader {
	r := &sliceReader{b: b}
	return r
}

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

type joinedReader struct {
	r       io.Reader
	closers []io.Closer
}

func (j *joinedReader) Read(p []byte) (int, error) { return j.r.Read(p) }

func (j *joinedReader) Close() error {
	var errs []error
	for _, c := range j.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// lazyData opens the StateMachine's data stream on the first Read and checks it yields
// exactly the announced number of bytes.
type lazyData struct {
	open      func() (io.ReadCloser, error)
	rc        io.ReadCloser
	remaining int64
	err       error
}

func (l *lazyData) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if l.rc == nil {
		if l.remaining == 0 {
			return 0, io.EOF
		}
		rc, err := l.open()
		if err != nil {
			l.err = fmt.Errorf("consensus/raft: open snapshot data: %w", err)
			return 0, l.err
		}
		l.rc = rc
	}
	if l.remaining == 0 {
		// The stream must end where announced: a longer one means the data changed.
		var one [1]byte
		n, err := io.ReadFull(l.rc, one[:])
		if n > 0 {
			l.err = fmt.Errorf("%w: data stream longer than announced", ErrBadSnapshot)
			return 0, l.err
		}
		if err != nil && !errors.Is(err, io.EOF) {
			l.err = fmt.Errorf("consensus/raft: read snapshot data: %w", err)
			return 0, l.err
		}
		l.err = io.EOF
		return 0, io.EOF
	}
	if int64(len(p)) > l.remaining {
		p = p[:l.remaining]
	}
	n, err := l.rc.Read(p)
	l.remaining -= int64(n)
	if errors.Is(err, io.EOF) {
		if l.remaining > 0 {
			l.err = fmt.Errorf("%w: data stream %d bytes shorter than announced", ErrBadSnapshot, l.remaining)
			return n, l.err
		}
		err = nil
	}
	if err != nil {
		l.err = fmt.Errorf("consensus/raft: read snapshot data: %w", err)
		return n, l.err
	}
	return n, nil
}

func (l *lazyData) Close() error {
	if l.rc == nil {
		return nil
	}
	err := l.rc.Close()
	l.rc = nil
	if l.err == nil {
		l.err = errors.New("consensus/raft: snapshot data closed")
	}
	return err
}

// errorReader fails every Read with err.
type errorReader struct{ err error }

func (e *errorReader) Read([]byte) (int, error) { return 0, e.err }

// tempSnapshotSuffix is the suffix hashicorp/raft's FileSnapshotStore gives a snapshot it is
// still writing ("<term>-<index>-<msec>.tmp"); a successful Close renames it away, so one found
// when the node starts was left by a failed or interrupted snapshot (a disk that filled while
// a follower received InstallSnapshot, a crash mid-snapshot). It is raft's unexported tmpSuffix
// at the version in go.mod (TestLeftoverTempSnapshotsRemovedAtStart uses raft's names).
const tempSnapshotSuffix = ".tmp"

// removeTempSnapshots removes the temporary snapshots left in dir (the snapshots directory) by
// a snapshot that never completed: FileSnapshotStore skips them but never removes them, so
// each failed install would keep its partial copy of the state forever. Only entries directly
// in dir whose name ends in tempSnapshotSuffix are removed; complete snapshots never carry it.
// It must run before raft starts (nothing may be writing a snapshot meanwhile). A dir it cannot
// read or a leftover it cannot remove is an error, and New refuses to start: a snapshots dir the
// node cannot write would fail its snapshots and installs too, and a log line alone would leave
// the partial copy there for good.
func removeTempSnapshots(dir string, logger *slog.Logger) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("consensus/raft: read snapshot dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, tempSnapshotSuffix) {
			continue
		}
		p := filepath.Join(dir, name)
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("consensus/raft: remove incomplete snapshot %s: %w", p, err)
		}
		logger.Warn("removed an incomplete snapshot left by a failed or interrupted snapshot", "path", p)
	}
	return nil
}
