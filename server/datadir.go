package server

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
)

// DefaultDataDir is the data directory of a Config without one: "data" in the working
// directory, as etcd keeps default.etcd there. The seed used $TMPDIR/commitlog, where any
// local user can create the directory first.
const DefaultDataDir = "data"

// Modes of the data directory and of the files under it.
const (
	dataDirMode  fs.FileMode = 0o700
	dataFileMode fs.FileMode = 0o600
)

// ErrDataDirPermissions means the data directory is writable by group or others, or belongs to
// another user: whoever can write there can change what the node stores and serves.
var ErrDataDirPermissions = errors.New("server: unsafe data directory")

// prepareDataDir creates dir (mode 0700) if needed and checks that it is safe to keep the log
// in: a directory, owned by this process's user, not writable by group or others. A directory
// that others may read or enter (0755, as the seed made it) is narrowed to 0700, and files
// under it made 0600: what a node stores is readable by its owner only.
func prepareDataDir(dir string, logger *slog.Logger) error {
	if err := os.MkdirAll(dir, dataDirMode); err != nil {
		return fmt.Errorf("server: data dir: %w", err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("server: data dir: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("server: data dir %s is not a directory", dir)
	}
	perm := info.Mode().Perm()
	if perm&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by group or others (mode %#o): run `chmod 700 %s`, or give --data-dir a directory of its own (it is created with mode 0700)",
			ErrDataDirPermissions, dir, perm, dir)
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: %s belongs to user id %d, not to this process's user (%d): another user could change it",
			ErrDataDirPermissions, dir, st.Uid, os.Geteuid())
	}
	if perm&0o077 != 0 {
		if err := os.Chmod(dir, dataDirMode); err != nil {
			return fmt.Errorf("server: data dir: %w", err)
		}
		logger.Warn("data dir was readable by others: made it private", "data_dir", dir, "old_mode", fmt.Sprintf("%#o", perm), "mode", "0700")
	}
	return privateTree(dir)
}

// privateTree narrows what is under dir (files an older version wrote 0644): directories to
// 0700, regular files to 0600. Symbolic links are not followed.
func privateTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		want := dataFileMode
		switch {
		case d.IsDir():
			want = dataDirMode
		case !d.Type().IsRegular():
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&^want != 0 {
			if err := os.Chmod(p, want); err != nil {
				return fmt.Errorf("server: data dir: make %s private: %w", p, err)
			}
		}
		return nil
	})
}
