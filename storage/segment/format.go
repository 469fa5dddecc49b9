package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
)

// On-disk format, version 2 (segment header version 2; index files stay at version 1).
// Version 1 segments (written before the synced watermark existed) still open; see below.
//
// A log is a directory holding segment files, their index files and a lock file:
//
//	LOCK                                      flock'ed while a Log has the directory open
//	0000000001-00000000000000000000.seg       segment id 1, base offset 0
//	0000000001-00000000000000000000.idx       its index (written when the segment is sealed)
//	0000000002-00000000000000001234.seg       segment id 2, base offset 1234 (the active one)
//	0000000001-00000000000000000000.tix       time index of segment 1 (only with Config.Timestamp;
//	                                          format in timeindex.go)
//	FIRST                                     the id of the first segment (format in first.go)
//
// Segment ids increase by one for every new segment file and order the files. A segment
// holds the consecutive offsets [base, base+n); the segments of a log are contiguous. Only the
// segment with the highest id (the active one) is written to; the others are sealed and
// immutable until retention or truncation deletes them.
//
// Segment file:
//
//	+---------------------------------------------------------------+
//	| segment header (40 bytes)                                     |
//	+---------------------------------------------------------------+
//	| record frame | record frame | ... | record frame              |
//	+---------------------------------------------------------------+
//
// Segment header (little endian):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-------------------------------+---------------+---------------+
//	| magic "CLGS" (0x53474c43)     | version (u16) | flags (u16)   |  0
//	+-------------------------------+---------------+---------------+
//	| segment id (u64)                                              |  8
//	+---------------------------------------------------------------+
//	| base offset (u64): offset of the first record                 | 16
//	+---------------------------------------------------------------+
//	| created (i64): unix nanoseconds when the segment was created  | 24
//	+-------------------------------+-------------------------------+
//	| synced (u32), see below       | CRC-32C of bytes [0, 36) (u32)| 32
//	+-------------------------------+-------------------------------+
//
// version is 2 for segments written by this code, 1 for older ones (whose synced field is a
// reserved zero). Open reads both; the first header rewrite of a version 1 segment (see
// synced) makes it version 2.
//
// synced (version 2 only) is the durable watermark: a file position, at a batch boundary, up
// to which the segment's bytes were made durable by an fdatasync that completed before this
// header was written. It may lag the truth, never lead it: after each fdatasync the log
// remembers the position it covered, and rewrites the header (40 bytes in place, one sector,
// whose write is atomic) just before the next fdatasync of the same file, which makes the new
// value durable together with the data. Sync and Close write it and fdatasync once more, so
// that after a clean Close it is exact. TruncateSuffix lowers it, durably, before it cuts the
// file. A new segment starts with synced = 40 (the header).
//
// flags bit 0 (flagReset): the segment was created by Reset; every segment with a lower id is
// obsolete. Open finishes an interrupted Reset by deleting them.
//
// Record frame (little endian), one per record, written back to back:
//
//	+-------------------------------+-------------------------------+
//	| CRC-32C (u32) of bytes        | L | value length (31 bits)    |  0
//	| [4, 16+length) of the frame   |   |                           |
//	+-------------------------------+-------------------------------+
//	| offset (u64)                                                  |  8
//	+---------------------------------------------------------------+
//	| value (length bytes)                                      ... | 16
//	+---------------------------------------------------------------+
//
// L (bit 31 of the length word) marks the last record of a batch. A batch is written by one
// write(2) and never spans two segments; recovery keeps a batch only if its last frame (the
// one with L set) is whole, so a batch survives a crash entirely or not at all.
//
// Index file (a cache: Open rebuilds it from the segment when it is missing, short or fails
// its checksum):
//
//	+---------------------------------------------------------------+
//	| magic "CLGI" (u32) | version (u16) | zero (u16) | id (u64)     |  0
//	| base offset (u64)  | record count (u64)                        |  16
//	+---------------------------------------------------------------+
//	| position of each record's frame in the segment file (u32) ... |  32
//	+---------------------------------------------------------------+
//	| CRC-32C of everything before (u32)                            |
//	+---------------------------------------------------------------+
//
// Recovery (Open): sealed segments are checked cheaply (header, index, and the last frame,
// which must be whole, carry the L flag and end exactly at the end of the file); their other
// frames are verified when read. The active segment is scanned and every checksum verified.
// What happens at its first bad frame depends on the synced watermark:
//
//   - Beyond synced (version 2): the bytes there were never known durable, and page writeback
//     is not ordered, so a power failure may have left holes (lost or zeroed pages) with valid
//     frames after them. It is a torn tail, whatever follows: the segment is cut back to the
//     end of its last whole batch and the cut is reported (Log.Recovery: TruncatedBytes,
//     DroppedRecords, Hole). Whoever replicates the log (Raft) replays the lost records.
//   - At or below synced, or a file shorter than synced: durable bytes changed. It is
//     corruption.
//   - Version 1 segment (no watermark): as before the watermark, a bad frame followed by a
//     valid one is corruption; otherwise it is a torn tail, cut.
//
// After recovery the active segment's synced field is made exact (fdatasync, header rewrite,
// fdatasync) when it is not already. Any defect in a sealed segment is corruption. Corruption
// makes Open fail with an error wrapping storage.ErrCorrupt that names the file and position.

