package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/consensus"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/server/internal/chaosbugs"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// service implements the API (log.v1.Log and log.v1.Cluster) on top of the consensus node and
// the state machine. Every error it returns goes through toWire.
type service struct {
	node    consensus.Consensus
	acl     authz.Authorizer // decides per topic (authorizeTopic); nil: everyone may do everything
	fsm     *fsm.FSM         // the default topic's partition 0
	sm      *fsm.Machine     // every topic
	forward *forwarder       // nil: followers answer FailedPrecondition + NotLeader instead
	cfg     *Config
	stop    <-chan struct{}               // closed when the server begins to stop; ends streams
	removed func(id string, removed bool) // told of servers an operator removes
	div     *divergence                   // the divergence alarm (divergence.go)
	// leaderWait is how long a write that finds no leader (an election, a leadership
	// transfer) waits for one before it is refused; 0: refused at once.
	leaderWait time.Duration
	// admit checks that a server proves its identity before it enters Raft's configuration.
	admit func(ctx context.Context, id, raftAddr string) error
	// insecure says which servers announce themselves insecure, by id (nil: none known).
	insecure func() map[string]bool
	// groups is the consumer groups' coordinator (groups.go); nil: no Groups service.
	groups *coordinator
	// leaderLoss tracks since when this node has known no leader (leaderloss.go); a
	// ConsumeStream ends once that lasted leaderWait. nil: streams wait on.
	leaderLoss *leaderLoss
	// combine groups single-record produces on the leader (combine.go); nil: each proposed alone.
	combine *combiner
	// claimMu orders InitProducer's claims against produces under IDs nobody owns
	// (producer_owner.go).
	claimMu sync.RWMutex
	// ownersTerm is the last term in which this leader caught up before judging a producer
	// without an owner (producer_owner.go).
	ownersTerm atomic.Uint64
	// policyGen counts the reloads of the ACL policy (Server.Reload): a stream authorized
	// under an earlier policy is decided again before it carries another record.
	policyGen atomic.Uint64
	// stallLooks shares the stall checks' looks at a partition's commit point between its
	// streams (streamstall.go).
	stallLooks stallLooks
	// commitChecked, when set (tests only), runs when CommitOffsets has checked a member's
	// commit, before it is proposed.
	commitChecked func()
	// resetPlanned, when set (tests only), runs when ResetOffsets with execute has planned
	// its offsets, before it stores them.
	resetPlanned func()
}

var (
	_ transport.LogService     = (*service)(nil)
	_ transport.ClusterService = (*service)(nil)
)

// proposeTo appends records as one atomic batch, to the default partition or a topic's,
// optionally idempotent: every produce path (Produce, ProduceBatch, ProduceStream) comes here.
// It proposes on this node (proposeLocal); a follower forwards the whole request (topic,
// partition, producer) to the leader when forwarding is on; without a leader it waits, up to
// an election, for one.
func (s *service) proposeTo(ctx context.Context, to produceTarget, records []*logv1.Record) (fsm.AppendResult, error) {
	if len(records) == 0 {
		return fsm.AppendResult{}, fmt.Errorf("%w: no records", errInvalid)
	}
	if to.topicID != "" {
		id, err := fsm.ParseTopicID(to.topicID)
		if err != nil {
			// Never a topic's: NotFound would tell the producer that its topic was deleted.
			return fsm.AppendResult{}, fmt.Errorf("%w: topic_id %q is not a topic ID (a UUID, as Topic.id gives it)", errInvalid, to.topicID)
		}
		to.pin = &id
	}
	if e := to.producer.GetEpoch(); e > math.MaxUint16 {
		// Epochs are 16-bit (InitProducer hands them out): a larger one was never handed out,
		// and must not pass for another once truncated.
		return fsm.AppendResult{}, fmt.Errorf("%w: producer epoch %d is above %d, the largest there is", errInvalid, e, math.MaxUint16)
	}
	batch := make([]fsm.AppendRecord, len(records))
	for i, r := range records {
		if r == nil {
			if len(records) == 1 {
				return fsm.AppendResult{}, fmt.Errorf("%w: the request has no record", errInvalid)
			}
			return fsm.AppendResult{}, fmt.Errorf("%w: record %d is missing", errInvalid, i)
		}
		if err := checkTimestamp(r, i, len(records)); err != nil {
			return fsm.AppendResult{}, err
		}
		batch[i] = appendRecord(r)
	}
	if chaosbugs.On(chaosbugs.AckBeforeCommit) && s.node.IsLeader() && plainDefault(to, batch) {
		cmd, err := s.fsm.EncodeAppend(batch...)
		if err != nil {
			return fsm.AppendResult{}, err
		}
		first, err := s.plantedAckBeforeCommit(ctx, cmd)
		return fsm.AppendResult{First: first, Count: uint64(len(batch))}, err
	}
	var waitUntil time.Time // set at the first refusal for want of a leader
	for {
		// Encoded, stamped and checked against the limits on each try: only a leader's
		// limits refuse a batch (see fsm.FSM.Propose).
		var (
			res fsm.AppendResult
			err error
		)
		if s.combine != nil && len(batch) == 1 && to.producer.GetId() == 0 && to.topicID == "" && s.node.IsLeader() {
			res, err = s.combine.append(ctx, to, batch[0])
		} else {
			res, err = s.proposeLocal(ctx, to, batch)
		}
		if err == nil {
			return res, nil
		}
		nl, isNL := errors.AsType[*consensus.NotLeaderError](err)
		if isNL && nl.Leader.ID != "" {
			if s.forward == nil {
				return fsm.AppendResult{}, err
			}
			fctx, done := s.forwardContext(ctx, nl.Leader.ID, true)
			fres, ferr := s.forward.produceBatch(fctx, nl.Leader.Address, &logv1.ProduceBatchRequest{
				Records: records, Topic: to.topic, Partition: to.partition, Producer: to.producer, TopicId: to.topicID})
			ferr = done(ferr)
			if ferr == nil {
				return fsm.AppendResult{First: fres.GetBaseOffset(), Count: uint64(len(records)), Duplicate: fres.GetDuplicate()}, nil
			}
			if !transport.IsNotProposed(ferr) {
				return fsm.AppendResult{}, ferr
			}
			// The leader could not take it (gone, stepping down) and nothing was proposed:
			// wait for the next leader as below.
			err = ferr
		} else if !isNL && !errors.Is(err, consensus.ErrNoLeader) {
			return fsm.AppendResult{}, err
		}
		// No leader known, or the leader is handing leadership over: nothing was proposed.
		// Wait, up to the time an election takes, for a leader to propose to or forward to.
		if waitUntil.IsZero() {
			waitUntil = time.Now().Add(s.leaderWait)
			// A refusal is answered as it stands once the caller's deadline is near, as the
			// leader's combiner does: waiting and trying again until the deadline, the answer
			// that nothing was proposed would come when the caller could only take the outcome
			// as unknown. A forwarded write the leader took back at its own near deadline
			// comes back then.
			if near, ok := nearDeadline(ctx); ok && near.Before(waitUntil) {
				waitUntil = near
			}
		}
		if !s.pause(ctx, waitUntil) {
			return fsm.AppendResult{}, err
		}
	}
}

// checkTimestamp refuses a record (at index i of a request of n) whose timestamp_ms is
// negative, as Kafka refuses timestamps before the epoch (its -1 means "none", which is 0 here):
// it was stored as sent, and read back as a time before 1970 that retention and time lookups
// (ListOffsets by timestamp) would then use.
func checkTimestamp(r *logv1.Record, i, n int) error {
	ts := r.GetTimestampMs()
	if ts >= 0 {
		return nil
	}
	if n == 1 {
		return fmt.Errorf("%w: timestamp_ms %d is negative: want Unix milliseconds, or 0 for none (the server's time)", errInvalid, ts)
	}
	return fmt.Errorf("%w: record %d: timestamp_ms %d is negative: want Unix milliseconds, or 0 for none (the server's time)", errInvalid, i, ts)
}

// plainDefault reports whether batch goes to the default partition with nothing version 3 of
// the command format adds (keys, headers, timestamps, a producer): the seed's records.
func plainDefault(to produceTarget, batch []fsm.AppendRecord) bool {
	if !to.isDefault() {
		return false
	}
	for _, r := range batch {
		if r.Key != nil || len(r.Headers) > 0 || r.Timestamp != 0 {
			return false
		}
	}
	return true
}

