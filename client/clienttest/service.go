package clienttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// write appends recs to topic/partition, checking ref's sequence numbers when
// it is set, and returns the base offset and whether the write was a retry
// of one of the producer's last batches (then nothing was stored).
func (l *Log) write(topicName string, partition uint32, topicID string, recs []*logv1.Record, ref *logv1.ProducerRef) (uint64, bool, error) {
	if l.RefuseProduce != nil {
		if err := l.RefuseProduce(); err != nil {
			return 0, false, err
		}
	}
	if len(recs) == 0 {
		return 0, false, transport.Errorf(transport.InvalidArgument, "clienttest: empty batch")
	}
	if l.NoTopicIDs {
		topicID = "" // a field this server does not know
	}
	if topicID != "" && !topicIDShaped(topicID) {
		return 0, false, transport.Errorf(transport.InvalidArgument, "clienttest: topic_id %q is not a topic ID", topicID)
	}
	l.mu.Lock()
	t, err := l.topicLocked(topicName)
	if err != nil {
		l.mu.Unlock()
		return 0, false, err
	}
	if topicID != "" && !strings.EqualFold(t.id, topicID) {
		// As the server: a produce naming its topic's ID never lands in another topic of
		// that name (ProduceBatchRequest.topic_id).
		l.mu.Unlock()
		return 0, false, transport.Errorf(transport.NotFound, "clienttest: topic %q has ID %s, not %s: deleted since, perhaps created again", t.name, t.id, topicID)
	}
	p, err := l.partitionLocked(topicName, partition)
	if err != nil {
		l.mu.Unlock()
		return 0, false, err
	}
	key := partKey{topic: t.name, partition: partition}
	var prod *producer
	if ref != nil {
		prod = l.producers[ref.GetId()]
		orig, dup, err := checkSequence(prod, ref, key, len(recs))
		if err != nil {
			l.mu.Unlock()
			return 0, false, err
		}
		if dup {
			l.mu.Unlock()
			return orig, true, l.loseAnswer(t.name, partition)
		}
	}
	base := l.appendLocked(t, p, recs)
	if prod != nil {
		w := append(prod.parts[key], batchMeta{first: ref.GetBaseSequence(), last: lastSeq(ref.GetBaseSequence(), len(recs)), offset: base})
		if len(w) > ProducerWindow {
			w = w[len(w)-ProducerWindow:]
		}
		prod.parts[key] = w
	}
	n := len(p.recs)
	hook := l.OnAppend
	l.mu.Unlock()
	if hook != nil && t.name == DefaultTopic && partition == 0 {
		hook(n)
	}
	return base, false, l.loseAnswer(t.name, partition)
}

func (l *Log) loseAnswer(topicName string, partition uint32) error {
	if l.LoseAnswer != nil && l.LoseAnswer(topicName, partition) {
		return transport.Errorf(transport.Unavailable, "clienttest: answer lost after the write was committed").
			WithOutcomeUnknown("clienttest: answer lost")
	}
	return nil
}

// checkSequence judges an idempotent batch of count records (Kafka's KIP-98
// rules, as the server's state machine applies them): a retry of one of the
// last ProducerWindow batches returns its offset and dup; the next sequence
// passes; anything else fails.
func checkSequence(prod *producer, ref *logv1.ProducerRef, key partKey, count int) (uint64, bool, error) {
	switch {
	case prod == nil:
		return 0, false, producerError(transport.ProducerUnknown, "clienttest: unknown producer ID %d", ref.GetId())
	case ref.GetEpoch() != prod.epoch:
		return 0, false, producerError(transport.ProducerFenced, "clienttest: producer %d epoch %d fenced by epoch %d", ref.GetId(), ref.GetEpoch(), prod.epoch)
	case ref.GetBaseSequence() < 0:
		return 0, false, producerError(transport.ProducerOutOfOrder, "clienttest: negative base sequence %d", ref.GetBaseSequence())
	}
	w := prod.parts[key]
	if len(w) == 0 {
		if ref.GetBaseSequence() != 0 {
			return 0, false, producerError(transport.ProducerOutOfOrder, "clienttest: producer %d %s/%d: first sequence %d, want 0", ref.GetId(), key.topic, key.partition, ref.GetBaseSequence())
		}
		return 0, false, nil
	}
	last := lastSeq(ref.GetBaseSequence(), count)
	for _, b := range w {
		if b.first == ref.GetBaseSequence() && b.last == last {
			return b.offset, true, nil
		}
	}
	if want := nextSeq(w[len(w)-1].last); ref.GetBaseSequence() != want {
		return 0, false, producerError(transport.ProducerOutOfOrder, "clienttest: producer %d %s/%d: sequence %d, want %d", ref.GetId(), key.topic, key.partition, ref.GetBaseSequence(), want)
	}
	return 0, false, nil
}

