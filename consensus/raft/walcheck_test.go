package raft

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft-wal/types"
)

// TestDamagedWALMetaRefused: raft-wal's meta database cut in its middle while the node was
// stopped made the next start die of a fault inside bbolt (SIGBUS, "unexpected fault address",
// naming no file); deleted beside the WAL's segments it failed with "open …wal: file exists";
// with both meta pages damaged, "open wal: failed to open wal-meta.db: version mismatch". New
// now refuses each with an error naming the file and the repair.
func TestDamagedWALMetaRefused(t *testing.T) {
	for name, damage := range map[string]func(t *testing.T, meta string){
		"cut": func(t *testing.T, meta string) {
			if err := os.Truncate(meta, 10000); err != nil {
				t.Fatal(err)
			}
		},
		"both meta pages damaged": func(t *testing.T, meta string) {
			f, err := os.OpenFile(meta, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, off := range []int64{20, 4096 + 20} { // each meta page's version
				if _, err := f.WriteAt([]byte{0xff}, off); err != nil {
					t.Fatal(err)
				}
			}
		},
		"missing": func(t *testing.T, meta string) {
			if err := os.Remove(meta); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "raft")
			newNode := singleNode(t, dir)
			proposeAndClose(t, newNode, []byte("x"), []byte("x"), []byte("x"), []byte("x"), []byte("x"))
			meta := filepath.Join(dir, "wal", "wal-meta.db")
			damage(t, meta)
			n, err := newNode()
			if err == nil {
				_ = n.Close()
				t.Fatal("New started on a damaged WAL meta database")
			}
			if !strings.Contains(err.Error(), meta) || !strings.Contains(err.Error(), repairHint("n1")) {
				t.Fatalf("error %q does not name %s and the repair", err, meta)
			}
		})
	}
}

