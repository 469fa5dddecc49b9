package fsm

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Idempotent producer errors (Kafka's KIP-98 model). As Apply results they are deterministic:
// every replica checks the same sequence numbers against the same table.
var (
	// ErrUnknownProducer: the producer ID is not in the table (never handed out, or expired):
	// the producer must call InitProducer again.
	ErrUnknownProducer = errors.New("fsm: unknown producer ID")
	// ErrProducerFenced: the producer's epoch is not the current one: a newer InitProducer
	// for the same ID fenced it.
	ErrProducerFenced = errors.New("fsm: producer fenced by a newer epoch")
	// ErrDuplicateSequence: the batch is a retry of one stored earlier whose offsets this
	// replica no longer knows (retention removed its records before a restart): it was not
	// stored again.
	ErrDuplicateSequence = errors.New("fsm: duplicate sequence number: the batch was stored before, its offsets are unknown")
	// ErrOutOfOrderSequence: the batch's base sequence is neither the next one expected nor
	// one of the last ProducerWindow batches' (a gap: a batch in between was lost).
	ErrOutOfOrderSequence = errors.New("fsm: out of order sequence number")
)

// ProducerWindow is how many of a producer's last batches per partition are remembered: a
// retry of one of them answers its original offsets and stores nothing.
const ProducerWindow = 5

// Defaults of the producer table's settings (carried in InitProducer commands).
const (
	// DefaultProducerExpiry is how long an idle producer is kept (Kafka's
	// transactional.id.expiration.ms default: one day).
	DefaultProducerExpiry = 24 * 60 * 60 * 1000
	// DefaultMaxProducers caps the producer table.
	DefaultMaxProducers = 100_000
)

// producerTable is the replicated table of idempotent producers (in metaState).
type producerTable struct {
	NextID uint64                    `json:"next_id,omitempty"`
	ByID   map[uint64]*producerState `json:"by_id,omitempty"`
}

// producerState is one producer's epoch, last activity and per-partition window.
type producerState struct {
	Epoch uint16 `json:"epoch"`
	// LastTS is the timestamp (Unix ms) of the last command that used it: the proposers'
	// clocks, so expiry is judged the same on every replica.
	LastTS     int64               `json:"last_ts"`
	Partitions []producerPartition `json:"partitions,omitempty"`
	// Owner is the client the ID belongs to (KindClaimProducer); "": anyone's (claimed by
	// nobody, or handed out before owners were recorded).
	Owner string `json:"owner,omitempty"`
	// Retired: the ID was re-initialised at its last epoch (MaxUint16), which handed out a
	// new ID instead: the instance holding the last epoch is fenced as by any
	// re-initialisation, and the ID is never used again.
	Retired bool `json:"retired,omitempty"`
}

type producerPartition struct {
	Topic   TopicID     `json:"topic"`
	Part    uint32      `json:"partition"`
	Batches []batchMeta `json:"batches"` // oldest first, at most ProducerWindow
}

// batchMeta is one remembered batch: its sequence numbers and the offsets it got.
type batchMeta struct {
	FirstSeq int32  `json:"first_seq"`
	LastSeq  int32  `json:"last_seq"`
	Offset   uint64 `json:"offset"`
	Count    uint32 `json:"count"`
	// Unknown: the offsets could not be learnt (see ErrDuplicateSequence).
	Unknown bool `json:"unknown,omitempty"`
	// pending: accepted in the Apply call under way, offset not known yet.
	pending bool
}

// InitProducerResult is the Apply result of an InitProducer command.
type InitProducerResult struct {
	ID    uint64
	Epoch uint16
}

type initProducerBody struct {
	// ID is the producer re-initialising itself (its epoch is bumped, fencing older
	// instances); 0 asks for a new ID.
	ID uint64 `json:"id,omitempty"`
	// ExpiryMs and MaxProducers are the leader's settings; every replica applies them when
	// applying the command.
	ExpiryMs     int64 `json:"expiry_ms,omitempty"`
	MaxProducers int   `json:"max_producers,omitempty"`
}

type claimProducerBody struct {
	ID    uint64 `json:"id"`
	Owner string `json:"owner"`
}

// ClaimProducerResult is the Apply result of a ClaimProducer command: the producer's owner
// after it (the claimant's name unless another claimed it first); Known is false when the
// producer is not in the table (expired, or never handed out), and nothing was recorded.
type ClaimProducerResult struct {
	Owner string
	Known bool
}

// claim records owner as the owner of producer b.ID, unless it has one.
func (t *producerTable) claim(b claimProducerBody) ClaimProducerResult {
	st := t.ByID[b.ID]
	if st == nil || b.ID == 0 {
		return ClaimProducerResult{}
	}
	if st.Owner == "" {
		st.Owner = b.Owner
	}
	return ClaimProducerResult{Owner: st.Owner, Known: true}
}

// lastSeq returns the sequence number of the last record of a batch of count records
// starting at base (sequence numbers wrap from MaxInt32 to 0, as Kafka's).
func lastSeq(base int32, count int) int32 {
	return int32((int64(base) + int64(count) - 1) % (math.MaxInt32 + 1))
}

func nextSeq(s int32) int32 {
	if s == math.MaxInt32 {
		return 0
	}
	return s + 1
}

func (t *producerTable) partition(st *producerState, target Target, create bool) *producerPartition {
	for i := range st.Partitions {
		if st.Partitions[i].Topic == target.Topic && st.Partitions[i].Part == target.Partition {
			return &st.Partitions[i]
		}
	}
	if !create {
		return nil
	}
	st.Partitions = append(st.Partitions, producerPartition{Topic: target.Topic, Part: target.Partition})
	return &st.Partitions[len(st.Partitions)-1]
}

// check judges an idempotent batch. It returns the remembered batch when it is a retry of
// one, nil when it is the next in sequence, or an error.
func (t *producerTable) check(ref ProducerRef, target Target, count int) (*batchMeta, error) {
	st := t.ByID[ref.ID]
	if st == nil {
		return nil, fmt.Errorf("%w: %d", ErrUnknownProducer, ref.ID)
	}
	if st.Retired {
		return nil, fmt.Errorf("%w: producer %d epoch %d: its epochs are spent, it was re-initialised under a new ID", ErrProducerFenced, ref.ID, ref.Epoch)
	}
	if ref.Epoch != st.Epoch {
		return nil, fmt.Errorf("%w: producer %d epoch %d, current %d", ErrProducerFenced, ref.ID, ref.Epoch, st.Epoch)
	}
	if ref.BaseSequence < 0 {
		return nil, fmt.Errorf("%w: negative base sequence %d", ErrOutOfOrderSequence, ref.BaseSequence)
	}
	last := lastSeq(ref.BaseSequence, count)
	pp := t.partition(st, target, false)
	if pp == nil || len(pp.Batches) == 0 {
		if ref.BaseSequence != 0 {
			return nil, fmt.Errorf("%w: producer %d partition %s/%d: first batch at sequence %d, want 0", ErrOutOfOrderSequence, ref.ID, target.Topic, target.Partition, ref.BaseSequence)
		}
		return nil, nil
	}
	for i := range pp.Batches {
		if b := &pp.Batches[i]; b.FirstSeq == ref.BaseSequence && b.LastSeq == last {
			return b, nil
		}
	}
	if want := nextSeq(pp.Batches[len(pp.Batches)-1].LastSeq); ref.BaseSequence != want {
		return nil, fmt.Errorf("%w: producer %d partition %s/%d: sequence %d, want %d", ErrOutOfOrderSequence, ref.ID, target.Topic, target.Partition, ref.BaseSequence, want)
	}
	return nil, nil
}

// accept remembers an accepted batch (its offset filled in by settle once known).
func (t *producerTable) accept(ref ProducerRef, target Target, count int, ts int64) {
	st := t.ByID[ref.ID]
	st.LastTS = max(st.LastTS, ts)
	pp := t.partition(st, target, true)
	pp.Batches = append(pp.Batches, batchMeta{FirstSeq: ref.BaseSequence, LastSeq: lastSeq(ref.BaseSequence, count), Count: uint32(count), pending: true})
	if len(pp.Batches) > ProducerWindow {
		pp.Batches = append(pp.Batches[:0], pp.Batches[len(pp.Batches)-ProducerWindow:]...)
	}
}

// settle sets the offset of an accepted batch (unknown: it could not be learnt).
func (t *producerTable) settle(ref ProducerRef, target Target, offset uint64, unknown bool) {
	st := t.ByID[ref.ID]
	if st == nil {
		return
	}
	if pp := t.partition(st, target, false); pp != nil {
		for i := range pp.Batches {
			if b := &pp.Batches[i]; b.pending && b.FirstSeq == ref.BaseSequence {
				b.Offset, b.Unknown, b.pending = offset, unknown, false
			}
		}
	}
}

// dropTopic forgets what every producer remembered of topic id's partitions (the topic was
// deleted). It changes no Apply result, so a log written before it replays the same: topic IDs
// are random and never handed out twice, and an append naming a deleted topic's ID is refused
// (ErrUnknownTopic) before its producer is looked at. A topic created again under the name has
// another ID, whose partitions every producer starts at sequence 0.
func (t *producerTable) dropTopic(id TopicID) {
	t.dropPartitions(func(pp producerPartition) bool { return pp.Topic == id })
}

// dropTopicsExcept forgets the windows of every topic but the default one and those known
// holds (a restored snapshot's catalogue), as dropTopic.
func (t *producerTable) dropTopicsExcept(known map[TopicID]bool) {
	t.dropPartitions(func(pp producerPartition) bool { return pp.Topic != TopicID{} && !known[pp.Topic] })
}

func (t *producerTable) dropPartitions(drop func(producerPartition) bool) {
	for _, st := range t.ByID {
		st.Partitions = slices.DeleteFunc(st.Partitions, drop)
		if len(st.Partitions) == 0 {
			st.Partitions = nil
		}
	}
}

// init applies an InitProducer command at time ts (Unix ms).
func (t *producerTable) init(body initProducerBody, ts int64) InitProducerResult {
	if t.ByID == nil {
		t.ByID = map[uint64]*producerState{}
	}
	expiry := body.ExpiryMs
	if expiry <= 0 {
		expiry = DefaultProducerExpiry
	}
	maxProducers := body.MaxProducers
	if maxProducers <= 0 {
		maxProducers = DefaultMaxProducers
	}
	if st := t.ByID[body.ID]; body.ID != 0 && st != nil {
		st.LastTS = max(st.LastTS, ts)
		st.Partitions = nil
		if st.Epoch < math.MaxUint16 {
			st.Epoch++
			return InitProducerResult{ID: body.ID, Epoch: st.Epoch}
		}
		// The last epoch is spent: a new ID is handed out below (as Kafka does), and the
		// instance holding the last epoch is fenced all the same.
		st.Retired = true
	}
	t.expireAndEvict(ts-expiry, maxProducers-1)
	t.NextID++
	t.ByID[t.NextID] = &producerState{LastTS: ts}
	return InitProducerResult{ID: t.NextID, Epoch: 0}
}

// expireAndEvict removes the producers last used before cutoff, then the least recently used
// (the lowest (LastTS, ID) first, so that every replica removes the same ones) until at most
// keep are left. It runs on every InitProducer, in the apply loop that every partition waits
// on: one pass over the table, and a sort only when more than one must go (a lower cap).
func (t *producerTable) expireAndEvict(cutoff int64, keep int) {
	type entry struct {
		ts int64
		id uint64
	}
	compare := func(a, b entry) int { return cmp.Or(cmp.Compare(a.ts, b.ts), cmp.Compare(a.id, b.id)) }
	var oldest entry
	n := 0
	for id, st := range t.ByID {
		if st.LastTS < cutoff {
			delete(t.ByID, id)
			continue
		}
		if e := (entry{st.LastTS, id}); n == 0 || compare(e, oldest) < 0 {
			oldest = e
		}
		n++
	}
	switch over := n - keep; {
	case over <= 0:
	case over == 1:
		delete(t.ByID, oldest.id)
	default:
		all := make([]entry, 0, n)
		for id, st := range t.ByID {
			all = append(all, entry{st.LastTS, id})
		}
		slices.SortFunc(all, compare)
		for _, e := range all[:over] {
			delete(t.ByID, e.id)
		}
	}
}

// Len returns the number of producers in the table.
func (t *producerTable) Len() int { return len(t.ByID) }
