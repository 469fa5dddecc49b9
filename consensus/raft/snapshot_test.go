package raft

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus"
)

// plainSM is a StateMachine without SnapshotSource whose snapshot is a fixed manifest.
type plainSM struct {
	manifest []byte
	restored struct {
		manifest, data []byte
	}
}

func (s *plainSM) Apply(e []consensus.Entry) []any { return make([]any, len(e)) }
func (s *plainSM) Snapshot() (consensus.Snapshot, error) {
	return bytesSnapshot(s.manifest), nil
}
func (s *plainSM) Restore(manifest []byte, data io.Reader) error {
	d, err := io.ReadAll(data)
	s.restored.manifest, s.restored.data = manifest, d
	return err
}

type bytesSnapshot []byte

func (b bytesSnapshot) Persist(w io.Writer) error { _, err := w.Write(b); return err }
func (b bytesSnapshot) Release()                  {}

// sourceSM adds SnapshotSource; data is what SnapshotData streams, opens counts the calls.
type sourceSM struct {
	plainSM
	data  []byte
	opens int
}

func (s *sourceSM) SnapshotData(manifest []byte) (io.ReadCloser, error) {
	if !bytes.Equal(manifest, s.manifest) {
		return nil, errors.New("wrong manifest")
	}
	s.opens++
	return io.NopCloser(bytes.NewReader(s.data)), nil
}

// sizedSM adds SnapshotSizer, reporting size (which may lie, to test the checks).
type sizedSM struct {
	sourceSM
	size int64
}

func (s *sizedSM) SnapshotDataSize([]byte) (int64, error) { return s.size, nil }

// takeSnapshot persists sm's snapshot through the fsm adapter into store, as raft does.
func takeSnapshot(t *testing.T, store *snapshotStore, f *fsm, index uint64) string {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink, err := store.Create(hraft.SnapshotVersionMax, index, 1, hraft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	return sink.ID()
}

func newStore(t *testing.T, sm consensus.StateMachine, maxManifest int) (*snapshotStore, *fsm, string) {
	t.Helper()
	dir := t.TempDir()
	fss, err := hraft.NewFileSnapshotStoreWithLogger(dir, 2, newHclog(slog.New(slog.DiscardHandler), ""))
	if err != nil {
		t.Fatal(err)
	}
	return &snapshotStore{FileSnapshotStore: fss, sm: sm, maxManifest: maxManifest}, newFSM(sm, maxManifest, nil), dir
}

func readAllOpen(t *testing.T, s *snapshotStore, id string) (*hraft.SnapshotMeta, []byte, error) {
	t.Helper()
	meta, rc, err := s.Open(id)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return meta, b, err
}

func TestSnapshotStoreLocalSnapshotStoresOnlyManifest(t *testing.T) {
	manifest := []byte(`{"count":3}`)
	data := bytes.Repeat([]byte("segment-bytes "), 1000)
	tests := []struct {
		name     string
		sm       consensus.StateMachine
		wantData []byte
		opens    func() int
	}{
		{"plain state machine: no data", &plainSM{manifest: manifest}, nil, nil},
		{"source without sizer: data counted at open", &sourceSM{plainSM: plainSM{manifest: manifest}, data: data}, data, nil},
		{"source with sizer: data lazy", &sizedSM{sourceSM: sourceSM{plainSM: plainSM{manifest: manifest}, data: data}, size: int64(len(data))}, data, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, f, dir := newStore(t, tt.sm, 1<<20)
			f.setApplied(42)
			id := takeSnapshot(t, store, f, 42)
			st, err := os.Stat(filepath.Join(dir, "snapshots", id, "state.bin"))
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() != int64(frameHeaderSize+len(manifest)) {
				t.Fatalf("stored %d bytes, want header+manifest = %d", st.Size(), frameHeaderSize+len(manifest))
			}
			if sz, ok := tt.sm.(*sizedSM); ok {
				meta, rc, err := store.Open(id)
				if err != nil {
					t.Fatal(err)
				}
				if sz.opens != 0 {
					t.Fatalf("SnapshotData opened %d times by Open, want lazily", sz.opens)
				}
				if meta.Size != int64(frameHeaderSize+len(manifest)+len(data)) {
					t.Fatalf("meta.Size = %d", meta.Size)
				}
				rc.Close()
			}
			meta, got, err := readAllOpen(t, store, id)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(got)) != meta.Size {
				t.Fatalf("stream is %d bytes, meta.Size %d", len(got), meta.Size)
			}
			want := append(append(frameHeader{applied: 42, manifestLen: uint64(len(manifest))}.encode(), manifest...), tt.wantData...)
			if !bytes.Equal(got, want) {
				t.Fatalf("stream = %d bytes, want %d (header+manifest+data)", len(got), len(want))
			}

			// A follower receives the stream: it is stored whole and opened as is.
			rstore, rfsm, _ := newStore(t, &plainSM{}, 1<<20)
			sink, err := rstore.Create(hraft.SnapshotVersionMax, 42, 1, hraft.Configuration{}, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sink.Write(got); err != nil {
				t.Fatal(err)
			}
			if err := sink.Close(); err != nil {
				t.Fatal(err)
			}
			rmeta, rgot, err := readAllOpen(t, rstore, sink.ID())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rgot, got) || rmeta.Size != int64(len(got)) {
				t.Fatalf("received snapshot reopened as %d bytes (meta %d), want %d", len(rgot), rmeta.Size, len(got))
			}
			// And restoring it hands the state machine the manifest and the data.
			_, rc, err := rstore.Open(sink.ID())
			if err != nil {
				t.Fatal(err)
			}
			if err := rfsm.Restore(rc); err != nil {
				t.Fatal(err)
			}
			psm := rfsm.sm.(*plainSM)
			if !bytes.Equal(psm.restored.manifest, manifest) || !bytes.Equal(psm.restored.data, tt.wantData) {
				t.Fatalf("restored manifest %q and %d data bytes, want %q and %d", psm.restored.manifest, len(psm.restored.data), manifest, len(tt.wantData))
			}
			if rfsm.applied.Load() != 42 {
				t.Fatalf("applied index after restore = %d, want 42", rfsm.applied.Load())
			}
		})
	}
}