// proposeLocal proposes batch through this node's consensus: the seed's records for the
// default partition through its FSM (fsm.FSM.Propose, the node's limits), unless the default
// topic has a max_record_bytes of its own; everything else through the Machine, which
// resolves the topic and applies its limits. A leader that does not know the topic or
// partition yet (just elected, or restarted, and not caught up) catches up once and tries
// again; a follower that does not know it answers *consensus.NotLeaderError. Errors: as
// fsm.FSM.Propose's and fsm.Machine.ProposeAppend's.
func (s *service) proposeLocal(ctx context.Context, to produceTarget, batch []fsm.AppendRecord) (fsm.AppendResult, error) {
	release, err := s.checkProducerOwner(ctx, to.producer.GetId())
	if err != nil {
		return fsm.AppendResult{}, err
	}
	defer release()
	if plainDefault(to, batch) && !s.defaultTopicLimited() {
		res, err := s.fsm.Propose(ctx, s.node, batch...)
		if chaosbugs.On(chaosbugs.StaleLeaderRead) && err == nil {
			plantedLeaseGranted()
		}
		return res, err
	}
	if s.sm == nil {
		return fsm.AppendResult{}, fmt.Errorf("%w: %q (this server has no topics)", fsm.ErrUnknownTopic, to.topic)
	}
	res, err := s.sm.ProposeAppendTo(ctx, s.node, to.topic, to.partition, to.pin, to.ref(), batch...)
	if unknownTarget(err) && !s.node.IsLeader() {
		// A follower may not have applied the topic's (or partition's) creation yet: the
		// leader's catalogue decides, so the write goes there (forwarded, or the client
		// redirected), as one above this node's limits does (fsm.FSM.Propose).
		leader, _ := s.node.Leader()
		return fsm.AppendResult{}, &consensus.NotLeaderError{Leader: leader}
	}
	if unknownTarget(err) && s.caughtUp(ctx) {
		// A topic of another ID than the one the request names (to.topicID) may be one whose
		// delete and re-creation this leader has not applied yet: the same.
		res, err = s.sm.ProposeAppendTo(ctx, s.node, to.topic, to.partition, to.pin, to.ref(), batch...)
	}
	return res, err
}

// defaultTopicLimited reports whether the default topic has a record size limit of its own
// (AlterTopicConfig), which only the Machine's path applies.
func (s *service) defaultTopicLimited() bool {
	if s.sm == nil {
		return false
	}
	t, err := s.sm.Topic(fsm.DefaultTopic)
	return err == nil && t.Config.MaxRecordBytes > 0
}

// combineFits reports whether a group of single-record produces makes one command within the
// state machine's limits.
func (s *service) combineFits(records, bytes int) bool {
	lim := s.fsm.Limits()
	return records <= lim.MaxBatchRecords && fsm.EncodedAppendOverhead()+bytes <= lim.MaxCommandBytes
}

// leaderPoll is how often a request waiting for a leader looks again.
const leaderPoll = 20 * time.Millisecond

// pause waits leaderPoll (less when until comes sooner) and reports whether the caller may
// look again: false once until has passed, ctx is done or the server is stopping.
func (s *service) pause(ctx context.Context, until time.Time) bool {
	return s.pauseFor(ctx, until, leaderPoll)
}

// pauseFor is pause for at most poll.
func (s *service) pauseFor(ctx context.Context, until time.Time, poll time.Duration) bool {
	d := time.Until(until)
	if d <= 0 {
		return false
	}
	t := time.NewTimer(min(d, poll))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.stop:
		return false
	}
}

// forwardedContext makes a forwarded request name the client it came from (or, forwarded
// again, the client it first came from), so the leader authorizes that client.
func forwardedContext(ctx context.Context) context.Context {
	p, ok := transport.PeerFromContext(ctx)
	if !ok {
		return ctx
	}
	subject := p.Subject
	if p.ForwardedFor != "" && p.Server {
		subject = p.ForwardedFor
	}
	if subject == "" {
		return ctx
	}
	return transport.ContextWithForwardedFor(ctx, subject)
}

// leaderSucceededGrace is how long a call forwarded to the leader may still wait for its answer
// once this node knows another leader: a leader that handed over answers what it was sent at
// once (stored, or refused), while one that is paused or cut off answers nothing, and its
// connection, alive in the kernel, fails only when a keepalive ping goes unanswered (30 s and
// more). A variable for tests.
var leaderSucceededGrace = time.Second

// errLeaderSucceeded ends a call forwarded to a leader that another succeeded (forwardContext).
var errLeaderSucceeded = errors.New("server: the leader was succeeded before it answered")

// forwardContext returns the context of a call forwarded to the leader named id: ctx as the
// leader must see it (forwardedContext), which also ends leaderSucceededGrace after this node
// learns of another leader. done, called with the call's error once it returns, releases the
// context and says what such an ending means: for a write, that its outcome is unknown (the
// leader may have stored it before it was succeeded), for a read, that nothing was answered
// (NotProposed: asked again of the new leader).
func (s *service) forwardContext(ctx context.Context, id string, write bool) (context.Context, func(error) error) {
	fctx, cancel := context.WithCancelCause(forwardedContext(ctx))
	var reign context.Context
	if s.leaderLoss != nil {
		reign = s.leaderLoss.reignOf(id)
	}
	stop := func() bool { return true }
	if reign != nil {
		grace := leaderSucceededGrace
		stop = context.AfterFunc(reign, func() {
			time.AfterFunc(grace, func() { cancel(errLeaderSucceeded) })
		})
	}
	return fctx, func(err error) error {
		stop()
		ended := context.Cause(fctx) == errLeaderSucceeded && ctx.Err() == nil
		cancel(nil)
		if err == nil || !ended {
			return err
		}
		if write {
			return transport.Errorf(transport.Unavailable, "%s: forwarded to the leader %s, which did not answer within %v of this node learning of another leader",
				ErrOutcomeUnknownMessage, id, leaderSucceededGrace).WithOutcomeUnknown("the leader was succeeded before it answered")
		}
		return transport.Errorf(transport.Unavailable, "forwarded to the leader %s, which did not answer within %v of this node learning of another leader",
			id, leaderSucceededGrace).WithNotProposed("the leader was succeeded before it answered")
	}
}

func (s *service) Produce(ctx context.Context, req *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	if err := s.authorizeTopic(ctx, req.GetTopic(), authz.ActionProduce); err != nil {
		return nil, err
	}
	res, err := s.proposeTo(ctx, produceTarget{topic: req.GetTopic(), partition: req.GetPartition(), producer: req.GetProducer(), topicID: req.GetTopicId()}, []*logv1.Record{req.GetRecord()})
	if err != nil {
		return nil, s.writeErr(ctx, err)
	}
	return &logv1.ProduceResponse{Offset: res.First, Duplicate: res.Duplicate}, nil
}

func (s *service) ProduceBatch(ctx context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	if err := s.authorizeTopic(ctx, req.GetTopic(), authz.ActionProduce); err != nil {
		return nil, err
	}
	res, err := s.proposeTo(ctx, produceTarget{topic: req.GetTopic(), partition: req.GetPartition(), producer: req.GetProducer(), topicID: req.GetTopicId()}, req.GetRecords())
	if err != nil {
		return nil, s.writeErr(ctx, err)
	}
	return &logv1.ProduceBatchResponse{BaseOffset: res.First, Count: uint64(len(req.GetRecords())), Duplicate: res.Duplicate}, nil
}

// maxStreamTopicsAllowed bounds the topics one ProduceStream remembers as allowed; beyond
// them, each run of requests for another topic is authorized again.
const maxStreamTopicsAllowed = 64

// maxStreamBatch bounds how many ProduceStream requests are taken from the queue at once (they
// become one or more commands, see commandGroups).
const maxStreamBatch = 512

// streamRecordOverhead is what a queued ProduceStream request costs beyond its encoded bytes,
// counted against the stream's in-flight budget; streamHeaderOverhead is what each of its
// record's headers costs besides (a struct and a pointer, for 2 bytes on the wire).
const (
	streamRecordOverhead = 64
	streamHeaderOverhead = 96
)

// streamCost is what req counts against its stream's in-flight budget: what it holds once
// decoded. Its encoded size, not only its record's key, headers and value (what the
// record-size limit counts): fields this server does not know are kept too, and headers'
// framing; each header's struct; and an overhead.
func streamCost(req *logv1.ProduceRequest) int {
	return proto.Size(req) + len(req.GetRecord().GetHeaders())*streamHeaderOverhead + streamRecordOverhead
}

// recordBytes is what the record-size limits count of r: its key, its headers' keys and
// values, and its value (fsm.RecordSize of the record it becomes).
func recordBytes(r *logv1.Record) int {
	n := len(r.GetKey()) + len(r.GetValue())
	for _, h := range r.GetHeaders() {
		n += len(h.GetKey()) + len(h.GetValue())
	}
	return n
}

