package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage"
)

var (
	_ consensus.StateMachine   = (*Machine)(nil)
	_ consensus.SnapshotSource = (*Machine)(nil)
	_ consensus.SnapshotSizer  = (*Machine)(nil)
)

// MachineConfig configures a Machine.
type MachineConfig struct {
	// Config configures the default topic's partition 0 (Config.Log is required: the log of
	// servers before topics) and every other partition (Logger, MaxAppendBytes; Limits are
	// the leader's defaults for topics that set none).
	Config
	// Dir holds the logs of every other partition, one directory each:
	// Dir/<topic ID>/<partition>. Required to create topics.
	Dir string
	// OpenLog opens, creating it when missing, the log of a partition in dir. Required to
	// create topics. The Machine closes the logs it opened (Close).
	OpenLog func(dir string) (storage.Log, error)
	// OpenWorkers is how many partitions of a topic OpenLog may open at once, each in its own
	// directory (default 1: one after another). Opening a durable log creates and syncs its
	// files: a topic of thousands of partitions takes seconds to create one at a time, while
	// Apply, and every write, waits. Set it above 1 only when OpenLog is safe for concurrent
	// use (storage/segment's Open is).
	OpenWorkers int
	// ProducerExpiry is how long an idle idempotent producer is remembered, in milliseconds
	// (default DefaultProducerExpiry); MaxProducers caps the table (default
	// DefaultMaxProducers). They are the leader's settings: InitProducer commands carry them.
	ProducerExpiry int64
	MaxProducers   int
}

// Machine is commitlog's replicated state machine with topics: every partition of every topic
// is a log of its own (an FSM), all on the one Raft group it is applied from. The default
// topic's partition 0 is Config.Log: the single log of servers before topics, unchanged on
// disk. Topic metadata (create, delete, add partitions, configuration) and the idempotent
// producers' table are replicated commands too; they live in memory, in snapshot manifests and
// in the Raft log, never in files of their own.
//
// Apply, Snapshot and Restore are called from one goroutine (the consensus'); every other
// method is safe for concurrent use.
type Machine struct {
	cfg    MachineConfig
	logger *slog.Logger
	def    *FSM

	cat atomic.Pointer[catalog]

	// Owned by the Apply goroutine; ownersMu is held to change the table's map or an owner
	// (init, claim, restore), and by ProducerOwner to read them.
	producers producerTable
	ownersMu  sync.RWMutex
	term      uint64
	// pendingIdem are the idempotent batches accepted since the last flush.
	pendingIdem []idemItem
	// markerSnapshots counts, per deletion marker (file name), the snapshots persisted since
	// this process first saw it (see collectMarkers), under markerMu: snapshots are taken on
	// the Apply goroutine and persisted on the consensus' snapshot goroutine.
	markerMu        sync.Mutex
	markerSnapshots map[string]int

	// groups are the consumer groups' committed offsets (groups.go), written by the Apply
	// goroutine under gmu.
	gmu    sync.RWMutex
	groups groupTable

	applied    atomic.Uint64
	nProducers atomic.Int64
	closeOnce  sync.Once
	failOnce   sync.Once
	failErr    atomic.Pointer[error]
	failed     chan struct{}

	// removeAll removes a topic's directory: os.RemoveAll, which tests replace to make it fail
	// (as root, permissions do not).
	removeAll func(path string) error
}

// catalog is an immutable view of the topics; Apply publishes a new one on every change.
type catalog struct {
	byName map[string]*topicEntry
	byID   map[TopicID]*topicEntry
	nParts int
}

type topicEntry struct {
	Topic
	parts []*partition
}

// partition is one partition's FSM and its log.
type partition struct {
	*FSM
	target Target
	log    storage.Log
	owned  bool // opened by the Machine, which closes it
	// hollow: a partition of a topic this node deleted after the snapshot it restored at
	// startup (its files are gone): it stores nothing and serves nothing until the replayed
	// delete removes it.
	hollow bool
}

type idemItem struct {
	result int
	index  uint64
	ref    ProducerRef
	target Target
	p      *partition
}

