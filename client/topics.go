package client

import (
	"context"
	"fmt"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TopicConfig is a topic's own settings. A zero field means the server's
// setting (its flags); -1 in RetentionBytes or RetentionMs means unlimited.
type TopicConfig struct {
	// RetentionBytes bounds the size of each partition of the topic.
	RetentionBytes int64
	// RetentionMs bounds the age, in milliseconds, of each partition's
	// records.
	RetentionMs int64
	// MaxRecordBytes bounds one record (key, headers and value).
	MaxRecordBytes uint32
	// TimestampType is "create" (the producer's timestamp, the default) or
	// "append" (the leader's append time).
	TimestampType string
}

// Topic describes a topic.
type Topic struct {
	// Name is the topic's name (Kafka's rules: [a-zA-Z0-9._-], at most 249
	// characters).
	Name string
	// ID is the topic's UUID: a topic deleted and created again gets a new
	// one.
	ID string
	// Partitions is the topic's partition count.
	Partitions uint32
	// Config is the topic's own settings.
	Config TopicConfig
}

// PartitionInfo is one partition of a topic as DescribeTopic reports it: the
// offsets the answering server holds.
type PartitionInfo struct {
	Partition uint32
	// Lowest is the first offset still stored; Next the offset the next
	// record will get. Lowest == Next: empty.
	Lowest, Next uint64
}

// TopicDescription is a topic and its partitions.
type TopicDescription struct {
	Topic
	PartitionInfo []PartitionInfo
}

// TopicAlteration lists the settings AlterTopic changes: each non-nil field
// replaces the topic's setting (0 or "" resets it to the server's).
type TopicAlteration struct {
	RetentionBytes *int64
	RetentionMs    *int64
	MaxRecordBytes *uint32
	TimestampType  *string
	// Partitions raises the partition count (never lowers it).
	Partitions *uint32
}

// ProducerID is an idempotent producer's identity, handed out by
// InitProducer: its ID and its epoch.
type ProducerID struct {
	ID    uint64
	Epoch uint32
}

func topicFromProto(t *logv1.Topic) Topic {
	c := t.GetConfig()
	return Topic{
		Name:       t.GetName(),
		ID:         t.GetId(),
		Partitions: t.GetPartitions(),
		Config: TopicConfig{
			RetentionBytes: c.GetRetentionBytes(),
			RetentionMs:    c.GetRetentionMs(),
			MaxRecordBytes: c.GetMaxRecordBytes(),
			TimestampType:  c.GetTimestampType(),
		},
	}
}

// onTopicsLeader runs op against the leader's Topics service with the write
// retry policy of onLeader. A server without the service fails the call with
// ErrTopicsUnsupported.
func (c *Client) onTopicsLeader(ctx context.Context, op func(context.Context, transport.TopicsClient) error) error {
	return c.onTopicsLeaderAs(ctx, true, op)
}

// onTopicsLeaderRead is onTopicsLeader for a read (op changes nothing): an
// attempt whose outcome is unknown is retried like a read's.
func (c *Client) onTopicsLeaderRead(ctx context.Context, op func(context.Context, transport.TopicsClient) error) error {
	return c.onTopicsLeaderAs(ctx, false, op)
}

func (c *Client) onTopicsLeaderAs(ctx context.Context, write bool, op func(context.Context, transport.TopicsClient) error) error {
	return topicsErr(c.onLeader(ctx, write, func(ctx context.Context, tc transport.Client) error {
		tpc, ok := tc.(transport.TopicsClient)
		if !ok {
			return fmt.Errorf("%w: transport %T has no Topics client", ErrTopicsUnsupported, tc)
		}
		return op(ctx, tpc)
	}))
}

// onTopicsReplica runs op on a replica chosen by the read policy, as
// onReplica does.
func (c *Client) onTopicsReplica(ctx context.Context, op func(context.Context, transport.TopicsClient) error) error {
	return topicsErr(c.onReplica(ctx, c.opts.linearizable, func(ctx context.Context, tc transport.Client) error {
		tpc, ok := tc.(transport.TopicsClient)
		if !ok {
			return fmt.Errorf("%w: transport %T has no Topics client", ErrTopicsUnsupported, tc)
		}
		return op(ctx, tpc)
	}))
}

// topicsErr marks a server's Unimplemented answer as ErrTopicsUnsupported.
func topicsErr(err error) error {
	if err != nil && transport.CodeOf(err) == transport.Unimplemented {
		return fmt.Errorf("%w: %w", ErrTopicsUnsupported, err)
	}
	return err
}

// CreateTopic creates the topic name with partitions partitions (0 means 1)
// and the settings of cfg, on the leader, and returns it as created. It needs
// the `admin` action on the topic. Errors wrap ErrTopicExists when the topic
// exists, ErrTopicsUnsupported for a server older than topics,
// ErrOutcomeUnknown when the topic may have been created (it is not
// retried), or carry the server's *transport.Error (InvalidArgument for a bad
// name or setting, PermissionDenied).
func (c *Client) CreateTopic(ctx context.Context, name string, partitions uint32, cfg TopicConfig) (Topic, error) {
	req := &logv1.CreateTopicRequest{
		Name:       name,
		Partitions: partitions,
		Config: &logv1.TopicConfig{
			RetentionBytes: cfg.RetentionBytes,
			RetentionMs:    cfg.RetentionMs,
			MaxRecordBytes: cfg.MaxRecordBytes,
			TimestampType:  cfg.TimestampType,
		},
	}
	var t Topic
	err := c.onTopicsLeader(ctx, func(ctx context.Context, tc transport.TopicsClient) error {
		resp, err := tc.CreateTopic(ctx, req)
		if err != nil {
			return err
		}
		t = topicFromProto(resp.GetTopic())
		return nil
	})
	if err != nil {
		return Topic{}, fmt.Errorf("create topic %q: %w", name, err)
	}
	return t, nil
}

// DeleteTopic deletes the topic name and its records on every server, on the
// leader (the `admin` action). Errors wrap ErrUnknownTopic when there is no
// such topic, and otherwise as CreateTopic's.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	err := c.onTopicsLeader(ctx, func(ctx context.Context, tc transport.TopicsClient) error {
		_, err := tc.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: name})
		return err
	})
	if err != nil {
		return fmt.Errorf("delete topic %q: %w", name, err)
	}
	return nil
}