func lastSeq(base int32, count int) int32 {
	return int32((int64(base) + int64(count) - 1) % (math.MaxInt32 + 1))
}

func nextSeq(s int32) int32 {
	if s == math.MaxInt32 {
		return 0
	}
	return s + 1
}

// Produce appends one record.
func (l *Log) Produce(_ context.Context, req *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	l.count("Produce")
	off, dup, err := l.write(req.GetTopic(), req.GetPartition(), req.GetTopicId(), []*logv1.Record{req.GetRecord()}, req.GetProducer())
	if err != nil {
		return nil, err
	}
	return &logv1.ProduceResponse{Offset: off, Duplicate: dup}, nil
}

// ProduceBatch appends the records of req atomically.
func (l *Log) ProduceBatch(_ context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	l.count("ProduceBatch")
	base, dup, err := l.write(req.GetTopic(), req.GetPartition(), req.GetTopicId(), req.GetRecords(), req.GetProducer())
	if err != nil {
		return nil, err
	}
	return &logv1.ProduceBatchResponse{BaseOffset: base, Count: uint64(len(req.GetRecords())), Duplicate: dup}, nil
}

// ProduceStream appends every record received and answers each with its
// offset, in order.
func (l *Log) ProduceStream(ctx context.Context, stream transport.BidiStream[logv1.ProduceRequest, logv1.ProduceResponse]) error {
	l.count("ProduceStream")
	if l.StallProduceStream != nil && l.StallProduceStream() {
		if _, err := stream.Receive(); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	}
	for {
		req, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		off, dup, err := l.write(req.GetTopic(), req.GetPartition(), req.GetTopicId(), []*logv1.Record{req.GetRecord()}, req.GetProducer())
		if err != nil {
			return err
		}
		if err := stream.Send(&logv1.ProduceResponse{Offset: off, Duplicate: dup}); err != nil {
			return err
		}
	}
}

