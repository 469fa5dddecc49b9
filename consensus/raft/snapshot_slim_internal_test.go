package raft

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/consensus"
)

// dataSM is a StateMachine with SnapshotSource and SnapshotSizer whose state is a byte string,
// its manifest "n=<length>". Persist records whether the received snapshot's directory was
// still there when it made the state durable; failRestore and failPersist make those fail.
type dataSM struct {
	data        []byte
	durable     []byte // what Persist made durable: the state a restart finds
	failRestore bool
	failPersist bool
	opens       int

	// receivedDir, if set, must exist when Persist runs (the received copy must outlive
	// the moment the state becomes durable).
	receivedDir string
	orderErr    error
}

func (s *dataSM) manifest() []byte { return fmt.Appendf(nil, "n=%d", len(s.data)) }

func (s *dataSM) Apply([]consensus.Entry) []any { return nil }

type dataSnapshot struct{ s *dataSM }

func (d dataSnapshot) Persist(w io.Writer) error {
	if d.s.failPersist {
		return errors.New("persist failed")
	}
	if d.s.receivedDir != "" {
		if _, err := os.Stat(d.s.receivedDir); err != nil {
			d.s.orderErr = fmt.Errorf("the received snapshot was gone before the state was durable: %w", err)
		}
	}
	d.s.durable = bytes.Clone(d.s.data)
	_, err := w.Write(d.s.manifest())
	return err
}
func (dataSnapshot) Release() {}

func (s *dataSM) Snapshot() (consensus.Snapshot, error) { return dataSnapshot{s}, nil }

func (s *dataSM) Restore(manifest []byte, data io.Reader) error {
	var n int
	if _, err := fmt.Sscanf(string(manifest), "n=%d", &n); err != nil {
		return err
	}
	if s.failRestore {
		return errors.New("restore failed")
	}
	if len(s.data) == n && n > 0 && bytes.Equal(s.durable, s.data) {
		return nil // holds it (a restart restoring its own snapshot)
	}
	b, err := io.ReadAll(data)
	if err != nil {
		return err
	}
	if len(b) != n {
		return fmt.Errorf("restored %d bytes, manifest says %d", len(b), n)
	}
	s.data = b
	return nil
}

func (s *dataSM) SnapshotData(manifest []byte) (io.ReadCloser, error) {
	if !bytes.Equal(manifest, s.manifest()) {
		return nil, fmt.Errorf("cannot serve manifest %q, have %q", manifest, s.manifest())
	}
	s.opens++
	return io.NopCloser(bytes.NewReader(s.data)), nil
}

func (s *dataSM) SnapshotDataSize(manifest []byte) (int64, error) {
	if !bytes.Equal(manifest, s.manifest()) {
		return 0, fmt.Errorf("cannot serve manifest %q, have %q", manifest, s.manifest())
	}
	return int64(len(s.data)), nil
}

// slimStore opens a snapshot store in dir as New does, and the fsm that calls its afterRestore.
func slimStore(t *testing.T, dir string, sm consensus.StateMachine) (*snapshotStore, *fsm) {
	t.Helper()
	fss, err := hraft.NewFileSnapshotStoreWithLogger(dir, 2, newHclog(slog.New(slog.DiscardHandler), ""))
	if err != nil {
		t.Fatal(err)
	}
	s := &snapshotStore{FileSnapshotStore: fss, sm: sm, maxManifest: 1 << 10, dir: filepath.Join(dir, "snapshots")}
	f := newFSM(sm, 1<<10, nil)
	f.onRestore = s.afterRestore
	return s, f
}

// receive stores a snapshot as raft's installSnapshot does: the leader's stream, whole.
func receive(t *testing.T, s *snapshotStore, index, term uint64, manifest, data []byte) string {
	t.Helper()
	conf := hraft.Configuration{Servers: []hraft.Server{{ID: "a", Address: "addr-a"}, {ID: "b", Address: "addr-b"}}}
	sink, err := s.Create(hraft.SnapshotVersionMax, index, term, conf, 3, peerEncoder{})
	if err != nil {
		t.Fatal(err)
	}
	stream := append(frameHeader{applied: index, manifestLen: uint64(len(manifest))}.encode(), manifest...)
	if _, err := sink.Write(append(stream, data...)); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return sink.ID()
}

