package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// ErrGroupsUnsupported: the server does not serve the Groups service (it answered
// Unimplemented): it is older than consumer groups.
var ErrGroupsUnsupported = errors.New("client: server does not support consumer groups")

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition uint32
}

// GroupOption configures a GroupConsumer.
type GroupOption func(*groupOptions)

type groupOptions struct {
	autoCommit time.Duration
	onAssigned func([]TopicPartition)
	onRevoked  func([]TopicPartition)
	clientID   string
	buffer     int
}

// WithAutoCommit sets how often the consumer commits the positions of the records the loop
// has processed (default 5 s, Kafka's auto.commit.interval.ms); 0 turns automatic commits off
// (Commit and Close still commit). An automatic commit runs beside the heartbeats, so a slow
// one never delays them; one runs at a time (an interval that ends while the last is still
// running is skipped), and it is cancelled by Close (which then commits) and before a revoked
// partition's position is committed.
func WithAutoCommit(d time.Duration) GroupOption { return func(o *groupOptions) { o.autoCommit = d } }

// WithOnAssigned calls fn with the partitions the consumer was given, before any of their
// records is yielded. fn runs on the consumer's heartbeat goroutine: it must not block long.
func WithOnAssigned(fn func([]TopicPartition)) GroupOption {
	return func(o *groupOptions) { o.onAssigned = fn }
}

// WithOnRevoked calls fn with the partitions taken from the consumer, after their last
// records' positions were committed and before another member may read them (a revocation
// first waits, up to half the session timeout, for the loop body to return for a record of
// those partitions it is processing; Close does not), and, from Close,
// with every partition the consumer held when it closed. It runs on the heartbeat goroutine
// (in Close's, from Close).
func WithOnRevoked(fn func([]TopicPartition)) GroupOption {
	return func(o *groupOptions) { o.onRevoked = fn }
}

// WithClientID names the consumer in DescribeGroup: at most 512 bytes of UTF-8 without control
// characters (servers refuse the join otherwise, InvalidArgument).
func WithClientID(id string) GroupOption { return func(o *groupOptions) { o.clientID = id } }

// GroupConsumer consumes the partitions the group's coordinator assigns it, of the topics it
// subscribes to, and commits how far it got: at least once. Create one with
// Client.NewGroupConsumer; Records iterates, Commit commits, Close commits and leaves.
//
// Positions advance when the loop body returns for a record (the record counts as processed);
// automatic and manual commits store them. After a crash, a removal or a rebalance the next
// owner of a partition starts at the last committed position: records processed after it are
// delivered again (duplicates), none is skipped.
//
// Records may be called by one goroutine at a time; Commit and Close are safe from any.
type GroupConsumer struct {
	c      *Client
	group  string
	topics []string
	opts   groupOptions

	recs chan fetched // from the fetchers to Records

	mu       sync.Mutex
	member   string
	epoch    int32
	held     map[TopicPartition]*fetcher // partitions owned, with their fetchers
	position map[TopicPartition]uint64   // next offset to read, per held partition
	err      error                       // a fatal error, ended with Records
	closed   bool
	// removed ends, with the coordinator's refusal as its cause, when the member is told it
	// was removed or fenced: the commits in flight (automatic or Commit's), which carry the
	// positions and the epoch of the member as it was, stop there. A new one follows for
	// the rejoined member.
	removed       context.Context
	removedCancel context.CancelCauseFunc

	stop     chan struct{} // closed by Close: the heartbeat loop ends
	done     chan struct{} // closed when the heartbeat loop ended
	kick     chan struct{} // asks the heartbeat loop for an immediate heartbeat
	interval time.Duration
	session  time.Duration // the coordinator's session timeout
	// inflight is the fetcher whose record the loop body is processing (Records yielded it
	// and the body has not returned), nil when none; inflightDone is closed when it returns.
	// A revocation waits for it (awaitInflight).
	inflight     *fetcher
	inflightDone chan struct{}
	// pending: partitions assigned to us are still held by another member; heartbeat often
	// until they come.
	pending bool

	// The automatic commit running, if any (at most one). Used only by the goroutine that
	// sends the heartbeats (NewGroupConsumer's, then loop's, then Close's once loop ended).
	autoCancel context.CancelFunc
	autoDone   chan struct{}
}

