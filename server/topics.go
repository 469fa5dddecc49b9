package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

var _ transport.TopicsService = (*service)(nil)

// produceTarget is where a produce request goes: topic ("" is the default topic), partition,
// the idempotent producer, if any, and the ID the topic must have ("": any; proposeTo checks it
// and sets pin, the parsed ID, which proposeLocal passes on).
type produceTarget struct {
	topic     string
	partition uint32
	producer  *logv1.ProducerRef
	topicID   string
	pin       *fsm.TopicID
}

func (t produceTarget) isDefault() bool {
	return (t.topic == "" || t.topic == fsm.DefaultTopic) && t.partition == 0 && t.producer.GetId() == 0 && t.topicID == ""
}

func (t produceTarget) ref() fsm.ProducerRef {
	return fsm.ProducerRef{ID: t.producer.GetId(), Epoch: uint16(t.producer.GetEpoch()), BaseSequence: t.producer.GetBaseSequence()}
}

// readTarget is the partition a read goes to.
type readTarget struct {
	topic     string
	partition uint32
	part      *fsm.FSM
	id        fsm.TopicID // its topic's
	// pinned: the read named its topic's ID (ConsumeRequest.topic_id), so what the cluster
	// says of another topic of the same name (deleted and created again) is no answer to it.
	pinned bool
}

// readTarget resolves a read's topic and partition ("" and 0: the default partition).
// A topic or partition this node does not know may be one whose creation is committed but not
// applied here yet (a restarted node replays its log; a follower lags): it catches up first
// (caughtUp) and answers NotFound only if the cluster does not know it either.
// Errors: fsm.ErrUnknownTopic, fsm.ErrUnknownPartition (NotFound on the wire); errLagging when
// this node could not catch up to tell (unconfirmedUnknown).
func (s *service) readTarget(ctx context.Context, topic string, partition uint32) (readTarget, error) {
	if (topic == "" || topic == fsm.DefaultTopic) && partition == 0 {
		return readTarget{part: s.fsm}, nil
	}
	if s.sm == nil {
		return readTarget{}, fmt.Errorf("%w: %q (this server has no topics)", fsm.ErrUnknownTopic, topic)
	}
	f, t, err := s.knownPartition(ctx, topic, partition)
	if err != nil {
		return readTarget{}, err
	}
	return readTarget{topic: topic, partition: partition, part: f, id: t.ID}, nil
}

// knownTopic is the state machine's topic name; one this node does not know may be one whose
// creation is committed and not applied here yet: it catches up first (caughtUp), and answers
// unconfirmedUnknown when it cannot.
func (s *service) knownTopic(ctx context.Context, name string) (fsm.Topic, error) {
	return caughtUpLookup(ctx, s, func() (fsm.Topic, error) { return s.sm.Topic(name) })
}

// knownPartition is knownTopic for a partition (one added and not applied here yet, too).
func (s *service) knownPartition(ctx context.Context, topic string, partition uint32) (*fsm.FSM, fsm.Topic, error) {
	var t fsm.Topic
	f, err := caughtUpLookup(ctx, s, func() (f *fsm.FSM, err error) {
		f, t, err = s.sm.Partition(topic, partition)
		return f, err
	})
	return f, t, err
}

// caughtUpLookup runs lookup and, when it names a topic or partition this node does not know,
// runs it again once caught up with the leader; unconfirmedUnknown when it cannot catch up.
func caughtUpLookup[T any](ctx context.Context, s *service, lookup func() (T, error)) (T, error) {
	v, err := lookup()
	if unknownTarget(err) {
		if !s.caughtUp(ctx) {
			return v, unconfirmedUnknown(err)
		}
		v, err = lookup()
	}
	return v, err
}

