package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/commitlog-go/commitlog/storage"
)

// The FIRST file records the id of the log's first segment, so that Open tells segments
// deleted by retention (TruncatePrefix, EnforceRetention) or Reset from segments lost at rest:
// without it a log whose oldest segment files were deleted by hand, or lost, opened as if
// retention had dropped them, and every record they held was gone without an error.
//
//	+-------------------------------+-------------------------------+
//	| magic "CLGF" (u32)            | first segment id (u64) ...    |  0
//	+-------------------------------+-------------------------------+
//	| ... first segment id          | CRC-32C of bytes [0, 12) (u32)|  8
//	+-------------------------------+-------------------------------+
//
// It is written (fdatasync'ed) before the segments below a new first one are deleted, and
// rewritten in place (16 bytes in one sector, as the segment headers are) afterwards. A
// first segment id above the one recorded is corruption, unless the first segment is a
// reset segment (a Reset makes its segment the first, whatever the file says). The file
// only guards: a FIRST that is missing (a log written before it existed), torn or damaged
// loses no record by itself, so Open then records the lowest segment it finds, logging a
// warning for a damaged one.
const (
	firstName          = "FIRST"
	firstMagic  uint32 = 0x46474c43 // "CLGF" little endian
	firstLen           = 16
	firstFields        = 12
)

func encodeFirst(id uint64) []byte {
	b := make([]byte, firstLen)
	binary.LittleEndian.PutUint32(b[0:], firstMagic)
	binary.LittleEndian.PutUint64(b[4:], id)
	binary.LittleEndian.PutUint32(b[firstFields:], crc32.Checksum(b[:firstFields], castagnoli))
	return b
}

// errFirstDamaged: the FIRST file is short, or fails its magic or checksum.
var errFirstDamaged = errors.New("segment: damaged FIRST file")

// readFirst returns the first segment id the FIRST file records; ok is false when there is
// no FIRST file. Errors: errFirstDamaged (wrapped) for a short file or a bad magic or
// checksum, or the file's I/O error (an open or read failing otherwise), which is no damage.
func (l *Log) readFirst() (id uint64, ok bool, err error) {
	path := filepath.Join(l.dir, firstName)
	f, err := l.fs.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("segment: open %s: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	var b [firstLen]byte
	n, err := f.ReadAt(b[:], 0)
	if n < firstLen && err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		// An I/O error says nothing of the file's content: taken for damage, Open would
		// record the lowest segment found, and a first segment lost at rest with it.
		return 0, false, fmt.Errorf("segment: read %s: %w", path, err)
	}
	if n < firstLen {
		return 0, false, fmt.Errorf("%w: %s holds %d bytes, want %d (%v)", errFirstDamaged, path, n, firstLen, err)
	}
	if binary.LittleEndian.Uint32(b[0:]) != firstMagic ||
		binary.LittleEndian.Uint32(b[firstFields:]) != crc32.Checksum(b[:firstFields], castagnoli) {
		return 0, false, fmt.Errorf("%w: %s fails its magic or checksum", errFirstDamaged, path)
	}
	return binary.LittleEndian.Uint64(b[4:]), true, nil
}

// writeFirst durably records id as the log's first segment (writeRecordFile). l.wmu must be
// held (or Open running).
func (l *Log) writeFirst(id uint64) error {
	if err := l.writeRecordFile(firstName, encodeFirst(id)); err != nil {
		return err
	}
	l.firstID = id
	return nil
}

// writeRecordFile durably writes b, a whole fixed-size record (FIRST, START), to the file name
// in the log's directory: in place when the file holds a record of that size (one sector,
// fdatasync'ed), else by creating it (and syncing the directory).
func (l *Log) writeRecordFile(name string, b []byte) error {
	path := filepath.Join(l.dir, name)
	if f, err := l.fs.Open(path); err == nil {
		size, serr := f.Size()
		if serr == nil && size == int64(len(b)) {
			_, err = f.WriteAt(b, 0)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}
			return nil
		}
		_ = f.Close()
	}
	f, err := l.fs.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// checkFirst compares the first segment found with the one recorded (Open, after the
// segments are opened and an interrupted Reset finished). recorded, ok and rerr are
// readFirst's results.
func (l *Log) checkFirst(recorded uint64, ok bool, rerr error) error {
	if rerr != nil {
		if !errors.Is(rerr, errFirstDamaged) {
			return rerr
		}
		l.logger.Warn("segment: the file recording the first segment is damaged; recording the lowest segment found", "err", rerr)
		ok = false
	}
	if len(l.segs) == 0 {
		if ok {
			return fmt.Errorf("segment: %s records segment %d as the log's first, but the log has no segment file (every segment is missing): %w",
				filepath.Join(l.dir, firstName), recorded, storage.ErrCorrupt)
		}
		return nil
	}
	s := l.segs[0]
	if ok && s.id > recorded && !s.resetFlag {
		return fmt.Errorf("segment: %s records segment %d as the log's first, but the lowest segment file is %s: segments %d to %d are missing (deleted or lost, not dropped by retention), with the records below offset %d: %w",
			filepath.Join(l.dir, firstName), recorded, s.path, recorded, s.id-1, s.base, storage.ErrCorrupt)
	}
	if ok && s.id == recorded {
		l.firstID = recorded
	}
	return nil
}