// fetched is a record from a fetcher, or its error.
type fetched struct {
	f   *fetcher
	rec Record
	err error
}

// fetcher reads one partition into GroupConsumer.recs until stopped.
type fetcher struct {
	tp     TopicPartition
	cancel context.CancelFunc
	done   chan struct{}
	// released: the partition is being given up; Records yields none of its records any
	// more. Guarded by GroupConsumer.mu.
	released bool
}

// NewGroupConsumer joins group as a member subscribed to topics and starts heartbeating; the
// coordinator answers the partitions to read. Records starts yielding once partitions are
// assigned. A join whose answer was lost is sent again, as a new member, up to the client's
// retry budget (WithMaxRetries): the member the lost join may have made never heartbeats, and
// the coordinator removes it after the session timeout, until when the partitions assigned to
// it wait. A member whose join was answered but that could not start (its partitions'
// committed offsets or bounds could not be read, or ctx ended) leaves the group before the
// error is returned, so that its partitions go to the other members at once. Errors:
// ErrInvalidOption for a missing group or topics; the join's error (wrapping
// ErrGroupsUnsupported for a server without consumer groups, ErrOutcomeUnknown when the last
// join's answer was lost); the start's.
func (c *Client) NewGroupConsumer(ctx context.Context, group string, topics []string, opts ...GroupOption) (*GroupConsumer, error) {
	if group == "" || len(topics) == 0 {
		return nil, fmt.Errorf("%w: a group consumer needs a group and at least one topic", ErrInvalidOption)
	}
	o := groupOptions{autoCommit: 5 * time.Second, buffer: 256}
	for _, opt := range opts {
		opt(&o)
	}
	if o.autoCommit < 0 {
		return nil, fmt.Errorf("%w: negative auto-commit interval", ErrInvalidOption)
	}
	g := &GroupConsumer{c: c, group: group, topics: slices.Clone(topics), opts: o, recs: make(chan fetched, o.buffer),
		held: map[TopicPartition]*fetcher{}, position: map[TopicPartition]uint64{},
		stop: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1)}
	g.removed, g.removedCancel = context.WithCancelCause(context.Background())
	for attempt := 0; ; attempt++ {
		err := g.heartbeat(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrOutcomeUnknown) || attempt >= c.opts.maxRetries {
			g.leaveAfterFailedStart()
			return nil, err
		}
		// The join's answer was lost: the coordinator may have made a member of it, which
		// never heartbeats and is removed after the group's session timeout (the partitions
		// assigned to it wait until then). Join again, as a new member.
		c.opts.logger.Warn("group consumer: the outcome of the join is unknown; joining again (a member the lost join made expires after the session timeout)", "group", group, "err", err)
		if berr := c.backoff(ctx, attempt); berr != nil {
			if errors.Is(berr, ErrClosed) {
				return nil, berr
			}
			return nil, fmt.Errorf("%w: %w", berr, err)
		}
	}
	go g.loop()
	return g, nil
}

