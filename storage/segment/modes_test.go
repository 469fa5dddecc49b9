package segment_test

import (
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/commitlog-go/commitlog/storage/segment"
)

// TestFileModes checks that a log on the real file system is private to its owner: the
// directories it creates are 0700 and every file it writes (segments, the lock) is 0600, even
// with a permissive umask.
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })

	root := t.TempDir()
	d := filepath.Join(root, "a", "log")
	l := openT(t, d, segment.Config{Sync: segment.SyncAlways, SegmentBytes: 256})
	for i := range uint64(20) { // several segments
		if _, err := l.Append(val(i)); err != nil {
			t.Fatal(err)
		}
	}
	closeT(t, l)

	files := 0
	err := filepath.WalkDir(filepath.Join(root, "a"), func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if e.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %#o, want %#o", path, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 {
		t.Fatalf("found %d files, want a lock and several segments", files)
	}
}
