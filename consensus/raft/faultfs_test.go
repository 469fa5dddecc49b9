package raft

import (
	"sync/atomic"
	"syscall"

	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/types"
)

// Fault modes of faultFS.
const (
	faultNone  int32 = iota
	faultFull        // the disk is full: writes store half their bytes and fail with ENOSPC, new segment files cannot be allocated
	faultFsync       // writes land in the page cache, but fsync fails with EIO
	// faultPastEnd: the disk is full and segment files are preallocated (as on a real disk):
	// bytes within a file's first pastEnd bytes are written, the rest fail with ENOSPC, and new
	// segment files cannot be allocated.
	faultPastEnd
)

// faultFS is raft-wal's OS file system with a switchable fault.
type faultFS struct {
	*walfs.FS
	mode atomic.Int32
	hits atomic.Int32 // operations failed
	// pastEnd is the size of the preallocated files under faultPastEnd.
	pastEnd int64
}

func (f *faultFS) fail(err error) error {
	f.hits.Add(1)
	return err
}

func (f *faultFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	if m := f.mode.Load(); m == faultFull || m == faultPastEnd {
		// As raft-wal's own: the file is created, then preallocating it fails.
		wf, err := f.FS.Create(dir, name, 0)
		if err == nil {
			_ = wf.Close()
		}
		return nil, f.fail(syscall.ENOSPC)
	}
	wf, err := f.FS.Create(dir, name, size)
	if err != nil {
		return nil, err
	}
	return &faultFile{WritableFile: wf, fs: f}, nil
}

func (f *faultFS) OpenWriter(dir, name string) (types.WritableFile, error) {
	wf, err := f.FS.OpenWriter(dir, name)
	if err != nil {
		return nil, err
	}
	return &faultFile{WritableFile: wf, fs: f}, nil
}

type faultFile struct {
	types.WritableFile
	fs *faultFS
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if f.fs.mode.Load() == faultFull {
		n, _ := f.WritableFile.WriteAt(p[:len(p)/2], off) // a torn write
		return n, f.fs.fail(syscall.ENOSPC)
	}
	if f.fs.mode.Load() == faultPastEnd && off+int64(len(p)) > f.fs.pastEnd {
		n, _ := f.WritableFile.WriteAt(p[:max(0, f.fs.pastEnd-off)], off)
		return n, f.fs.fail(syscall.ENOSPC)
	}
	return f.WritableFile.WriteAt(p, off)
}

func (f *faultFile) Sync() error {
	if f.fs.mode.Load() == faultFsync {
		return f.fs.fail(syscall.EIO)
	}
	return f.WritableFile.Sync()
}