// readTargetID is readTarget for a read that names the ID its topic must have (id; "": any):
// a reader that began with a topic never goes on in another one under its name (deleted and
// created again while it reconnected). A topic with another ID here may be one this node has
// not yet applied the creation of: it catches up first. Errors: errInvalid (InvalidArgument)
// at once when id is not a topic ID as this server issues them (a UUID); readTarget's;
// fsm.ErrUnknownTopic when the topic has another ID; errLagging when this node could not catch
// up to tell.
func (s *service) readTargetID(ctx context.Context, topic string, partition uint32, id string) (readTarget, error) {
	var want fsm.TopicID
	if id != "" {
		var err error
		if want, err = fsm.ParseTopicID(id); err != nil {
			// Never a topic's: a typo, or an ID not of this server's making. NotFound would
			// tell the reader that its topic was deleted.
			return readTarget{}, fmt.Errorf("%w: topic_id %q is not a topic ID (a UUID, as Topic.id gives it)", errInvalid, id)
		}
	}
	rt, err := s.readTarget(ctx, topic, partition)
	if err != nil || id == "" || rt.id == want {
		rt.pinned = err == nil && id != "" && rt.topic != ""
		return rt, err
	}
	if !s.caughtUp(ctx) {
		// This node may lag the topic's creation, and cannot tell: another replica, or a
		// later try, can (Unavailable).
		return readTarget{}, fmt.Errorf("%w: %q has ID %s here, not %s, and this node could not catch up with the leader", errLagging, topic, rt.id, id)
	}
	if rt, err = s.readTarget(ctx, topic, partition); err != nil || rt.id == want {
		rt.pinned = err == nil && rt.topic != ""
		return rt, err
	}
	return readTarget{}, fmt.Errorf("%w: %q has ID %s, not %s: deleted since, perhaps created again", fsm.ErrUnknownTopic, topic, rt.id, id)
}

// pinnedOutOfRange is err, the OutOfRange answer this node gives a read naming its topic's ID
// (rt.pinned) from its own copy (an offset below its log's start), unless the cluster's topic
// of that name is no longer that topic (deleted, perhaps created again, in entries not applied
// here): then ErrUnknownTopic (NotFound), the leader's answer. It asks the leader (on a
// follower, DescribeTopic) at most until the caller's deadline is near; when it cannot tell,
// err stands. Other errors pass unchanged.
func (s *service) pinnedOutOfRange(ctx context.Context, rt readTarget, err error) error {
	if !rt.pinned || !errors.Is(err, storage.ErrOutOfRange) {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, untilNearDeadline(ctx, s.leaderWait))
	defer cancel()
	lerr := s.node.LinearizableRead(ctx)
	if lerr == nil {
		if gone := s.pinnedGone(rt); gone != nil {
			return gone
		}
		return err
	}
	if nl, ok := errors.AsType[*consensus.NotLeaderError](lerr); ok && nl.Leader.ID != "" && s.forward != nil {
		if gone := s.pinnedGoneOnLeader(ctx, nl.Leader.Address, rt); errors.Is(gone, fsm.ErrUnknownTopic) {
			return gone
		}
	}
	return err
}

// pinnedGone is ErrUnknownTopic when rt's topic name no longer names rt's topic here (deleted,
// perhaps created again); nil when it still does. Asked once this node applied every committed
// entry (after a linearizable read), it is the cluster's answer.
func (s *service) pinnedGone(rt readTarget) error {
	if f, _, err := s.sm.Partition(rt.topic, rt.partition); err != nil || f != rt.part {
		return fmt.Errorf("%w: %q is no longer the topic with ID %s: deleted since, perhaps created again", fsm.ErrUnknownTopic, rt.topic, rt.id)
	}
	return nil
}

// pinnedGoneOnLeader is pinnedGone asked of the leader at addr (DescribeTopic): ErrUnknownTopic
// when its topic of that name has another ID, or it has none; nil when it is rt's topic; the
// call's error when the leader could not tell.
func (s *service) pinnedGoneOnLeader(ctx context.Context, addr string, rt readTarget) error {
	id, err := s.forward.topicID(ctx, addr, rt.topic)
	switch {
	case err == nil && id == rt.id.String():
		return nil
	case err == nil || transport.CodeOf(err) == transport.NotFound:
		return fmt.Errorf("%w: %q is no longer the topic with ID %s on the leader (its ID there: %q): deleted since, perhaps created again", fsm.ErrUnknownTopic, rt.topic, rt.id, id)
	default:
		return err
	}
}

func unknownTarget(err error) bool {
	return errors.Is(err, fsm.ErrUnknownTopic) || errors.Is(err, fsm.ErrUnknownPartition)
}

// unconfirmedUnknown is the answer to a read of a topic or partition this node does not know
// and could not catch up with the leader to confirm unknown (cut off from it, an election):
// its creation may be committed and not applied here, so errLagging (Unavailable: another
// replica, or a later try, can tell), never NotFound, which ends a reader's stream, and an SDK
// read, of a topic that exists. err (the lookup's) is kept as text only: wrapped, it would
// make the answer NotFound.
func unconfirmedUnknown(err error) error {
	return fmt.Errorf("%w: %v, and this node could not catch up with the leader to tell whether the cluster knows it", errLagging, err)
}