// restoreID restores snapshot id as raft does: Open, then fsm.Restore of its stream.
func restoreID(s *snapshotStore, f *fsm, id string) error {
	_, rc, err := s.Open(id)
	if err != nil {
		return err
	}
	return f.Restore(rc)
}

// startLike restores the newest snapshot that restores, as raft does when a node starts.
func startLike(t *testing.T, s *snapshotStore, f *fsm) *hraft.SnapshotMeta {
	t.Helper()
	metas, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metas {
		if err := restoreID(s, f, m.ID); err == nil {
			return m
		}
	}
	t.Fatalf("no snapshot restores among %d", len(metas))
	return nil
}

func stateSize(t *testing.T, s *snapshotStore, id string) int64 {
	t.Helper()
	st, err := os.Stat(filepath.Join(s.dir, id, "state.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestReceivedSnapshotReplacedAfterRestore: once a snapshot received from a leader is restored,
// it is replaced by a manifest-only snapshot at its index, term and configuration, made after
// the state machine made the state durable; the new one opens to the same stream (as it is
// sent to a follower) and is what a restart restores, reading no data.
func TestReceivedSnapshotReplacedAfterRestore(t *testing.T) {
	dir := t.TempDir()
	leaderData := bytes.Repeat([]byte("leader-data "), 500)
	manifest := fmt.Appendf(nil, "n=%d", len(leaderData))
	sm := &dataSM{}
	s, f := slimStore(t, dir, sm)
	id := receive(t, s, 40, 3, manifest, leaderData)
	_, received, err := readAllOpen(t, s, id)
	if err != nil {
		t.Fatal(err)
	}
	sm.receivedDir = filepath.Join(s.dir, id)
	if err := restoreID(s, f, id); err != nil {
		t.Fatal(err)
	}
	if sm.orderErr != nil {
		t.Fatal(sm.orderErr)
	}
	metas, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != 1 || metas[0].ID == id {
		t.Fatalf("snapshots after the restore: %v, want one that is not %s", metaIDs(metas), id)
	}
	m := metas[0]
	if m.Index != 40 || m.Term != 3 || m.ConfigurationIndex != 3 || len(m.Configuration.Servers) != 2 || m.Configuration.Servers[1].Address != "addr-b" {
		t.Fatalf("replacement meta %+v: want the received snapshot's index, term and configuration", m)
	}
	if got, want := stateSize(t, s, m.ID), int64(frameHeaderSize+len(manifest)); got != want {
		t.Fatalf("replacement state.bin is %d bytes, want %d (frame and manifest)", got, want)
	}
	if !bytes.Equal(sm.durable, leaderData) {
		t.Fatalf("the state machine did not make the restored state durable")
	}
	// Opened to be sent to a follower, it streams what was received.
	meta, sent, err := readAllOpen(t, s, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sent, received) || meta.Size != int64(len(received)) {
		t.Fatalf("replacement streams %d bytes (announced %d), the received snapshot %d; equal: %v",
			len(sent), meta.Size, len(received), bytes.Equal(sent, received))
	}
	// A restart restores it from the state machine's own data.
	sm2 := &dataSM{data: bytes.Clone(sm.durable), durable: bytes.Clone(sm.durable)}
	s2, f2 := slimStore(t, dir, sm2)
	if got := startLike(t, s2, f2); got.ID != m.ID {
		t.Fatalf("restart restored %s, want %s", got.ID, m.ID)
	}
	if sm2.opens != 0 || !bytes.Equal(sm2.data, leaderData) {
		t.Fatalf("restart: %d data opens, %d bytes of state", sm2.opens, len(sm2.data))
	}
}

func metaIDs(metas []*hraft.SnapshotMeta) []string {
	var ids []string
	for _, m := range metas {
		ids = append(ids, fmt.Sprintf("%s (%d bytes)", m.ID, m.Size))
	}
	return ids
}

// TestReceivedSnapshotKeptWhenNotReplaceable: a restore that fails, or a state machine that
// cannot make its state durable, leaves the received snapshot as it was, and alone.
func TestReceivedSnapshotKeptWhenNotReplaceable(t *testing.T) {
	data := []byte("0123456789")
	manifest := []byte("n=10")
	for _, tt := range []struct {
		name    string
		sm      *dataSM
		restore bool
	}{
		{"restore fails", &dataSM{failRestore: true}, false},
		{"persist fails", &dataSM{failPersist: true}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, f := slimStore(t, dir, tt.sm)
			id := receive(t, s, 40, 3, manifest, data)
			before, err := os.ReadFile(filepath.Join(s.dir, id, "state.bin"))
			if err != nil {
				t.Fatal(err)
			}
			err = restoreID(s, f, id)
			if (err == nil) != tt.restore {
				t.Fatalf("restore: %v", err)
			}
			metas, err := s.List()
			if err != nil {
				t.Fatal(err)
			}
			if len(metas) != 1 || metas[0].ID != id {
				t.Fatalf("snapshots: %v, want %s alone", metaIDs(metas), id)
			}
			after, err := os.ReadFile(filepath.Join(s.dir, id, "state.bin"))
			if err != nil || !bytes.Equal(before, after) {
				t.Fatalf("the received snapshot changed (%v)", err)
			}
		})
	}
}

// TestReceivedSnapshotReplacementCrashSafe stops the replacement where a crash could: after the
// state machine made its state durable (nothing new on disk yet), and after the new snapshot is
// in place but before the received one is removed. A node started on what is left restores
// the same state.
func TestReceivedSnapshotReplacementCrashSafe(t *testing.T) {
	leaderData := bytes.Repeat([]byte("x"), 3000)
	manifest := fmt.Appendf(nil, "n=%d", len(leaderData))
	for _, tt := range []struct {
		step       string
		restartsOn string // "received" or "replacement"
		left       int    // snapshots left once the restart restored
	}{
		{"persisted", "received", 1}, // restored again at the start, and replaced then
		{"created", "replacement", 2},
	} {
		t.Run(tt.step, func(t *testing.T) {
			dir := t.TempDir()
			sm := &dataSM{}
			s, f := slimStore(t, dir, sm)
			id := receive(t, s, 40, 3, manifest, leaderData)
			crash := errors.New("crash")
			replaceStep = func(step string) error {
				if step == tt.step {
					return crash
				}
				return nil
			}
			err := restoreID(s, f, id)
			replaceStep = func(string) error { return nil }
			if err != nil {
				t.Fatal(err)
			}
			// Restart: the state machine finds what it made durable (all of it: Persist ran).
			sm2 := &dataSM{data: bytes.Clone(sm.durable), durable: bytes.Clone(sm.durable)}
			s2, f2 := slimStore(t, dir, sm2)
			got := startLike(t, s2, f2)
			if (got.ID == id) != (tt.restartsOn == "received") {
				t.Fatalf("restart restored %s (received: %s), want the %s", got.ID, id, tt.restartsOn)
			}
			if !bytes.Equal(sm2.data, leaderData) {
				t.Fatalf("restart restored %d bytes of state, want %d", len(sm2.data), len(leaderData))
			}
			metas, err := s2.List()
			if err != nil {
				t.Fatal(err)
			}
			if len(metas) != tt.left || stateSize(t, s2, metas[0].ID) != int64(frameHeaderSize+len(manifest)) {
				t.Fatalf("snapshots after the restart: %v, want %d, the newest manifest-only", metaIDs(metas), tt.left)
			}
		})
	}
}

// TestReceivedSnapshotOfPlainStateMachineLeftAlone: without SnapshotSource a snapshot is
// stored whole however it was made: nothing is replaced.
func TestReceivedSnapshotOfPlainStateMachineLeftAlone(t *testing.T) {
	dir := t.TempDir()
	sm := &plainSM{manifest: []byte("whole state")}
	s, f := slimStore(t, dir, sm)
	id := receive(t, s, 40, 3, sm.manifest, nil)
	if err := restoreID(s, f, id); err != nil {
		t.Fatal(err)
	}
	metas, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != 1 || metas[0].ID != id {
		t.Fatalf("snapshots: %v, want %s alone", metaIDs(metas), id)
	}
}
