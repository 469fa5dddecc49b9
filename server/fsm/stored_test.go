package fsm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/commitlog-go/commitlog/storage"
)

// TestStoredAppliedIndex: the highest Raft index the topics' partitions on disk applied, read
// without a Machine (which opens them only on restore and replay): a topic deleted and its
// files removed counts for nothing, one whose deletion was interrupted counts for what can
// still be read, and a partition of a live topic that does not open is an error naming it.
// The partitions are closed after: a Machine opens them again.
func TestStoredAppliedIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	topics := filepath.Join(dir, "topics")
	if got, err := StoredAppliedIndex(topics, segmentOpener); err != nil || got != 0 {
		t.Fatalf("no topics' directory: %d, %v; want 0, nil", got, err)
	}

	n := openMachineNode(t, dir)
	n.produce(DefaultTopic, 0, recs("d")...)
	mustCreate := func(name string, parts uint32) Topic {
		t.Helper()
		tp, err := n.m.CreateTopic(ctx, n, name, parts, TopicConfig{})
		if err != nil {
			t.Fatalf("CreateTopic %s: %v", name, err)
		}
		return tp
	}
	a := mustCreate("a", 2)
	n.produce("a", 1, recs("a1")...)
	wantA := n.index
	n.produce("a", 0, recs("a0")...) // partition 1 holds the higher index
	wantA = max(wantA, n.index)
	c := mustCreate("c", 2)
	n.produce("c", 0, recs("c0")...)
	n.produce("c", 1, recs("c1")...)
	wantC := n.index
	mustCreate("b", 1)
	n.produce("b", 0, recs("b0")...)
	if _, err := n.m.DeleteTopic(ctx, n, "b"); err != nil {
		t.Fatal(err)
	}
	n.produce(DefaultTopic, 0, recs("d")...) // the highest index, not in topics/
	n.close()

	got, err := StoredAppliedIndex(topics, segmentOpener)
	if err != nil || got != wantC {
		t.Fatalf("StoredAppliedIndex = %d, %v; want %d (topic c's last record; b's files are gone)", got, err, wantC)
	}

	// c's deletion interrupted: its marker written, its files still there (one partition
	// of which no longer opens). What reads counts; the rest is skipped.
	cDir := filepath.Join(topics, c.ID.String())
	if err := writeMarker(cDir + deletedSuffix); err != nil {
		t.Fatal(err)
	}
	if got, err := StoredAppliedIndex(topics, segmentOpener); err != nil || got != wantC {
		t.Fatalf("interrupted deletion: StoredAppliedIndex = %d, %v; want %d", got, err, wantC)
	}
	bad := filepath.Join(cDir, "1")
	failing := func(d string) (storage.Log, error) {
		if d == bad {
			return nil, fmt.Errorf("%w: cut", storage.ErrCorrupt)
		}
		return segmentOpener(d)
	}
	if got, err := StoredAppliedIndex(topics, failing); err != nil || got != max(wantA, wantC-1) {
		t.Fatalf("interrupted deletion, a partition that does not open: StoredAppliedIndex = %d, %v; want %d", got, err, max(wantA, wantC-1))
	}

	// The same partition of a live topic: an error naming it.
	if err := os.Remove(cDir + deletedSuffix); err != nil {
		t.Fatal(err)
	}
	if _, err := StoredAppliedIndex(topics, failing); !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("a live partition that does not open: %v; want storage.ErrCorrupt naming %s", err, bad)
	}

	// Nothing is left open: the partitions open again (segment logs lock their directory).
	for _, d := range []string{filepath.Join(topics, a.ID.String(), "0"), filepath.Join(topics, a.ID.String(), "1"), bad} {
		l, err := segmentOpener(d)
		if err != nil {
			t.Fatalf("reopen %s: %v", d, err)
		}
		_ = l.Close()
	}
}

// TestStoredAppliedIndexUnreadableDir: a topics' directory that cannot be read (here a
// regular file where it should be: permission bits do not stop root) is an error, not "no
// topic was stored": the node would otherwise start without checking Raft's files against
// what the topics' partitions applied.
func TestStoredAppliedIndexUnreadableDir(t *testing.T) {
	topics := filepath.Join(t.TempDir(), "topics")
	if err := os.WriteFile(topics, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := StoredAppliedIndex(topics, segmentOpener)
	if !errors.Is(err, syscall.ENOTDIR) || !strings.Contains(err.Error(), "topics' directory") {
		t.Fatalf("StoredAppliedIndex over a regular file = %d, %v; want ENOTDIR reading the topics' directory", got, err)
	}
}
