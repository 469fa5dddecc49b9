package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// Record is one entry of a partition's log.
//
// On produce, Value, Key, Headers and Timestamp are sent (Offset and Term are
// ignored); Topic and Partition name the log where the calls that take a
// Record say so. On consume, every field is filled in.
type Record struct {
	// Topic is the record's topic; "" means DefaultTopic.
	Topic string
	// Partition is the record's partition within Topic.
	Partition uint32
	// Offset is the record's position in its partition: dense, starting
	// at 0.
	Offset uint64
	// Key is the record's key; nil means none (Kafka's null key), which
	// differs from an empty key. A Producer's partitioner maps keys to
	// partitions (KeyPartition).
	Key []byte
	// Value is the payload. The client does not keep it: callers own it.
	Value []byte
	// Headers are the record's headers, in order; keys may repeat.
	Headers []Header
	// Timestamp is the record's time, kept to the millisecond. On produce
	// the zero Time sends none, and the leader stamps its append time
	// (topics with timestamp type "append" always use the leader's); a
	// time before 1970 is refused (InvalidArgument; ErrInvalidRecord from a
	// Producer's Send). On
	// consume it is the zero Time for records stored before timestamps.
	Timestamp time.Time
	// Term is the Raft term in which the record was appended.
	Term uint64
}

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// DefaultTopic is the topic of every call that names none: partition 0 of it
// is the cluster's original single log, the one Produce, Consume, Stream and
// Bounds use and the one seed clients see.
const DefaultTopic = "default"

// Server is one member of the cluster as the answering server knows it.
type Server struct {
	// ID is the server's Raft id (its node name).
	ID string
	// Addr is the API address clients dial.
	Addr string
	// RaftAddr is the address Raft peers dial (often equal to Addr).
	RaftAddr string
	// IsLeader is true for the leader.
	IsLeader bool
	// Voter is true for a voting member; false for a non-voter (read
	// replica) or a server being added.
	Voter bool
	// AppliedIndex is the last Raft index the server applied.
	AppliedIndex uint64
	// Lag is how many Raft entries the server is behind the leader.
	Lag uint64
	// Healthy is false when the answering server considers it failed.
	Healthy bool
	// LastContact is the time since the answering server last heard from
	// it; zero when unknown.
	LastContact time.Duration
	// Insecure is true when the server announces that it listens on a
	// non-loopback address without TLS (API or Raft) or without gossip
	// encryption: anyone who can reach it can read and change the log.
	Insecure bool
}

// Bounds are the offsets a server holds.
type Bounds struct {
	// Lowest is the first offset still stored.
	Lowest uint64
	// Next is the offset the next record will get on this server: one past
	// the last record it applied. Lowest == Next means empty.
	Next uint64
	// Committed is one past the last record the server knows committed.
	Committed uint64
}

// boundsRequest is the GetBounds request of a Bounds call: under ReadLeader it
// sets require_leader, so that a server the client still takes for the leader
// and that no longer is names the leader (a redirect, which the client
// follows and remembers) instead of answering its own bounds. Without it such
// a server, which forwards the client's writes to the new leader, left the
// client unaware of the change until its next refresh (WithRefreshInterval)
// and answered a next offset below the records it had just acknowledged.
func (c *Client) boundsRequest(topic string, partition uint32) *logv1.GetBoundsRequest {
	return &logv1.GetBoundsRequest{Linearizable: c.opts.linearizable, RequireLeader: c.opts.readPolicy == ReadLeader,
		Topic: topic, Partition: partition}
}

func serversFromProto(ps []*logv1.Server) []Server {
	out := make([]Server, 0, len(ps))
	for _, p := range ps {
		s := Server{
			ID:           p.GetId(),
			Addr:         p.GetRpcAddr(),
			RaftAddr:     p.GetRaftAddr(),
			IsLeader:     p.GetIsLeader(),
			Voter:        p.GetSuffrage() == logv1.Suffrage_SUFFRAGE_VOTER,
			AppliedIndex: p.GetAppliedIndex(),
			Lag:          p.GetLag(),
			Healthy:      p.GetHealthy(),
			Insecure:     p.GetInsecure(),
		}
		if lc := p.GetLastContact(); lc != nil {
			s.LastContact = lc.AsDuration()
		}
		out = append(out, s)
	}
	return out
}

