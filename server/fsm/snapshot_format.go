package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/commitlog-go/commitlog/storage"
)

// Snapshot manifest, what Snapshot.Persist writes and Restore reads. All integers big-endian;
// part of the on-disk format (Raft keeps manifests in its snapshot store): a layout must not be
// changed; a new layout gets a new version. Version 2 is written; both are read.
//
// Version 1 (56 bytes):
//
//	 0            4        5       6            8
//	+------------+--------+-------+------------+
//	| magic CLSM | version| flags | reserved=0 |
//	|  4 bytes   | u8 = 1 |  u8   |   uint16   |
//	+------------+--------+-------+------------+
//	 8               16              24              32              40              48
//	+---------------+---------------+---------------+---------------+---------------+
//	| applied index | applied term  | log lowest    | log next      | next position |
//	|   uint64      |   uint64      |   uint64      |   uint64      |   uint64      |
//	+---------------+---------------+---------------+---------------+---------------+
//	 48                52                56
//	+-----------------+-----------------+
//	| last record CRC | CRC-32C of 0:52 |
//	|   uint32        |   uint32        |
//	+-----------------+-----------------+
//
// Version 2 (64 bytes) is version 1 with version = 2 and, between next position and last
// record CRC, the log's first offset:
//
//	 48              56                60                64
//	+---------------+-----------------+-----------------+
//	| first offset  | last record CRC | CRC-32C of 0:60 |
//	|   uint64      |   uint32        |   uint32        |
//	+---------------+-----------------+-----------------+
//
// first is the replicated start of the log (the last retain command's offset, see
// format.go): a node restoring the snapshot holds exactly [first, next). lowest is what the
// source's storage still held (at most first; whole segments are dropped). A version-1
// manifest's first is its lowest.
//
// flags bit 0: the last record CRC is known; it is the CRC-32C of the stored bytes of the
// record at offset next-1 (used to check that a log and a manifest describe the same records).
// flags bit 1: the next position is known; it is the byte position (see the envelope) of the
// record at offset next.
const (
	manifestMagic       = "CLSM"
	manifestVersion1    = 1
	manifestVersion     = 2
	manifestLenV1       = 56
	manifestLen         = 64
	manifestFlagLastCRC = 1
	manifestFlagNextPos = 2
)

// manifest is a decoded snapshot manifest.
type manifest struct {
	Index, Term  uint64
	Lowest, Next uint64
	First        uint64
	NextPos      uint64
	LastCRC      uint32
	HasLastCRC   bool
	HasNextPos   bool
}

func (m manifest) encode() []byte {
	b := make([]byte, manifestLen)
	copy(b, manifestMagic)
	b[4] = manifestVersion
	if m.HasLastCRC {
		b[5] |= manifestFlagLastCRC
	}
	if m.HasNextPos {
		b[5] |= manifestFlagNextPos
	}
	binary.BigEndian.PutUint64(b[8:], m.Index)
	binary.BigEndian.PutUint64(b[16:], m.Term)
	binary.BigEndian.PutUint64(b[24:], m.Lowest)
	binary.BigEndian.PutUint64(b[32:], m.Next)
	binary.BigEndian.PutUint64(b[40:], m.NextPos)
	binary.BigEndian.PutUint64(b[48:], m.First)
	binary.BigEndian.PutUint32(b[56:], m.LastCRC)
	binary.BigEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return b
}

// errBadManifest prefixes manifest decoding errors; it wraps storage.ErrCorrupt.
var errBadManifest = fmt.Errorf("fsm: bad snapshot manifest: %w", storage.ErrCorrupt)

func decodeManifest(b []byte) (manifest, error) {
	if len(b) < 5 || string(b[:4]) != manifestMagic {
		return manifest{}, fmt.Errorf("%w: %d bytes, bad magic", errBadManifest, len(b))
	}
	size, crcAt := manifestLen, 60
	switch b[4] {
	case manifestVersion1:
		size, crcAt = manifestLenV1, 52
	case manifestVersion:
	default:
		return manifest{}, fmt.Errorf("%w: unknown version %d", errBadManifest, b[4])
	}
	switch {
	case len(b) != size:
		return manifest{}, fmt.Errorf("%w: %d bytes, want %d", errBadManifest, len(b), size)
	case crc32.Checksum(b[:crcAt], castagnoli) != binary.BigEndian.Uint32(b[crcAt:]):
		return manifest{}, fmt.Errorf("%w: checksum mismatch", errBadManifest)
	case b[5]&^(manifestFlagLastCRC|manifestFlagNextPos) != 0 || b[6] != 0 || b[7] != 0:
		return manifest{}, fmt.Errorf("%w: unknown flags %#x or reserved bytes set", errBadManifest, b[5])
	}
	m := manifest{
		Index:      binary.BigEndian.Uint64(b[8:]),
		Term:       binary.BigEndian.Uint64(b[16:]),
		Lowest:     binary.BigEndian.Uint64(b[24:]),
		Next:       binary.BigEndian.Uint64(b[32:]),
		NextPos:    binary.BigEndian.Uint64(b[40:]),
		LastCRC:    binary.BigEndian.Uint32(b[crcAt-4:]),
		HasLastCRC: b[5]&manifestFlagLastCRC != 0,
		HasNextPos: b[5]&manifestFlagNextPos != 0,
	}
	m.First = m.Lowest
	if b[4] == manifestVersion {
		m.First = binary.BigEndian.Uint64(b[48:])
	}
	if m.Lowest > m.Next {
		return manifest{}, fmt.Errorf("%w: lowest %d above next %d", errBadManifest, m.Lowest, m.Next)
	}
	if m.First < m.Lowest || m.First > m.Next {
		return manifest{}, fmt.Errorf("%w: first %d outside [lowest %d, next %d]", errBadManifest, m.First, m.Lowest, m.Next)
	}
	return m, nil
}