// leaveAfterFailedStart leaves the group when NewGroupConsumer fails after a join was
// answered: the coordinator made a member and assigned it partitions, but the member could not
// start reading them (their committed offsets or bounds could not be read, or the caller's
// context ended meanwhile). Left there, that member held its partitions, read by nobody, until
// the session timeout removed it, and the caller had no consumer to Close. Best effort, on a
// context of its own (the caller's may have ended): a member that stays expires as before.
func (g *GroupConsumer) leaveAfterFailedStart() {
	g.mu.Lock()
	req := &logv1.HeartbeatRequest{Group: g.group, MemberId: g.member, MemberEpoch: -1}
	g.mu.Unlock()
	if req.MemberId == "" {
		return // no join was answered
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := g.c.onGroupsLeader(ctx, false, func(ctx context.Context, gc transport.GroupsClient) error {
		_, err := gc.Heartbeat(ctx, req)
		return err
	})
	if err != nil {
		g.c.opts.logger.Warn("group consumer: leaving after a failed start failed; the member expires after the session timeout", "group", g.group, "member", req.MemberId, "err", err)
	}
}

func groupsErr(err error) error {
	if err != nil && transport.CodeOf(err) == transport.Unimplemented {
		return fmt.Errorf("%w: %w", ErrGroupsUnsupported, err)
	}
	return err
}

// heartbeat sends one heartbeat and applies its answer: revoked partitions are stopped,
// committed and released (then a heartbeat follows at once), new ones fetched from their
// committed offsets. A member the coordinator no longer knows, or fenced, gives up everything
// and rejoins.
func (g *GroupConsumer) heartbeat(ctx context.Context) error {
	g.mu.Lock()
	req := &logv1.HeartbeatRequest{Group: g.group, MemberId: g.member, MemberEpoch: g.epoch, ClientId: g.opts.clientID}
	if g.epoch == 0 {
		req.Topics = g.topics
	}
	owned := make([]TopicPartition, 0, len(g.held))
	for tp := range g.held {
		owned = append(owned, tp)
	}
	g.mu.Unlock()
	req.Owned = wireTPs(owned)
	// A first join (no member ID yet) makes the coordinator create a member with a new ID: a
	// resend after a lost answer would create another, so it is a write, never resent, and
	// fails with ErrOutcomeUnknown. A rejoin names the member's ID (the coordinator replaces
	// that member) and a heartbeat repeats the member's state: resending them is harmless.
	join := req.MemberEpoch == 0 && req.MemberId == ""
	var res *logv1.HeartbeatResponse
	err := g.c.onGroupsLeader(ctx, join, func(ctx context.Context, gc transport.GroupsClient) error {
		var err error
		res, err = gc.Heartbeat(ctx, req)
		return err
	})
	switch transport.GroupErrorReason(err) {
	case logv1.GroupError_REASON_UNKNOWN_MEMBER, logv1.GroupError_REASON_STALE_MEMBER_EPOCH:
		// Removed or fenced (a new leader, a missed session): whatever we hold may be
		// someone else's now. Give it up without committing, and rejoin. The commits in
		// flight end too: they carry this incarnation's epoch and positions and, retried
		// through an election, could land after the rejoin, at a new coordinator where
		// the member (same ID, that coordinator's own epochs) has that epoch again, and
		// move the committed offsets back.
		g.mu.Lock()
		g.removedCancel(err)
		g.removed, g.removedCancel = context.WithCancelCause(context.Background())
		g.mu.Unlock()
		g.stopAutoCommit()
		g.release(ctx, g.heldPartitions(), false, false)
		g.mu.Lock()
		g.epoch = 0
		g.mu.Unlock()
		g.poke()
		return nil
	}
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.member, g.epoch = res.GetMemberId(), res.GetMemberEpoch()
	g.interval = time.Duration(res.GetHeartbeatIntervalMs()) * time.Millisecond
	g.session = time.Duration(res.GetSessionTimeoutMs()) * time.Millisecond
	g.pending = res.GetPending()
	assigned := map[TopicPartition]bool{}
	for _, tp := range fromWireTPs(res.GetAssignment()) {
		assigned[tp] = true
	}
	var revoked, added []TopicPartition
	for tp := range g.held {
		if !assigned[tp] {
			revoked = append(revoked, tp)
		}
	}
	for tp := range assigned {
		if g.held[tp] == nil {
			added = append(added, tp)
		}
	}
	g.mu.Unlock()
	if len(revoked) > 0 {
		if err := g.release(ctx, revoked, true, true); err != nil {
			g.c.opts.logger.Warn("group consumer: committing revoked partitions failed; their records may be delivered again", "group", g.group, "err", err)
		}
		g.poke() // tell the coordinator at once, so the next owner gets them
	}
	if len(added) > 0 {
		if err := g.acquire(ctx, added); err != nil {
			return err
		}
	}
	return nil
}

func (g *GroupConsumer) heldPartitions() []TopicPartition {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]TopicPartition, 0, len(g.held))
	for tp := range g.held {
		out = append(out, tp)
	}
	return out
}

