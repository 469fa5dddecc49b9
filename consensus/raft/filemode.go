package raft

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	hraft "github.com/hashicorp/raft"
	"github.com/hashicorp/raft-wal/types"
)

// Modes of everything a Node stores: Raft's log, stable store and snapshots are private to the
// owner. hashicorp/raft-wal creates its files 0644 and raft's FileSnapshotStore its directories
// 0755 and files 0666 (less the umask); the wrappers below narrow them right after creation,
// and DataDir itself is created 0700, so nothing is reachable by others in between.
const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
)

// privateWALFS is raft-wal's file system (walfs.New()) with new segment files made 0600, also
// when preallocating one fails (a full disk): raft-wal has created the file by then, and the
// WAL reopened after the failed write goes on with it as its tail.
type privateWALFS struct {
	types.VFS
}

var _ types.VFS = privateWALFS{}

// Create implements types.VFS.
func (p privateWALFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	f, err := p.VFS.Create(dir, name, size)
	if err != nil {
		if cerr := os.Chmod(filepath.Join(dir, name), fileMode); cerr != nil && !errors.Is(cerr, fs.ErrNotExist) {
			return nil, errors.Join(err, fmt.Errorf("consensus/raft: chmod %s: %w", name, cerr))
		}
		return nil, err
	}
	if err := os.Chmod(filepath.Join(dir, name), fileMode); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("consensus/raft: chmod %s: %w", name, err)
	}
	return f, nil
}

// makePrivate narrows the modes of path and, for a directory, of everything under it: 0700 for
// directories, 0600 for regular files. Symbolic links and other entries are left alone.
func makePrivate(path string) error {
	return filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != path {
				return nil // removed meanwhile (e.g. an old snapshot reaped)
			}
			return err
		}
		mode := fileMode
		switch {
		case d.IsDir():
			mode = dirMode
		case !d.Type().IsRegular():
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if info.Mode().Perm() == mode {
			return nil
		}
		if err := os.Chmod(p, mode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("consensus/raft: make %s private: %w", p, err)
		}
		return nil
	})
}

// privateSink makes a snapshot's directory and files private once the FileSnapshotStore has
// moved them into place, and tells its store when it is done (closed or cancelled).
type privateSink struct {
	hraft.SnapshotSink
	store *snapshotStore
}

// Close implements raft.SnapshotSink.
func (s *privateSink) Close() error {
	defer s.store.done(s.ID())
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	return makePrivate(filepath.Join(s.store.dir, s.ID()))
}

// Cancel implements raft.SnapshotSink. FileSnapshotSink.Cancel removes the temporary snapshot
// only once its buffered writes flush: on a full disk (an InstallSnapshot that ran out of
// space) they do not, and the partial copy stayed, keeping the disk full.
func (s *privateSink) Cancel() error {
	defer s.store.done(s.ID())
	err := s.SnapshotSink.Cancel()
	if rerr := os.RemoveAll(filepath.Join(s.store.dir, s.ID()+tempSnapshotSuffix)); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// Create implements raft.SnapshotStore: the FileSnapshotStore's sink, made private on Close.
// First, and again when it fails, it removes the temporary snapshots no sink of this store is
// writing: those a failed Create (FileSnapshotStore.Create leaves its directory when it cannot
// write the metadata or create the state file) or a failed Cancel left. Without this, a
// follower whose disk filled during InstallSnapshot kept every partial copy until it restarted
// (removeTempSnapshots): the leader's retries failed for good, even once the disk had grown
// enough for the snapshot. Creates are serialized, so none is removed while it is made.
func (s *snapshotStore) Create(version hraft.SnapshotVersion, index, term uint64, configuration hraft.Configuration,
	configurationIndex uint64, trans hraft.Transport) (hraft.SnapshotSink, error) {
	if s.dir == "" {
		return s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeAbandoned()
	sink, err := s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		s.removeAbandoned()
		return nil, err
	}
	if s.live == nil {
		s.live = map[string]bool{}
	}
	s.live[sink.ID()] = true
	return &privateSink{SnapshotSink: sink, store: s}, nil
}

// done forgets the sink of snapshot id: closed or cancelled.
func (s *snapshotStore) done(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, id)
}

// removeAbandoned removes the temporary snapshots in the store's directory that no live sink
// writes, logging each; failures are logged (the next Create tries again). Called with mu held.
func (s *snapshotStore) removeAbandoned() {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), tempSnapshotSuffix)
		if !ok || s.live[id] {
			continue
		}
		p := filepath.Join(s.dir, e.Name())
		if err := os.RemoveAll(p); err != nil {
			s.log().Warn("cannot remove an incomplete snapshot left by a failed snapshot", "path", p, "err", err)
			continue
		}
		s.log().Warn("removed an incomplete snapshot left by a failed snapshot", "path", p)
	}
}

func (s *snapshotStore) log() *slog.Logger {
	if s.logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.logger
}
