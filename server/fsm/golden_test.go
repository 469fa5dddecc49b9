package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// updateGolden rewrites the golden fixtures from today's encoders. Only for a new format
// version's new fixture: a committed fixture of an existing version must never change.
var updateGolden = flag.Bool("update-golden", false, "write testdata/golden from the current encoders")

// goldenTS is the proposer's clock in every fixture.
var goldenTS = time.UnixMilli(1_780_000_000_123)

// golden is one committed fixture of a layout that must not change: the bytes in
// testdata/golden/<file>, what they decode to, and how today's encoder writes them (nil for
// an old version that is decoded but no longer encoded).
type golden struct {
	file   string
	encode func() ([]byte, error)
	decode func([]byte) (any, error)
	want   any
}

var goldenRecords = []AppendRecord{{Value: []byte("hello"), Type: 7}, {Value: nil, Type: 0}, {Value: []byte("world"), Type: 0xfffffffe}}

func goldenFixtures() []golden {
	decodeCmd := func(b []byte) (any, error) { c, err := DecodeCommand(b); return c, err }
	decodeEnv := func(b []byte) (any, error) { e, err := decodeEnvelope(b); return e, err }
	decodeMan := func(b []byte) (any, error) { m, err := decodeManifest(b); return m, err }
	man := manifest{Index: 1234, Term: 5, Lowest: 100, Next: 2000, First: 150, NextPos: 987_654, LastCRC: 0xdeadbeef, HasLastCRC: true, HasNextPos: true}
	return []golden{
		{"command-append-v1.bin", func() ([]byte, error) { return encodeAppend(1, Limits{}, 0, goldenRecords) }, decodeCmd,
			Command{Version: 1, Kind: KindAppend, Records: goldenRecords}},
		{"command-append-v2.bin", func() ([]byte, error) { return EncodeAppendAt(Limits{}, goldenTS, goldenRecords...) }, decodeCmd,
			Command{Version: 2, Kind: KindAppend, Timestamp: goldenTS.UnixMilli(), Records: goldenRecords}},
		{"command-retain-v2.bin", func() ([]byte, error) { return EncodeRetain(42, goldenTS), nil }, decodeCmd,
			Command{Version: 2, Kind: KindRetain, Timestamp: goldenTS.UnixMilli(), First: 42}},
		// Version 1 envelopes (no timestamp) are decoded, never written: the fixture is by hand.
		{"envelope-v1.bin", func() ([]byte, error) { return []byte{1, 0xb9, 0x60, 3, 0xc0, 0x84, 0x3d, 7, 'v', '1'}, nil }, decodeEnv,
			envelope{Index: 12345, Term: 3, Pos: 1_000_000, Type: 7, Value: []byte("v1")}},
		{"envelope-v2.bin", func() ([]byte, error) {
			return appendEnvelope(nil, 1<<35, 7, 1<<40, 300, goldenTS.UnixMilli(), []byte("hello")), nil
		}, decodeEnv, envelope{Index: 1 << 35, Term: 7, Pos: 1 << 40, Type: 300, Timestamp: goldenTS.UnixMilli(), Value: []byte("hello")}},
		// Version 1 manifests (no first offset: first is lowest) are decoded, never written.
		{"manifest-v1.bin", func() ([]byte, error) { return manifestV1(man), nil }, decodeMan,
			manifest{Index: 1234, Term: 5, Lowest: 100, Next: 2000, First: 100, NextPos: 987_654, LastCRC: 0xdeadbeef, HasLastCRC: true, HasNextPos: true}},
		{"manifest-v2.bin", func() ([]byte, error) { return man.encode(), nil }, decodeMan, man},
		{"snapshot-stream.bin", func() ([]byte, error) {
			b := appendStreamHeader(nil, 10, 12)
			b = appendFrame(b, 10, appendEnvelope(nil, 20, 2, 0, 1, goldenTS.UnixMilli(), []byte("ten")))
			return appendFrame(b, 11, appendEnvelope(nil, 21, 2, 16, 1, goldenTS.UnixMilli(), []byte("eleven"))), nil
		}, decodeStream, []streamFrame{
			{10, envelope{Index: 20, Term: 2, Pos: 0, Type: 1, Timestamp: goldenTS.UnixMilli(), Value: []byte("ten")}},
			{11, envelope{Index: 21, Term: 2, Pos: 16, Type: 1, Timestamp: goldenTS.UnixMilli(), Value: []byte("eleven")}},
		}},
		{"command-commit-offsets-v3.bin", func() ([]byte, error) { return encodeGroupCmd(KindCommitOffsets, goldenCommit) }, decodeGroupCmd,
			groupCmd{Kind: KindCommitOffsets, Timestamp: goldenTS.UnixMilli(), Body: goldenCommit}},
		{"command-delete-group-v3.bin", func() ([]byte, error) { return encodeGroupCmd(KindDeleteGroup, deleteGroupBody{Group: "g1"}) }, decodeGroupCmd,
			groupCmd{Kind: KindDeleteGroup, Timestamp: goldenTS.UnixMilli(), Body: deleteGroupBody{Group: "g1"}}},
		{"command-expire-offsets-v3.bin", func() ([]byte, error) {
			return encodeGroupCmd(KindExpireOffsets, expireOffsetsBody{Groups: []string{"g1", "g2"}, Before: 1_779_000_000_000})
		}, decodeGroupCmd, groupCmd{Kind: KindExpireOffsets, Timestamp: goldenTS.UnixMilli(), Body: expireOffsetsBody{Groups: []string{"g1", "g2"}, Before: 1_779_000_000_000}}},
	}
}