func TestSnapshotStoreRestoringOwnSnapshotReadsNoData(t *testing.T) {
	manifest := []byte("m")
	sm := &sizedSM{sourceSM: sourceSM{plainSM: plainSM{manifest: manifest}, data: []byte("data")}, size: 4}
	store, f, _ := newStore(t, sm, 1<<10)
	id := takeSnapshot(t, store, f, 7)
	_, rc, err := store.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	// A state machine that already holds its data reads only the manifest.
	h, err := readFrameHeader(rc, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	m := make([]byte, h.manifestLen)
	if _, err := io.ReadFull(rc, m); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if sm.opens != 0 {
		t.Fatalf("SnapshotData opened %d times, want 0", sm.opens)
	}
}

func TestSnapshotStoreDataSizeMismatch(t *testing.T) {
	data := []byte("0123456789")
	tests := []struct {
		name string
		size int64
	}{
		{"stream longer than announced", 5},
		{"stream shorter than announced", 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := &sizedSM{sourceSM: sourceSM{plainSM: plainSM{manifest: []byte("m")}, data: data}, size: tt.size}
			store, f, _ := newStore(t, sm, 1<<10)
			id := takeSnapshot(t, store, f, 1)
			_, _, err := readAllOpen(t, store, id)
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("reading the stream: %v, want ErrBadSnapshot", err)
			}
		})
	}
}

func TestSnapshotManifestBounds(t *testing.T) {
	sm := &plainSM{manifest: bytes.Repeat([]byte("x"), 100)}
	store, f, _ := newStore(t, sm, 64)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink, err := store.Create(hraft.SnapshotVersionMax, 1, 1, hraft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); !errors.Is(err, ErrManifestTooLarge) {
		t.Fatalf("persist of an oversized manifest: %v, want ErrManifestTooLarge", err)
	}

	tests := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"hostile length", frameHeader{manifestLen: 1 << 62}.encode(), ErrManifestTooLarge},
		{"bad magic", append([]byte("XXXX"), make([]byte, 20)...), ErrBadSnapshot},
		{"short header", []byte("CLSN"), ErrBadSnapshot},
		{"truncated manifest", frameHeader{manifestLen: 10}.encode(), ErrBadSnapshot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.Restore(io.NopCloser(bytes.NewReader(tt.frame)))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Restore: %v, want %v", err, tt.want)
			}
		})
	}
}

// failingSizer cannot size its data (e.g. the log it describes is gone).
type failingSizer struct{ sourceSM }

func (*failingSizer) SnapshotDataSize([]byte) (int64, error) { return 0, errors.New("segments gone") }

func TestSnapshotStoreUnsizableDataStillRestoresLocally(t *testing.T) {
	manifest := []byte("m")
	sm := &failingSizer{sourceSM: sourceSM{plainSM: plainSM{manifest: manifest}, data: []byte("data")}}
	store, f, _ := newStore(t, sm, 1<<10)
	id := takeSnapshot(t, store, f, 3)
	meta, rc, err := store.Open(id)
	if err != nil {
		t.Fatalf("Open: %v (a node must still be able to restore its own snapshot)", err)
	}
	defer rc.Close()
	if meta.Size != int64(frameHeaderSize+len(manifest)) {
		t.Fatalf("meta.Size %d", meta.Size)
	}
	head := make([]byte, meta.Size)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatalf("reading the manifest: %v", err)
	}
	if _, err := rc.Read(make([]byte, 1)); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("reading past the manifest: %v, want the sizing error (a transfer must fail)", err)
	}
}