// Snapshot data stream (version 1), what SnapshotData produces and Restore ingests: a header,
// then one frame per record of [first, next), in offset order. All integers big-endian; part of
// the wire format between nodes: it must not be changed; a new layout gets a new version.
//
//	header:
//	+------------+--------+------------+---------------+---------------+-----------------+
//	| magic CLSD | version| reserved=0 | first offset  | next offset   | CRC-32C of 0:24 |
//	|  4 bytes   | u8 = 1 |  3 bytes   |    uint64     |    uint64     |     uint32      |
//	+------------+--------+------------+---------------+---------------+-----------------+
//
//	frame (next-first of them):
//	+---------------+-----------------+-----------------+----------------------------+
//	| offset uint64 | length uint32   | CRC-32C uint32  | stored record [length]byte |
//	+---------------+-----------------+-----------------+----------------------------+
//
// A frame's CRC-32C covers its offset and length fields and then the record bytes (the
// envelope, exactly as stored). The reader checks the header, that offsets are dense from
// first, every length against the largest envelope (before allocating) and every checksum. It
// reads exactly the header and next-first frames, nothing after them.
const (
	streamMagic     = "CLSD"
	streamVersion   = 1
	streamHeaderLen = 28
	frameHeaderLen  = 16
)

// errBadStream prefixes snapshot data stream errors; it wraps storage.ErrCorrupt.
var errBadStream = fmt.Errorf("fsm: bad snapshot data: %w", storage.ErrCorrupt)

func appendStreamHeader(dst []byte, first, next uint64) []byte {
	start := len(dst)
	dst = append(dst, streamMagic...)
	dst = append(dst, streamVersion, 0, 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, first)
	dst = binary.BigEndian.AppendUint64(dst, next)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

func appendFrame(dst []byte, off uint64, record []byte) []byte {
	start := len(dst)
	dst = binary.BigEndian.AppendUint64(dst, off)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(record)))
	crc := crc32.Update(crc32.Checksum(dst[start:], castagnoli), castagnoli, record)
	dst = binary.BigEndian.AppendUint32(dst, crc)
	return append(dst, record...)
}

// streamReader decodes a snapshot data stream. Not safe for concurrent use.
type streamReader struct {
	r           *bufio.Reader
	first, next uint64
	off         uint64 // offset of the next frame
	hdr         [frameHeaderLen]byte
	buf         []byte
}

// newStreamReader reads and checks the stream header. Errors wrap storage.ErrCorrupt (and
// io.ErrUnexpectedEOF when the stream is cut short), or are the reader's own errors, wrapped.
func newStreamReader(r io.Reader) (*streamReader, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	var h [streamHeaderLen]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return nil, readErr("header", err)
	}
	switch {
	case string(h[:4]) != streamMagic:
		return nil, fmt.Errorf("%w: bad magic %q", errBadStream, h[:4])
	case h[4] != streamVersion:
		return nil, fmt.Errorf("%w: unknown version %d", errBadStream, h[4])
	case crc32.Checksum(h[:24], castagnoli) != binary.BigEndian.Uint32(h[24:]):
		return nil, fmt.Errorf("%w: header checksum mismatch", errBadStream)
	case h[5] != 0 || h[6] != 0 || h[7] != 0:
		return nil, fmt.Errorf("%w: reserved header bytes set", errBadStream)
	}
	s := &streamReader{r: br, first: binary.BigEndian.Uint64(h[8:]), next: binary.BigEndian.Uint64(h[16:])}
	if s.first > s.next {
		return nil, fmt.Errorf("%w: first offset %d above next %d", errBadStream, s.first, s.next)
	}
	s.off = s.first
	return s, nil
}

// readErr wraps an error reading the stream: a short read is corruption (a cut stream).
func readErr(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s: stream cut short: %w", errBadStream, what, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("fsm: read snapshot data %s: %w", what, err)
}

// frame returns the next record and its offset; io.EOF after the last one. The record is valid
// until the next call. Errors other than io.EOF are as for newStreamReader.
func (s *streamReader) frame() (uint64, []byte, error) {
	if s.off == s.next {
		return 0, nil, io.EOF
	}
	if _, err := io.ReadFull(s.r, s.hdr[:]); err != nil {
		return 0, nil, readErr(fmt.Sprintf("frame %d", s.off), err)
	}
	off := binary.BigEndian.Uint64(s.hdr[0:8])
	n := binary.BigEndian.Uint32(s.hdr[8:12])
	if off != s.off {
		return 0, nil, fmt.Errorf("%w: frame for offset %d where %d was expected", errBadStream, off, s.off)
	}
	if n > maxEnvelopeBytes {
		return 0, nil, fmt.Errorf("%w: frame %d: length %d above the limit %d", errBadStream, off, n, maxEnvelopeBytes)
	}
	if cap(s.buf) < int(n) {
		// Grow geometrically so that growing records do not reallocate per frame; never
		// beyond the largest envelope, which n was checked against.
		s.buf = make([]byte, 0, min(max(int(n), 2*cap(s.buf), 4096), maxEnvelopeBytes))
	}
	s.buf = s.buf[:n]
	if _, err := io.ReadFull(s.r, s.buf); err != nil {
		return 0, nil, readErr(fmt.Sprintf("frame %d", off), err)
	}
	crc := crc32.Update(crc32.Checksum(s.hdr[:12], castagnoli), castagnoli, s.buf)
	if want := binary.BigEndian.Uint32(s.hdr[12:16]); crc != want {
		return 0, nil, fmt.Errorf("%w: frame %d: checksum %08x, frame says %08x", errBadStream, off, crc, want)
	}
	s.off++
	return off, s.buf, nil
}