// goldenCommit is the commit of the golden commit command: two partitions, one with metadata.
var goldenCommit = commitOffsetsBody{Group: "g1", Offsets: []OffsetCommit{
	{Topic: "orders", TopicID: TopicID{1, 2, 3, 4, 5, 6, 0x47, 8, 0x89, 10, 11, 12, 13, 14, 15, 16}, Partition: 0, Offset: 42, Metadata: "host-a"},
	{Topic: "orders", TopicID: TopicID{1, 2, 3, 4, 5, 6, 0x47, 8, 0x89, 10, 11, 12, 13, 14, 15, 16}, Partition: 5, Offset: 1 << 40},
}}

// groupCmd is a decoded group command: its kind, timestamp and strictly decoded body.
type groupCmd struct {
	Kind      CommandKind
	Timestamp int64
	Body      any
}

func encodeGroupCmd(k CommandKind, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return encodeMeta(k, goldenTS, b)
}

func decodeGroupCmd(b []byte) (any, error) {
	c, err := DecodeCommand(b)
	if err != nil {
		return nil, err
	}
	if c.Version != commandVersion3 {
		return nil, fmt.Errorf("version %d", c.Version)
	}
	out := groupCmd{Kind: c.Kind, Timestamp: c.Timestamp}
	switch c.Kind {
	case KindCommitOffsets:
		var v commitOffsetsBody
		err = decodeStrict(c.Meta, &v)
		out.Body = v
	case KindDeleteGroup:
		var v deleteGroupBody
		err = decodeStrict(c.Meta, &v)
		out.Body = v
	case KindExpireOffsets:
		var v expireOffsetsBody
		err = decodeStrict(c.Meta, &v)
		out.Body = v
	default:
		return nil, fmt.Errorf("kind %d", c.Kind)
	}
	return out, err
}

// manifestV1 writes m in the version-1 layout (56 bytes: no first offset).
func manifestV1(m manifest) []byte {
	v2 := m.encode()
	b := make([]byte, manifestLenV1)
	copy(b, v2[:48])
	b[4] = manifestVersion1
	binary.BigEndian.PutUint32(b[48:], m.LastCRC)
	binary.BigEndian.PutUint32(b[52:], crc32.Checksum(b[:52], castagnoli))
	return b
}

type streamFrame struct {
	Offset uint64
	Record envelope
}

func decodeStream(b []byte) (any, error) {
	r, err := newStreamReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	var frames []streamFrame
	for {
		off, rec, err := r.frame()
		if err == io.EOF {
			return frames, nil
		}
		if err != nil {
			return nil, err
		}
		env, err := decodeEnvelope(bytes.Clone(rec))
		if err != nil {
			return nil, err
		}
		frames = append(frames, streamFrame{off, env})
	}
}

// TestGoldenFormats decodes every committed fixture of the replicated and stored layouts (the
// state machine's commands, the record envelope, the snapshot manifest and data stream) to the
// values it was written from, and checks that today's encoders still write exactly those
// bytes: a change to an encoder and its decoder together fails here, where a round trip would
// pass.
func TestGoldenFormats(t *testing.T) {
	for _, g := range goldenFixtures() {
		t.Run(g.file, func(t *testing.T) {
			path := filepath.Join("testdata", "golden", g.file)
			encoded, err := g.encode()
			if err != nil {
				t.Fatal(err)
			}
			if *updateGolden {
				if _, err := os.Stat(path); err == nil {
					t.Fatalf("%s exists: a committed fixture never changes (a new layout gets a new version and a new file)", path)
				}
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, encoded, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			fixture, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := g.decode(fixture)
			if err != nil {
				t.Fatalf("decoding the committed %s: %v", g.file, err)
			}
			if !reflect.DeepEqual(normalize(got), normalize(g.want)) {
				t.Fatalf("the committed %s decodes to\n%+v\nwant\n%+v", g.file, got, g.want)
			}
			if !bytes.Equal(encoded, fixture) {
				t.Fatalf("today's encoder writes %x\nthe committed %s holds %x", encoded, g.file, fixture)
			}
		})
	}
}

// normalize makes nil and empty values compare equal.
func normalize(v any) any {
	switch x := v.(type) {
	case Command:
		for i := range x.Records {
			if len(x.Records[i].Value) == 0 {
				x.Records[i].Value = nil
			}
		}
		x.Records = append([]AppendRecord(nil), x.Records...)
		return x
	case envelope:
		if len(x.Value) == 0 {
			x.Value = nil
		}
		return x
	}
	return v
}