// recordFromProto converts a record read from topic/partition.
func recordFromProto(r *logv1.Record, topic string, partition uint32) Record {
	rec := Record{
		Topic:     topic,
		Partition: partition,
		Offset:    r.GetOffset(),
		Key:       r.Key,
		Value:     r.GetValue(),
		Term:      r.GetTerm(),
	}
	if r.Key != nil && len(r.Key) == 0 {
		rec.Key = []byte{} // set but empty: not the null key
	}
	if hs := r.GetHeaders(); len(hs) > 0 {
		rec.Headers = make([]Header, len(hs))
		for i, h := range hs {
			rec.Headers[i] = Header{Key: h.GetKey(), Value: h.GetValue()}
		}
	}
	if ms := r.GetTimestampMs(); ms != 0 {
		rec.Timestamp = time.UnixMilli(ms)
	}
	return rec
}

// recordToProto converts the produced fields of rec (value, key, headers,
// timestamp).
func recordToProto(rec *Record) *logv1.Record {
	p := &logv1.Record{}
	fillProto(p, rec)
	return p
}

// fillProto sets the produced fields of the zero record p from rec, as
// recordToProto does, for a p allocated with others (a Producer's batch).
func fillProto(p *logv1.Record, rec *Record) {
	p.Value, p.Key = rec.Value, rec.Key
	if rec.Key != nil && len(rec.Key) == 0 {
		p.Key = []byte{}
	}
	if len(rec.Headers) > 0 {
		p.Headers = make([]*logv1.Header, len(rec.Headers))
		for i, h := range rec.Headers {
			p.Headers[i] = &logv1.Header{Key: h.Key, Value: h.Value}
		}
	}
	if !rec.Timestamp.IsZero() {
		p.TimestampMs = rec.Timestamp.UnixMilli()
	}
}

// wireTopic is the topic name sent for topic: "" stays "" (the default
// topic, understood by every server, seed ones included).
func wireTopic(topic string) string {
	if topic == DefaultTopic {
		return ""
	}
	return topic
}

// topicName is the name a record of topic reports.
func topicName(topic string) string {
	if topic == "" {
		return DefaultTopic
	}
	return topic
}

// Produce appends value to the log on the leader and returns its offset once
// the record is committed on a majority. A write the cluster refused before
// proposing it (not the leader, no leader) is retried on the leader; one
// whose outcome is unknown is not retried and fails with an error wrapping
// ErrOutcomeUnknown. Other errors wrap ErrUnavailable (retry budget spent),
// ErrClosed, or the server's *transport.Error (e.g. InvalidArgument,
// PermissionDenied, ResourceExhausted for a record too large). Safe for
// concurrent use.
func (c *Client) Produce(ctx context.Context, value []byte) (uint64, error) {
	var off uint64
	err := c.onLeader(ctx, true, func(ctx context.Context, tc transport.Client) error {
		resp, err := tc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: value}})
		if err != nil {
			return err
		}
		off = resp.GetOffset()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("produce: %w", err)
	}
	return off, nil
}