// NewMachine returns a Machine over cfg.Log, the default topic's partition 0 (see New for its
// errors). The other topics come from the snapshot the consensus restores and from the
// commands it replays.
func NewMachine(cfg MachineConfig) (*Machine, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	def, err := New(cfg.Config)
	if err != nil {
		return nil, err
	}
	m := &Machine{cfg: cfg, logger: cfg.Logger, def: def, failed: make(chan struct{}), groups: groupTable{}, removeAll: os.RemoveAll}
	m.applied.Store(def.AppliedIndex())
	m.term = def.term
	dt := &topicEntry{Topic: Topic{Name: DefaultTopic, Partitions: 1}, parts: []*partition{{FSM: def, log: cfg.Log}}}
	m.cat.Store(newCatalog([]*topicEntry{dt}))
	return m, nil
}

func newCatalog(topics []*topicEntry) *catalog {
	c := &catalog{byName: map[string]*topicEntry{}, byID: map[TopicID]*topicEntry{}}
	for _, t := range topics {
		c.byName[t.Name] = t
		c.byID[t.ID] = t
		c.nParts += len(t.parts)
	}
	return c
}

func (c *catalog) entries() []*topicEntry {
	out := make([]*topicEntry, 0, len(c.byName))
	for _, t := range c.byName {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Default returns the default topic's partition 0: the log of servers before topics.
func (m *Machine) Default() *FSM { return m.def }

// Topics returns every topic, the default one included, by name.
func (m *Machine) Topics() []Topic {
	es := m.cat.Load().entries()
	out := make([]Topic, len(es))
	for i, e := range es {
		out[i] = e.Topic
	}
	return out
}

// Topic returns a topic by name ("" means the default topic). Errors: ErrUnknownTopic.
func (m *Machine) Topic(name string) (Topic, error) {
	e, err := m.topic(name)
	if err != nil {
		return Topic{}, err
	}
	return e.Topic, nil
}

func (m *Machine) topic(name string) (*topicEntry, error) {
	if name == "" {
		name = DefaultTopic
	}
	e := m.cat.Load().byName[name]
	if e == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	return e, nil
}

// Partition returns a topic's partition (topic "" means the default topic) and the topic.
// The FSM is for reading (Bounds, Read, Records, RetentionPoint, Checksum); writes go through
// the Machine's Propose methods. A deleted topic's FSM answers storage.ErrClosed.
//
// Errors: ErrUnknownTopic, ErrUnknownPartition (wrapped, naming the topic's partition count).
func (m *Machine) Partition(topic string, p uint32) (*FSM, Topic, error) {
	e, err := m.topic(topic)
	if err != nil {
		return nil, Topic{}, err
	}
	if int(p) >= len(e.parts) {
		return nil, Topic{}, fmt.Errorf("%w: topic %q has %d partitions, no partition %d", ErrUnknownPartition, e.Name, len(e.parts), p)
	}
	if e.parts[p].hollow {
		return nil, Topic{}, fmt.Errorf("%w: %q is being deleted", ErrUnknownTopic, e.Name)
	}
	return e.parts[p].FSM, e.Topic, nil
}

// PartitionRef is a partition with its topic, as Partitions lists them.
type PartitionRef struct {
	Topic     Topic
	Partition uint32
	Target    Target
	FSM       *FSM
}

// Partitions returns every partition of every topic, by topic name and partition.
func (m *Machine) Partitions() []PartitionRef {
	var out []PartitionRef
	for _, e := range m.cat.Load().entries() {
		for i, p := range e.parts {
			out = append(out, PartitionRef{Topic: e.Topic, Partition: uint32(i), Target: p.target, FSM: p.FSM})
		}
	}
	return out
}

func (m *Machine) lookup(t Target) (*partition, error) {
	e := m.cat.Load().byID[t.Topic]
	if e == nil {
		return nil, fmt.Errorf("%w: topic ID %s", ErrUnknownTopic, t.Topic)
	}
	if int(t.Partition) >= len(e.parts) {
		return nil, fmt.Errorf("%w: topic %q has %d partitions, no partition %d", ErrUnknownPartition, e.Name, len(e.parts), t.Partition)
	}
	return e.parts[t.Partition], nil
}

// AppliedIndex returns the Raft index of the last entry applied (or restored).
func (m *Machine) AppliedIndex() uint64 { return m.applied.Load() }

// Producers returns the number of idempotent producers in the table.
func (m *Machine) Producers() int { return int(m.nProducers.Load()) }

// ProducerOwner returns the client producer id belongs to as this replica has applied it
// ("" when nobody claimed it); known is false when id is not in its table. An owner never
// changes once claimed, and IDs are never handed out twice: a replica that knows the owner
// knows the leader's. Safe for concurrent use.
func (m *Machine) ProducerOwner(id uint64) (owner string, known bool) {
	owner, _, known = m.producer(id)
	return owner, known
}

// producer returns what this replica applied of producer id that is never taken back: its
// owner (ProducerOwner) and whether it is retired (its last epoch spent by a re-init: a
// retired ID stays so until it is evicted, and an evicted one is refused as unknown); known is
// false when id is not in its table. Safe for concurrent use.
func (m *Machine) producer(id uint64) (owner string, retired, known bool) {
	m.ownersMu.RLock()
	defer m.ownersMu.RUnlock()
	st := m.producers.ByID[id]
	if st == nil {
		return "", false, false
	}
	return st.Owner, st.Retired, true
}

// Err returns the sticky error once the machine stopped applying (a partition could not store
// a committed entry, or a topic's logs could not be created or removed); nil before.
func (m *Machine) Err() error {
	if p := m.failErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Failed returns a channel closed when the machine fails.
func (m *Machine) Failed() <-chan struct{} { return m.failed }

func (m *Machine) fail(err error) error {
	m.failOnce.Do(func() {
		if !errors.Is(err, ErrFailed) {
			err = fmt.Errorf("%w: %w", ErrFailed, err)
		}
		m.failErr.Store(&err)
		close(m.failed)
		if errors.Is(err, storage.ErrCorrupt) {
			// Damaged data: a restart replays up to it again. The server fences the node.
			m.logger.Error("state machine stopped applying on damaged data: this node lost committed data, and a restart does not repair it; "+
				"it is rebuilt from its peers (stop it, remove it from the cluster, wipe its data dir and start it)",
				"err", err, "applied_index", m.applied.Load())
		} else {
			m.logger.Error("state machine stopped applying: a committed entry could not be applied; this node needs its cause fixed and a restart",
				"err", err, "applied_index", m.applied.Load())
		}
		// No partition applies a later entry: reads past what each holds answer err, and
		// readers waiting there are woken, rather than take its end for the cluster's.
		for _, e := range m.cat.Load().entries() {
			for _, p := range e.parts {
				p.stop(err)
			}
		}
	})
	return m.Err()
}

// Close closes the partition logs the machine opened (not Config.Log). Idempotent.
func (m *Machine) Close() error {
	var errs []error
	m.closeOnce.Do(func() {
		for _, e := range m.cat.Load().entries() {
			for _, p := range e.parts {
				if p.owned {
					errs = append(errs, p.log.Close())
				}
			}
		}
	})
	return errors.Join(errs...)
}

// Apply implements consensus.StateMachine. Appends and retain commands go to their partition's
// FSM (see FSM.Apply for their results); appends to different partitions between two metadata
// commands are grouped per partition. An idempotent producer's batch is checked first (see
// producer.go): a retry of one of its last batches answers the original AppendResult with
// Duplicate set and stores nothing. Metadata commands answer TopicResult or
// InitProducerResult. Deterministic errors (the same on every replica): ErrInvalidCommand,
// ErrUnknownTopic, ErrUnknownPartition, ErrTopicExists, ErrInvalidTopic, ErrUnknownProducer,
// ErrProducerFenced, ErrOutOfOrderSequence, ErrDuplicateSequence. After a failure, the
// sticky ErrFailed.
func (m *Machine) Apply(entries []consensus.Entry) []any {
	results := make([]any, len(entries))
	pend := map[*partition][]applyItem{}
	var order []*partition
	flush := func() {
		var failed error       // the first partition's failure, once every partition applied its part
		var stopped *partition // of the failed partitions, the one that stored least
		for _, p := range order {
			p.apply(pend[p], results)
			if err := p.Err(); err != nil {
				if failed == nil {
					failed = err
				}
				if stopped == nil || p.applied.Load() < stopped.applied.Load() {
					stopped = p
				}
			}
			delete(pend, p)
		}
		if failed != nil {
			// Every entry below the one a partition failed on was applied (those of this
			// batch before this group, and the other partitions' in it): the machine's
			// applied index is the last entry the failed partition stored, not the end of
			// the batch before, which understated what this node holds by up to a batch.
			if a := stopped.applied.Load(); a > m.applied.Load() {
				m.applied.Store(a)
				m.term = stopped.term
			}
			m.fail(failed)
		}
		order = order[:0]
		m.settle(results)
	}
	for i, e := range entries {
		if err := m.Err(); err != nil {
			results[i] = err
			continue
		}
		cmd, err := DecodeCommand(e.Data)
		switch {
		case err != nil:
			if cerr := corruptEntry(e.Index, e.Data); cerr != nil {
				// Apply what came before it, then stop: never skip a committed entry.
				flush()
				m.fail(cerr)
				results[i] = m.Err()
				break
			}
			results[i] = fmt.Errorf("entry %d: %w", e.Index, err)
		case cmd.Kind == KindAppend || cmd.Kind == KindRetain:
			p, err := m.lookup(cmd.Target)
			if err != nil {
				results[i] = fmt.Errorf("entry %d: %w", e.Index, err)
				break
			}
			if cmd.Kind == KindAppend && cmd.Producer.ID != 0 {
				if m.idemPending(cmd.Producer.ID, cmd.Target) {
					flush()
				}
				dup, err := m.producers.check(cmd.Producer, cmd.Target, len(cmd.Records))
				if err != nil {
					results[i] = fmt.Errorf("entry %d: %w", e.Index, err)
					break
				}
				if dup != nil {
					if dup.Unknown {
						results[i] = fmt.Errorf("entry %d: %w", e.Index, ErrDuplicateSequence)
					} else {
						results[i] = AppendResult{First: dup.Offset, Count: uint64(dup.Count), Duplicate: true}
					}
					break
				}
				m.producers.accept(cmd.Producer, cmd.Target, len(cmd.Records), cmd.Timestamp)
				m.pendingIdem = append(m.pendingIdem, idemItem{result: i, index: e.Index, ref: cmd.Producer, target: cmd.Target, p: p})
			}
			if p.hollow {
				results[i] = fmt.Errorf("entry %d: %w: the topic's files were deleted after the snapshot this node restored; its delete is being replayed", e.Index, ErrUnknownTopic)
				break
			}
			if _, ok := pend[p]; !ok {
				order = append(order, p)
			}
			pend[p] = append(pend[p], applyItem{result: i, entry: e, cmd: cmd})
		default:
			flush()
			if err := m.Err(); err != nil {
				results[i] = err
				break
			}
			results[i] = m.applyMeta(e, cmd)
		}
	}
	flush()
	if n := len(entries); n > 0 && m.Err() == nil {
		m.applied.Store(entries[n-1].Index)
		m.term = entries[n-1].Term
	}
	m.nProducers.Store(int64(m.producers.Len()))
	return results
}

func (m *Machine) idemPending(id uint64, t Target) bool {
	for _, it := range m.pendingIdem {
		if it.ref.ID == id && it.target == t {
			return true
		}
	}
	return false
}

// settle records the offsets of the idempotent batches just applied. A batch the partition
// already held (a replay after a restart) gets its offsets from the log.
func (m *Machine) settle(results []any) {
	for _, it := range m.pendingIdem {
		switch r := results[it.result].(type) {
		case AppendResult:
			m.producers.settle(it.ref, it.target, r.First, false)
		case error:
			if it.p.hollow {
				m.producers.settle(it.ref, it.target, 0, true)
			} else if errors.Is(r, ErrAlreadyApplied) {
				off, ok := it.p.offsetOfIndex(it.index)
				m.producers.settle(it.ref, it.target, off, !ok)
			}
		}
	}
	clear(m.pendingIdem)
	m.pendingIdem = m.pendingIdem[:0]
}

// applyMeta applies a metadata command.
func (m *Machine) applyMeta(e consensus.Entry, cmd Command) any {
	res, err := m.applyMetaErr(cmd)
	if err != nil {
		if errors.Is(err, ErrFailed) {
			return err
		}
		return fmt.Errorf("entry %d: %w", e.Index, err)
	}
	return res
}

func (m *Machine) applyMetaErr(cmd Command) (any, error) {
	cat := m.cat.Load()
	switch cmd.Kind {
	case KindCommitOffsets, KindDeleteGroup, KindExpireOffsets:
		return m.applyGroup(cmd)
	case KindInitProducer:
		var b initProducerBody
		if err := decodeStrict(cmd.Meta, &b); err != nil {
			return nil, err
		}
		m.ownersMu.Lock()
		defer m.ownersMu.Unlock()
		return m.producers.init(b, cmd.Timestamp), nil
	case KindClaimProducer:
		var b claimProducerBody
		if err := decodeStrict(cmd.Meta, &b); err != nil {
			return nil, err
		}
		m.ownersMu.Lock()
		defer m.ownersMu.Unlock()
		return m.producers.claim(b), nil
	case KindCreateTopic:
		var b createTopicBody
		if err := decodeStrict(cmd.Meta, &b); err != nil {
			return nil, err
		}
		t := b.Topic
		if err := ValidateTopicName(t.Name); err != nil {
			return nil, err
		}
		if err := t.Config.Validate(); err != nil {
			return nil, err
		}
		switch {
		case t.Partitions < 1 || t.Partitions > MaxPartitionsPerTopic:
			return nil, fmt.Errorf("%w: %d partitions, want 1 to %d", ErrInvalidTopic, t.Partitions, MaxPartitionsPerTopic)
		case cat.nParts+int(t.Partitions) > MaxPartitions:
			return nil, fmt.Errorf("%w: %d partitions would exceed the cluster's limit of %d (%d exist)", ErrInvalidTopic, t.Partitions, MaxPartitions, cat.nParts)
		case t.ID == TopicID{} || cat.byID[t.ID] != nil:
			return nil, fmt.Errorf("%w: topic ID %s is zero or taken", ErrInvalidCommand, t.ID)
		}
		for _, o := range cat.byName {
			if o.Name == t.Name {
				return nil, fmt.Errorf("%w: %q", ErrTopicExists, t.Name)
			}
			if collisionKey(o.Name) == collisionKey(t.Name) {
				return nil, fmt.Errorf("%w: %q collides with topic %q (names that differ only by '.' and '_' are refused, as Kafka does)", ErrTopicExists, t.Name, o.Name)
			}
		}
		e := &topicEntry{Topic: t}
		if err := m.openParts(e, 0, t.Partitions); err != nil {
			return nil, m.fail(err)
		}
		m.publish(cat, e, nil)
		m.logger.Info("topic created", "topic", t.Name, "id", t.ID, "partitions", t.Partitions)
		return TopicResult{Topic: t}, nil
	case KindDeleteTopic:
		var b deleteTopicBody
		if err := decodeStrict(cmd.Meta, &b); err != nil {
			return nil, err
		}
		old, err := m.find(cat, b.Name, b.ID)
		if err != nil {
			return nil, err
		}
		if old.Name == DefaultTopic {
			return nil, fmt.Errorf("%w: the default topic cannot be deleted (it is the log of clients that name no topic)", ErrInvalidTopic)
		}
		m.publish(cat, nil, old)
		m.dropTopicOffsets(old.ID)
		m.producers.dropTopic(old.ID) // its windows (the Apply goroutine's; no owner changes)
		if err := m.removeTopic(old); err != nil {
			return nil, m.fail(err)
		}
		m.logger.Info("topic deleted", "topic", old.Name, "id", old.ID)
		return TopicResult{Topic: old.Topic}, nil
	case KindCreatePartitions:
		var b createPartitionsBody
		if err := decodeStrict(cmd.Meta, &b); err != nil {
			return nil, err
		}
		old, err := m.find(cat, b.Name, b.ID)
		if err != nil {
			return nil, err
		}
		switch {
		case b.Partitions <= old.Partitions:
			return nil, fmt.Errorf("%w: topic %q has %d partitions; partitions can only be added (asked for %d)", ErrInvalidTopic, old.Name, old.Partitions, b.Partitions)
		case b.Partitions > MaxPartitionsPerTopic:
			return nil, fmt.Errorf("%w: %d partitions, limit %d", ErrInvalidTopic, b.Partitions, MaxPartitionsPerTopic)
		case cat.nParts+int(b.Partitions-old.Partitions) > MaxPartitions:
			return nil, fmt.Errorf("%w: would exceed the cluster's limit of %d partitions", ErrInvalidTopic, MaxPartitions)
		}
		e := &topicEntry{Topic: old.Topic, parts: append([]*partition(nil), old.parts...)}
		e.Partitions = b.Partitions
		if err := m.openParts(e, old.Partitions, b.Partitions); err != nil {
			return nil, m.fail(err)
		}
		m.publish(cat, e, old)
		m.logger.Info("partitions added", "topic", e.Name, "partitions", e.Partitions)
		return TopicResult{Topic: e.Topic}, nil
	case KindAlterTopic:
		var b alterTopicBody
		if err := decodeStrict(cmd.Meta, &b); err != nil {
			return nil, err
		}
		old, err := m.find(cat, b.Name, b.ID)
		if err != nil {
			return nil, err
		}
		c := b.Patch.apply(old.Config)
		if err := c.Validate(); err != nil {
			return nil, err
		}
		e := &topicEntry{Topic: old.Topic, parts: old.parts}
		e.Config = c
		m.publish(cat, e, old)
		return TopicResult{Topic: e.Topic}, nil
	}
	return nil, fmt.Errorf("%w: kind %d", ErrInvalidCommand, cmd.Kind)
}

// find returns the topic named name whose ID is id: a command proposed for a topic that was
// deleted (and perhaps re-created) since is refused.
func (m *Machine) find(cat *catalog, name string, id TopicID) (*topicEntry, error) {
	e := cat.byName[name]
	if e == nil || e.ID != id {
		return nil, fmt.Errorf("%w: %q (ID %s)", ErrUnknownTopic, name, id)
	}
	return e, nil
}

// publish replaces old with e (either may be nil) in a new catalog.
func (m *Machine) publish(cat *catalog, e, old *topicEntry) {
	var ts []*topicEntry
	for _, t := range cat.byName {
		if t != old {
			ts = append(ts, t)
		}
	}
	if e != nil {
		ts = append(ts, e)
	}
	m.cat.Store(newCatalog(ts))
}

func (m *Machine) topicDir(id TopicID) string { return filepath.Join(m.cfg.Dir, id.String()) }

// openParts opens (creating) the partitions [from, to) of e, MachineConfig.OpenWorkers at once, and
// appends them to e.parts in order. On an error it closes those it opened and returns the
// error of the lowest partition that failed.
func (m *Machine) openParts(e *topicEntry, from, to uint32) error {
	if from >= to {
		return nil
	}
	if m.cfg.Dir == "" || m.cfg.OpenLog == nil {
		return errors.New("fsm: this machine has no MachineConfig.Dir or OpenLog: it cannot store topics")
	}
	n := to - from
	parts, errs := make([]*partition, n), make([]error, n)
	var next atomic.Uint32
	var wg sync.WaitGroup
	for range min(max(m.cfg.OpenWorkers, 1), int(n)) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
				parts[i], errs[i] = m.openPart(e, from+i)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			for _, p := range parts {
				if p != nil {
					_ = p.log.Close()
				}
			}
			return err
		}
	}
	e.parts = append(e.parts, parts...)
	return nil
}

// openPart opens (creating) partition p of e.
func (m *Machine) openPart(e *topicEntry, p uint32) (*partition, error) {
	dir := filepath.Join(m.topicDir(e.ID), strconv.FormatUint(uint64(p), 10))
	log, err := m.cfg.OpenLog(dir)
	if err != nil {
		return nil, fmt.Errorf("open partition %s/%d: %w", e.Name, p, err)
	}
	cfg := m.cfg.Config
	cfg.Log = log
	f, err := New(cfg)
	if err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("open partition %s/%d: %w", e.Name, p, err)
	}
	return &partition{FSM: f, target: Target{Topic: e.ID, Partition: p}, log: log, owned: true}, nil
}

