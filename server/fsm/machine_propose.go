package fsm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
)

// TopicLimits returns the limits the leader applies to a topic's appends: the machine's, with
// the topic's MaxRecordBytes when it sets one.
func (m *Machine) TopicLimits(t Topic) Limits {
	lim := m.def.limits
	if t.Config.MaxRecordBytes > 0 {
		lim.MaxRecordBytes = t.Config.MaxRecordBytes
		// A record at the topic's limit fits a command alone, as at the machine's.
		lim.MaxCommandBytes = max(lim.MaxCommandBytes, singleRecordCommandBytes(min(lim.MaxRecordBytes, MaxRecordValueBytes)))
	}
	return lim.withDefaults()
}

// Target resolves a topic name ("" means the default topic) and a partition.
//
// Errors: ErrUnknownTopic, ErrUnknownPartition (wrapped).
func (m *Machine) Target(topic string, partition uint32) (Target, Topic, error) {
	e, err := m.topic(topic)
	if err != nil {
		return Target{}, Topic{}, err
	}
	if int(partition) >= len(e.parts) {
		return Target{}, Topic{}, fmt.Errorf("%w: topic %q has %d partitions, no partition %d", ErrUnknownPartition, e.Name, len(e.parts), partition)
	}
	return Target{Topic: e.ID, Partition: partition}, e.Topic, nil
}

// ProposeAppend appends records to a topic's partition as one atomic batch, from an
// idempotent producer when producer.ID is set. Limits are the topic's (TopicLimits); a topic
// with the append timestamp type drops the records' timestamps. As FSM.Propose, a batch above
// this node's limits on a node that does not lead answers *consensus.NotLeaderError.
//
// Errors: ErrUnknownTopic, ErrUnknownPartition; as FSM.Propose's; the entry's Apply error
// (also ErrUnknownProducer, ErrProducerFenced, ErrOutOfOrderSequence, ErrDuplicateSequence);
// ErrProducerFenced before proposing anything for a producer ID this replica knows retired.
func (m *Machine) ProposeAppend(ctx context.Context, c Proposer, topic string, partition uint32, producer ProducerRef, records ...AppendRecord) (AppendResult, error) {
	return m.ProposeAppendTo(ctx, c, topic, partition, nil, producer, records...)
}

// ProposeAppendTo is ProposeAppend to the topic of that name only if its ID is *id (nil: any):
// one with another ID here (the topic was deleted, perhaps created again under its name, or this
// replica has not applied the creation of the one with that ID yet) answers ErrUnknownTopic and
// proposes nothing. The command names the topic's ID, so a topic deleted before it is applied
// refuses it too (ErrUnknownTopic).
func (m *Machine) ProposeAppendTo(ctx context.Context, c Proposer, topic string, partition uint32, id *TopicID, producer ProducerRef, records ...AppendRecord) (AppendResult, error) {
	target, t, err := m.Target(topic, partition)
	if err != nil {
		return AppendResult{}, err
	}
	if id != nil && target.Topic != *id {
		return AppendResult{}, fmt.Errorf("%w: %q has ID %s here, not %s: deleted since, perhaps created again", ErrUnknownTopic, t.Name, target.Topic, *id)
	}
	if producer.ID != 0 { // not on the path of plain appends: no lock there
		if _, retired, _ := m.producer(producer.ID); retired {
			// Refused by every replica that applied the retirement, which a retired ID never
			// leaves: refused before proposing, the entry never reaches a server older than
			// retirement (in a rolling upgrade), which would store it and diverge.
			return AppendResult{}, fmt.Errorf("%w: producer %d epoch %d: its epochs are spent, it was re-initialised under a new ID (not proposed)", ErrProducerFenced, producer.ID, producer.Epoch)
		}
	}
	if t.Config.TimestampType == TimestampAppend {
		stripped := make([]AppendRecord, len(records))
		for i, r := range records {
			r.Timestamp = 0
			stripped[i] = r
		}
		records = stripped
	}
	b := Batch{Target: target, Producer: producer, Records: records}
	cmd, err := EncodeBatchAt(m.TopicLimits(t), time.Now(), b)
	if errors.Is(err, ErrTooLarge) && !c.IsLeader() {
		if _, herr := EncodeBatchAt(hardLimits, time.Time{}, b); herr == nil {
			leader, _ := c.Leader()
			return AppendResult{}, &consensus.NotLeaderError{Leader: leader}
		}
	}
	if err != nil {
		return AppendResult{}, err
	}
	return proposeAs[AppendResult](ctx, c, m.Err(), cmd, "an append")
}

// ProposeRetention proposes a retain command for one partition (see FSM.ProposeRetention).
func (m *Machine) ProposeRetention(ctx context.Context, c Proposer, t Target, first uint64) (uint64, error) {
	r, err := proposeAs[RetainResult](ctx, c, m.Err(), EncodeRetainTarget(t, first, time.Now()), "a retain command")
	return r.First, err
}

func (m *Machine) proposeMeta(ctx context.Context, c Proposer, k CommandKind, body any) (any, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode metadata command: %w", err)
	}
	cmd, err := encodeMeta(k, time.Now(), b)
	if err != nil {
		return nil, err
	}
	return propose(ctx, c, m.Err(), cmd)
}