// maxTracedStreamProposals is how many proposals of one ProduceStream its trace follows (on a
// follower: forwards to the leader, two spans each).
const maxTracedStreamProposals = 100

// untracedContext is ctx with its span context no longer sampled: calls made under it (a
// forward) propagate the trace as not sampled, so that neither this node nor the leader
// records their spans. ctx itself when it carries no sampled span.
func untracedContext(ctx context.Context) context.Context {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsSampled() {
		return ctx
	}
	return trace.ContextWithSpanContext(ctx, sc.WithTraceFlags(sc.TraceFlags()&^trace.FlagsSampled))
}

// ProduceStream pipelines: one goroutine receives requests while another proposes whatever
// has arrived meanwhile (in arrival order, so records keep the stream's order, split into
// commands that each fit the command limit) and answers each request with its offset, in
// order, the answers to one command flushed together. The requests received but not yet
// answered are bounded by --max-stream-inflight-bytes: when the budget is spent the receiver
// stops reading, and the transport's flow control makes the client wait.
func (s *service) ProduceStream(ctx context.Context, stream transport.BidiStream[logv1.ProduceRequest, logv1.ProduceResponse]) error {
	callCtx := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Proposals run under pctx: ctx, except that the server's stop ends it only
	// streamStopGrace later, so that a record proposed before the stop is answered (its entry
	// commits a moment later, or its failure says why) rather than left "outcome unknown".
	// What the stream has not proposed when the stop comes is refused as not proposed.
	pctx, pcancel := s.outlastStop(ctx, streamStopGrace)
	defer pcancel()
	// On a follower every proposal is a forward (a client span here, a server span on the
	// leader) in the stream's trace: a stream's first maxTracedStreamProposals are traced,
	// the rest go under untraced, so that a long stream does not grow one trace without end.
	untraced := untracedContext(pctx)
	traced := 0
	budget := newByteBudget(s.streamInflightBytes())
	q := newStreamQueue()
	go func() {
		for {
			req, err := stream.Receive()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				q.close(err)
				return
			}
			cost := min(streamCost(req), budget.size)
			if err := budget.acquire(ctx, cost); err != nil {
				q.close(nil)
				return
			}
			q.push(req, cost)
		}
	}()
	var (
		batch   []*logv1.ProduceRequest
		run     []*logv1.Record
		resps   []logv1.ProduceResponse
		ptrs    []*logv1.ProduceResponse
		allowed = map[string]bool{}  // topics this stream's caller may produce to, as decided
		gen     = s.policyGen.Load() // under the policy of this generation
	)
	for {
		var (
			cost    int
			recvErr error
			ok      bool
		)
		batch, cost, ok, recvErr = q.take(ctx, batch[:0], maxStreamBatch)
		if !ok {
			if s.stoppedStream(ctx) {
				// The server's stop ended the stream: what it had not answered was not
				// proposed, and the client may send it elsewhere.
				return toWire(errStopping)
			}
			if err := ctx.Err(); err != nil {
				// The caller's deadline passed (or it cancelled) while its side was open:
				// DeadlineExceeded (Canceled), never OK, which tells a raw client that the
				// server ended the call of its own accord with everything answered, while
				// records it sent may never have been read. Also when the cancel reached the
				// body first (the transport's read error, below): the context says what
				// happened, the read's error did not (Unknown, over Connect).
				return toWire(err)
			}
			if recvErr != nil {
				// The transport's own error (a message too large or malformed): returned as
				// is, the transport sends its code (toWire would make it Internal).
				return recvErr
			}
			return nil // the client's end of stream, every record answered
		}
		// Consecutive requests for the same partition (without a producer: an idempotent
		// request is a batch of its own, with its own sequence number) are coalesced.
		for rest := batch; len(rest) > 0; {
			if s.stoppedStream(ctx) {
				// Everything before rest was answered; rest was not proposed.
				return toWire(errStopping)
			}
			if rest[0].GetRecord() == nil {
				// Refused alone, once the records before it are stored and answered (it ends
				// a run below), as Produce refuses it.
				return toWire(fmt.Errorf("%w: a request has no record", errInvalid))
			}
			if err := checkTimestamp(rest[0].GetRecord(), 0, 1); err != nil {
				// Refused alone too: the valid records before it are stored and answered.
				return toWire(err)
			}
			to := produceTarget{topic: rest[0].GetTopic(), partition: rest[0].GetPartition(), producer: rest[0].GetProducer(), topicID: rest[0].GetTopicId()}
			n := 1
			for to.producer.GetId() == 0 && n < len(rest) && rest[n].GetTopic() == to.topic &&
				rest[n].GetPartition() == to.partition && rest[n].GetProducer().GetId() == 0 &&
				rest[n].GetTopicId() == to.topicID && rest[n].GetRecord() != nil && rest[n].GetRecord().GetTimestampMs() >= 0 {
				n++
			}
			run = run[:0]
			for _, r := range rest[:n] {
				run = append(run, r.GetRecord())
			}
			rest = rest[n:]
			if g := s.policyGen.Load(); g != gen { // a reloaded policy decides again
				clear(allowed)
				gen = g
			}
			if !allowed[to.topic] {
				// A topic the caller may not produce to ends the stream (PermissionDenied).
				if err := s.authorizeTopic(ctx, to.topic, authz.ActionProduce); err != nil {
					return err
				}
				if len(allowed) < maxStreamTopicsAllowed {
					allowed[to.topic] = true
				}
			}
			for groups := s.commandGroups(run, s.recordLimit(to.topic, to.partition)); len(groups) > 0; {
				group := groups[0]
				groups = groups[1:]
				if s.stoppedStream(ctx) {
					return toWire(errStopping)
				}
				prctx := untraced
				if traced < maxTracedStreamProposals {
					prctx = pctx
					traced++
				}
				res, err := s.proposeTo(prctx, to, group)
				if err != nil && len(group) > 1 && refusedAsAWhole(err) {
					// The leader refused the group as a whole, before proposing it: its
					// limits are below this node's (a follower during a rolling change of
					// --max-record-bytes or --max-batch-records groups by its own). Propose
					// the group's records one by one, as the leader's combiner does, so
					// that the valid records before the one refused are stored and
					// answered, it alone is refused, and nothing after it is stored.
					singles := make([][]*logv1.Record, 0, len(group)+len(groups))
					for _, r := range group {
						singles = append(singles, []*logv1.Record{r})
					}
					groups = append(singles, groups...)
					continue
				}
				if err != nil {
					if (err == ctx.Err() || err == pctx.Err() || errors.Is(err, errWithdrawn)) && s.stoppedStream(ctx) {
						// The context's error itself (not one that wraps it, as an unknown
						// outcome may), or the combiner's taking the record back: the batch
						// was not proposed.
						err = errStopping
					}
					return s.writeErr(callCtx, err)
				}
				if cap(resps) < len(group) {
					resps = make([]logv1.ProduceResponse, len(group))
					ptrs = make([]*logv1.ProduceResponse, len(group))
					for i := range resps {
						ptrs[i] = &resps[i]
					}
				}
				for i := range group {
					resps[i] = logv1.ProduceResponse{Offset: res.First + uint64(i), Duplicate: res.Duplicate}
				}
				if err := transport.SendBatch(stream, ptrs[:len(group)]); err != nil {
					return sendFailed(callCtx, err)
				}
			}
		}
		clear(batch) // drop the requests: the next take reuses the slice
		clear(run)
		budget.release(cost)
	}
}

// writeErr is toWire for the error of a write (Produce, ProduceBatch, a ProduceStream's
// proposal) under the call's context ctx. A write whose caller cancelled after it was proposed
// (or whose connection closed) has an unknown outcome, which toWire answers Unavailable with an
// OutcomeUnknown detail. Nobody hears that answer: the caller reset the call (and a follower
// forwarding for it ends its own call to the leader so). But the request metrics counted each
// such cancel as the server's unavailability, for writes that mostly were stored. It is the
// caller's Canceled, with the same message and detail, as a write taken back before it was
// proposed is (errWithdrawn). Not when the server's stop ended the call (its caller still
// listens), nor at the caller's deadline: a timeout after proposing is Unavailable by the wire
// contract, and that answer may reach the caller before its own timer fires.
func (s *service) writeErr(ctx context.Context, err error) error {
	werr := toWire(err)
	e, ok := errors.AsType[*transport.Error](werr)
	if !ok || e.Code() != transport.Unavailable || !errors.Is(ctx.Err(), context.Canceled) || s.stoppedStream(ctx) {
		return werr
	}
	reason, unknown := e.OutcomeUnknown()
	if !unknown {
		return werr
	}
	return transport.Errorf(transport.Canceled, "%s", e.Message()).WithOutcomeUnknown(reason).WithCause(err)
}