// MarkerSnapshots is how many snapshots this node takes after a topic's deletion before it
// removes the topic's deletion marker. A marker is needed only while a snapshot taken before
// the deletion may be restored at startup; Raft keeps the newest snapshots (2 by default),
// and the snapshot being taken when the marker goes is not persisted yet, hence one more.
// Counted per process: after a restart a marker's count starts again (it is kept longer,
// never shorter).
const MarkerSnapshots = 3

// removeTopic closes a deleted topic's logs and removes its directory. It first leaves a
// marker, <Dir>/<topic ID>.deleted (synced): a restart that restores a snapshot taken before
// the deletion finds the marker and knows the topic's files are gone on purpose (its delete
// is then replayed). Markers are empty files, removed once MarkerSnapshots snapshots were
// taken after them (collectMarkers), so that they do not pile up.
func (m *Machine) removeTopic(e *topicEntry) error {
	var errs []error
	for _, p := range e.parts {
		if p.owned {
			if err := p.log.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		m.logger.Warn("closing a deleted topic's logs failed", "topic", e.Name, "err", err)
	}
	if m.cfg.Dir == "" || e.ID == (TopicID{}) {
		return nil
	}
	dir := m.topicDir(e.ID)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := writeMarker(dir + deletedSuffix); err != nil {
		return fmt.Errorf("delete topic %q: %w", e.Name, err)
	}
	if err := syncDir(m.cfg.Dir); err != nil {
		return fmt.Errorf("delete topic %q: %w", e.Name, err)
	}
	if err := m.removeAll(dir); err != nil {
		return fmt.Errorf("delete topic %q: %w", e.Name, err)
	}
	return nil
}

const deletedSuffix = ".deleted"

func writeMarker(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// deletedMarker reports whether the topic's deletion marker exists.
func (m *Machine) deletedMarker(id TopicID) bool {
	if m.cfg.Dir == "" {
		return false
	}
	_, err := os.Stat(m.topicDir(id) + deletedSuffix)
	return err == nil
}

// removeUnknown removes topic directories the catalog does not name (topics deleted before a
// snapshot this node installed), and returns the deletion markers present of topics the
// catalog does not name (see collectMarkers). Called when taking a snapshot: no topic is being
// created.
func (m *Machine) removeUnknown() map[string]bool {
	if m.cfg.Dir == "" {
		return nil
	}
	ents, err := os.ReadDir(m.cfg.Dir)
	if err != nil {
		return nil
	}
	cat := m.cat.Load()
	markers := map[string]bool{}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), deletedSuffix) {
			// A deletion interrupted between its marker and the removal of the files.
			if id, err := ParseTopicID(strings.TrimSuffix(e.Name(), deletedSuffix)); err == nil && cat.byID[id] == nil {
				_ = m.removeAll(m.topicDir(id))
				markers[e.Name()] = true
			}
		}
	}
	for _, id := range unknownTopics(ents, cat) {
		m.removeTopicDir(id, "could not remove an unknown topic's files")
	}
	return markers
}