// ProduceBatch appends values atomically, as one Raft entry: they get
// consecutive offsets starting at the returned one, or none is appended. It
// retries and fails as Produce does. An empty batch returns (0, nil) without
// a request. The batch must fit the servers' message size bound (4 MiB by
// default); a Producer splits large volumes into batches for you.
func (c *Client) ProduceBatch(ctx context.Context, values ...[]byte) (uint64, error) {
	if len(values) == 0 {
		return 0, nil
	}
	recs := make([]*logv1.Record, len(values))
	for i, v := range values {
		recs[i] = &logv1.Record{Value: v}
	}
	req := &logv1.ProduceBatchRequest{Records: recs}
	var base uint64
	err := c.onLeader(ctx, true, func(ctx context.Context, tc transport.Client) error {
		resp, err := tc.ProduceBatch(ctx, req)
		if err != nil {
			return err
		}
		if resp.GetCount() != uint64(len(values)) {
			return fmt.Errorf("%w: server appended %d records of a batch of %d", ErrOutcomeUnknown, resp.GetCount(), len(values))
		}
		base = resp.GetBaseOffset()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("produce batch of %d: %w", len(values), err)
	}
	return base, nil
}

// Consume reads the record at offset from a server chosen by the read
// policy, retrying on other servers when one fails (one that refuses with
// DataLoss, its log diverged or its copy corrupt, is left for another at once;
// the DataLoss is returned once every server refused). An offset not yet
// written is waited for (a long poll, max_wait_ms) until shortly before ctx's
// deadline (or the request timeout), at most the server's --max-consume-wait,
// then the call fails with an error wrapping ErrOutOfRange; without a
// deadline it fails at once. An offset below the log's start fails with
// ErrOutOfRange at once. A server never calls an acknowledged offset out of
// range (a lagging follower catches up first). Safe for concurrent use.
func (c *Client) Consume(ctx context.Context, offset uint64) (Record, error) {
	var rec Record
	err := c.onReplica(ctx, c.opts.linearizable, func(ctx context.Context, tc transport.Client) error {
		req := &logv1.ConsumeRequest{Offset: offset, Linearizable: c.opts.linearizable, MaxWaitMs: longPollMillis(ctx)}
		resp, err := tc.Consume(ctx, req)
		if err != nil {
			return err
		}
		rec = recordFromProto(resp.GetRecord(), DefaultTopic, 0)
		return nil
	})
	if err != nil {
		return Record{}, fmt.Errorf("consume offset %d: %w", offset, err)
	}
	return rec, nil
}

// longPollMillis is the wait a Consume attempt asks for: what ctx's deadline
// allows, less a margin so that the server's OutOfRange arrives before the
// deadline; 0 (answer at once) without a deadline.
func longPollMillis(ctx context.Context) uint32 {
	d, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	left := time.Until(d)
	w := left - min(100*time.Millisecond, left/2)
	if w < time.Millisecond {
		return 0
	}
	return uint32(min(w.Milliseconds(), math.MaxUint32))
}

// Bounds returns the offsets held by a server chosen by the read policy (the
// leader by default, whose Committed is the cluster's: under ReadLeader only
// the leader answers, so that the bounds hold every record this client was
// acknowledged, even when the server it last knew as the leader has handed
// leadership over and forwards its writes).
func (c *Client) Bounds(ctx context.Context) (Bounds, error) {
	var b Bounds
	req := c.boundsRequest("", 0)
	err := c.onReplica(ctx, c.opts.linearizable, func(ctx context.Context, tc transport.Client) error {
		resp, err := tc.GetBounds(ctx, req)
		if err != nil {
			return err
		}
		b = Bounds{Lowest: resp.GetLowestOffset(), Next: resp.GetNextOffset(), Committed: resp.GetCommittedOffset()}
		return nil
	})
	if err != nil {
		return Bounds{}, fmt.Errorf("bounds: %w", err)
	}
	return b, nil
}

// Servers asks the cluster for its server list now (the leader first), updates
// the client's view with it and returns it. It fails with an error wrapping
// ErrUnavailable when no server answers, or when none knows a leader and the
// retry budget runs out (the list is then still returned); with the server's
// PermissionDenied or Unauthenticated, at once, when it refuses the caller.
func (c *Client) Servers(ctx context.Context) ([]Server, error) {
	ctx, cancel := c.merged(ctx)
	defer cancel()
	var err error
	for attempt := 0; ; attempt++ {
		err = c.refreshServers(ctx)
		if err == nil || errors.Is(err, ErrClosed) || refusedCaller(err) || ctx.Err() != nil || attempt >= c.opts.maxRetries {
			break
		}
		if c.backoff(ctx, attempt) != nil {
			break
		}
	}
	if c.isClosed() {
		return nil, ErrClosed
	}
	_, servers := c.snapshot()
	if err != nil {
		return slices.Clone(servers), fmt.Errorf("servers: %w", err)
	}
	return slices.Clone(servers), nil
}

// ServersAt asks the server at addr (an API address, such as a Server's
// Addr) for the servers as it knows them: one request, not retried. Only the
// leader knows which followers answer it (Healthy, LastContact, Lag); another
// server reports each one healthy. Errors: ErrClosed; ErrUnavailable when
// addr cannot be reached; *ClusterMismatchError when addr serves another
// cluster; the server's *transport.Error.
func (c *Client) ServersAt(ctx context.Context, addr string) ([]Server, error) {
	ctx, cancel := c.merged(ctx)
	defer cancel()
	tc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	resp, err := tc.GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil {
		return nil, fmt.Errorf("servers at %s: %w", addr, err)
	}
	if err := c.checkCluster(addr, resp.GetClusterId()); err != nil {
		return nil, err
	}
	return serversFromProto(resp.GetServers()), nil
}

// Leader returns the API address of the leader as the client last learned
// it, without a request; "" when unknown.
func (c *Client) Leader() string {
	leader, _ := c.snapshot()
	return leader
}

// RemoveServer removes the server with id from the cluster's Raft
// configuration, on the leader. A refusal before any change (not the
// leader, no leader) is retried; errors wrap ErrOutcomeUnknown when the
// change may have happened, or carry the server's *transport.Error.
func (c *Client) RemoveServer(ctx context.Context, id string) error {
	err := c.onLeader(ctx, true, func(ctx context.Context, tc transport.Client) error {
		_, err := tc.RemoveServer(ctx, &logv1.RemoveServerRequest{Id: id})
		return err
	})
	if err != nil {
		return fmt.Errorf("remove server %q: %w", id, err)
	}
	return nil
}

// TransferLeadership asks the leader to hand leadership to the voter with id
// (empty: the leader picks one) and returns the new leader's id. The old
// leader answers once it has stepped down, often before it has heard from
// its successor; the client then asks the servers, for up to 5 s (the
// request timeout, when shorter; less if ctx ends first), until one names a
// leader other than the old one (the server that answered the transfer). The
// id is "" (with a nil error: leadership did move) when none was named in
// time. The client forgets the old leader, so its next write finds the new
// one. Errors as RemoveServer's.
func (c *Client) TransferLeadership(ctx context.Context, id string) (string, error) {
	// from is the server that answered, not the client's leader once it did:
	// a refresh meanwhile (another call's, the background one) may have
	// learnt the new leader, or that none leads yet.
	var leader, from string
	err := c.onLeaderAt(ctx, true, &from, func(ctx context.Context, tc transport.Client) error {
		resp, err := tc.TransferLeadership(ctx, &logv1.TransferLeadershipRequest{Id: id})
		if err != nil {
			return err
		}
		leader = resp.GetLeaderId()
		return nil
	})
	if err != nil {
		if id == "" {
			return "", fmt.Errorf("transfer leadership: %w", err)
		}
		return "", fmt.Errorf("transfer leadership to %q: %w", id, err)
	}
	c.forgetLeader(from)
	if leader == "" {
		leader = c.newLeaderAfter(ctx, from)
	}
	return leader, nil
}

// newLeaderWait bounds how long TransferLeadership asks the servers for the
// new leader when the old one did not name it (the request timeout, when
// shorter).
const newLeaderWait = 5 * time.Second

// newLeaderPoll is how often TransferLeadership asks for the new leader.
const newLeaderPoll = 50 * time.Millisecond

// newLeaderAfter asks the servers, for up to newLeaderWait (the request
// timeout, when shorter) or until ctx ends, for a leader whose API address is not old, and returns its id; ""
// if none was named in time.
func (c *Client) newLeaderAfter(ctx context.Context, old string) string {
	ctx, cancel := c.merged(ctx)
	defer cancel()
	wait := newLeaderWait
	if c.opts.requestTimeout > 0 {
		wait = min(wait, c.opts.requestTimeout)
	}
	ctx, cancel = context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		// A follower that has not heard from the new leader yet still names
		// the old one: forget it each round, so the next one asks the others.
		if c.refreshServers(ctx) == nil {
			leader, servers := c.snapshot()
			if leader != "" && leader != old {
				for _, s := range servers {
					if s.Addr == leader {
						return s.ID
					}
				}
			}
			c.forgetLeader(old)
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(newLeaderPoll):
		}
	}
}
