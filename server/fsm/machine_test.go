package fsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/consensus"
)

func TestTopicNames(t *testing.T) {
	for _, name := range []string{"a", "orders", "Orders.v2", "a_b-c.d", strings.Repeat("x", MaxTopicNameLen)} {
		if err := ValidateTopicName(name); err != nil {
			t.Errorf("ValidateTopicName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", "a b", "a/b", "é", strings.Repeat("x", MaxTopicNameLen+1)} {
		if err := ValidateTopicName(name); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("ValidateTopicName(%q) = %v, want ErrInvalidTopic", name, err)
		}
	}
}

func TestMachineTopics(t *testing.T) {
	n := openMachineNode(t, t.TempDir())
	ctx := context.Background()
	m := n.m

	orders, err := m.CreateTopic(ctx, n, "orders", 3, TopicConfig{RetentionBytes: 1 << 20})
	if err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	if orders.Partitions != 3 || orders.ID == (TopicID{}) || orders.Config.RetentionBytes != 1<<20 {
		t.Fatalf("created %+v", orders)
	}
	for _, tc := range []struct {
		name string
		want error
	}{
		{"orders", ErrTopicExists},
		{"default", ErrTopicExists},
		{"a b", ErrInvalidTopic},
	} {
		if _, err := m.CreateTopic(ctx, n, tc.name, 1, TopicConfig{}); !errors.Is(err, tc.want) {
			t.Errorf("CreateTopic(%q) = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := m.CreateTopic(ctx, n, "a.b", 1, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateTopic(ctx, n, "a_b", 1, TopicConfig{}); !errors.Is(err, ErrTopicExists) || !strings.Contains(err.Error(), "collides") {
		t.Errorf("CreateTopic(a_b) after a.b = %v, want a collision", err)
	}

	// Each partition is its own dense log; the default topic is the old log.
	n.produce("orders", 0, recs("o0-a", "o0-b")...)
	if r := n.produce("orders", 2, recs("o2-a")...); r.First != 0 {
		t.Errorf("first record of partition 2 at %d", r.First)
	}
	if r := n.produce("", 0, recs("d-a")...); r.First != 0 {
		t.Errorf("first record of the default partition at %d", r.First)
	}
	if got := n.partitionValues("orders", 0); !slices.Equal(got, []string{"o0-a", "o0-b"}) {
		t.Errorf("orders/0 = %q", got)
	}
	if got := n.partitionValues("orders", 1); len(got) != 0 {
		t.Errorf("orders/1 = %q", got)
	}
	if got := n.partitionValues(DefaultTopic, 0); !slices.Equal(got, []string{"d-a"}) {
		t.Errorf("default/0 = %q", got)
	}
	if _, err := m.ProposeAppend(ctx, n, "nope", 0, ProducerRef{}, recs("x")...); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("produce to an unknown topic: %v", err)
	}
	if _, err := m.ProposeAppend(ctx, n, "orders", 3, ProducerRef{}, recs("x")...); !errors.Is(err, ErrUnknownPartition) || !strings.Contains(err.Error(), "3 partitions") {
		t.Errorf("produce to an unknown partition: %v", err)
	}

	// Add partitions, alter the configuration.
	if _, err := m.CreatePartitions(ctx, n, "orders", 2); !errors.Is(err, ErrInvalidTopic) {
		t.Errorf("lowering the partition count: %v", err)
	}
	if got, err := m.CreatePartitions(ctx, n, "orders", 5); err != nil || got.Partitions != 5 {
		t.Fatalf("CreatePartitions = %+v, %v", got, err)
	}
	n.produce("orders", 4, recs("o4")...)
	one := 100
	if got, err := m.AlterTopic(ctx, n, "orders", TopicConfigPatch{MaxRecordBytes: &one}); err != nil || got.Config.MaxRecordBytes != 100 || got.Config.RetentionBytes != 1<<20 {
		t.Fatalf("AlterTopic = %+v, %v", got, err)
	}
	if _, err := m.ProposeAppend(ctx, n, "orders", 0, ProducerRef{}, AppendRecord{Value: make([]byte, 101)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("record above the topic's limit: %v", err)
	}
	bad := "later"
	if _, err := m.AlterTopic(ctx, n, "orders", TopicConfigPatch{TimestampType: &bad}); !errors.Is(err, ErrInvalidTopic) {
		t.Errorf("bad timestamp type: %v", err)
	}

	// Delete removes the files; re-creating gives a new, empty topic.
	if _, err := m.DeleteTopic(ctx, n, DefaultTopic); !errors.Is(err, ErrInvalidTopic) {
		t.Errorf("deleting the default topic: %v", err)
	}
	if _, err := m.CreatePartitions(ctx, n, DefaultTopic, 4); !errors.Is(err, ErrInvalidTopic) {
		t.Errorf("adding partitions to the default topic: %v", err)
	}
	if d, _ := m.Topic(DefaultTopic); d.Partitions != 1 {
		t.Errorf("the default topic has %d partitions, want 1", d.Partitions)
	}
	old, _, _ := m.Partition("orders", 0)
	if _, err := m.DeleteTopic(ctx, n, "orders"); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	if _, err := os.Stat(filepath.Join(n.dir, "topics", orders.ID.String())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted topic's directory: %v", err)
	}
	if _, err := old.Read(ctx, 0); err == nil {
		t.Errorf("read from a deleted partition succeeded")
	}
	again, err := m.CreateTopic(ctx, n, "orders", 1, TopicConfig{})
	if err != nil || again.ID == orders.ID {
		t.Fatalf("re-create = %+v, %v", again, err)
	}
	if got := n.partitionValues("orders", 0); len(got) != 0 {
		t.Errorf("re-created topic holds %q", got)
	}
	// A command proposed for the old topic (by ID) does not reach the new one.
	stale, _ := EncodeBatchAt(Limits{}, testTime, Batch{Target: Target{Topic: orders.ID}, Records: recs("stale")})
	if res, _ := n.Propose(ctx, stale); !errors.Is(res.(error), ErrUnknownTopic) {
		t.Errorf("append to a deleted topic's ID = %v", res)
	}
	names := []string{}
	for _, tp := range m.Topics() {
		names = append(names, tp.Name)
	}
	if !slices.Equal(names, []string{"a.b", "default", "orders"}) {
		t.Errorf("Topics = %q", names)
	}
}

func TestMachineKeysHeadersTimestamps(t *testing.T) {
	n := openMachineNode(t, t.TempDir())
	ctx := context.Background()
	if _, err := n.m.CreateTopic(ctx, n, "t", 1, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	in := []AppendRecord{
		{Value: []byte("v1"), Key: []byte("k1"), Headers: []Header{{Key: "h", Value: []byte("x")}, {Key: "e", Value: nil}}, Timestamp: 1234},
		{Value: []byte("v2"), Key: []byte{}},
		{Value: []byte("v3")},
	}
	for _, topic := range []string{"t", ""} {
		res := n.produce(topic, 0, in...)
		f, _, _ := n.m.Partition(topic, 0)
		for i, want := range in {
			got, err := f.Read(ctx, res.First+uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Value, want.Value) || !bytes.Equal(got.Key, want.Key) || (got.Key == nil) != (want.Key == nil) || len(got.Headers) != len(want.Headers) {
				t.Fatalf("%s: record %d = %+v, want %+v", topic, i, got, want)
			}
			for j, h := range want.Headers {
				if got.Headers[j].Key != h.Key || !bytes.Equal(got.Headers[j].Value, h.Value) {
					t.Errorf("header %d = %+v, want %+v", j, got.Headers[j], h)
				}
			}
			if want.Timestamp != 0 && got.Timestamp != want.Timestamp {
				t.Errorf("timestamp = %d, want the producer's %d", got.Timestamp, want.Timestamp)
			}
			if want.Timestamp == 0 && (got.Timestamp != got.AppendTime || got.AppendTime == 0) {
				t.Errorf("timestamp = %d, append time %d: want the append time", got.Timestamp, got.AppendTime)
			}
		}
	}
	// The append timestamp type drops producers' timestamps.
	typ := TimestampAppend
	if _, err := n.m.AlterTopic(ctx, n, "t", TopicConfigPatch{TimestampType: &typ}); err != nil {
		t.Fatal(err)
	}
	res := n.produce("t", 0, AppendRecord{Value: []byte("late"), Timestamp: 42})
	f, _, _ := n.m.Partition("t", 0)
	if got, _ := f.Read(ctx, res.First); got.Timestamp == 42 || got.Timestamp != got.AppendTime {
		t.Errorf("append-time topic stored the producer's timestamp: %+v", got)
	}
	// Plain records to the default partition are still written as before topics.
	b, err := EncodeBatchAt(Limits{}, testTime, Batch{Records: recs("plain")})
	if err != nil || b[0] != commandVersion {
		t.Errorf("a plain default batch is encoded in version %d (%v), want %d", b[0], err, commandVersion)
	}
}

// TestMachineRestartKeepsTopics restarts a machine as the consensus does: the latest snapshot
// restored (reading no data), then the entries after it replayed. Nothing is duplicated or
// lost, and the metadata comes back.
func TestMachineRestartKeepsTopics(t *testing.T) {
	dir := t.TempDir()
	n := openMachineNode(t, dir)
	ctx := context.Background()
	for i := range 3 {
		if _, err := n.m.CreateTopic(ctx, n, fmt.Sprintf("t%d", i), 2, TopicConfig{}); err != nil {
			t.Fatal(err)
		}
		n.produce(fmt.Sprintf("t%d", i), 1, recs(fmt.Sprintf("before-%d", i))...)
	}
	n.produce("", 0, recs("d0")...)
	manifest := n.snapshot()
	snapIndex := n.index
	// After the snapshot: a new topic, appends, a deletion.
	if _, err := n.m.CreateTopic(ctx, n, "late", 1, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	n.produce("late", 0, recs("l0", "l1")...)
	n.produce("t0", 1, recs("after-0")...)
	if _, err := n.m.DeleteTopic(ctx, n, "t2"); err != nil {
		t.Fatal(err)
	}
	n.produce("", 0, recs("d1")...)
	entries := n.entries
	n.close()

	r := openMachineNode(t, dir)
	if err := r.m.Restore(manifest, neverRead{t}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := r.m.AppliedIndex(); got != snapIndex {
		t.Errorf("applied index after restore = %d, want %d", got, snapIndex)
	}
	res := r.m.Apply(entries[snapIndex:])
	for i, x := range res {
		if err, ok := x.(error); ok && !errors.Is(err, ErrAlreadyApplied) {
			t.Errorf("replayed entry %d: %v", entries[int(snapIndex)+i].Index, err)
		}
	}
	checks := map[string][]string{"t0/1": {"before-0", "after-0"}, "t1/1": {"before-1"}, "late/0": {"l0", "l1"}, "default/0": {"d0", "d1"}}
	for tp, want := range checks {
		name, p, _ := strings.Cut(tp, "/")
		if got := r.partitionValues(name, uint32(p[0]-'0')); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", tp, got, want)
		}
	}
	if _, err := r.m.Topic("t2"); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("deleted topic after restart: %v", err)
	}
	// A snapshot after the restart removes nothing live and matches the first node's.
	r.snapshot()
	if got := r.partitionValues("late", 0); len(got) != 2 {
		t.Errorf("late/0 after a snapshot = %q", got)
	}
}

// TestMachineSnapshotInstall installs a snapshot with 100 topics on an empty node and on a node
// holding other topics, from the stream, and checks every partition is byte-identical.
func TestMachineSnapshotInstall(t *testing.T) {
	src := openMachineNode(t, t.TempDir())
	ctx := context.Background()
	for i := range 100 {
		name := fmt.Sprintf("topic-%03d", i)
		if _, err := src.m.CreateTopic(ctx, src, name, 1+uint32(i%3), TopicConfig{}); err != nil {
			t.Fatal(err)
		}
		src.produce(name, uint32(i%3), recs(fmt.Sprintf("%s-a", name), fmt.Sprintf("%s-b", name))...)
	}
	src.produce("", 0, recs("d0", "d1", "d2")...)
	id := src.produce("topic-001", 1, AppendRecord{Value: []byte("k"), Key: []byte("key"), Headers: []Header{{Key: "a", Value: []byte("b")}}})
	manifest := src.snapshot()
	data := src.data(manifest)

	stale := openMachineNode(t, t.TempDir())
	if _, err := stale.m.CreateTopic(ctx, stale, "gone", 2, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	for name, dst := range map[string]*machineNode{"empty": openMachineNode(t, t.TempDir()), "stale": stale} {
		t.Run(name, func(t *testing.T) {
			if err := dst.m.Restore(manifest, bytes.NewReader(data)); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if _, err := dst.m.Topic("gone"); !errors.Is(err, ErrUnknownTopic) {
				t.Errorf("a topic the snapshot lacks survived: %v", err)
			}
			if got, want := len(dst.m.Partitions()), len(src.m.Partitions()); got != want {
				t.Fatalf("%d partitions, want %d", got, want)
			}
			for _, ref := range src.m.Partitions() {
				f, tp, err := dst.m.Partition(ref.Topic.Name, ref.Partition)
				if err != nil || tp.ID != ref.Topic.ID {
					t.Fatalf("%s/%d: %v (ID %s, want %s)", ref.Topic.Name, ref.Partition, err, tp.ID, ref.Topic.ID)
				}
				want, got := readAll(t, ref.FSM), readAll(t, f)
				if len(want) != len(got) {
					t.Fatalf("%s/%d: %d records, want %d", ref.Topic.Name, ref.Partition, len(got), len(want))
				}
				for i := range want {
					if !bytes.Equal(want[i].Value, got[i].Value) || want[i].Index != got[i].Index || !bytes.Equal(want[i].Key, got[i].Key) {
						t.Fatalf("%s/%d offset %d: %+v, want %+v", ref.Topic.Name, ref.Partition, i, got[i], want[i])
					}
				}
			}
			f, _, _ := dst.m.Partition("topic-001", 1)
			if r, _ := f.Read(ctx, id.First); string(r.Key) != "key" || len(r.Headers) != 1 {
				t.Errorf("record with key and headers after install: %+v", r)
			}
			// The installed node goes on from there.
			if got := dst.m.AppliedIndex(); got != src.index {
				t.Errorf("applied index %d, want %d", got, src.index)
			}
			// Restoring the same snapshot again (as at a restart) reads no data.
			if err := dst.m.Restore(manifest, neverRead{t}); err != nil {
				t.Fatalf("second Restore: %v", err)
			}
			// consensus/raft replaces the received snapshot by the installed node's own, taken
			// right after the restore: it serves the stream the node received, and restores
			// from the node's logs without reading any data.
			own := dst.snapshot()
			if got := dst.data(own); !bytes.Equal(got, data) {
				t.Fatalf("the installed node's own snapshot streams %d bytes, unlike the %d it received", len(got), len(data))
			}
			if err := dst.m.Restore(own, neverRead{t}); err != nil {
				t.Fatalf("Restore of its own snapshot: %v", err)
			}
		})
	}
}

// TestMachineOpensSingleLogData: a data dir written before topics (a single log and
// single-log snapshot manifests, as today's FSM writes them) opens unchanged as the default
// topic's partition 0.
func TestMachineOpensSingleLogData(t *testing.T) {
	dir := t.TempDir()
	old, err := segmentOpener(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(Config{Log: old})
	if err != nil {
		t.Fatal(err)
	}
	var entries []consensus.Entry
	for i := range 5 {
		entries = append(entries, consensus.Entry{Index: uint64(i + 1), Term: 1, Data: cmd(t, fmt.Sprintf("old-%d", i))})
	}
	mustApply(t, f, entries[:3]...)
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var manifest bytes.Buffer
	if err := s.Persist(&manifest); err != nil {
		t.Fatal(err)
	}
	mustApply(t, f, entries[3:]...)
	before := readAll(t, f)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	n := openMachineNode(t, dir)
	if err := n.m.Restore(manifest.Bytes(), neverRead{t}); err != nil {
		t.Fatalf("Restore of a single-log manifest: %v", err)
	}
	for _, r := range n.m.Apply(entries[3:]) {
		if err, _ := r.(error); !errors.Is(err, ErrAlreadyApplied) {
			t.Errorf("replay = %v, want ErrAlreadyApplied", r)
		}
	}
	after := readAll(t, n.m.Default())
	if len(after) != len(before) {
		t.Fatalf("%d records, want %d", len(after), len(before))
	}
	for i := range before {
		if !bytes.Equal(before[i].Value, after[i].Value) || before[i].Index != after[i].Index {
			t.Errorf("offset %d: %+v, want %+v", i, after[i], before[i])
		}
	}
	n.index = 5
	n.produce("", 0, recs("new")...)
	if _, err := n.m.CreateTopic(context.Background(), n, "fresh", 1, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if got := n.partitionValues("", 0); len(got) != 6 || got[5] != "new" {
		t.Errorf("default partition = %q", got)
	}
	// The single-log manifest's data stream is served as before, for a follower.
	if d := n.data(manifest.Bytes()); len(d) == 0 {
		t.Errorf("no data for a single-log manifest")
	}
}

func TestMachineManifestDecodeRejectsCorruption(t *testing.T) {
	n := openMachineNode(t, t.TempDir())
	if _, err := n.m.CreateTopic(context.Background(), n, "a", 2, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	b := n.snapshot()
	if _, err := decodeMachineManifest(b); err != nil {
		t.Fatalf("decode: %v", err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x40
		if _, err := decodeMachineManifest(c); err == nil {
			t.Fatalf("flipping byte %d went unnoticed", i)
		}
	}
	if _, err := decodeMachineManifest(b[:len(b)-1]); err == nil {
		t.Errorf("a truncated manifest decoded")
	}
}

// TestRecordAtTopicLimitIsStored: a record exactly at its topic's MaxRecordBytes — the largest
// a topic may set, above the machine's own limit — is stored, value, key and header alike: the
// command carrying it alone is larger than the record, and the command bound must not refuse
// what the record bound allows. One byte more is refused.
func TestRecordAtTopicLimitIsStored(t *testing.T) {
	n := openMachineNode(t, t.TempDir())
	ctx := context.Background()
	if _, err := n.m.CreateTopic(ctx, n, "big", 1, TopicConfig{MaxRecordBytes: MaxRecordValueBytes}); err != nil {
		t.Fatal(err)
	}
	rec := AppendRecord{Value: make([]byte, MaxRecordValueBytes-12), Key: []byte("key"), Headers: []Header{{Key: "h", Value: make([]byte, 8)}}}
	if got := RecordSize(rec); got != MaxRecordValueBytes {
		t.Fatalf("test record is %d bytes", got)
	}
	if res := n.produce("big", 0, rec); res.First != 0 || res.Count != 1 {
		t.Fatalf("produce = %+v", res)
	}
	plain := AppendRecord{Value: make([]byte, MaxRecordValueBytes)}
	if res := n.produce("big", 0, plain); res.First != 1 {
		t.Fatalf("produce = %+v", res)
	}
	if n.m.Default().Limits().MaxRecordBytes != DefaultMaxRecordBytes {
		t.Fatalf("the machine's own limit is %d", n.m.Default().Limits().MaxRecordBytes)
	}
	rec.Value = append(rec.Value, 0)
	if _, err := n.m.ProposeAppend(ctx, n, "big", 0, ProducerRef{}, rec); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a record one byte over the topic's limit: %v, want ErrTooLarge", err)
	}
}
