package fsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/commitlog-go/commitlog/storage"
)

// StoredAppliedIndex returns the highest Raft index that a partition stored in dir has
// applied, 0 when none holds a record. dir is a MachineConfig.Dir (<topic ID>/<partition>/);
// each partition's index is read from its last record, as New reads it. The default topic's
// partition 0 is not in dir: Machine.AppliedIndex knows it as soon as NewMachine returns,
// whereas the Machine opens the other partitions only when the consensus restores its
// snapshot and replays its commands. Every record was applied from a Raft entry, so a
// consensus whose files end below this index lost entries even when the default partition
// holds nothing.
//
// Each partition is opened with openLog and closed before StoredAppliedIndex returns: call
// it before a Machine over dir opens partitions (NewMachine opens none), never while one holds
// them. A deleted topic whose files are gone counts for nothing (its deletion marker is a
// file, not a directory). The files of a topic whose deletion was interrupted (its marker is
// there, its directory too) count for what can still be read: a partition of theirs that does
// not open is skipped, as the Machine never opens it (the replayed delete, or the next
// snapshot, removes it).
//
// Errors: dir unreadable (a missing dir is none: no topic was stored); a partition of a
// topic not being deleted that openLog or New refuse (storage.ErrCorrupt, ...), wrapped,
// naming its directory.
func StoredAppliedIndex(dir string, openLog func(dir string) (storage.Log, error)) (uint64, error) {
	topics, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("fsm: read the topics' directory: %w", err)
	}
	var applied uint64
	for _, t := range topics {
		id, err := ParseTopicID(t.Name())
		if err != nil || !t.IsDir() || id == (TopicID{}) {
			continue // a deletion marker, or no topic's
		}
		tdir := filepath.Join(dir, t.Name())
		_, err = os.Stat(tdir + deletedSuffix)
		deleting := err == nil
		parts, err := os.ReadDir(tdir)
		if err != nil {
			if deleting || errors.Is(err, os.ErrNotExist) {
				continue
			}
			return 0, fmt.Errorf("fsm: read topic %s's directory: %w", id, err)
		}
		for _, p := range parts {
			if _, err := strconv.ParseUint(p.Name(), 10, 32); err != nil || !p.IsDir() {
				continue
			}
			pdir := filepath.Join(tdir, p.Name())
			idx, err := partitionApplied(pdir, openLog)
			if err != nil {
				if deleting {
					continue
				}
				return 0, fmt.Errorf("fsm: partition %s: %w", pdir, err)
			}
			applied = max(applied, idx)
		}
	}
	return applied, nil
}

// partitionApplied opens the partition in dir, reads the Raft index its last record was
// applied from (New) and closes it.
func partitionApplied(dir string, openLog func(dir string) (storage.Log, error)) (uint64, error) {
	log, err := openLog(dir)
	if err != nil {
		return 0, err
	}
	f, err := New(Config{Log: log})
	if err != nil {
		_ = log.Close()
		return 0, err
	}
	f.failCancel()
	idx := f.AppliedIndex()
	if err := log.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
		return 0, err
	}
	return idx, nil
}