// TestDamagedWALEntryRefused: a byte changed inside an entry of Raft's log (its timestamp's
// encoding) made hashicorp/raft's NewRaft panic while it scanned the log for configurations
// ("panic: Time.UnmarshalBinary: unsupported version", a stack trace, no file named). New
// now refuses with an error naming the WAL, the entry and the repair.
func TestDamagedWALEntryRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "raft")
	newNode := singleNode(t, dir)
	marker := []byte("damage-this-entry")
	proposeAndClose(t, newNode, []byte("a"), marker, []byte("b"))
	wals, err := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	if err != nil || len(wals) != 1 {
		t.Fatalf("wal segments %v, %v; want one", wals, err)
	}
	b, err := os.ReadFile(wals[0])
	if err != nil {
		t.Fatal(err)
	}
	// raft-wal's encoding of an entry: index, term, type, data, extensions (length 0), then
	// AppendedAt's MarshalBinary, whose first byte is its version.
	at := bytes.Index(b, marker)
	if at < 0 {
		t.Fatal("the entry is not in the WAL")
	}
	at += len(marker) + 1
	b[at] = 0xff
	if err := os.WriteFile(wals[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := newNode()
	if err == nil {
		_ = n.Close()
		t.Fatal("New started on a WAL whose entry does not read")
	}
	if walDir := filepath.Join(dir, "wal"); !strings.Contains(err.Error(), walDir) || !strings.Contains(err.Error(), repairHint("n1")) {
		t.Fatalf("error %q does not name %s and the repair", err, walDir)
	}
}

// singleNode returns a function that starts the one-node cluster of ID n1 whose Raft data dir
// is dir, bootstrapping it when dir holds no state.
func singleNode(t *testing.T, dir string, opts ...func(*Config)) func() (*Node, error) {
	return func() (*Node, error) {
		stream, err := TCPStreamLayer("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{
			ID: "n1", DataDir: dir, StreamLayer: stream, Bootstrap: true,
			HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
		}
		for _, opt := range opts {
			opt(&cfg)
		}
		return New(cfg, &plainSM{manifest: []byte("m")})
	}
}

// proposeWhenLeading proposes cmd to n, again and again until n leads and the proposal
// commits, or ctx ends.
func proposeWhenLeading(t *testing.T, ctx context.Context, n *Node, cmd []byte) {
	t.Helper()
	for {
		if _, err := n.Propose(ctx, cmd); err == nil {
			return
		} else if ctx.Err() != nil {
			t.Fatalf("propose: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // no leader yet
	}
}

// proposeAndClose starts the node newNode starts, proposes cmds in order once it leads, and
// closes it.
func proposeAndClose(t *testing.T, newNode func() (*Node, error), cmds ...[]byte) {
	t.Helper()
	n, err := newNode()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, cmd := range cmds {
		proposeWhenLeading(t, ctx, n, cmd)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRepairHint pins the repair each of New's refusals of damaged Raft files ends with: the
// text operators (and docs, and server's tests) know.
func TestRepairHint(t *testing.T) {
	const want = "this node cannot restart on this data dir: stop it, remove it from the cluster (commitlog cluster remove node-3), " +
		"wipe its data dir and start it to rejoin"
	if got := repairHint("node-3"); got != want {
		t.Fatalf("repairHint(node-3) = %q, want %q", got, want)
	}
}

// TestWALMetaNotRegularRefused: a directory where raft-wal's meta database belongs (or any
// file that is not a regular one) is refused with the file's type and the repair, before
// bbolt or raft-wal see it.
func TestWALMetaNotRegularRefused(t *testing.T) {
	walDir := t.TempDir()
	meta := filepath.Join(walDir, "wal-meta.db")
	if err := os.Mkdir(meta, 0o700); err != nil {
		t.Fatal(err)
	}
	err := checkWALMeta(walDir, meta, "n1")
	if err == nil {
		t.Fatal("checkWALMeta accepted a directory for the meta database")
	}
	for _, s := range []string{meta, "not a regular file", repairHint("n1")} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not say %q", err, s)
		}
	}
}

// TestWALMetaOpenFailure: a meta database that cannot be opened for another reason than its
// absence is an error naming the file and wrapping the cause, and no damage: no repair that
// wipes the node is suggested for what may be a permission or mount problem. The cause is a
// symbolic link to itself (ELOOP, whoever runs the test: root reads a file without read
// permission, so EACCES cannot be made in CI).
func TestWALMetaOpenFailure(t *testing.T) {
	walDir := t.TempDir()
	meta := filepath.Join(walDir, "wal-meta.db")
	if err := os.Symlink(filepath.Base(meta), meta); err != nil {
		t.Fatal(err)
	}
	// A segment beside it: were the failure taken for absence, this is refused as a missing
	// meta database, with the repair.
	if err := os.WriteFile(filepath.Join(walDir, "00000000000000000001-0000000000000000.wal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := checkWALMeta(walDir, meta, "n1")
	if !errors.Is(err, syscall.ELOOP) || !strings.Contains(err.Error(), meta) {
		t.Fatalf("checkWALMeta: %v, want an error naming %s wrapping ELOOP", err, meta)
	}
	if strings.Contains(err.Error(), "wipe its data dir") {
		t.Fatalf("error %q suggests wiping the node for a file it could not open", err)
	}
}

// TestSnapshotsDeletedAfterCompactionRefused: a node whose snapshots directory was deleted
// (or lost) after Raft had compacted its log below the snapshot made hashicorp/raft's NewRaft
// panic while it scanned the log for configurations from index 1 ("panic: log not found", a
// stack trace, no file named; found by deleting a stopped server's raft/snapshots). New now
// refuses with an error naming the snapshot dir, the log's first index and the repair.
func TestSnapshotsDeletedAfterCompactionRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "raft")
	newNode := singleNode(t, dir, func(c *Config) {
		c.TrailingLogs = 4
		c.WALSegmentSize = 2048       // so that compaction deletes segments
		c.SnapshotThreshold = 1 << 20 // snapshots only when asked
	})
	n, err := newNode()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 40 {
		proposeWhenLeading(t, ctx, n, make([]byte, 100))
	}
	if err := n.Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	first, err := n.FirstIndex()
	if err != nil || first <= 1 {
		t.Fatalf("log not compacted: first index %d, %v", first, err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	snapDir := filepath.Join(dir, "snapshots")
	if err := os.RemoveAll(snapDir); err != nil {
		t.Fatal(err)
	}
	n, err = func() (n *Node, err error) {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("New panicked on a compacted log without its snapshots: %v", r)
			}
		}()
		return newNode()
	}()
	if err == nil {
		_ = n.Close()
		t.Fatal("New started on a compacted log whose snapshots were deleted")
	}
	if !strings.Contains(err.Error(), snapDir) || !strings.Contains(err.Error(), repairHint("n1")) {
		t.Fatalf("error %q does not name %s and the repair", err, snapDir)
	}
}

// TestOlderSnapshotPastCompactionRefused: when the newest snapshot does not restore (damaged,
// or a state machine that cannot restore it: a server whose partition directory was deleted),
// hashicorp/raft falls back to an older one and then reads the log from that one's index on;
// compaction had removed those entries, and NewRaft panicked ("panic: log not found", a stack
// trace; found by deleting a stopped server's partition directory after two snapshots). New
// now returns an error naming the data dir and the repair.
func TestOlderSnapshotPastCompactionRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "raft")
	newNode := singleNode(t, dir, func(c *Config) {
		c.TrailingLogs = 4
		c.WALSegmentSize = 2048       // so that compaction deletes segments
		c.SnapshotThreshold = 1 << 20 // snapshots only when asked
	})
	n, err := newNode()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	snapDir := filepath.Join(dir, "snapshots")
	snapshot := func() string { // the new snapshot's directory
		before, _ := filepath.Glob(filepath.Join(snapDir, "*"))
		if err := n.Raft().Snapshot().Error(); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		after, _ := filepath.Glob(filepath.Join(snapDir, "*"))
		for _, s := range after {
			if !slices.Contains(before, s) {
				return s
			}
		}
		t.Fatal("no new snapshot directory")
		return ""
	}
	for range 20 {
		proposeWhenLeading(t, ctx, n, make([]byte, 100))
	}
	older := n.Raft().LastIndex()
	snapshot()
	for range 40 {
		proposeWhenLeading(t, ctx, n, make([]byte, 100))
	}
	newest := snapshot()
	if first, err := n.FirstIndex(); err != nil || first <= older+1 {
		t.Fatalf("log not compacted past the older snapshot (index %d): first index %d, %v", older, first, err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(newest, "state.bin")
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(state, b, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err = func() (n *Node, err error) {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("New panicked on a log compacted past the only snapshot that restores: %v", r)
			}
		}()
		return newNode()
	}()
	if err == nil {
		_ = n.Close()
		t.Fatal("New started on a log compacted past the only snapshot that restores")
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), repairHint("n1")) {
		t.Fatalf("error %q does not name %s and the repair", err, dir)
	}
}

// noSpaceMeta is a WAL meta store whose Load fails as a full disk makes it fail.
type noSpaceMeta struct{ WALMetaStore }

func (noSpaceMeta) Load(string) (types.PersistentState, error) {
	return types.PersistentState{}, syscall.ENOSPC
}

// TestOpenWALErrorNamesItsDir: a WAL that cannot be opened (a new node on a nearly full disk)
// said "open wal: no space left on device", naming no directory; the error names it now.
func TestOpenWALErrorNamesItsDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "raft")
	n, err := singleNode(t, dir, func(c *Config) {
		c.WALMeta = func(m WALMetaStore) WALMetaStore { return noSpaceMeta{m} }
	})()
	if err == nil {
		_ = n.Close()
		t.Fatal("New opened a WAL whose meta store cannot load")
	}
	if walDir := filepath.Join(dir, "wal"); !strings.Contains(err.Error(), walDir) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("error %q does not name %s and wrap ENOSPC", err, walDir)
	}
}
