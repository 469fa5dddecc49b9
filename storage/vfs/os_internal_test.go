package vfs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestMkdirAllSyncsParents: MkdirAll syncs the parent of every directory it creates (so that
// each new entry survives a power failure) and nothing when the directory exists; what it
// creates is DirMode.
func TestMkdirAllSyncsParents(t *testing.T) {
	var synced []string
	orig := syncDir
	syncDir = func(d string) error { synced = append(synced, d); return orig(d) }
	t.Cleanup(func() { syncDir = orig })

	root := t.TempDir()
	dir := filepath.Join(root, "a", "b", "c")
	if err := (OS{}).MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(root, "a", "b"), filepath.Join(root, "a"), root}
	if !slices.Equal(synced, want) {
		t.Fatalf("synced %v, want %v (the parent of each created directory, deepest first)", synced, want)
	}
	for _, d := range []string{dir, filepath.Join(root, "a")} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != DirMode {
			t.Fatalf("%s: %v, mode %v; want %v", d, err, fi.Mode().Perm(), DirMode)
		}
	}
	synced = nil
	if err := (OS{}).MkdirAll(dir); err != nil || len(synced) != 0 {
		t.Fatalf("existing directory: err %v, synced %v; want nothing synced", err, synced)
	}
	// A file in the way is an error, nothing synced.
	file := filepath.Join(root, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (OS{}).MkdirAll(filepath.Join(file, "d")); err == nil || len(synced) != 0 {
		t.Fatalf("under a file: err %v, synced %v; want an error, nothing synced", err, synced)
	}
}