// sendFailed is the status of a stream (ctx is the call's context, as the transport gave it)
// whose Send failed with err. A Send fails when the client reset the stream (it cancelled, or
// its deadline passed, or it stopped reading and then went away) or its connection broke, and
// the transport has then ended the call's context: the context's error, Canceled or
// DeadlineExceeded, is the call's status, as when the stream ends while it waits for a record.
// toWire of the transport's own error made it Internal, a server fault in the request metrics
// for every client that went away while the server was sending to it.
func sendFailed(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return toWire(cerr)
	}
	return toWire(err)
}

// refusedAsAWhole reports whether err refused a group of records as a whole before anything
// was proposed, so that its records may be proposed again one by one, each to get the answer it
// would have had alone: the group was empty, or over a limit on size or record count
// (fsm.ErrTooLarge here; ResourceExhausted from the leader, for a group this node forwarded;
// on the produce path nothing else is ResourceExhausted). A committed entry this node's log
// refused as too large is not one: it wraps fsm.ErrFailed (outcome unknown on the wire), and proposing
// its records again would store them twice.
func refusedAsAWhole(err error) bool {
	if errors.Is(err, fsm.ErrFailed) {
		return false
	}
	return errors.Is(err, fsm.ErrEmptyBatch) || transport.CodeOf(toWire(err)) == transport.ResourceExhausted
}

// streamStopGrace is how long a ProduceStream's proposals in flight when the server begins
// stopping are still waited for (a Raft commit takes milliseconds; well within the API's drain).
const streamStopGrace = 2 * time.Second

// outlastStop returns a context with ctx's values and deadline that ends when ctx ends (at ctx's
// deadline with DeadlineExceeded, as ctx), except when ctx ends because the server is stopping:
// then it ends grace later (or at ctx's deadline). Call the CancelFunc to release it.
func (s *service) outlastStop(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d, hasDeadline := ctx.Deadline()
	if hasDeadline {
		var dcancel context.CancelFunc
		pctx, dcancel = context.WithDeadline(pctx, d)
		inner := cancel
		cancel = func() { dcancel(); inner() }
	}
	stop := context.AfterFunc(ctx, func() {
		switch {
		case s.stoppedStream(ctx):
			time.AfterFunc(grace, cancel)
		case hasDeadline && errors.Is(ctx.Err(), context.DeadlineExceeded):
			// ctx's deadline passed: pctx's own, the same, ends it as it ended ctx. Canceling
			// here would often win that race and end pctx Canceled, which a proposal under
			// it returns (the stream's status then Canceled, not DeadlineExceeded).
		default:
			cancel()
		}
	})
	return pctx, func() { stop(); cancel() }
}