// release stops the fetchers of tps, commits their positions (commit), calls OnRevoked and
// forgets them. With await (a revocation), it first waits for the loop body to return for a
// record of tps it is processing (awaitInflight), so that the partition is not consumed by
// this member and its next owner at once. It returns the commit's error.
func (g *GroupConsumer) release(ctx context.Context, tps []TopicPartition, commit, await bool) error {
	if len(tps) == 0 {
		return nil
	}
	sortTPs(tps)
	g.mu.Lock()
	var fs []*fetcher
	for _, tp := range tps {
		if f := g.held[tp]; f != nil {
			f.released = true // Records yields no more of its records
			fs = append(fs, f)
		}
	}
	g.mu.Unlock()
	for _, f := range fs {
		f.cancel()
		<-f.done
	}
	if await && g.awaitInflight(fs) {
		// The wait may have taken much of the heartbeat's time: the commit gets its own.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
	}
	var err error
	if commit {
		// An automatic commit in flight carries older positions: landing after this
		// commit, it would move the committed offsets back.
		g.stopAutoCommit()
		err = g.commit(ctx, tps)
	}
	if g.opts.onRevoked != nil {
		g.opts.onRevoked(tps)
	}
	g.mu.Lock()
	for _, tp := range tps {
		delete(g.held, tp)
		delete(g.position, tp)
	}
	g.mu.Unlock()
	return err
}

// awaitInflight waits until the loop body returned for the record it is processing, if that
// record is of one of fs (whose partitions are being revoked: Records yields none of their
// records any more), so that its position is committed and the partition's next owner starts
// after it instead of consuming the partition while this member still does. The wait is
// bounded by half the session timeout (heartbeats wait meanwhile; the member must not be
// removed for it), and ends when Close is called (Close may be called from the loop body).
// It reports whether it waited.
func (g *GroupConsumer) awaitInflight(fs []*fetcher) bool {
	g.mu.Lock()
	f, done, session := g.inflight, g.inflightDone, g.session
	g.mu.Unlock()
	if f == nil || !slices.Contains(fs, f) {
		return false
	}
	bound := session / 2
	if bound <= 0 {
		bound = time.Second
	}
	t := time.NewTimer(bound)
	defer t.Stop()
	select {
	case <-done:
	case <-g.stop:
	case <-t.C:
		g.c.opts.logger.Warn("group consumer: a revoked partition's record is still being processed after half the session timeout; releasing the partition (its next owner reads that record again)",
			"group", g.group, "topic", f.tp.Topic, "partition", f.tp.Partition)
	}
	return true
}