// AlterTopic changes the settings of the topic name that alt lists, or raises
// its partition count, on the leader (the `admin` action), and returns the
// topic as changed. Errors as DeleteTopic's.
func (c *Client) AlterTopic(ctx context.Context, name string, alt TopicAlteration) (Topic, error) {
	req := &logv1.AlterTopicConfigRequest{
		Name:           name,
		RetentionBytes: alt.RetentionBytes,
		RetentionMs:    alt.RetentionMs,
		MaxRecordBytes: alt.MaxRecordBytes,
		TimestampType:  alt.TimestampType,
		Partitions:     alt.Partitions,
	}
	var t Topic
	err := c.onTopicsLeader(ctx, func(ctx context.Context, tc transport.TopicsClient) error {
		resp, err := tc.AlterTopicConfig(ctx, req)
		if err != nil {
			return err
		}
		t = topicFromProto(resp.GetTopic())
		return nil
	})
	if err != nil {
		return Topic{}, fmt.Errorf("alter topic %q: %w", name, err)
	}
	return t, nil
}

// ListTopics lists the topics the caller may consume, from a server chosen by
// the read policy. Errors wrap ErrTopicsUnsupported for a server older than
// topics, or as Consume's.
func (c *Client) ListTopics(ctx context.Context) ([]Topic, error) {
	var out []Topic
	err := c.onTopicsReplica(ctx, func(ctx context.Context, tc transport.TopicsClient) error {
		resp, err := tc.ListTopics(ctx, &logv1.ListTopicsRequest{})
		if err != nil {
			return err
		}
		out = make([]Topic, 0, len(resp.GetTopics()))
		for _, t := range resp.GetTopics() {
			out = append(out, topicFromProto(t))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	return out, nil
}

// DescribeTopic returns the topic name and the bounds of each of its
// partitions on a server chosen by the read policy. Errors wrap
// ErrUnknownTopic when there is no such topic, ErrTopicsUnsupported for a
// server older than topics, or as Consume's.
func (c *Client) DescribeTopic(ctx context.Context, name string) (TopicDescription, error) {
	return c.describeTopic(ctx, &logv1.DescribeTopicRequest{Name: name}, c.onTopicsReplica)
}

// describeTopicOnLeader is DescribeTopic asked of the leader, which answers
// once it has applied every committed entry: the topic the cluster names
// name now, never an older one a lagging replica still holds (deleted and
// created again since). A Producer pins the ID it gives (see Producer). The
// request has require_leader: a node this client still takes for the leader
// but that no longer is (a follower, perhaps lagging) refuses it with
// NotLeader, and it is asked again of the leader named, rather than answer
// from what it has applied. A server older than require_leader answers it
// as any DescribeTopic.
func (c *Client) describeTopicOnLeader(ctx context.Context, name string) (TopicDescription, error) {
	return c.describeTopic(ctx, &logv1.DescribeTopicRequest{Name: name, RequireLeader: true}, c.onTopicsLeaderRead)
}

func (c *Client) describeTopic(ctx context.Context, req *logv1.DescribeTopicRequest, on func(context.Context, func(context.Context, transport.TopicsClient) error) error) (TopicDescription, error) {
	name := req.GetName()
	var d TopicDescription
	err := on(ctx, func(ctx context.Context, tc transport.TopicsClient) error {
		resp, err := tc.DescribeTopic(ctx, req)
		if err != nil {
			return err
		}
		d = TopicDescription{Topic: topicFromProto(resp.GetTopic())}
		for _, p := range resp.GetPartitions() {
			d.PartitionInfo = append(d.PartitionInfo, PartitionInfo{Partition: p.GetPartition(), Lowest: p.GetLowestOffset(), Next: p.GetNextOffset()})
		}
		return nil
	})
	if err != nil {
		return TopicDescription{}, fmt.Errorf("describe topic %q: %w", name, err)
	}
	return d, nil
}

// InitProducer asks the leader for an idempotent producer identity: a new ID
// when id is 0; otherwise the epoch of producer id is bumped, which fences
// every older instance of it (their writes then fail with ErrProducerFenced).
// A Producer calls it by itself; call it directly only to send ProducerRef'd
// requests of your own. It needs the `produce` action. Errors wrap
// ErrTopicsUnsupported for a server older than idempotent producers,
// ErrOutcomeUnknown (the call may have bumped the epoch: call it again), or
// carry the server's *transport.Error.
func (c *Client) InitProducer(ctx context.Context, id uint64) (ProducerID, error) {
	var out ProducerID
	err := c.onTopicsLeader(ctx, func(ctx context.Context, tc transport.TopicsClient) error {
		resp, err := tc.InitProducer(ctx, &logv1.InitProducerRequest{ProducerId: id})
		if err != nil {
			return err
		}
		out = ProducerID{ID: resp.GetProducerId(), Epoch: resp.GetEpoch()}
		return nil
	})
	if err != nil {
		return ProducerID{}, fmt.Errorf("init producer: %w", err)
	}
	return out, nil
}