// removeDeletedBefore removes, after a snapshot at index was restored, the directories of
// topics the catalog does not name and whose partitions hold no record applied after index: a
// node that was down while a topic was deleted and catches up by installing a snapshot starts
// with the default topic only, so reconcile never sees such a topic. A topic that held a record
// applied at or before index existed then, and the snapshot, which would name it, does not: it
// was deleted. One whose partitions hold no record may have been created after the snapshot,
// but then the consensus replays its create, which opens its (empty) partitions again, so
// nothing is lost. A topic with a record applied after index (created after the snapshot: its
// records are kept, as its replay expects) and a partition that does not open are left to the
// next snapshot's removeUnknown.
func (m *Machine) removeDeletedBefore(index uint64) {
	if m.cfg.Dir == "" || m.cfg.OpenLog == nil {
		return
	}
	ents, err := os.ReadDir(m.cfg.Dir)
	if err != nil {
		return
	}
	for _, id := range unknownTopics(ents, m.cat.Load()) {
		if !m.deletedMarker(id) {
			if applied, ok := m.topicApplied(id); !ok || applied > index {
				continue
			}
		}
		if m.removeTopicDir(id, "could not remove a deleted topic's files") {
			m.logger.Info("removed the files of a topic deleted before the restored snapshot", "id", id)
		}
	}
}