// Wire-format constants. They are part of the on-disk format: do not change them.
const (
	segMagic   uint32 = 0x53474c43 // "CLGS" little endian
	idxMagic   uint32 = 0x49474c43 // "CLGI" little endian
	version    uint16 = 2          // segment header version written
	version1   uint16 = 1          // segment header version before the synced watermark
	idxVersion uint16 = 1          // index file version
	flagReset  uint16 = 1 << 0
	segHdrLen         = 40
	frameHdr          = 16
	lastFlag   uint32 = 1 << 31
	lengthMask uint32 = lastFlag - 1
	idxHdrLen         = 32
	segExt            = ".seg"
	idxExt            = ".idx"
	lockName          = "LOCK"
)

// Hard limits. MaxRecordBytesLimit bounds Config.MaxRecordBytes and therefore any allocation
// made from a length read from disk.
const (
	// MaxRecordBytesLimit is the largest value Config.MaxRecordBytes may take (64 MiB).
	MaxRecordBytesLimit = 64 << 20
	// MaxSegmentBytesLimit is the largest value Config.SegmentBytes may take (1 GiB).
	MaxSegmentBytesLimit = 1 << 30
	// MinSegmentBytes is the smallest value Config.SegmentBytes may take: a segment's header
	// and one record frame's (56 bytes).
	MinSegmentBytes = segHdrLen + frameHdr
	// MaxBatchBytesLimit is the largest value Config.MaxBatchBytes may take (1 GiB). With
	// MaxSegmentBytesLimit it keeps every segment below 4 GiB, so positions fit in 32 bits.
	MaxBatchBytesLimit = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errFrame describes why a frame failed to decode; decodeFrame wraps it.
var (
	errShort    = errors.New("segment: frame truncated")
	errChecksum = errors.New("segment: checksum mismatch")
	errLength   = errors.New("segment: length exceeds limit")
	errOffset   = errors.New("segment: unexpected offset")
)

// segHeader is the decoded segment header.
type segHeader struct {
	version uint16 // as read; encode always writes version (2)
	flags   uint16
	id      uint64
	base    uint64
	created int64
	synced  uint32 // durable watermark (version 2)
}

func (h segHeader) encode(b []byte) {
	_ = b[segHdrLen-1]
	binary.LittleEndian.PutUint32(b[0:], segMagic)
	binary.LittleEndian.PutUint16(b[4:], version)
	binary.LittleEndian.PutUint16(b[6:], h.flags)
	binary.LittleEndian.PutUint64(b[8:], h.id)
	binary.LittleEndian.PutUint64(b[16:], h.base)
	binary.LittleEndian.PutUint64(b[24:], uint64(h.created))
	binary.LittleEndian.PutUint32(b[32:], h.synced)
	binary.LittleEndian.PutUint32(b[36:], crc32.Checksum(b[:36], castagnoli))
}

func decodeSegHeader(b []byte) (segHeader, error) {
	if len(b) < segHdrLen {
		return segHeader{}, errShort
	}
	if m := binary.LittleEndian.Uint32(b[0:]); m != segMagic {
		return segHeader{}, fmt.Errorf("bad magic %#x", m)
	}
	if crc32.Checksum(b[:36], castagnoli) != binary.LittleEndian.Uint32(b[36:]) {
		return segHeader{}, errChecksum
	}
	v := binary.LittleEndian.Uint16(b[4:])
	if v != version && v != version1 {
		return segHeader{}, fmt.Errorf("unsupported format version %d", v)
	}
	h := segHeader{
		version: v,
		flags:   binary.LittleEndian.Uint16(b[6:]),
		id:      binary.LittleEndian.Uint64(b[8:]),
		base:    binary.LittleEndian.Uint64(b[16:]),
		created: int64(binary.LittleEndian.Uint64(b[24:])),
	}
	if v == version {
		h.synced = binary.LittleEndian.Uint32(b[32:])
	}
	return h, nil
}

// appendFrame appends the frame of one record to dst.
func appendFrame(dst []byte, off uint64, value []byte, last bool) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, frameHdr)...) // does not allocate when cap suffices
	dst = append(dst, value...)
	f := dst[n:]
	lw := uint32(len(value))
	if last {
		lw |= lastFlag
	}
	binary.LittleEndian.PutUint32(f[4:], lw)
	binary.LittleEndian.PutUint64(f[8:], off)
	binary.LittleEndian.PutUint32(f[0:], crc32.Checksum(f[4:], castagnoli))
	return dst
}