// caughtUp waits, up to an election, until this node has applied every entry the cluster had
// committed when it was called: on the leader, LinearizableRead proves that; a follower asks
// the leader for its applied index after a linearizable read (ReadIndex, as commitPoint does)
// and waits to apply as far. A follower's own commit index is not enough: it learns the
// leader's only with the next entries or the commit timeout. It reports whether it got there,
// giving up once the caller's deadline is near (untilNearDeadline), so that it hears the answer.
func (s *service) caughtUp(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, untilNearDeadline(ctx, s.leaderWait))
	defer cancel()
	target := uint64(0) // the leader's applied index, once learned
	for {
		if target > 0 {
			if s.node.Status().AppliedIndex >= target {
				return true
			}
		} else if err := s.node.LinearizableRead(ctx); err == nil {
			return true
		} else if nl, ok := errors.AsType[*consensus.NotLeaderError](err); ok && nl.Leader.ID != "" && s.forward != nil {
			if idx, ferr := s.forward.leaderAppliedIndex(ctx, nl.Leader.Address); ferr == nil {
				target = max(idx, 1)
				continue
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func appendRecord(r *logv1.Record) fsm.AppendRecord {
	a := fsm.AppendRecord{Value: r.GetValue(), Type: r.GetType(), Key: r.GetKey(), Timestamp: r.GetTimestampMs()}
	for _, h := range r.GetHeaders() {
		a.Headers = append(a.Headers, fsm.Header{Key: h.GetKey(), Value: h.GetValue()})
	}
	return a
}

// leaderCall runs a topic command on the leader: here when this node leads, otherwise
// forwarded to the leader's Topics service (nothing is proposed by a follower).
func leaderCall[Res any](ctx context.Context, s *service, local func() (*Res, error), remote func(context.Context, transport.TopicsClient) (*Res, error)) (*Res, error) {
	if s.sm == nil {
		return nil, toWire(errors.New("server: this server has no topics"))
	}
	return onLeader(ctx, s, true, func() (*Res, error) {
		if !s.node.IsLeader() {
			// A follower's catalogue may lag the leader's: its checks (unknown topic, topic
			// exists) decide nothing.
			leader, _ := s.node.Leader()
			return nil, &consensus.NotLeaderError{Leader: leader}
		}
		res, err := local()
		if (unknownTarget(err) || errors.Is(err, fsm.ErrTopicExists)) && s.caughtUp(ctx) {
			// A leader just elected may not have applied every committed entry yet (a
			// topic created or deleted under the last leader): its checks decide once it has.
			res, err = local()
		}
		return res, err
	}, remote)
}

// onLeader runs local, a call that only the leader answers; while this node does not lead, it
// runs remote on the leader's service client C (from the forwarder's pool) with ctx as the
// leader must see it, ended once another leader is known (forwardContext), and a leader that answers NotProposed or no leader known
// is waited for, up to leaderWait. For a write, a forwarding failure is mapped as a forwarded
// produce's (forwardErr): a leader that could not be reached is NotProposed (and waited for),
// one that may have taken the request and did not answer is OutcomeUnknown, so that no client
// resends a write that may have happened.
func onLeader[C, Res any](ctx context.Context, s *service, write bool, local func() (*Res, error), remote func(context.Context, C) (*Res, error)) (*Res, error) {
	var waitUntil time.Time
	for {
		res, err := local()
		if err == nil {
			return res, nil
		}
		nl, isNL := errors.AsType[*consensus.NotLeaderError](err)
		if isNL && nl.Leader.ID != "" && s.forward != nil {
			c, release, ferr := serviceClient[C](s.forward, nl.Leader.Address)
			if ferr == nil {
				fctx, done := s.forwardContext(ctx, nl.Leader.ID, write)
				res, ferr = remote(fctx, c)
				ferr = done(ferr)
				release()
				if ferr != nil && write {
					ferr = forwardErr(nl.Leader.Address, ferr)
				}
				if ferr == nil || !transport.IsNotProposed(ferr) {
					return res, ferr
				}
			}
			err = ferr
		} else if !isNL && !errors.Is(err, consensus.ErrNoLeader) {
			return nil, toWire(err)
		}
		if waitUntil.IsZero() {
			waitUntil = time.Now().Add(s.leaderWait)
		}
		if !s.pause(ctx, waitUntil) {
			return nil, toWire(err)
		}
	}
}

func wireTopic(t fsm.Topic) *logv1.Topic {
	return &logv1.Topic{Name: t.Name, Id: t.ID.String(), Partitions: t.Partitions, Config: &logv1.TopicConfig{
		RetentionBytes: t.Config.RetentionBytes, RetentionMs: t.Config.RetentionMs,
		MaxRecordBytes: uint32(t.Config.MaxRecordBytes), TimestampType: t.Config.TimestampType}}
}

func (s *service) CreateTopic(ctx context.Context, req *logv1.CreateTopicRequest) (*logv1.CreateTopicResponse, error) {
	if err := s.authorizeTopic(ctx, req.GetName(), authz.ActionAdmin); err != nil {
		return nil, err
	}
	parts := max(req.GetPartitions(), 1)
	c := req.GetConfig()
	cfg := fsm.TopicConfig{RetentionBytes: c.GetRetentionBytes(), RetentionMs: c.GetRetentionMs(), MaxRecordBytes: int(c.GetMaxRecordBytes()), TimestampType: c.GetTimestampType()}
	return leaderCall(ctx, s, func() (*logv1.CreateTopicResponse, error) {
		if parts <= fsm.MaxPartitionsPerTopic { // more: refused by CreateTopic
			if err := openFilesRoom(parts); err != nil {
				return nil, err
			}
		}
		t, err := s.sm.CreateTopic(ctx, s.node, req.GetName(), parts, cfg)
		if err != nil {
			return nil, err
		}
		return &logv1.CreateTopicResponse{Topic: wireTopic(t)}, nil
	}, func(ctx context.Context, c transport.TopicsClient) (*logv1.CreateTopicResponse, error) {
		return c.CreateTopic(ctx, req)
	})
}

func (s *service) DeleteTopic(ctx context.Context, req *logv1.DeleteTopicRequest) (*logv1.DeleteTopicResponse, error) {
	if err := s.authorizeTopic(ctx, req.GetName(), authz.ActionAdmin); err != nil {
		return nil, err
	}
	return leaderCall(ctx, s, func() (*logv1.DeleteTopicResponse, error) {
		if _, err := s.sm.DeleteTopic(ctx, s.node, req.GetName()); err != nil {
			return nil, err
		}
		return &logv1.DeleteTopicResponse{}, nil
	}, func(ctx context.Context, c transport.TopicsClient) (*logv1.DeleteTopicResponse, error) {
		return c.DeleteTopic(ctx, req)
	})
}

func (s *service) AlterTopicConfig(ctx context.Context, req *logv1.AlterTopicConfigRequest) (*logv1.AlterTopicConfigResponse, error) {
	if err := s.authorizeTopic(ctx, req.GetName(), authz.ActionAdmin); err != nil {
		return nil, err
	}
	var patch fsm.TopicConfigPatch
	patch.RetentionBytes = req.RetentionBytes
	patch.RetentionMs = req.RetentionMs
	if req.MaxRecordBytes != nil {
		v := int(req.GetMaxRecordBytes())
		patch.MaxRecordBytes = &v
	}
	patch.TimestampType = req.TimestampType
	return leaderCall(ctx, s, func() (*logv1.AlterTopicConfigResponse, error) {
		t, err := s.sm.Topic(req.GetName())
		if err != nil {
			return nil, err
		}
		// The settings are checked before the partitions are added: a request refused for
		// its settings must change nothing.
		if err := patch.Validate(t.Config); err != nil {
			return nil, err
		}
		if req.Partitions != nil && req.GetPartitions() != t.Partitions {
			if n := req.GetPartitions(); n > t.Partitions && n <= fsm.MaxPartitionsPerTopic {
				if err := openFilesRoom(n - t.Partitions); err != nil {
					return nil, err
				}
			}
			if t, err = s.sm.CreatePartitions(ctx, s.node, req.GetName(), req.GetPartitions()); err != nil {
				return nil, err
			}
		}
		if patch != (fsm.TopicConfigPatch{}) {
			if t, err = s.sm.AlterTopic(ctx, s.node, req.GetName(), patch); err != nil {
				return nil, err
			}
		}
		return &logv1.AlterTopicConfigResponse{Topic: wireTopic(t)}, nil
	}, func(ctx context.Context, c transport.TopicsClient) (*logv1.AlterTopicConfigResponse, error) {
		return c.AlterTopicConfig(ctx, req)
	})
}

func (s *service) InitProducer(ctx context.Context, req *logv1.InitProducerRequest) (*logv1.InitProducerResponse, error) {
	return leaderCall(ctx, s, func() (*logv1.InitProducerResponse, error) {
		return s.initProducer(ctx, req.GetProducerId())
	}, func(ctx context.Context, c transport.TopicsClient) (*logv1.InitProducerResponse, error) {
		return c.InitProducer(ctx, req)
	})
}

// ListTopics answers from this server's applied metadata, with the topics the caller may
// describe (consume, produce to or administer: describeActions).
func (s *service) ListTopics(ctx context.Context, _ *logv1.ListTopicsRequest) (*logv1.ListTopicsResponse, error) {
	topics := []fsm.Topic{{Name: fsm.DefaultTopic, Partitions: 1}}
	if s.sm != nil {
		topics = s.sm.Topics()
	}
	res := &logv1.ListTopicsResponse{}
	for _, t := range topics {
		if s.authorizeDescribe(ctx, t.Name) != nil {
			continue
		}
		res.Topics = append(res.Topics, wireTopic(t))
	}
	return res, nil
}

// DescribeTopic answers from this server's applied state, for a topic the caller may consume,
// produce to or administer (describeActions; a producer learns the topic's partitions and ID so).
// On the leader that is the cluster's state: it first applies every committed entry
// (leaderCaughtUp). A follower answers from what it has applied (a topic it does not know yet,
// once caught up: knownTopic), unless the request has require_leader: then it refuses as it
// refuses a write, NotLeader naming the leader (the SDK asks it there), since what it has
// applied may name a topic the cluster deleted and created again, whose ID a Producer would
// pin.
func (s *service) DescribeTopic(ctx context.Context, req *logv1.DescribeTopicRequest) (*logv1.DescribeTopicResponse, error) {
	if err := s.authorizeDescribe(ctx, req.GetName()); err != nil {
		return nil, err
	}
	if s.sm == nil {
		return nil, toWire(fmt.Errorf("%w: %q", fsm.ErrUnknownTopic, req.GetName()))
	}
	if err := s.leaderCaughtUp(ctx, req.GetRequireLeader()); err != nil {
		return nil, toWire(err)
	}
	t, err := s.knownTopic(ctx, req.GetName())
	if err != nil {
		return nil, toWire(err)
	}
	res := &logv1.DescribeTopicResponse{Topic: wireTopic(t)}
	for p := range t.Partitions {
		f, _, err := s.sm.Partition(t.Name, p)
		if err != nil {
			return nil, toWire(err)
		}
		lowest, next := f.Bounds()
		res.Partitions = append(res.Partitions, &logv1.PartitionInfo{Partition: p, LowestOffset: lowest, NextOffset: next})
	}
	return res, nil
}

// leaderCaughtUp, on the leader, applies every entry committed when it was called
// (LinearizableRead) before a DescribeTopic answers: a leader just elected may not have applied
// a deletion and re-creation of the topic yet, and would name the deleted topic's ID, which an
// SDK Producer (it describes topics on the leader) pins, and then has every batch refused
// NotFound: records to a topic that exists fail for the Producer's life. When it cannot confirm
// (leadership lost, no quorum) within the wait a read has for a leader, errLagging
// (Unavailable: the SDK retries, on the leader it learns); with leaderOnly (require_leader),
// leadership lost to a known leader is that *consensus.NotLeaderError (NotLeader: the caller
// asks the leader it names). A follower does nothing: nil; with leaderOnly it refuses, a
// *consensus.NotLeaderError naming the leader it knows (if any). Leadership is checked once,
// and confirmed by the linearizable read: a leader deposed after a first check never answers
// from what it has applied.
func (s *service) leaderCaughtUp(ctx context.Context, leaderOnly bool) error {
	if !s.node.IsLeader() {
		if leaderOnly {
			leader, _ := s.node.Leader()
			return &consensus.NotLeaderError{Leader: leader}
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, untilNearDeadline(ctx, s.leaderWait))
	defer cancel()
	if err := s.node.LinearizableRead(ctx); err != nil {
		if nl, ok := errors.AsType[*consensus.NotLeaderError](err); ok && leaderOnly && nl.Leader.ID != "" {
			return nl
		}
		// err as text only: a NotLeaderError wrapped would redirect a read a follower may answer.
		return fmt.Errorf("%w: this leader could not confirm it applied every committed entry: %v", errLagging, err)
	}
	return nil
}