// acquire starts fetching tps from their committed offsets (or their start).
func (g *GroupConsumer) acquire(ctx context.Context, tps []TopicPartition) error {
	sortTPs(tps)
	committed := map[TopicPartition]uint64{}
	err := g.c.onGroupsLeader(ctx, false, func(ctx context.Context, gc transport.GroupsClient) error {
		res, err := gc.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: g.group})
		if err != nil {
			return err
		}
		for _, o := range res.GetOffsets() {
			committed[TopicPartition{o.GetTopic(), o.GetPartition()}] = o.GetOffset()
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Every start is known before any fetcher starts, and found without g.mu held: a failure
	// leaves nothing running, and Records, Commit and Close do not wait on the network.
	for _, tp := range tps {
		if _, ok := committed[tp]; !ok {
			b, err := g.c.PartitionBounds(ctx, tp.Topic, tp.Partition)
			if err != nil {
				return err
			}
			committed[tp] = b.Lowest
		}
	}
	if g.opts.onAssigned != nil {
		g.opts.onAssigned(tps)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	for _, tp := range tps {
		from := committed[tp]
		g.position[tp] = from
		g.held[tp] = g.startFetcher(tp, from)
	}
	return nil
}

// startFetcher streams tp from offset from into g.recs. g.mu must be held.
//
// A stream that ends with an error hands it to Records and, unless it is final, starts again:
// after ErrUnavailable (the cluster was out of reach past the client's retry budget) at the
// offset after the last record it delivered; after ErrOutOfRange (retention removed the records
// at the position: Kafka's auto.offset.reset=earliest) at the partition's start. Other errors
// (PermissionDenied, an unknown topic, ErrGap, ErrClosed) end the fetcher: the partition is
// read again once it is reassigned. Between attempts it waits as the client waits between
// retries (WithBackoff).
func (g *GroupConsumer) startFetcher(tp TopicPartition, from uint64) *fetcher {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fetcher{tp: tp, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		next := from
		for failures := 0; ; failures++ {
			var err error
			for rec, rerr := range g.c.StreamPartition(ctx, tp.Topic, tp.Partition, next) {
				if rerr != nil {
					err = rerr
					break
				}
				failures = 0
				select {
				case g.recs <- fetched{f: f, rec: rec}:
					next = rec.Offset + 1
				case <-ctx.Done():
					return
				}
			}
			if ctx.Err() != nil || err == nil {
				return
			}
			select {
			case g.recs <- fetched{f: f, err: err}:
			case <-ctx.Done():
				return
			}
			if !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrOutOfRange) {
				return
			}
			if g.c.backoff(ctx, failures) != nil {
				return
			}
			if errors.Is(err, ErrOutOfRange) {
				b, berr := g.c.PartitionBounds(ctx, tp.Topic, tp.Partition)
				if berr != nil {
					continue // try the same offset again: it answers the same error or reads
				}
				next = max(next, b.Lowest)
			}
		}
	}()
	return f
}

// loop heartbeats at the coordinator's interval (at once when poked) and starts a commit on
// the auto-commit interval, until Close. The commits run on their own goroutine: one slow
// commit (each attempt bounded by the request timeout, retried up to the retry budget: 90 s
// with the defaults) must not stop the heartbeats for longer than the session timeout.
func (g *GroupConsumer) loop() {
	defer close(g.done)
	defer g.stopAutoCommit() // before done: Close commits after it, and no goroutine is left
	var commitC <-chan time.Time
	if g.opts.autoCommit > 0 {
		t := time.NewTicker(g.opts.autoCommit)
		defer t.Stop()
		commitC = t.C
	}
	beat := time.NewTimer(g.nextInterval())
	defer beat.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-commitC:
			g.startAutoCommit()
			continue
		case <-g.kick:
			beat.Stop()
		case <-beat.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := g.heartbeat(ctx)
		cancel()
		if err != nil {
			g.c.opts.logger.Debug("group consumer: heartbeat failed; retrying", "group", g.group, "err", err)
			if errors.Is(err, ErrClosed) || errors.Is(err, ErrGroupsUnsupported) || transport.CodeOf(err) == transport.PermissionDenied {
				g.fail(err)
				return
			}
		}
		beat.Reset(g.nextInterval())
	}
}