// stoppedStream reports whether a stream's ctx ended because the server is stopping.
func (s *service) stoppedStream(ctx context.Context) bool {
	if ctx.Err() == nil {
		return false
	}
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// streamQueue hands a ProduceStream's requests from its receiver to its proposer without a
// channel operation (and a wakeup) per record: the receiver appends under a lock and signals
// only when the proposer may be waiting.
type streamQueue struct {
	mu      sync.Mutex
	reqs    []*logv1.ProduceRequest
	cost    int
	done    bool  // the receiver stopped
	err     error // why, when not at the client's end of stream
	arrived chan struct{}
}

func newStreamQueue() *streamQueue {
	return &streamQueue{arrived: make(chan struct{}, 1)}
}

func (q *streamQueue) push(r *logv1.ProduceRequest, cost int) {
	q.mu.Lock()
	q.reqs = append(q.reqs, r)
	q.cost += cost
	first := len(q.reqs) == 1
	q.mu.Unlock()
	if first {
		q.signal()
	}
}

func (q *streamQueue) signal() {
	select {
	case q.arrived <- struct{}{}:
	default:
	}
}

// close records that the receiver stopped, with err (nil: the client's end of stream, or the
// stream's context ended).
func (q *streamQueue) close(err error) {
	q.mu.Lock()
	q.done, q.err = true, err
	q.mu.Unlock()
	q.signal()
}

// take appends to dst up to max queued records, waiting for one, and returns their cost. It
// returns ok false once the receiver stopped and nothing is queued (with the receiver's
// error, nil at the client's end of stream), or once ctx ended.
func (q *streamQueue) take(ctx context.Context, dst []*logv1.ProduceRequest, max int) (_ []*logv1.ProduceRequest, cost int, ok bool, err error) {
	for {
		q.mu.Lock()
		if n := len(q.reqs); n > 0 {
			k := min(n, max)
			dst = append(dst, q.reqs[:k]...)
			// Each record's cost is not kept: what is left pays the average, settled exactly
			// when the queue empties.
			if k == n {
				cost = q.cost
				clear(q.reqs)
				q.reqs, q.cost = q.reqs[:0], 0
			} else {
				cost = q.cost * k / n
				q.cost -= cost
				rest := copy(q.reqs, q.reqs[k:])
				clear(q.reqs[rest:])
				q.reqs = q.reqs[:rest]
			}
			q.mu.Unlock()
			return dst, cost, true, nil
		}
		done, rerr := q.done, q.err
		q.mu.Unlock()
		if done {
			return dst, 0, false, rerr
		}
		select {
		case <-q.arrived:
		case <-ctx.Done():
			return dst, 0, false, nil
		}
	}
}

// streamInflightBytes is a ProduceStream's in-flight budget: the configured one, but never less
// than one record's message, so that every valid record can pass.
func (s *service) streamInflightBytes() int {
	return max(s.cfg.MaxStreamInflightBytes, s.cfg.MaxRecordBytes+streamRecordOverhead)
}

// commandGroups splits records, in order, into runs that each make one command within the
// state machine's limits (bytes and records) and, forwarded by a follower, one ProduceBatch
// request within the request bound. A record too large on its own, or above recordLimit (the
// record bound of the partition's topic as this node knows it, see recordLimit), is a run of
// one, which the proposal then refuses: the stream's valid records before it are proposed
// without it, as they would be had they come in another read of the stream, and answered, and
// the refusal is the over-limit record's alone.
func (s *service) commandGroups(records []*logv1.Record, recordLimit int) [][]*logv1.Record {
	lim := s.fsm.Limits()
	// Sizes in the largest encoding (version 3: keys, headers, timestamps, a target and a
	// producer), so that no group becomes a command above the limit whatever its records hold.
	header := fsm.EncodedAppendOverhead()
	maxWire := s.cfg.maxMessageBytes()
	var groups [][]*logv1.Record
	start, cmd, wire := 0, header, 0
	alone := false // the run so far is one record above recordLimit
	for i, r := range records {
		a := appendRecord(r)
		rc := fsm.EncodedRecordSize(a)
		rw := protowire.SizeTag(1) + protowire.SizeBytes(proto.Size(r))
		over := recordLimit > 0 && fsm.RecordSize(a) > recordLimit
		if i > start && (alone || over || cmd+rc > lim.MaxCommandBytes || wire+rw > maxWire || i-start >= lim.MaxBatchRecords) {
			groups = append(groups, records[start:i])
			start, cmd, wire = i, header, 0
		}
		alone = over
		cmd += rc
		wire += rw
	}
	return append(groups, records[start:])
}

// recordLimit is the record bound of a partition's topic as this node knows it (the topic's
// --max-record-bytes, or the server's): it only decides how a ProduceStream groups its records
// (commandGroups); the leader's limits decide what is refused.
func (s *service) recordLimit(topic string, partition uint32) int {
	if s.sm != nil {
		if _, t, err := s.sm.Target(topic, partition); err == nil {
			return s.sm.TopicLimits(t).MaxRecordBytes
		}
	}
	return s.fsm.Limits().MaxRecordBytes
}

// byteBudget bounds the bytes one receiver may hold; acquire waits for release. One goroutine
// acquires, any releases.
type byteBudget struct {
	size  int
	mu    sync.Mutex
	free  int
	freed chan struct{} // signalled on release
}

func newByteBudget(size int) *byteBudget {
	return &byteBudget{size: size, free: size, freed: make(chan struct{}, 1)}
}

// acquire takes n bytes (n <= size), waiting until they are free or ctx ends.
func (b *byteBudget) acquire(ctx context.Context, n int) error {
	for {
		b.mu.Lock()
		if b.free >= n {
			b.free -= n
			b.mu.Unlock()
			return nil
		}
		b.mu.Unlock()
		select {
		case <-b.freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *byteBudget) release(n int) {
	b.mu.Lock()
	b.free += n
	b.mu.Unlock()
	select {
	case b.freed <- struct{}{}:
	default:
	}
}

// readGuard makes a read linearizable when asked: only the leader, after confirming its
// leadership, with every committed entry applied.
func (s *service) readGuard(ctx context.Context, linearizable bool) error {
	if !linearizable {
		return nil
	}
	if chaosbugs.On(chaosbugs.StaleLeaderRead) && plantedLeaseValid() {
		return nil
	}
	return s.node.LinearizableRead(ctx)
}

func (s *service) Consume(ctx context.Context, req *logv1.ConsumeRequest) (*logv1.ConsumeResponse, error) {
	if err := s.authorizeTopic(ctx, req.GetTopic(), authz.ActionConsume); err != nil {
		return nil, err
	}
	if err := s.div.readErr(); err != nil {
		return nil, err
	}
	if err := s.readGuard(ctx, req.GetLinearizable()); err != nil {
		return nil, toWire(err)
	}
	if chaosbugs.On(chaosbugs.FollowerUnappliedRead) && !s.node.IsLeader() && req.GetTopic() == "" && req.GetPartition() == 0 {
		if rec, ok := s.plantedUnappliedRead(ctx, req.GetOffset()); ok {
			return &logv1.ConsumeResponse{Record: wireRecord(rec)}, nil
		}
	}
	rt, err := s.readTargetID(ctx, req.GetTopic(), req.GetPartition(), req.GetTopicId())
	if err != nil {
		return nil, toWire(err)
	}
	rec, err := s.consumeFrom(ctx, rt, req.GetOffset(), time.Duration(req.GetMaxWaitMs())*time.Millisecond)
	err = s.deletedWhileRead(rt, err)
	if err != nil {
		s.corruptRead(ctx, rt, err)
		return nil, toWire(err)
	}
	if err := s.div.readErr(); err != nil {
		return nil, err // the alarm was raised while the read waited (a long poll)
	}
	return &logv1.ConsumeResponse{Record: wireRecord(rec)}, nil
}

// corruptRead raises the divergence alarm when err, a read's error, says a record this node
// stored no longer reads back (storage.ErrCorrupt: a byte flipped at rest, a zeroed block):
// the node lost a committed record that only its peers hold, so it refuses every read and,
// fenced, neither votes nor leads until it is repaired (RELIABILITY.md, invariant 8). Before,
// the read alone answered DATA_LOSS and the node went on voting, and could be elected, until a
// divergence check happened to cover the record, which with the check off was never. A read
// at or past where the state machine stopped (fsm.ErrNotStoredHere) is not a stored record:
// a stop on damaged data fences by itself (fenceIfCorrupt), and one for another cause must not.
// The only server of a cluster raises nothing: it has no peer to be repaired from, and elects
// itself fenced or not, so the alarm would only refuse every record it still holds (the read
// of the corrupt one answers DATA_LOSS all the same).
func (s *service) corruptRead(ctx context.Context, rt readTarget, err error) {
	if !errors.Is(err, storage.ErrCorrupt) || errors.Is(err, fsm.ErrNotStoredHere) || s.div.raised() {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if servers, serr := s.node.Servers(sctx); serr == nil && !slices.ContainsFunc(servers, func(v consensus.ServerStatus) bool { return v.ID != s.cfg.NodeName }) {
		return
	}
	s.div.raise(corruptReadAlarm(divTarget{rt.topic, rt.partition}, err))
}

// deletedWhileRead turns the error of a read whose partition log was closed under it into
// ErrUnknownTopic (NotFound) when its topic was deleted meanwhile (it is gone, or the name now
// holds another incarnation), so that the client ends the read rather than resume it, by name,
// in a re-created topic at an offset that means nothing there. Other errors pass unchanged.
func (s *service) deletedWhileRead(rt readTarget, err error) error {
	if err == nil || rt.topic == "" || s.sm == nil || !errors.Is(err, storage.ErrClosed) {
		return err
	}
	if f, _, perr := s.sm.Partition(rt.topic, rt.partition); perr == nil && f == rt.part {
		return err // the same partition: the server is stopping
	}
	return fmt.Errorf("%w: %q was deleted while it was read (%v)", fsm.ErrUnknownTopic, rt.topic, err)
}

// consumeFrom reads the record at off of a partition for Consume, and tells the truth about an offset this
// replica does not hold: OutOfRange only when off is beyond every committed record, as the
// leader's commit point shows (ReadIndex: a follower, or a leader that may have been deposed,
// learns it first, then catches up to it). OutOfRange comes at once, as the seed answers;
// maxWait > 0 asks to wait that long (capped by MaxConsumeWait) for off to be written first
// (a long poll). The client's deadline never stretches a wait beyond MaxConsumeWait.
func (s *service) consumeFrom(ctx context.Context, rt readTarget, off uint64, maxWait time.Duration) (fsm.Record, error) {
	if _, next := rt.part.Bounds(); off < next || rt.part.Err() != nil {
		// Held here (or below the start: OutOfRange at once, unless the read names a topic
		// ID the cluster no longer has); or this node stopped applying, and its next offset
		// says nothing of what the cluster committed: the state machine's error, never
		// "beyond every committed record".
		rec, err := rt.part.Read(ctx, off)
		return rec, s.pinnedOutOfRange(ctx, rt, err)
	}
	if maxWait > 0 {
		rec, err := s.readWithin(ctx, rt, off, untilNearDeadline(ctx, min(maxWait, s.cfg.MaxConsumeWait)))
		if err == nil || !errors.Is(err, storage.ErrOutOfRange) {
			return rec, err
		}
		if ctx.Err() != nil {
			return fsm.Record{}, readEnded(ctx, off)
		}
		// Not written here in time: is it written anywhere? Below.
	}
	// Bounded whatever the client's deadline: at most an election, then MaxConsumeWait.
	cctx, ccancel := context.WithTimeout(ctx, s.leaderWait+s.cfg.MaxConsumeWait)
	committed, err := s.commitPoint(cctx, rt)
	timedOut := cctx.Err() != nil // read before ccancel, which would end cctx whatever happened
	ccancel()
	if err != nil {
		if ctx.Err() == nil && timedOut {
			return fsm.Record{}, fmt.Errorf("%w: could not learn the cluster's commit point in time (%v)", errLagging, err)
		}
		return fsm.Record{}, err
	}
	if off >= committed {
		_, next := rt.part.Bounds()
		return fsm.Record{}, fmt.Errorf("server: read %d: beyond every committed record (next offset %d): %w", off, max(next, committed), storage.ErrOutOfRange)
	}
	// Committed, not applied here yet: catch up, within MaxConsumeWait and before the caller's
	// deadline is near, so that it hears Unavailable (read elsewhere) in time.
	rec, err := s.readWithin(ctx, rt, off, untilNearDeadline(ctx, s.cfg.MaxConsumeWait))
	if err != nil && errors.Is(err, storage.ErrOutOfRange) {
		if lowest, _ := rt.part.Bounds(); off >= lowest {
			if ctx.Err() != nil {
				return fsm.Record{}, readEnded(ctx, off)
			}
			return fsm.Record{}, fmt.Errorf("%w: offset %d is committed (next offset %d on the leader) but not applied here within %v (%v)",
				errLagging, off, committed, s.cfg.MaxConsumeWait, err)
		}
	}
	return rec, err
}

// untilNearDeadline is d, cut short to end when the caller's deadline is near (nearDeadline):
// a read's wait (for a record, for a leader) that ends at the deadline itself is answered too
// late to be heard, or, ended by the caller's context, said nothing of whether the offset is
// committed.
func untilNearDeadline(ctx context.Context, d time.Duration) time.Duration {
	if near, ok := nearDeadline(ctx); ok {
		d = min(d, time.Until(near))
	}
	return d
}

// readEnded is the answer to a read of off whose caller's context ended while it waited for
// off here: the context's error (DeadlineExceeded, Canceled), never OutOfRange, since off may
// be committed and only not applied here.
func readEnded(ctx context.Context, off uint64) error {
	return fmt.Errorf("server: read %d: not applied here when the request ended: %w", off, ctx.Err())
}

// readWithin reads off, waiting up to d for it to be applied here; a wait that the server's
// stop cuts short answers errStopping (Unavailable: read elsewhere), so that a long poll does
// not hold a graceful stop for its whole wait.
func (s *service) readWithin(ctx context.Context, rt readTarget, off uint64, d time.Duration) (fsm.Record, error) {
	sctx, scancel := untilClosed(ctx, s.stop)
	defer scancel()
	wctx, cancel := context.WithTimeout(sctx, d)
	defer cancel()
	rec, err := rt.part.Read(wctx, off)
	if err != nil && ctx.Err() == nil {
		select {
		case <-s.stop:
			return fsm.Record{}, fmt.Errorf("%w (%v)", errStopping, err)
		default:
		}
	}
	return rec, err
}

// commitPoint returns one past the last record the cluster had committed when the call
// began. On the leader: after LinearizableRead (which proves leadership and applies every
// committed entry), this node's next offset. Elsewhere: the leader's, asked over the API
// (GetBounds, linearizable), waiting up to an election for a leader to be known, and no longer
// than until the caller's deadline is near (nearDeadline), so that it hears Unavailable.
func (s *service) commitPoint(ctx context.Context, rt readTarget) (uint64, error) {
	waitUntil := time.Now().Add(untilNearDeadline(ctx, s.leaderWait))
	for {
		err := s.node.LinearizableRead(ctx)
		if err == nil {
			if err := rt.part.Err(); err != nil {
				// It stopped applying meanwhile (at an entry the read waited for, perhaps):
				// its next offset says nothing of what the cluster committed, and the read is
				// past what it stored (Unavailable: read elsewhere).
				return 0, fmt.Errorf("%w: %w", fsm.ErrNotStoredHere, err)
			}
			if rt.pinned {
				// Every committed entry is applied here now: is the read's topic still the
				// one of its name?
				if gone := s.pinnedGone(rt); gone != nil {
					return 0, gone
				}
			}
			_, next := rt.part.Bounds()
			return next, nil
		}
		nl, isNL := errors.AsType[*consensus.NotLeaderError](err)
		switch {
		case isNL && nl.Leader.ID != "" && s.forward != nil:
			next, ferr := s.forward.committedOffset(ctx, nl.Leader.Address, rt.topic, rt.partition)
			if ferr == nil && rt.pinned {
				// The leader answered for the topic of that name it knows: when that is
				// another topic (this one deleted, and created again, in entries not applied
				// here yet), its commit point says nothing of this one, and the leader
				// answers this read NotFound (readTargetID), never OutOfRange.
				if ferr = s.pinnedGoneOnLeader(ctx, nl.Leader.Address, rt); errors.Is(ferr, fsm.ErrUnknownTopic) {
					return 0, ferr
				}
			}
			if ferr == nil {
				return next, nil
			}
			err = ferr
			if _, ok := transport.NotLeaderDetail(ferr); !ok && transport.CodeOf(ferr) != transport.Unavailable {
				return 0, fmt.Errorf("server: learn the commit point from the leader at %s: %w", nl.Leader.Address, ferr)
			}
		case isNL && nl.Leader.ID != "":
			return 0, err // no forwarder: the leader must be asked by the client
		case isNL, errors.Is(err, consensus.ErrNoLeader):
		default:
			return 0, err
		}
		// No leader, or it moved or cannot answer yet: look again, up to an election.
		if !s.pause(ctx, waitUntil) {
			return 0, err
		}
	}
}

func (s *service) ConsumeStream(ctx context.Context, req *logv1.ConsumeRequest, stream transport.ServerStream[logv1.ConsumeResponse]) error {
	gen := s.policyGen.Load() // the policy generation the stream is authorized under
	if err := s.authorizeTopic(ctx, req.GetTopic(), authz.ActionConsume); err != nil {
		return err
	}
	if err := s.div.readErr(); err != nil {
		return err
	}
	if err := s.readGuard(ctx, req.GetLinearizable()); err != nil {
		return toWire(err)
	}
	rt, err := s.readTargetID(ctx, req.GetTopic(), req.GetPartition(), req.GetTopicId())
	if err != nil {
		return toWire(err)
	}
	callCtx := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var pos atomic.Uint64 // the offset of the next record the stream sends
	pos.Store(req.GetOffset())
	behind := func() bool { _, next := rt.part.Bounds(); return pos.Load() < next }
	go endWithoutLeader(ctx, cancel, s.leaderLoss, s.leaderWait, s.stop, behind)
	go s.endWhenStalled(ctx, cancel, rt, &pos)
	maxBatch := int(min(req.GetMaxBatch(), maxStreamBatchRecords))
	// Within the transport's bound on what it sends, which a small --max-request-bytes lowers.
	maxBatchBytes := min(maxStreamBatchBytes, s.cfg.maxMessageBytes())
	if first, end := rt.part.Bounds(); req.GetOffset() >= first && req.GetOffset() >= end {
		// At the log's end, the stream waits for its first record: its response starts now
		// (transport.SendHeader), not with that record, so that neither the client nor a
		// proxy timing the first byte waits on an idle log for the server's answer.
		if err := transport.SendHeader(stream); err != nil {
			return sendFailed(callCtx, err)
		}
	}
	var batch []*logv1.Record
	var next uint64 // the log's next offset as last seen
	batchBytes := 0
	sendBatch := func() error {
		if err := stream.Send(&logv1.ConsumeResponse{Records: batch}); err != nil {
			return sendFailed(callCtx, err)
		}
		batch, batchBytes = make([]*logv1.Record, 0, len(batch)), 0
		return nil
	}
	for rec, err := range rt.part.Records(ctx, req.GetOffset()) {
		if err != nil {
			if len(batch) > 0 && ctx.Err() == nil {
				// The records read before the error are whole and committed: send them
				// first (a record corrupt at rest ended the stream without the good ones
				// before it, and the client could never read past them).
				if err := sendBatch(); err != nil {
					return err
				}
			}
			cause := streamEndCause(ctx)
			select {
			case <-s.stop: // before its watcher ended ctx (a log closed under the stream)
				cause = errStopping
			default:
			}
			if cause != nil {
				// The server is stopping (Unavailable, as a ProduceStream ends), or this
				// node lost its leader, or does not apply what the cluster committed
				// (endWhenStalled), and the stream has sent every record it holds, so no
				// record may come here for as long as that lasts:
				// Unavailable, and the client resumes elsewhere. A tailing stream has no end
				// of its own: ended OK, a client would take it as done.
				return toWire(cause)
			}
			if err := ctx.Err(); err != nil {
				// The caller's deadline passed (or it cancelled): DeadlineExceeded
				// (Canceled), never OK, for the same reason as above: a raw client
				// whose own timer has not fired yet would take an OK end as the log's.
				return toWire(err)
			}
			s.corruptRead(ctx, rt, err)
			return toWire(s.pinnedOutOfRange(ctx, rt, s.deletedWhileRead(rt, err)))
		}
		pos.Store(rec.Offset + 1)
		if err := s.div.readErr(); err != nil {
			return err // the alarm was raised while the stream was open: no further record
		}
		if g := s.policyGen.Load(); g != gen {
			// The policy was reloaded: a caller no longer allowed gets no further record
			// (PermissionDenied), whatever the stream has batched.
			if err := s.authorizeTopic(ctx, req.GetTopic(), authz.ActionConsume); err != nil {
				return err
			}
			gen = g
		}
		if maxBatch <= 1 { // the seed's form: one record per message
			if err := stream.Send(&logv1.ConsumeResponse{Record: wireRecord(rec)}); err != nil {
				return sendFailed(callCtx, err)
			}
			continue
		}
		// Batched: send what is already written, never wait to fill a batch. A record's
		// bytes (value, key, header values) are only valid until the next iteration step,
		// so batched ones are copied.
		r := wireRecord(rec)
		copyRecordBytes(r)
		// Counted as encoded in the message, framing included: a record with many small
		// headers encodes to several times its key, header and value bytes.
		n := protowire.SizeTag(3) + protowire.SizeBytes(proto.Size(r))
		if len(batch) > 0 && batchBytes+n > maxBatchBytes {
			// Sent apart: a large record added to a batch of almost maxBatchBytes
			// would make a message beyond the transport's bound (one record alone fits it).
			if err := sendBatch(); err != nil {
				return err
			}
		}
		batch = append(batch, r)
		batchBytes += n
		if rec.Offset+1 >= next { // at the end as last seen: look again (once per batch, not per record)
			_, next = rt.part.Bounds()
		}
		if len(batch) >= maxBatch || batchBytes >= maxBatchBytes || rec.Offset+1 >= next {
			if err := sendBatch(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Bounds of one batched ConsumeStream message.
const (
	maxStreamBatchRecords = 4096
	maxStreamBatchBytes   = 1 << 20
)

// copyRecordBytes makes r's value, key and header values its own, in one allocation.
func copyRecordBytes(r *logv1.Record) {
	size := len(r.Value) + len(r.Key)
	for _, h := range r.Headers {
		size += len(h.Value)
	}
	buf := make([]byte, 0, size)
	own := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		buf = append(buf, b...)
		return buf[len(buf)-len(b) : len(buf) : len(buf)]
	}
	r.Value = own(r.Value)
	r.Key = own(r.Key)
	for _, h := range r.Headers {
		h.Value = own(h.Value)
	}
}

func wireRecord(r fsm.Record) *logv1.Record {
	w := &logv1.Record{Value: r.Value, Offset: r.Offset, Term: r.Term, Type: r.Type, Key: r.Key, TimestampMs: r.Timestamp}
	for _, h := range r.Headers {
		w.Headers = append(w.Headers, &logv1.Header{Key: h.Key, Value: h.Value})
	}
	return w
}

func (s *service) GetServers(ctx context.Context, _ *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	servers, err := s.node.Servers(ctx)
	if err != nil {
		return nil, toWire(err)
	}
	status := s.node.Status()
	var insecure map[string]bool
	if s.insecure != nil {
		insecure = s.insecure()
	}
	out := make([]*logv1.Server, 0, len(servers))
	for _, srv := range servers {
		w := &logv1.Server{
			Id:       srv.ID,
			RpcAddr:  srv.Address, // the API and Raft share one port
			IsLeader: srv.Leader,
			RaftAddr: srv.Address,
			Healthy:  true,
			Insecure: insecure[srv.ID],
		}
		switch srv.Suffrage {
		case consensus.Voter:
			w.Suffrage = logv1.Suffrage_SUFFRAGE_VOTER
		case consensus.Nonvoter:
			w.Suffrage = logv1.Suffrage_SUFFRAGE_NONVOTER
		}
		if srv.ID == status.ID {
			w.AppliedIndex = s.appliedIndex(status)
			w.Healthy = s.fsm.Err() == nil // a node that stopped applying is not
		} else if srv.MatchIndex > 0 {
			w.AppliedIndex = srv.MatchIndex
		}
		if !srv.LastContact.IsZero() {
			// Known on the leader while its heartbeats to it fail (consensus/raft): unreachable
			// since it last answered.
			w.Healthy = false
			w.LastContact = durationpb.New(max(time.Since(srv.LastContact), 0))
		}
		if w.AppliedIndex > 0 && status.CommitIndex > w.AppliedIndex {
			w.Lag = status.CommitIndex - w.AppliedIndex
		}
		out = append(out, w)
	}
	return &logv1.GetServersResponse{Servers: out, ClusterId: status.ClusterID}, nil
}

// appliedIndex is the last Raft index this node's state machine applied: Raft's applied index
// while it applies; once it stopped, the last index through which it applied every entry
// (fsm.Machine.AppliedIndex: the end of the last batch it applied whole). Raft goes on handing
// a stopped state machine every committed entry, each refused, and its applied index goes on
// with them: `cluster status` showed a stopped node as applied up to the commit index, with
// no lag, while its offsets stood still.
func (s *service) appliedIndex(st consensus.Status) uint64 {
	switch {
	case s.sm != nil && s.sm.Err() != nil:
		return min(s.sm.AppliedIndex(), st.AppliedIndex)
	case s.sm == nil && s.fsm != nil && s.fsm.Err() != nil:
		return min(s.fsm.AppliedIndex(), st.AppliedIndex)
	}
	return st.AppliedIndex
}

// stoppedLeaderRead is the refusal of a linearizable read on this node, which leads but whose
// state machine stopped applying (cause): it cannot tell what the cluster committed past what
// it stored. Unavailable (errStoppedLeader): the read succeeds once another node leads, which
// it hands leadership to (watchApply), so a client retries; its message names this node and
// the cause, for the user to see.
func (s *service) stoppedLeaderRead(cause error) error {
	return fmt.Errorf("%w: %s leads but its state machine stopped applying committed entries (%v); "+
		"it cannot tell what the cluster committed past what it stored, and linearizable reads resume when another node leads (it hands leadership over)",
		errStoppedLeader, s.node.Status().ID, cause)
}

// applyError is why this node's state machine stopped applying; "" while it applies.
func (s *service) applyError() string {
	if s.sm != nil {
		if err := s.sm.Err(); err != nil {
			return err.Error()
		}
	}
	if err := s.fsm.Err(); err != nil {
		return err.Error()
	}
	return ""
}

func (s *service) GetBounds(ctx context.Context, req *logv1.GetBoundsRequest) (*logv1.GetBoundsResponse, error) {
	if err := s.authorizeTopic(ctx, req.GetTopic(), authz.ActionConsume); err != nil {
		return nil, err
	}
	if err := s.readGuard(ctx, req.GetLinearizable()); err != nil {
		return nil, toWire(err)
	}
	if req.GetRequireLeader() && !s.node.IsLeader() {
		// The caller wants the cluster's bounds (the SDK's ReadLeader) and takes this node for
		// the leader: it is not, so it says who is, as it does for a write. Answering its own
		// bounds instead, a node that handed leadership over (and forwards the client's writes,
		// so that the client never hears of the change) would name a next offset below records
		// the client was just acknowledged.
		leader, _ := s.node.Leader()
		return nil, toWire(&consensus.NotLeaderError{Leader: leader})
	}
	rt, err := s.readTarget(ctx, req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, toWire(err)
	}
	if err := rt.part.Err(); err != nil && req.GetLinearizable() {
		// This node leads (readGuard proved it) but stopped applying: its next offset says
		// nothing of what the cluster committed (a follower asking for the commit point would
		// call committed offsets out of range). The plain answer still reports apply_error,
		// for `cluster status`.
		return nil, toWire(s.stoppedLeaderRead(err))
	}
	lowest, next := rt.part.Bounds()
	st := s.node.Status()
	res := &logv1.GetBoundsResponse{
		ApplyError:      s.applyError(),
		LowestOffset:    lowest,
		NextOffset:      next,
		CommittedOffset: next,
		AppliedIndex:    s.appliedIndex(st), // so that commit_index - applied_index is the lag
		CommitIndex:     st.CommitIndex,
		SizeBytes:       uint64(max(rt.part.Size(), 0)), // the partition's, not the default topic's
		Fenced:          st.Fenced,                      // for `cluster status`: a fenced node may show no other sign
	}
	s.checksumAnswer(ctx, req, res, rt) // the divergence detector compares every partition
	return res, nil
}

func (s *service) Join(ctx context.Context, req *logv1.JoinRequest) (*logv1.JoinResponse, error) {
	if req.GetId() == "" || req.GetRaftAddr() == "" {
		return nil, toWire(fmt.Errorf("%w: join needs an id and a raft address", errInvalid))
	}
	// Before anything enters Raft's configuration: a server added under an address nothing can
	// dial stays there (as a non-voter), and the call waits for it to catch up until its deadline.
	for _, a := range []struct{ name, addr string }{{"raft_addr", req.GetRaftAddr()}, {"rpc_addr", req.GetRpcAddr()}} {
		if a.addr == "" {
			continue
		}
		if err := checkHostPort(a.addr); err != nil {
			return nil, toWire(fmt.Errorf("%w: join: %s %q is not host:port: %v", errInvalid, a.name, a.addr, err))
		}
	}
	if s.admit != nil {
		if err := s.admit(ctx, req.GetId(), req.GetRaftAddr()); err != nil {
			return nil, transport.NewError(transport.FailedPrecondition, err)
		}
	}
	var err error
	if req.GetNonvoter() {
		err = s.node.AddNonvoter(ctx, req.GetId(), req.GetRaftAddr())
	} else {
		err = s.joinVoter(ctx, req.GetId(), req.GetRaftAddr(), cmp.Or(req.GetRpcAddr(), req.GetRaftAddr()))
	}
	if err != nil {
		return nil, toWire(err)
	}
	return &logv1.JoinResponse{}, nil
}

// joinPromoteWait bounds how long Join waits for a new voter to catch up when its caller set no
// deadline.
const joinPromoteWait = 5 * time.Minute

// joinPoll is how often Join asks a joining server how far it has applied.
const joinPoll = 100 * time.Millisecond

// joinVoter adds server id as a voter the way servers found by gossip are added
// (reconciler.promote): a non-voter first, made a voter once it has applied something and up to
// nearly the commit index (promoteLag), as it answers at apiAddr. Added as a voter at once, a
// new server joins the quorum with nothing applied: the leader of a one-voter cluster then
// needs it for every commit, steps down when it loses contact with it while it copies the log
// (a loaded host), and is never elected again, since the new server refuses its vote until it
// has caught up (consensus/raft's vote guard). A server that is a voter already is re-addressed
// as before. Join waits for the promotion until its caller's deadline is near (or
// joinPromoteWait); then the server stays a non-voter, and Join answers DeadlineExceeded saying
// how far it got: joining it again promotes it once it has caught up.
func (s *service) joinVoter(ctx context.Context, id, raftAddr, apiAddr string) error {
	servers, err := s.node.Servers(ctx)
	if err != nil {
		return err
	}
	isVoter := slices.ContainsFunc(servers, func(sv consensus.ServerStatus) bool {
		return sv.ID == id && sv.Suffrage == consensus.Voter
	})
	if isVoter || s.forward == nil {
		// A voter already (re-addressed as before), or no way to ask how far it is.
		return s.node.AddVoter(ctx, id, raftAddr)
	}
	if err := s.node.AddNonvoter(ctx, id, raftAddr); err != nil {
		return err
	}
	until := time.Now().Add(joinPromoteWait)
	if near, ok := nearDeadline(ctx); ok && near.Before(until) {
		until = near
	}
	for {
		applied, err := s.forward.appliedIndexOf(ctx, apiAddr)
		commit := s.node.Status().CommitIndex
		if err == nil && caughtUp(applied, commit) {
			return s.node.AddVoter(ctx, id, raftAddr)
		}
		if !s.pauseFor(ctx, until, joinPoll) {
			why := fmt.Sprintf("it had applied %d of %d entries", applied, commit)
			if err != nil {
				why = fmt.Sprintf("asking it at %s how far it is: %v", apiAddr, err)
			}
			return transport.Errorf(transport.DeadlineExceeded, "server %q was added as a non-voter and has not caught up (%s): join it again to make it a voter once it has", id, why)
		}
	}
}

func (s *service) RemoveServer(ctx context.Context, req *logv1.RemoveServerRequest) (*logv1.RemoveServerResponse, error) {
	if req.GetId() == "" {
		return nil, toWire(fmt.Errorf("%w: remove needs a server id", errInvalid))
	}
	// Raft removes an unknown ID without complaint: an operator's typo would report success.
	// Asked of the leader only (a follower answers NotLeader below), whose configuration is
	// the latest; InvalidArgument, as TransferLeadership answers an unknown ID.
	if s.node.IsLeader() {
		servers, err := s.node.Servers(ctx)
		if err != nil {
			return nil, toWire(err)
		}
		if !slices.ContainsFunc(servers, func(sv consensus.ServerStatus) bool { return sv.ID == req.GetId() }) {
			return nil, transport.Errorf(transport.InvalidArgument, "server %q is not in the cluster's configuration", req.GetId())
		}
		// Raft refuses to remove the last voter with an error of its own, which came out as
		// Internal: the SDK reported an unknown outcome for a removal that never happened.
		if !slices.ContainsFunc(servers, func(sv consensus.ServerStatus) bool {
			return sv.ID != req.GetId() && sv.Suffrage == consensus.Voter
		}) {
			return nil, transport.Errorf(transport.FailedPrecondition, "server %q is the cluster's last voter: removing it would leave no server to elect a leader", req.GetId())
		}
		if err := s.checkRemovalQuorum(ctx, req.GetId(), servers); err != nil {
			return nil, err
		}
		if self, ok := s.node.Leader(); ok && self.ID == req.GetId() {
			return nil, s.leadElsewhereBeforeRemoval(ctx, self.ID)
		}
	}
	// Marked before the removal, so that no reconcile pass running meanwhile adds it back.
	if s.removed != nil {
		s.removed(req.GetId(), true)
	}
	if err := s.node.RemoveServer(ctx, req.GetId()); err != nil {
		if s.removed != nil {
			s.removed(req.GetId(), false)
		}
		return nil, toWire(err)
	}
	return &logv1.RemoveServerResponse{}, nil
}

// leadElsewhereBeforeRemoval answers a request to this leader to remove itself: it hands
// leadership to another voter and refuses the removal as not proposed (Unavailable, no leader
// named), so that the caller sends it again to the next leader. A leader that removed itself
// took with it the memory that the server was removed (the service's mark, which keeps the
// reconciler from adding back a removed server while it still runs): the next leader saw it
// alive in gossip and added it back. The leader that removes it is now always one that stays.
// (`cluster remove` hands leadership away first; a leadership change just before its removal
// arrived, or another client, brought the request here.)
func (s *service) leadElsewhereBeforeRemoval(ctx context.Context, self string) error {
	msg := fmt.Sprintf("server %q leads: it does not remove itself; leadership handed to another voter, send the removal to the new leader", self)
	if err := s.node.TransferLeadership(ctx, ""); err != nil {
		msg = fmt.Sprintf("server %q leads: it does not remove itself, and handing leadership to another voter failed (%v); try again", self, err)
	}
	return transport.Errorf(transport.Unavailable, "%s", msg).WithNotLeader(transport.NotLeader{}).WithNotProposed(msg)
}

// removalQuorumWait bounds how long RemoveServer waits for the leader to learn whether the
// voters that stay answer it (a leader elected moments ago knows nothing of them yet).
const removalQuorumWait = 2 * time.Second

// checkRemovalQuorum refuses (FailedPrecondition) the removal of the voter id when the voters
// that stay and answer the leader would not be a majority of those that stay. Raft counts
// votes by the new configuration as soon as the leader appends it: such a removal never
// commits, and the cluster has no quorum until failed servers return. (A scale-down removes
// running servers one by one while another may be down.)
//
// A voter answers when the leader's heartbeats to it do not fail AND it acknowledged an append
// of this term (a match index): a leader elected moments ago (cluster remove makes one when it
// hands leadership away from a server it removes) has seen no heartbeat fail yet, and took a
// server that is down for one that answers. While the voters whose state is still unknown
// could make the difference, the leader asks again, for up to removalQuorumWait.
func (s *service) checkRemovalQuorum(ctx context.Context, id string, servers []consensus.ServerStatus) error {
	if i := slices.IndexFunc(servers, func(sv consensus.ServerStatus) bool { return sv.ID == id }); i < 0 || servers[i].Suffrage != consensus.Voter {
		return nil // a non-voter's removal does not change the quorum
	}
	deadline := time.Now().Add(removalQuorumWait)
	for {
		stay, up, unknown := 0, 0, 0
		for _, sv := range servers {
			if sv.ID == id || sv.Suffrage != consensus.Voter {
				continue
			}
			stay++
			switch {
			case sv.Leader:
				up++
			case !sv.LastContact.IsZero(): // the leader's heartbeats to it fail
			case sv.MatchIndex > 0:
				up++
			default:
				unknown++
			}
		}
		if up > stay/2 {
			return nil
		}
		if !s.node.IsLeader() {
			return nil // leadership moved meanwhile: the removal itself answers NotLeader
		}
		if up+unknown <= stay/2 || time.Now().After(deadline) {
			return transport.Errorf(transport.FailedPrecondition,
				"removing server %q would leave %d voters of which %d answer the leader, fewer than their quorum of %d: the removal would never commit and the cluster would stop; bring the failed servers back first",
				id, stay, up, stay/2+1)
		}
		select {
		case <-ctx.Done():
			return toWire(ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		var err error
		if servers, err = s.node.Servers(ctx); err != nil {
			return toWire(err)
		}
	}
}

// transferError is toWire for TransferLeadership's refusals, which hashicorp/raft answers
// without a sentinel this server could map: an ID not in the configuration is the caller's
// mistake (InvalidArgument); a non-voter target (a joining server not yet promoted), a
// transfer already in progress, or a target that did not win in time (leadership then stays
// with the leader), is FailedPrecondition: leadership did not move
// by this call, and a retry would move it again. Neither is a server fault (Internal), which an
// SDK would report as an unknown outcome.
func transferError(err error) error {
	werr := toWire(err)
	switch {
	case errors.Is(err, craft.ErrUnknownServer):
		return transport.Errorf(transport.InvalidArgument, "%v", err)
	case errors.Is(err, craft.ErrNotVoter):
		return transport.Errorf(transport.FailedPrecondition, "leadership was not transferred: only a voter can lead: %v", err)
	case transport.CodeOf(werr) == transport.Internal:
		return transport.Errorf(transport.FailedPrecondition, "leadership was not transferred: %v", err)
	}
	return werr
}

func (s *service) TransferLeadership(ctx context.Context, req *logv1.TransferLeadershipRequest) (*logv1.TransferLeadershipResponse, error) {
	if err := s.node.TransferLeadership(ctx, req.GetId()); err != nil {
		return nil, transferError(err)
	}
	leader, _ := s.node.Leader()
	return &logv1.TransferLeadershipResponse{LeaderId: leader.ID}, nil
}
