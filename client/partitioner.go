package client

import (
	"math/rand/v2"
	"sync"
)

// KeyPartition returns the partition, in [0, n), of a record with key in a
// topic of n partitions, exactly as Kafka's Java client (and franz-go's
// default partitioner) maps a non-null key: murmur2 of the key, the sign bit
// masked off, modulo n. So a key lands on the same partition through this SDK
// and through any Kafka client. An empty non-nil key is hashed like any other
// (Kafka's null key is a nil key here, which a Partitioner spreads instead).
// It panics if n is 0.
func KeyPartition(key []byte, n uint32) uint32 {
	return (murmur2(key) & 0x7fffffff) % n
}

// murmur2 is the 32-bit MurmurHash2 with Kafka's seed, as
// org.apache.kafka.common.utils.Utils.murmur2 computes it (little-endian
// blocks of 4 bytes).
func murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for len(b) >= 4 {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		b = b[4:]
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// A Partitioner picks the partition of each record a Producer sends without
// manual partitioning. The Producer calls its methods one at a time (under
// its lock), so an implementation needs no locking of its own unless it is
// shared between Producers.
type Partitioner interface {
	// Partition returns the partition, in [0, partitions), for rec, a
	// record of topic rec.Topic, which has partitions partitions (at least
	// 1). It must not keep rec.
	Partition(rec *Record, partitions uint32) uint32
	// BatchCut tells the partitioner that the Producer closed the batch it
	// was filling for topic and partition (the batch is full, its linger
	// expired, or it was flushed): a sticky partitioner moves on to
	// another partition.
	BatchCut(topic string, partition uint32)
}

// DefaultPartitioner returns the Producer's default partitioner, that of
// Kafka's clients since Kafka 2.4 (KIP-480; franz-go's StickyKeyPartitioner):
// a record with a key goes to KeyPartition(key, partitions); a record without
// one (nil Key) goes to the topic's current "sticky" partition, chosen at
// random and kept until the batch for it is cut, so that keyless records fill
// one batch at a time instead of many small ones. A new sticky partition
// differs from the previous one when the topic has more than one. The
// returned Partitioner is safe for concurrent use.
func DefaultPartitioner() Partitioner {
	return &stickyKeyPartitioner{sticky: make(map[string]*stickyState)}
}

// StickyPartitioner returns a partitioner that ignores keys and places every
// record as DefaultPartitioner places records without a key. Safe for
// concurrent use.
func StickyPartitioner() Partitioner {
	return &stickyKeyPartitioner{sticky: make(map[string]*stickyState), ignoreKeys: true}
}

type stickyKeyPartitioner struct {
	ignoreKeys bool

	mu     sync.Mutex
	sticky map[string]*stickyState
}

// stickyState is one topic's sticky choice: cur is the partition being
// filled (-1: pick one on the next record), last the one before.
type stickyState struct {
	cur, last int64
}

func (p *stickyKeyPartitioner) Partition(rec *Record, n uint32) uint32 {
	if rec.Key != nil && !p.ignoreKeys {
		return KeyPartition(rec.Key, n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.sticky[rec.Topic]
	if st == nil {
		st = &stickyState{cur: -1, last: -1}
		p.sticky[rec.Topic] = st
	}
	if st.cur < 0 || st.cur >= int64(n) {
		st.cur = int64(rand.N(n))
		if st.cur == st.last && n > 1 {
			st.cur = (st.cur + 1) % int64(n)
		}
	}
	return uint32(st.cur)
}

func (p *stickyKeyPartitioner) BatchCut(topic string, partition uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := p.sticky[topic]; st != nil && st.cur == int64(partition) {
		st.last, st.cur = st.cur, -1
	}
}