func (m *Machine) proposeTopic(ctx context.Context, c Proposer, k CommandKind, body any) (Topic, error) {
	res, err := m.proposeMeta(ctx, c, k, body)
	if err != nil {
		return Topic{}, err
	}
	r, ok := res.(TopicResult)
	if !ok {
		return Topic{}, fmt.Errorf("fsm: unexpected apply result %T for a topic command", res)
	}
	return r.Topic, nil
}

// CreateTopic creates a topic with a new ID. Errors: ErrInvalidTopic (name, partitions,
// configuration), ErrTopicExists; the proposer's errors, as for ProposeAppend.
func (m *Machine) CreateTopic(ctx context.Context, c Proposer, name string, partitions uint32, cfg TopicConfig) (Topic, error) {
	if err := ValidateTopicName(name); err != nil {
		return Topic{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Topic{}, err
	}
	if partitions < 1 || partitions > MaxPartitionsPerTopic {
		return Topic{}, fmt.Errorf("%w: %d partitions, want 1 to %d", ErrInvalidTopic, partitions, MaxPartitionsPerTopic)
	}
	if _, err := m.topic(name); err == nil {
		return Topic{}, fmt.Errorf("%w: %q", ErrTopicExists, name)
	}
	return m.proposeTopic(ctx, c, KindCreateTopic, createTopicBody{Topic: Topic{Name: name, ID: NewTopicID(), Partitions: partitions, Config: cfg}})
}

// DeleteTopic deletes a topic and its partitions' records on every replica. Errors:
// ErrUnknownTopic; ErrInvalidTopic for the default topic; the proposer's errors.
func (m *Machine) DeleteTopic(ctx context.Context, c Proposer, name string) (Topic, error) {
	t, err := m.Topic(name)
	if err != nil {
		return Topic{}, err
	}
	return m.proposeTopic(ctx, c, KindDeleteTopic, deleteTopicBody{Name: t.Name, ID: t.ID})
}

// CreatePartitions raises a topic's partition count to partitions. Errors: ErrUnknownTopic;
// ErrInvalidTopic for the default topic, or when partitions is not above the current count or
// above the limits. A command refused when applied because a concurrent identical one raised
// the topic (the same ID) to partitions first answers the topic, as a later request for its
// count does (the service skips it): the caller asked for that count and it holds.
func (m *Machine) CreatePartitions(ctx context.Context, c Proposer, name string, partitions uint32) (Topic, error) {
	t, err := m.Topic(name)
	if err != nil {
		return Topic{}, err
	}
	if t.Name == DefaultTopic {
		// Refused before proposing (not when applied, so that a log holding such a command
		// from an older version replays as it did): the clients that name no topic, the
		// seed's among them, write and read its partition 0 only, and so do keyed records of
		// the SDK's Producer; more partitions would never be written.
		return Topic{}, fmt.Errorf("%w: the default topic has one partition (the log of clients that name no topic); create a topic for more", ErrInvalidTopic)
	}
	got, err := m.proposeTopic(ctx, c, KindCreatePartitions, createPartitionsBody{Name: t.Name, ID: t.ID, Partitions: partitions})
	if errors.Is(err, ErrInvalidTopic) && partitions > t.Partitions {
		if cur, cerr := m.Topic(name); cerr == nil && cur.ID == t.ID && cur.Partitions == partitions {
			return cur, nil
		}
	}
	return got, err
}

// AlterTopic changes a topic's configuration. Errors: ErrUnknownTopic, ErrInvalidTopic.
func (m *Machine) AlterTopic(ctx context.Context, c Proposer, name string, patch TopicConfigPatch) (Topic, error) {
	t, err := m.Topic(name)
	if err != nil {
		return Topic{}, err
	}
	if err := patch.apply(t.Config).Validate(); err != nil {
		return Topic{}, err
	}
	return m.proposeTopic(ctx, c, KindAlterTopic, alterTopicBody{Name: t.Name, ID: t.ID, Patch: patch})
}

// ClaimProducer records owner as the client producer id belongs to, unless another client
// claimed it first, and returns the owner after the command (see ClaimProducerResult).
// Errors: the proposer's; ErrInvalidCommand from a leader older than owners.
func (m *Machine) ClaimProducer(ctx context.Context, c Proposer, id uint64, owner string) (ClaimProducerResult, error) {
	res, err := m.proposeMeta(ctx, c, KindClaimProducer, claimProducerBody{ID: id, Owner: owner})
	if err != nil {
		return ClaimProducerResult{}, err
	}
	r, ok := res.(ClaimProducerResult)
	if !ok {
		return ClaimProducerResult{}, fmt.Errorf("fsm: unexpected apply result %T for ClaimProducer", res)
	}
	return r, nil
}

// InitProducer hands out an idempotent producer ID and epoch: a new ID when id is 0 (or no
// longer known), otherwise id with its epoch bumped, which fences every older instance of it.
// Errors: the proposer's.
func (m *Machine) InitProducer(ctx context.Context, c Proposer, id uint64) (InitProducerResult, error) {
	res, err := m.proposeMeta(ctx, c, KindInitProducer, initProducerBody{ID: id, ExpiryMs: m.cfg.ProducerExpiry, MaxProducers: m.cfg.MaxProducers})
	if err != nil {
		return InitProducerResult{}, err
	}
	r, ok := res.(InitProducerResult)
	if !ok {
		return InitProducerResult{}, fmt.Errorf("fsm: unexpected apply result %T for InitProducer", res)
	}
	return r, nil
}
