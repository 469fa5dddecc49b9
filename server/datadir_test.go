package server

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	craft "github.com/commitlog-go/commitlog/consensus/raft"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// walkModes returns the permission bits of dir and of everything under it, by path.
func walkModes(t *testing.T, dir string) map[string]fs.FileMode {
	t.Helper()
	modes := map[string]fs.FileMode{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		modes[p] = info.Mode()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return modes
}

// TestDataDirModes checks that a fresh data dir is private whatever the umask: the directory
// and those under it 0700, every file 0600 — the commit log's segments, Raft's log, stable
// store and snapshots.
func TestDataDirModes(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })

	dir := filepath.Join(t.TempDir(), "new", "data")
	srv := startServer(t, Config{DataDir: dir})
	c := newClient(t, TransportConnect, srv.Addr())
	ctx := ctxT(t, 20*time.Second)
	for range 5 {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.node.Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	srv.shutdown(t)

	var files []string
	for p, m := range walkModes(t, filepath.Dir(dir)) {
		want := fs.FileMode(0o600)
		if m.IsDir() {
			want = 0o700
		} else {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, rel)
		}
		if m.Perm() != want {
			t.Errorf("%s: mode %#o, want %#o", p, m.Perm(), want)
		}
	}
	joined := strings.Join(files, " ")
	for _, want := range []string{"log/", "raft/wal/", "wal-meta.db", "raft/snapshots/"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no file under %s among %v", want, files)
		}
	}
}

// TestDataDirRefused checks that a data dir writable by group or others, or belonging to
// another user, is refused with a clear error, and that one the seed made 0755 is narrowed.
func TestDataDirRefused(t *testing.T) {
	for _, mode := range []fs.FileMode{0o777, 0o770, 0o702} {
		dir := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		s, err := New(Config{DataDir: dir, BindAddr: "127.0.0.1:0", RPCPort: -1})
		if err == nil {
			_ = s.Close()
			t.Fatalf("mode %#o: a data dir writable by others was accepted", mode)
		}
		if !errors.Is(err, ErrDataDirPermissions) || !strings.Contains(err.Error(), "chmod 700") {
			t.Errorf("mode %#o: %v, want ErrDataDirPermissions saying how to fix it", mode, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("mode %#o: the refused data dir holds %d entries, want none written", mode, len(entries))
		}
	}

	if os.Geteuid() == 0 { // only root can give a directory away
		dir := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		if s, err := New(Config{DataDir: dir, BindAddr: "127.0.0.1:0", RPCPort: -1}); err == nil {
			_ = s.Close()
			t.Fatal("a data dir of another user was accepted")
		} else if !errors.Is(err, ErrDataDirPermissions) {
			t.Errorf("another user's data dir: %v, want ErrDataDirPermissions", err)
		}
	}

	// A data dir of the seed: 0755, a segment 0644. It is narrowed, and the node starts.
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(dir, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	oldFile := filepath.Join(dir, "old", "file")
	if err := os.WriteFile(oldFile, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, Config{DataDir: dir})
	srv.shutdown(t)
	modes := walkModes(t, dir)
	if m := modes[dir].Perm(); m != 0o700 {
		t.Errorf("seed data dir: mode %#o after start, want 0700", m)
	}
	if m := modes[oldFile].Perm(); m != 0o600 {
		t.Errorf("seed file: mode %#o after start, want 0600", m)
	}
}

// TestDataDirOfAnotherNodeRefused: a server started under another --node-name on a node's
// data dir would reuse that node's Raft term and votes; it is refused at start, naming the
// owner, and the owner starts on it as before.
func TestDataDirOfAnotherNodeRefused(t *testing.T) {
	dir := t.TempDir()
	first := startServer(t, Config{NodeName: "node-0", DataDir: dir})
	first.shutdown(t)
	s, err := New(Config{NodeName: "node-1", DataDir: dir, BindAddr: "127.0.0.1:0", RPCPort: -1})
	if err == nil {
		_ = s.Close()
		t.Fatal("node-1 started on node-0's data dir")
	}
	if !errors.Is(err, craft.ErrWrongNode) || !strings.Contains(err.Error(), `"node-0"`) {
		t.Fatalf("New: %v, want ErrWrongNode naming node-0", err)
	}
	startServer(t, Config{NodeName: "node-0", DataDir: dir})
}