// unknownTopics returns the IDs of the topic directories among ents (m.cfg.Dir's) that cat does
// not name, the default topic's excepted.
func unknownTopics(ents []os.DirEntry, cat *catalog) []TopicID {
	var ids []TopicID
	for _, e := range ents {
		id, err := ParseTopicID(e.Name())
		if err != nil || !e.IsDir() || id == (TopicID{}) || cat.byID[id] != nil {
			continue
		}
		ids = append(ids, id)
	}
	return ids
}

// removeTopicDir removes topic id's directory, logging failure with msg; it reports success.
func (m *Machine) removeTopicDir(id TopicID, msg string) bool {
	if err := m.removeAll(m.topicDir(id)); err != nil {
		m.logger.Warn(msg, "dir", id.String(), "err", err)
		return false
	}
	return true
}

// topicApplied returns the highest Raft index applied to any partition of topic id's directory,
// false when a partition does not open.
func (m *Machine) topicApplied(id TopicID) (uint64, bool) {
	dir := m.topicDir(id)
	parts, err := os.ReadDir(dir)
	if err != nil {
		return 0, false
	}
	var applied uint64
	for _, p := range parts {
		if _, err := strconv.ParseUint(p.Name(), 10, 32); err != nil || !p.IsDir() {
			continue
		}
		idx, err := partitionApplied(filepath.Join(dir, p.Name()), m.cfg.OpenLog)
		if err != nil {
			return 0, false
		}
		applied = max(applied, idx)
	}
	return applied, true
}

