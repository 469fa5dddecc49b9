package raft

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	"github.com/hashicorp/raft-wal/metadb"
)

// TestEmptyWALMetaRefused: a zero-length wal-meta.db (a disk that lost the file's blocks)
// made raft-wal panic with a nil pointer dereference at start, naming nothing. The node now
// refuses to start, naming the file and the repair.
func TestEmptyWALMetaRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{ID: "n1", DataDir: dir}
	logs, stable, closers, err := openLogStore(cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := stable.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	if err := logs.StoreLog(&hraft.Log{Index: 1, Term: 3, Type: hraft.LogCommand, Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	for _, c := range closers {
		if err := c(); err != nil {
			t.Fatal(err)
		}
	}
	meta := filepath.Join(dir, "wal", metadb.FileName)
	if err := os.Truncate(meta, 0); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("opening Raft's log with an empty %s panicked: %v", metadb.FileName, r)
		}
	}()
	_, _, closers, err = openLogStore(cfg, hclog.NewNullLogger())
	if err == nil {
		for _, c := range closers {
			_ = c()
		}
		t.Fatalf("Raft's log opened with an empty %s", metadb.FileName)
	}
	if !strings.Contains(err.Error(), meta) || !strings.Contains(err.Error(), repairHint("n1")) {
		t.Fatalf("error %q does not name %s and the repair", err, meta)
	}
}
