package crashfs_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/commitlog-go/commitlog/storage/vfs"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

func mustCreate(t *testing.T, fs *crashfs.FS, name string, data string, sync bool) vfs.File {
	t.Helper()
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func content(t *testing.T, fs *crashfs.FS, name string) (string, bool) {
	t.Helper()
	b, err := fs.ReadFile(name)
	if errors.Is(err, syscall.ENOENT) || err != nil {
		return "", false
	}
	return string(b), true
}

func TestCrashSemantics(t *testing.T) {
	fs := crashfs.New()
	if err := fs.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	a := mustCreate(t, fs, "/d/a", "durable", true)
	if err := fs.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("+lost")); err != nil { // appended, not synced
		t.Fatal(err)
	}
	mustCreate(t, fs, "/d/c", "x", true)
	if err := fs.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Remove("/d/c"); err != nil { // removal not synced
		t.Fatal(err)
	}
	mustCreate(t, fs, "/d/b", "synced data, unsynced entry", true)
	fs.Crash(crashfs.DropUnsynced, nil)

	tests := []struct {
		name, want string
		exists     bool
	}{
		{"/d/a", "durable", true},
		{"/d/b", "", false},
		{"/d/c", "x", true},
	}
	for _, tc := range tests {
		got, ok := content(t, fs, tc.name)
		if ok != tc.exists || got != tc.want {
			t.Errorf("%s after crash = %q (exists %v), want %q (exists %v)", tc.name, got, ok, tc.want, tc.exists)
		}
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, crashfs.ErrCrashed) {
		t.Errorf("write through a pre-crash handle = %v, want ErrCrashed", err)
	}
}

func TestTornPrefix(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for range 100 {
		fs := crashfs.New()
		_ = fs.MkdirAll("/d")
		f := mustCreate(t, fs, "/d/f", "base:", true)
		_ = fs.SyncDir("/d")
		extra := []byte("0123456789abcdef")
		if _, err := f.Write(extra); err != nil {
			t.Fatal(err)
		}
		fs.Crash(crashfs.TearUnsynced, rng)
		got, _ := fs.ReadFile("/d/f")
		if !bytes.HasPrefix(got, []byte("base:")) || len(got) > len("base:")+len(extra) {
			t.Fatalf("torn file %q does not keep the durable prefix within bounds", got)
		}
	}
}

func TestFaults(t *testing.T) {
	fs := crashfs.New()
	_ = fs.MkdirAll("/d")
	f := mustCreate(t, fs, "/d/f", "abc", false)
	fs.FailNth(crashfs.OpSync, 2, syscall.EIO)
	if err := f.Sync(); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("second sync = %v, want EIO", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("third sync: %v (faults fire once)", err)
	}
	fs.SetLimit(5)
	n, err := f.Write([]byte("defg"))
	if n != 2 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write past the limit = %d, %v; want 2, ENOSPC", n, err)
	}
	buf := make([]byte, 10)
	if n, err := f.ReadAt(buf, 0); string(buf[:n]) != "abcde" || err != io.EOF {
		t.Fatalf("ReadAt = %q, %v", buf[:n], err)
	}
	if _, err := fs.Lock("/d/LOCK"); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Lock("/d/LOCK"); !errors.Is(err, vfs.ErrLocked) {
		t.Fatalf("second lock = %v", err)
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDropUnsyncedPages: synced bytes survive; of the pages written since, some keep their
// new content and some revert (zeros where nothing was synced), independently.
func TestDropUnsyncedPages(t *testing.T) {
	kept, dropped := 0, 0
	for seed := range uint64(20) {
		fs := crashfs.New()
		if err := fs.MkdirAll("/d"); err != nil {
			t.Fatal(err)
		}
		f, err := fs.Create("/d/f")
		if err != nil {
			t.Fatal(err)
		}
		synced := bytes.Repeat([]byte{1}, crashfs.PageSize+100)
		if _, err := f.Write(synced); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil || fs.SyncDir("/d") != nil {
			t.Fatal(err)
		}
		unsynced := bytes.Repeat([]byte{2}, 8*crashfs.PageSize)
		if _, err := f.Write(unsynced); err != nil {
			t.Fatal(err)
		}
		fs.Crash(crashfs.DropUnsyncedPages, rand.New(rand.NewPCG(seed, 1)))
		got, err := fs.ReadFile("/d/f")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:len(synced)], synced) {
			t.Fatalf("seed %d: synced bytes changed", seed)
		}
		for p := len(synced); p < len(got); p += crashfs.PageSize {
			page := got[p:min(len(got), (p/crashfs.PageSize+1)*crashfs.PageSize)]
			p = p / crashfs.PageSize * crashfs.PageSize
			switch {
			case bytes.Count(page, []byte{2}) == len(page):
				kept++
			case bytes.Count(page, []byte{0}) == len(page):
				dropped++
			default:
				t.Fatalf("seed %d: page at %d mixes kept and dropped bytes", seed, p)
			}
		}
	}
	if kept == 0 || dropped == 0 {
		t.Fatalf("kept %d pages, dropped %d; want both", kept, dropped)
	}
}