// setLast sets the last-in-batch flag of the whole, valid frame f in place and recomputes
// its checksum; only the first 8 bytes change.
func setLast(f []byte) {
	lw := binary.LittleEndian.Uint32(f[4:]) | lastFlag
	binary.LittleEndian.PutUint32(f[4:], lw)
	binary.LittleEndian.PutUint32(f[0:], crc32.Checksum(f[4:], castagnoli))
}

// frameInfo is the decoded header of a frame.
type frameInfo struct {
	length int    // value length
	last   bool   // last record of its batch
	offset uint64 // record offset
}

// size is the whole frame's size in bytes.
func (f frameInfo) size() int { return frameHdr + f.length }

// peekFrame decodes a frame header from b without checking the checksum. It fails when b is
// shorter than a header or when the length exceeds maxLen; it never allocates.
func peekFrame(b []byte, maxLen int) (frameInfo, error) {
	if len(b) < frameHdr {
		return frameInfo{}, errShort
	}
	lw := binary.LittleEndian.Uint32(b[4:])
	fi := frameInfo{
		length: int(lw & lengthMask),
		last:   lw&lastFlag != 0,
		offset: binary.LittleEndian.Uint64(b[8:]),
	}
	if fi.length > maxLen {
		return fi, fmt.Errorf("%w: %d > %d", errLength, fi.length, maxLen)
	}
	return fi, nil
}

// decodeFrame decodes and verifies the frame at the start of b, which must hold the whole
// frame; value aliases b.
func decodeFrame(b []byte, maxLen int) (fi frameInfo, value []byte, err error) {
	fi, err = peekFrame(b, maxLen)
	if err != nil {
		return fi, nil, err
	}
	if len(b) < fi.size() {
		return fi, nil, errShort
	}
	if crc32.Checksum(b[4:fi.size()], castagnoli) != binary.LittleEndian.Uint32(b[0:]) {
		return fi, nil, errChecksum
	}
	return fi, b[frameHdr:fi.size()], nil
}

// encodeIndex returns the index file content for a segment.
func encodeIndex(id, base uint64, pos []uint32) []byte {
	b := make([]byte, idxHdrLen+4*len(pos)+4)
	binary.LittleEndian.PutUint32(b[0:], idxMagic)
	binary.LittleEndian.PutUint16(b[4:], idxVersion)
	binary.LittleEndian.PutUint64(b[8:], id)
	binary.LittleEndian.PutUint64(b[16:], base)
	binary.LittleEndian.PutUint64(b[24:], uint64(len(pos)))
	for i, p := range pos {
		binary.LittleEndian.PutUint32(b[idxHdrLen+4*i:], p)
	}
	n := len(b) - 4
	binary.LittleEndian.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
	return b
}

// decodeIndex checks an index file's content against the segment it should describe and
// returns its positions. segSize bounds the record count, so a corrupt count cannot make it
// allocate more than the file holds.
func decodeIndex(b []byte, id, base uint64) ([]uint32, error) {
	if len(b) < idxHdrLen+4 {
		return nil, errShort
	}
	if binary.LittleEndian.Uint32(b[0:]) != idxMagic || binary.LittleEndian.Uint16(b[4:]) != idxVersion {
		return nil, errors.New("bad index magic or version")
	}
	n := len(b) - 4
	if crc32.Checksum(b[:n], castagnoli) != binary.LittleEndian.Uint32(b[n:]) {
		return nil, errChecksum
	}
	if binary.LittleEndian.Uint64(b[8:]) != id || binary.LittleEndian.Uint64(b[16:]) != base {
		return nil, errors.New("index belongs to another segment")
	}
	count := binary.LittleEndian.Uint64(b[24:])
	if count != uint64((n-idxHdrLen)/4) || (n-idxHdrLen)%4 != 0 {
		return nil, errShort
	}
	pos := make([]uint32, count)
	for i := range pos {
		pos[i] = binary.LittleEndian.Uint32(b[idxHdrLen+4*i:])
	}
	return pos, nil
}

// segName returns the file name of a segment (ext segExt or idxExt).
func segName(id, base uint64, ext string) string {
	return fmt.Sprintf("%010d-%020d%s", id, base, ext)
}

// parseSegName parses a segment or index file name.
func parseSegName(name, ext string) (id, base uint64, ok bool) {
	if len(name) != 10+1+20+len(ext) || name[10] != '-' || name[31:] != ext {
		return 0, 0, false
	}
	id, err1 := strconv.ParseUint(name[:10], 10, 64)
	base, err2 := strconv.ParseUint(name[11:31], 10, 64)
	return id, base, err1 == nil && err2 == nil
}