// startAutoCommit commits the positions processed on a goroutine of its own, unless the last
// automatic commit still runs.
func (g *GroupConsumer) startAutoCommit() {
	if g.autoDone != nil {
		select {
		case <-g.autoDone:
		default:
			return // still running: this interval's commit is skipped
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	g.autoCancel, g.autoDone = cancel, done
	go func() {
		defer close(done)
		defer cancel()
		if err := g.Commit(ctx); err != nil && ctx.Err() == nil {
			g.c.opts.logger.Debug("group consumer: auto-commit failed", "group", g.group, "err", err)
		}
	}()
}

// stopAutoCommit cancels the automatic commit running, if any, and waits until it ended.
func (g *GroupConsumer) stopAutoCommit() {
	if g.autoDone == nil {
		return
	}
	g.autoCancel()
	<-g.autoDone
	g.autoCancel, g.autoDone = nil, nil
}

// nextInterval is when the next heartbeat is due: the coordinator's interval, shorter while
// partitions are pending.
func (g *GroupConsumer) nextInterval() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	interval := g.interval
	if interval <= 0 {
		interval = time.Second
	}
	if g.pending {
		interval = min(interval, pendingHeartbeat)
	}
	return interval
}

// pendingHeartbeat is how often a member heartbeats while partitions it was given are still
// being released by their previous owner.
const pendingHeartbeat = 50 * time.Millisecond

func (g *GroupConsumer) poke() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

func (g *GroupConsumer) fail(err error) {
	g.mu.Lock()
	if g.err == nil {
		g.err = err
	}
	g.mu.Unlock()
	select {
	case g.recs <- fetched{err: err}:
	default:
	}
}

// Records iterates over the records of the consumer's partitions as they arrive (in offset
// order within each partition), until ctx ends, the loop stops, the consumer is closed (Close,
// from any goroutine, ends it with ErrClosed at once: records fetched and not yet yielded are
// dropped, and read again by the partitions' next owner), or the
// consumer fails (PermissionDenied, ErrGroupsUnsupported: yielded once, last). A partition's
// stream error is yielded too, and the iteration goes on: after ErrUnavailable the partition
// is read again from where it stopped, after ErrOutOfRange from its start (the records between
// were removed by retention); after other errors it is read again once reassigned. A record's
// position counts as processed when the loop body returns for it. One goroutine at a time.
func (g *GroupConsumer) Records(ctx context.Context) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		// ended yields why the consumer stopped: its failure, or ErrClosed.
		ended := func() {
			g.mu.Lock()
			err := g.err
			g.mu.Unlock()
			if err == nil {
				err = ErrClosed
			}
			yield(Record{}, err)
		}
		for {
			select {
			case <-g.stop:
				// Closed, maybe from another goroutine: end now, not once the heartbeat
				// loop has (a heartbeat in flight lasts up to its timeout).
				ended()
				return
			default:
			}
			select {
			case <-ctx.Done():
				yield(Record{}, ctx.Err())
				return
			case <-g.stop:
				ended()
				return
			case <-g.done:
				ended()
				return
			case f := <-g.recs:
				if f.f == nil {
					yield(Record{}, f.err)
					return
				}
				g.mu.Lock()
				current := g.held[f.f.tp] == f.f && !f.f.released && !g.closed
				if current && f.err == nil {
					g.inflight, g.inflightDone = f.f, make(chan struct{})
				}
				g.mu.Unlock()
				if !current {
					continue // from a partition given up (or being given up) since: its next owner reads it
				}
				if f.err != nil {
					if !yield(Record{}, f.err) {
						return
					}
					continue
				}
				if !yield(f.rec, nil) {
					g.advance(f)
					return
				}
				g.advance(f)
			}
		}
	}
}

// advance records that f's record was processed.
func (g *GroupConsumer) advance(f fetched) {
	g.mu.Lock()
	if g.held[f.f.tp] == f.f {
		g.position[f.f.tp] = f.rec.Offset + 1
	}
	if g.inflight == f.f {
		g.inflight = nil
		close(g.inflightDone)
	}
	g.mu.Unlock()
}

// Commit commits the positions of the records processed in every partition the consumer
// holds. Errors: the server's (a *transport.Error with a GroupError detail when the
// coordinator refused: the partitions moved, and their next owner re-reads from the last
// committed position). A commit still being retried when a heartbeat learns that the member
// was removed or fenced ends with that refusal (UNKNOWN_MEMBER, STALE_MEMBER_EPOCH): its
// positions are the removed member's, never committed after it rejoined.
func (g *GroupConsumer) Commit(ctx context.Context) error {
	return g.commit(ctx, g.heldPartitions())
}

