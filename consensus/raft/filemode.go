package raft

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

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
// moved them into place.
type privateSink struct {
	hraft.SnapshotSink
	dir string // the store's snapshots directory
}

// Close implements raft.SnapshotSink.
func (s *privateSink) Close() error {
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	return makePrivate(filepath.Join(s.dir, s.ID()))
}

// Create implements raft.SnapshotStore: the FileSnapshotStore's sink, made private on Close.
func (s *snapshotStore) Create(version hraft.SnapshotVersion, index, term uint64, configuration hraft.Configuration,
	configurationIndex uint64, trans hraft.Transport) (hraft.SnapshotSink, error) {
	sink, err := s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil || s.dir == "" {
		return sink, err
	}
	return &privateSink{SnapshotSink: sink, dir: s.dir}, nil
}