// collectMarkers counts one more snapshot for each deletion marker present (of a topic the
// catalog no longer names) and removes those counted MarkerSnapshots times. Called once a
// snapshot was persisted (machineSnapshot.Persist): a snapshot the consensus takes and then
// discards (its store could not create it, a configuration change was being applied) keeps
// nothing, so it must not count, or a marker could go while the newest snapshot kept still
// names the deleted topic.
func (m *Machine) collectMarkers(present map[string]bool) {
	m.markerMu.Lock()
	defer m.markerMu.Unlock()
	if m.markerSnapshots == nil {
		m.markerSnapshots = map[string]int{}
	}
	for name := range m.markerSnapshots {
		if !present[name] {
			delete(m.markerSnapshots, name)
		}
	}
	for name := range present {
		m.markerSnapshots[name]++
		if m.markerSnapshots[name] < MarkerSnapshots {
			continue
		}
		if err := os.Remove(filepath.Join(m.cfg.Dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.logger.Warn("could not remove a deleted topic's marker", "marker", name, "err", err)
			continue
		}
		delete(m.markerSnapshots, name)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// metaJSON encodes the replicated metadata.
func (m *Machine) metaJSON() ([]byte, error) {
	st := metaState{Topics: m.Topics(), Producers: m.producers, Groups: m.groupStates()}
	return json.Marshal(st)
}