// checkTopicID answers NotFound, as the real server does, when a read names
// the ID its topic must have (topic_id) and the topic of that name has
// another (deleted since, perhaps created again); InvalidArgument when the
// ID is not UUID-shaped.
func (l *Log) checkTopicID(req *logv1.ConsumeRequest) error {
	id := req.GetTopicId()
	if id == "" {
		return nil
	}
	if !topicIDShaped(id) {
		return transport.Errorf(transport.InvalidArgument, "clienttest: topic_id %q is not a topic ID", id)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t, err := l.topicLocked(req.GetTopic())
	if err != nil {
		return err
	}
	if !strings.EqualFold(t.id, id) { // the server compares the 16 bytes it parses
		return transport.Errorf(transport.NotFound, "clienttest: topic %q has ID %s, not %s: deleted since, perhaps created again", t.name, t.id, id)
	}
	return nil
}

// topicIDShaped reports whether id is a UUID as the server parses one: 36
// characters, hex digits (either case) and dashes at 8, 13, 18 and 23.
func topicIDShaped(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := range len(id) {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// record returns the record at offset of topic/partition (nil when not
// written yet) and a channel closed on the partition's next append.
func (l *Log) record(topicName string, partition uint32, offset uint64) (*logv1.Record, <-chan struct{}, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.partitionLocked(topicName, partition)
	if err != nil {
		return nil, nil, err
	}
	if offset >= uint64(len(p.recs)) {
		return nil, p.changed, nil
	}
	r := cloneRecord(p.recs[offset])
	if (topicName == "" || topicName == DefaultTopic) && partition == 0 && l.CorruptRead != nil && l.CorruptRead(offset) && len(r.Value) > 0 {
		r.Value[len(r.Value)/2] ^= 0x01
	}
	return r, p.changed, nil
}

// Consume returns the record at req.Offset; an offset not yet written is
// waited for up to max_wait_ms, then answered OutOfRange.
func (l *Log) Consume(ctx context.Context, req *logv1.ConsumeRequest) (*logv1.ConsumeResponse, error) {
	l.count("Consume")
	if l.OnConsume != nil {
		l.OnConsume(req.GetOffset())
	}
	if err := l.checkTopicID(req); err != nil {
		return nil, err
	}
	var deadline <-chan time.Time
	if ms := req.GetMaxWaitMs(); ms > 0 {
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		deadline = t.C
	}
	for {
		rec, changed, err := l.record(req.GetTopic(), req.GetPartition(), req.GetOffset())
		if err != nil {
			return nil, err
		}
		if rec != nil {
			return &logv1.ConsumeResponse{Record: rec}, nil
		}
		if deadline == nil {
			return nil, transport.Errorf(transport.OutOfRange, "clienttest: offset %d not yet written", req.GetOffset())
		}
		select {
		case <-changed:
		case <-deadline:
			deadline = nil
		case <-ctx.Done():
			return nil, transport.Errorf(transport.OutOfRange, "clienttest: offset %d not yet written", req.GetOffset())
		}
	}
}

// ConsumeStream sends every record from req.Offset on, up to max_batch per
// message, then tails the partition until ctx ends.
func (l *Log) ConsumeStream(ctx context.Context, req *logv1.ConsumeRequest, stream transport.ServerStream[logv1.ConsumeResponse]) error {
	l.count("ConsumeStream")
	if l.StallConsumeStream != nil && l.StallConsumeStream() {
		<-ctx.Done()
		return nil
	}
	if err := l.checkTopicID(req); err != nil {
		return err
	}
	maxBatch := max(int(req.GetMaxBatch()), 1)
	for off := req.GetOffset(); ; {
		rec, changed, err := l.record(req.GetTopic(), req.GetPartition(), off)
		if err != nil {
			return err
		}
		if rec == nil {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		msg := &logv1.ConsumeResponse{Record: rec}
		if maxBatch > 1 {
			msg = &logv1.ConsumeResponse{Records: []*logv1.Record{rec}}
			for len(msg.Records) < maxBatch {
				r, _, err := l.record(req.GetTopic(), req.GetPartition(), off+uint64(len(msg.Records)))
				if err != nil || r == nil {
					break
				}
				msg.Records = append(msg.Records, r)
			}
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
		off += uint64(max(len(msg.Records), 1))
	}
}

// GetServers describes the single node, the leader.
func (l *Log) GetServers(context.Context, *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	l.count("GetServers")
	l.mu.Lock()
	addr, id := l.addr, l.clusterID
	l.mu.Unlock()
	return &logv1.GetServersResponse{ClusterId: id, Servers: []*logv1.Server{{
		Id: "clienttest", RpcAddr: addr, RaftAddr: addr, IsLeader: true, Healthy: true,
		Suffrage: logv1.Suffrage_SUFFRAGE_VOTER,
	}}}, nil
}

// GetBounds reports the partition's [0, len) as stored and committed.
func (l *Log) GetBounds(_ context.Context, req *logv1.GetBoundsRequest) (*logv1.GetBoundsResponse, error) {
	l.count("GetBounds")
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.partitionLocked(req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, err
	}
	n := uint64(len(p.recs))
	return &logv1.GetBoundsResponse{LowestOffset: 0, NextOffset: n, CommittedOffset: n}, nil
}

// Join is not supported by the single fake node.
func (l *Log) Join(context.Context, *logv1.JoinRequest) (*logv1.JoinResponse, error) {
	return nil, transport.Errorf(transport.Unimplemented, "clienttest: one node only")
}

// RemoveServer is not supported by the single fake node.
func (l *Log) RemoveServer(context.Context, *logv1.RemoveServerRequest) (*logv1.RemoveServerResponse, error) {
	return nil, transport.Errorf(transport.Unimplemented, "clienttest: one node only")
}

// TransferLeadership is not supported by the single fake node.
func (l *Log) TransferLeadership(context.Context, *logv1.TransferLeadershipRequest) (*logv1.TransferLeadershipResponse, error) {
	return nil, transport.Errorf(transport.Unimplemented, "clienttest: one node only")
}

// maxPartitions bounds one topic's partitions, as the server does.
const maxPartitions = 4096

// maxRecordBytes bounds a topic's max record bytes, as the server does.
const maxRecordBytes = 4 << 20

func validTopicName(name string) error {
	switch {
	case name == "", len(name) > 249, name == ".", name == "..":
		return transport.Errorf(transport.InvalidArgument, "clienttest: invalid topic name %q", name)
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return transport.Errorf(transport.InvalidArgument, "clienttest: topic name %q: character %q not in [a-zA-Z0-9._-]", name, c)
		}
	}
	return nil
}

func validConfig(c *logv1.TopicConfig) error {
	switch c.GetTimestampType() {
	case "", "create", "append":
	default:
		return transport.Errorf(transport.InvalidArgument, "clienttest: timestamp type %q (want create or append)", c.GetTimestampType())
	}
	if c.GetRetentionBytes() < -1 || c.GetRetentionMs() < -1 {
		return transport.Errorf(transport.InvalidArgument, "clienttest: retention below -1")
	}
	if c.GetMaxRecordBytes() > maxRecordBytes {
		return transport.Errorf(transport.InvalidArgument, "clienttest: max record bytes %d outside [0, %d]", c.GetMaxRecordBytes(), maxRecordBytes)
	}
	return nil
}

func (t *topic) proto() *logv1.Topic {
	return &logv1.Topic{Name: t.name, Id: t.id, Partitions: uint32(len(t.parts)), Config: &logv1.TopicConfig{
		RetentionBytes: t.cfg.GetRetentionBytes(), RetentionMs: t.cfg.GetRetentionMs(),
		MaxRecordBytes: t.cfg.GetMaxRecordBytes(), TimestampType: t.cfg.GetTimestampType(),
	}}
}

// CreateTopic creates a topic; names that differ from an existing one only
// by '.' and '_' are refused as existing, as Kafka refuses them.
func (l *Log) CreateTopic(_ context.Context, req *logv1.CreateTopicRequest) (*logv1.CreateTopicResponse, error) {
	l.count("CreateTopic")
	if err := validTopicName(req.GetName()); err != nil {
		return nil, err
	}
	if err := validConfig(req.GetConfig()); err != nil {
		return nil, err
	}
	n := max(req.GetPartitions(), 1)
	if n > maxPartitions {
		return nil, transport.Errorf(transport.InvalidArgument, "clienttest: %d partitions, limit %d", n, maxPartitions)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	collide := func(s string) string { return strings.ReplaceAll(s, ".", "_") }
	for name := range l.topics {
		if collide(name) == collide(req.GetName()) {
			return nil, transport.Errorf(transport.AlreadyExists, "clienttest: topic %q exists (or collides with %q)", req.GetName(), name)
		}
	}
	t := &topic{name: req.GetName(), id: newID(), cfg: &logv1.TopicConfig{}, parts: make([]*partition, n)}
	if c := req.GetConfig(); c != nil {
		t.cfg = &logv1.TopicConfig{RetentionBytes: c.GetRetentionBytes(), RetentionMs: c.GetRetentionMs(), MaxRecordBytes: c.GetMaxRecordBytes(), TimestampType: c.GetTimestampType()}
	}
	for i := range t.parts {
		t.parts[i] = newPartition()
	}
	l.topics[t.name] = t
	return &logv1.CreateTopicResponse{Topic: t.proto()}, nil
}

// DeleteTopic deletes a topic and its records; the default topic (also named
// by "", as in every request) cannot be deleted.
func (l *Log) DeleteTopic(_ context.Context, req *logv1.DeleteTopicRequest) (*logv1.DeleteTopicResponse, error) {
	l.count("DeleteTopic")
	l.mu.Lock()
	defer l.mu.Unlock()
	if req.GetName() == "" || req.GetName() == DefaultTopic {
		return nil, transport.Errorf(transport.InvalidArgument, "clienttest: the default topic cannot be deleted")
	}
	t, err := l.topicLocked(req.GetName())
	if err != nil {
		return nil, err
	}
	delete(l.topics, t.name)
	for _, p := range t.parts {
		close(p.changed) // wakes tails, which then find the topic gone
		p.changed = make(chan struct{})
	}
	for _, prod := range l.producers {
		for k := range prod.parts {
			if k.topic == t.name {
				delete(prod.parts, k)
			}
		}
	}
	return &logv1.DeleteTopicResponse{}, nil
}

// ListTopics lists every topic.
func (l *Log) ListTopics(context.Context, *logv1.ListTopicsRequest) (*logv1.ListTopicsResponse, error) {
	l.count("ListTopics")
	l.mu.Lock()
	defer l.mu.Unlock()
	res := &logv1.ListTopicsResponse{}
	for _, t := range l.topics {
		res.Topics = append(res.Topics, t.proto())
	}
	// Sorted by name, as the server lists them.
	for i := 1; i < len(res.Topics); i++ {
		for j := i; j > 0 && res.Topics[j].GetName() < res.Topics[j-1].GetName(); j-- {
			res.Topics[j], res.Topics[j-1] = res.Topics[j-1], res.Topics[j]
		}
	}
	return res, nil
}

// DescribeTopic reports a topic and its partitions' bounds ("": the default
// topic, as the server answers).
func (l *Log) DescribeTopic(_ context.Context, req *logv1.DescribeTopicRequest) (*logv1.DescribeTopicResponse, error) {
	l.count("DescribeTopic")
	if l.OnDescribeTopic != nil {
		l.OnDescribeTopic(req.GetName())
	}
	if l.RefuseDescribeTopic != nil {
		if err := l.RefuseDescribeTopic(req.GetName()); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t, err := l.topicLocked(req.GetName())
	if err != nil {
		return nil, err
	}
	res := &logv1.DescribeTopicResponse{Topic: t.proto()}
	if l.NoTopicIDs {
		res.Topic.Id = ""
	}
	for i, p := range t.parts {
		res.Partitions = append(res.Partitions, &logv1.PartitionInfo{Partition: uint32(i), LowestOffset: 0, NextOffset: uint64(len(p.recs))})
	}
	return res, nil
}

// AlterTopicConfig changes a topic's settings or raises its partition count.
func (l *Log) AlterTopicConfig(_ context.Context, req *logv1.AlterTopicConfigRequest) (*logv1.AlterTopicConfigResponse, error) {
	l.count("AlterTopicConfig")
	l.mu.Lock()
	defer l.mu.Unlock()
	t, err := l.topicLocked(req.GetName())
	if err != nil {
		return nil, err
	}
	cfg := &logv1.TopicConfig{RetentionBytes: t.cfg.GetRetentionBytes(), RetentionMs: t.cfg.GetRetentionMs(), MaxRecordBytes: t.cfg.GetMaxRecordBytes(), TimestampType: t.cfg.GetTimestampType()}
	if req.RetentionBytes != nil {
		cfg.RetentionBytes = req.GetRetentionBytes()
	}
	if req.RetentionMs != nil {
		cfg.RetentionMs = req.GetRetentionMs()
	}
	if req.MaxRecordBytes != nil {
		cfg.MaxRecordBytes = req.GetMaxRecordBytes()
	}
	if req.TimestampType != nil {
		cfg.TimestampType = req.GetTimestampType()
	}
	if err := validConfig(cfg); err != nil {
		return nil, err
	}
	if req.Partitions != nil {
		n := req.GetPartitions()
		switch {
		case n < uint32(len(t.parts)):
			return nil, transport.Errorf(transport.InvalidArgument, "clienttest: topic %q has %d partitions: a count is never lowered", t.name, len(t.parts))
		case n > maxPartitions:
			return nil, transport.Errorf(transport.InvalidArgument, "clienttest: %d partitions, limit %d", n, maxPartitions)
		case t.name == DefaultTopic && n != 1:
			return nil, transport.Errorf(transport.InvalidArgument, "clienttest: the default topic keeps one partition")
		}
		for uint32(len(t.parts)) < n {
			t.parts = append(t.parts, newPartition())
		}
	}
	t.cfg = cfg
	return &logv1.AlterTopicConfigResponse{Topic: t.proto()}, nil
}

// InitProducer hands out a new producer ID (epoch 0), or bumps the epoch of
// an existing one, fencing its older instances. An ID it does not know (never
// handed out, or forgotten) gets a new ID, as from the cluster's state machine.
func (l *Log) InitProducer(_ context.Context, req *logv1.InitProducerRequest) (*logv1.InitProducerResponse, error) {
	l.count("InitProducer")
	if l.RefuseInitProducer != nil {
		if err := l.RefuseInitProducer(); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	id := req.GetProducerId()
	prod := l.producers[id]
	if prod == nil {
		l.nextPID++
		id = l.nextPID
		l.producers[id] = &producer{parts: make(map[partKey][]batchMeta)}
		return &logv1.InitProducerResponse{ProducerId: id}, nil
	}
	prod.epoch++
	prod.parts = make(map[partKey][]batchMeta) // a new epoch starts its sequences at 0
	return &logv1.InitProducerResponse{ProducerId: id, Epoch: prod.epoch}, nil
}

// producerError is the server's answer to a refused idempotent write:
// FailedPrecondition with the ProducerRejected detail (nothing was stored).
func producerError(reason transport.ProducerRejection, format string, args ...any) error {
	return transport.ProducerRejectedError(reason, fmt.Errorf(format, args...))
}