func (g *GroupConsumer) commit(ctx context.Context, tps []TopicPartition) error {
	g.mu.Lock()
	req := &logv1.CommitOffsetsRequest{Group: g.group, MemberId: g.member, MemberEpoch: g.epoch}
	for _, tp := range tps {
		if pos, ok := g.position[tp]; ok {
			req.Offsets = append(req.Offsets, &logv1.OffsetToCommit{Topic: tp.Topic, Partition: tp.Partition, Offset: pos})
		}
	}
	removed := g.removed
	g.mu.Unlock()
	if len(req.Offsets) == 0 || req.MemberId == "" {
		return nil
	}
	// Retried as a read: a resend stores the same offsets again, as long as the member is
	// the one that read them (removed ends the retries otherwise).
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(removed, func() { cancel(context.Cause(removed)) })
	defer stop()
	err := g.c.onGroupsLeader(ctx, false, func(ctx context.Context, gc transport.GroupsClient) error {
		_, err := gc.CommitOffsets(ctx, req)
		return err
	})
	if err != nil && removed.Err() != nil {
		// The coordinator's refusal, which ended the commit: UNKNOWN_MEMBER or
		// STALE_MEMBER_EPOCH, as if it had refused the commit itself.
		return context.Cause(removed)
	}
	switch transport.GroupErrorReason(err) {
	case logv1.GroupError_REASON_UNKNOWN_MEMBER, logv1.GroupError_REASON_STALE_MEMBER_EPOCH:
		// Removed or fenced (a new leader): learn it from a heartbeat now, not at the next
		// interval, so that fewer records are read whose positions cannot be committed.
		g.poke()
	}
	return err
}

// Assignment returns the partitions the consumer holds now.
func (g *GroupConsumer) Assignment() []TopicPartition {
	tps := g.heldPartitions()
	sortTPs(tps)
	return tps
}

// Close stops heartbeating, stops reading, commits the positions processed, calls OnRevoked
// with the partitions it held and leaves the group, so that its partitions move at once. Idempotent; it returns the commit's or the
// leave's error. Safe to call while another goroutine iterates Records, which then ends with
// ErrClosed at once; Close itself first waits for a heartbeat in flight (10 s at most).
func (g *GroupConsumer) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.mu.Unlock()
	close(g.stop)
	<-g.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Give every partition up as a revocation does (commit, then OnRevoked), then leave.
	err := g.release(ctx, g.heldPartitions(), true, false)
	g.mu.Lock()
	req := &logv1.HeartbeatRequest{Group: g.group, MemberId: g.member, MemberEpoch: -1}
	g.mu.Unlock()
	if req.MemberId != "" {
		// A leave of a member the coordinator no longer knows succeeds: resending it is
		// harmless.
		lerr := g.c.onGroupsLeader(ctx, false, func(ctx context.Context, gc transport.GroupsClient) error {
			_, err := gc.Heartbeat(ctx, req)
			return err
		})
		err = errors.Join(err, lerr)
	}
	return err
}

func wireTPs(tps []TopicPartition) []*logv1.TopicPartitions {
	sortTPs(tps)
	var out []*logv1.TopicPartitions
	for _, tp := range tps {
		if n := len(out); n == 0 || out[n-1].Topic != tp.Topic {
			out = append(out, &logv1.TopicPartitions{Topic: tp.Topic})
		}
		out[len(out)-1].Partitions = append(out[len(out)-1].Partitions, tp.Partition)
	}
	return out
}

func fromWireTPs(ws []*logv1.TopicPartitions) []TopicPartition {
	var out []TopicPartition
	for _, w := range ws {
		for _, p := range w.GetPartitions() {
			out = append(out, TopicPartition{w.GetTopic(), p})
		}
	}
	return out
}

func sortTPs(tps []TopicPartition) {
	slices.SortFunc(tps, func(a, b TopicPartition) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(int64(a.Partition) - int64(b.Partition))
	})
}
