package client_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/commitlog-go/commitlog/client"
)

// partitionKeys are the keys of the Kafka-compatibility table: short and
// long, text and binary, empty, and the lengths around murmur2's 4-byte
// blocks.
func partitionKeys() [][]byte {
	keys := [][]byte{
		{}, {0}, {0xff}, {0, 0}, {0xff, 0xff, 0xff}, {0xff, 0xff, 0xff, 0xff},
		[]byte("a"), []byte("ab"), []byte("abc"), []byte("abcd"), []byte("abcde"),
		[]byte("21"), []byte("foobar"), []byte("a-little-bit-long-string"),
		[]byte("a-little-bit-longer-string"), []byte("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
		[]byte("ключ"), []byte("🙂"),
	}
	for i := range 60 {
		keys = append(keys, fmt.Appendf(nil, "user-%d", i), fmt.Appendf(nil, "order/%08d", i*7919))
	}
	rng := rand.New(rand.NewPCG(14, 15)) // fixed: the table is the same on every run
	for len(keys) < 220 {
		k := make([]byte, rng.IntN(70))
		for i := range k {
			k[i] = byte(rng.Uint32())
		}
		keys = append(keys, k)
	}
	return keys
}

// TestKeyPartitionMatchesKafka checks KeyPartition against franz-go's default
// partitioner (kgo.StickyKeyPartitioner with no hasher, which partitions keyed
// records exactly as Kafka's Java client does) for every key of the table and
// several partition counts.
func TestKeyPartitionMatchesKafka(t *testing.T) {
	oracle := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	keys := partitionKeys()
	mismatches := 0
	for _, n := range []uint32{1, 2, 3, 4, 7, 12, 16, 31, 100, 1000, 1 << 20} {
		for _, key := range keys {
			want := oracle.Partition(&kgo.Record{Key: key}, int(n))
			got := client.KeyPartition(key, n)
			if int(got) != want {
				mismatches++
				if mismatches <= 10 {
					t.Errorf("KeyPartition(%x, %d) = %d, franz-go says %d", key, n, got, want)
				}
			}
		}
	}
	if mismatches > 10 {
		t.Errorf("%d mismatches in all", mismatches)
	}
}

// TestKeyPartitionKnownHashes pins values of Kafka's own murmur2 test
// (UtilsTest.testMurmur2), masked and reduced as the partitioner does.
func TestKeyPartitionKnownHashes(t *testing.T) {
	for key, hash := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		want := (uint32(hash) & 0x7fffffff) % 1_000_003
		if got := client.KeyPartition([]byte(key), 1_000_003); got != want {
			t.Errorf("KeyPartition(%q) = %d, want %d (murmur2 %d)", key, got, want, hash)
		}
	}
}

func TestDefaultPartitionerKeyedRecordsFollowTheKey(t *testing.T) {
	p := client.DefaultPartitioner()
	for _, key := range partitionKeys() {
		rec := &client.Record{Topic: "orders", Key: key}
		if got, want := p.Partition(rec, 12), client.KeyPartition(key, 12); got != want {
			t.Fatalf("key %x: partition %d, want KeyPartition's %d", key, got, want)
		}
		p.BatchCut("orders", p.Partition(rec, 12)) // cuts never move keyed records
		if got, want := p.Partition(rec, 12), client.KeyPartition(key, 12); got != want {
			t.Fatalf("key %x after a cut: partition %d, want %d", key, got, want)
		}
	}
}

func TestStickyPartitionerSticksUntilTheBatchIsCut(t *testing.T) {
	for name, p := range map[string]client.Partitioner{
		"default": client.DefaultPartitioner(),
		"sticky":  client.StickyPartitioner(),
	} {
		t.Run(name, func(t *testing.T) {
			const n = 4
			rec := &client.Record{Topic: "t"}
			if name == "sticky" {
				rec.Key = []byte("keys are ignored")
			}
			seen := make(map[uint32]int)
			for range 200 {
				first := p.Partition(rec, n)
				if first >= n {
					t.Fatalf("partition %d of %d", first, n)
				}
				for range 10 {
					if got := p.Partition(rec, n); got != first {
						t.Fatalf("partition moved from %d to %d without a cut", first, got)
					}
				}
				// A cut of another topic's, or of another
				// partition's, batch does not move it.
				p.BatchCut("other", first)
				p.BatchCut("t", (first+1)%n)
				if got := p.Partition(rec, n); got != first {
					t.Fatalf("partition moved from %d to %d on an unrelated cut", first, got)
				}
				p.BatchCut("t", first)
				next := p.Partition(rec, n)
				if next == first {
					t.Fatalf("after its batch was cut the sticky partition stayed %d", first)
				}
				seen[next]++
				p.BatchCut("t", next)
			}
			if len(seen) != n {
				t.Errorf("200 cuts used partitions %v: want all %d", seen, n)
			}
			// Fewer partitions than the sticky choice: a valid one.
			for range 20 {
				if got := p.Partition(rec, 1); got != 0 {
					t.Fatalf("one partition: got %d", got)
				}
			}
		})
	}
}
