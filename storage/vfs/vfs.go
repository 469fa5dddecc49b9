// Package vfs is the small file-system interface through which storage/segment does all of its
// file I/O, as hashicorp/raft-wal does with its vfs. Two implementations exist: OS (the real
// file system, with fdatasync and flock) and storage/vfs/crashfs (in memory, simulating power
// failures and injecting faults, for tests).
//
// The interface covers only what an append-only log needs: files are written sequentially at
// their end, read at any position, truncated, and synced; directories are listed, synced and
// locked.
package vfs

import (
	"errors"
	"io"
)

// ErrLocked is returned by FS.Lock when another holder (another process, or another Lock in
// this process) already holds the lock.
var ErrLocked = errors.New("vfs: locked by another holder")

// FS is a file system. Implementations are safe for concurrent use.
//
// Durability contract (what crashfs simulates): bytes written to a File are durable only after
// File.Sync returns; a created, removed or renamed directory entry is durable only after
// SyncDir of its directory returns.
type FS interface {
	// Create creates the named file, truncating it if it exists, and opens it for reading
	// and appending.
	Create(name string) (File, error)
	// Open opens an existing file for reading and appending.
	Open(name string) (File, error)
	// Remove removes the named file. Open handles on it keep working.
	Remove(name string) error
	// ReadDir returns the names (not paths) of the regular files in dir, sorted.
	ReadDir(dir string) ([]string, error)
	// MkdirAll creates dir and its parents if needed; the directories it creates are durable
	// when it returns (their entries survive a power failure).
	MkdirAll(dir string) error
	// SyncDir makes the creations and removals in dir durable.
	SyncDir(dir string) error
	// Lock takes an exclusive lock on the named file (creating it if needed) without
	// blocking: it returns an error wrapping ErrLocked when the lock is held elsewhere.
	// Closing the returned io.Closer releases the lock.
	Lock(name string) (io.Closer, error)
}

// File is an open file. ReadAt may be called concurrently with every other method; Write,
// Truncate and Sync are called by one goroutine at a time. WriteAt may run concurrently with
// Write when it overwrites bytes already written (storage/segment rewrites a segment's header
// while an appender writes at the end).
type File interface {
	io.ReaderAt
	// Write appends p at the end of the file. A short write returns an error.
	Write(p []byte) (int, error)
	// WriteAt overwrites len(p) bytes at off, which must be within the file.
	WriteAt(p []byte, off int64) (int, error)
	// Truncate changes the size of the file; later writes append at the new end.
	Truncate(size int64) error
	// Sync makes the file's content durable (fdatasync where available).
	Sync() error
	// Size returns the current size of the file.
	Size() (int64, error)
	// Close releases the file.
	Close() error
}
