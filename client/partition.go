package client

import (
	"context"
	"fmt"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// partitionRef names one partition on the wire ("" topic: the default one).
type partitionRef struct {
	topic     string
	partition uint32
}

// ProduceRecord appends rec (its Value, Key, Headers and Timestamp) to
// partition rec.Partition of topic rec.Topic ("" means DefaultTopic), on the
// leader, and returns its offset once committed on a majority. It retries and
// fails as Produce does; an unknown topic or partition fails with an error
// wrapping ErrUnknownTopic. Pick the partition yourself (KeyPartition maps a
// key as Kafka does) or let a Producer pick it.
//
// A server older than topics ignores the topic, partition, key, headers and
// timestamp and appends the value to its single log: check with ListTopics
// first when that matters.
func (c *Client) ProduceRecord(ctx context.Context, rec Record) (uint64, error) {
	req := &logv1.ProduceRequest{Record: recordToProto(&rec), Topic: wireTopic(rec.Topic), Partition: rec.Partition}
	var off uint64
	err := c.onLeader(ctx, true, func(ctx context.Context, tc transport.Client) error {
		resp, err := tc.Produce(ctx, req)
		if err != nil {
			return err
		}
		off = resp.GetOffset()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("produce to %s/%d: %w", topicName(rec.Topic), rec.Partition, err)
	}
	return off, nil
}

// ProduceRecords appends recs atomically to partition of topic ("" means
// DefaultTopic), as ProduceBatch does: consecutive offsets from the returned
// one, or nothing. The records' Topic and Partition fields are ignored. It
// retries and fails as ProduceRecord does. An empty batch returns (0, nil)
// without a request.
func (c *Client) ProduceRecords(ctx context.Context, topic string, partition uint32, recs ...Record) (uint64, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	ps := make([]*logv1.Record, len(recs))
	for i := range recs {
		ps[i] = recordToProto(&recs[i])
	}
	base, _, err := c.produceBatch(ctx, partitionRef{topic: wireTopic(topic), partition: partition}, "", ps, nil)
	if err != nil {
		return 0, fmt.Errorf("produce batch of %d to %s/%d: %w", len(recs), topicName(topic), partition, err)
	}
	return base, nil
}

// produceBatch sends one ProduceBatch to the leader, with the write retry
// policy, and returns its base offset and whether the server recognised it
// as an idempotent retry.
func (c *Client) produceBatch(ctx context.Context, loc partitionRef, topicID string, recs []*logv1.Record, ref *logv1.ProducerRef) (base uint64, dup bool, err error) {
	req := &logv1.ProduceBatchRequest{Records: recs, Topic: loc.topic, Partition: loc.partition, Producer: ref, TopicId: topicID}
	err = c.onLeader(ctx, true, func(ctx context.Context, tc transport.Client) error {
		resp, err := tc.ProduceBatch(ctx, req)
		if err != nil {
			return err
		}
		if resp.GetCount() != uint64(len(recs)) {
			return fmt.Errorf("%w: server appended %d records of a batch of %d", ErrOutcomeUnknown, resp.GetCount(), len(recs))
		}
		base, dup = resp.GetBaseOffset(), resp.GetDuplicate()
		return nil
	})
	return base, dup, err
}

// ConsumePartition reads the record at offset of partition of topic ("" means
// DefaultTopic), as Consume does. An unknown topic or partition fails with an
// error wrapping ErrUnknownTopic.
func (c *Client) ConsumePartition(ctx context.Context, topic string, partition uint32, offset uint64) (Record, error) {
	var rec Record
	err := c.onReplica(ctx, c.opts.linearizable, func(ctx context.Context, tc transport.Client) error {
		req := &logv1.ConsumeRequest{
			Offset:       offset,
			Linearizable: c.opts.linearizable,
			MaxWaitMs:    longPollMillis(ctx),
			Topic:        wireTopic(topic),
			Partition:    partition,
		}
		resp, err := tc.Consume(ctx, req)
		if err != nil {
			return err
		}
		rec = recordFromProto(resp.GetRecord(), topicName(topic), partition)
		return nil
	})
	if err != nil {
		return Record{}, fmt.Errorf("consume %s/%d offset %d: %w", topicName(topic), partition, offset, err)
	}
	return rec, nil
}

// PartitionBounds returns the offsets of partition of topic ("" means
// DefaultTopic) held by a server chosen by the read policy, as Bounds does.
// An unknown topic or partition fails with an error wrapping ErrUnknownTopic.
func (c *Client) PartitionBounds(ctx context.Context, topic string, partition uint32) (Bounds, error) {
	var b Bounds
	req := c.boundsRequest(wireTopic(topic), partition)
	err := c.onReplica(ctx, c.opts.linearizable, func(ctx context.Context, tc transport.Client) error {
		resp, err := tc.GetBounds(ctx, req)
		if err != nil {
			return err
		}
		b = Bounds{Lowest: resp.GetLowestOffset(), Next: resp.GetNextOffset(), Committed: resp.GetCommittedOffset()}
		return nil
	})
	if err != nil {
		return Bounds{}, fmt.Errorf("bounds of %s/%d: %w", topicName(topic), partition, err)
	}
	return b, nil
}
