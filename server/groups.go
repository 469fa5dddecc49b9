package server

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// Consumer groups: the coordinator (see GROUPS.md). The Raft leader coordinates every group:
// membership, target assignment and who owns which partition live in its memory only; the
// committed offsets are replicated (fsm/groups.go). A node that is not the leader, or that
// leads in a new term, starts with no members: members rejoin.

// Defaults of the group settings (Config.GroupSessionTimeout, Config.GroupOffsetsRetention).
const (
	// DefaultGroupSessionTimeout is Kafka's group.consumer.session.timeout.ms default.
	DefaultGroupSessionTimeout = 45 * time.Second
	// DefaultGroupOffsetsRetention is Kafka's offsets.retention.minutes default (7 days).
	DefaultGroupOffsetsRetention = 7 * 24 * time.Hour
	// maxHeartbeatInterval caps the interval a member is told to heartbeat at (Kafka's
	// group.consumer.heartbeat.interval.ms default).
	maxHeartbeatInterval = 5 * time.Second
	// maxGroupMembers bounds one group's members (as Kafka's group.max.size does).
	maxGroupMembers = 10_000
	// maxCoordinatedMembers bounds the members of all groups together, and so the groups the
	// coordinator holds in memory (a group has at least one member; fsm.MaxGroups, the same
	// number, bounds the groups with committed offsets): beyond it a join is refused
	// ResourceExhausted. It bounds the coordinator's memory whatever the clients do, where a
	// per-client cap would not: client ids are the clients' own choice, and without TLS every
	// client is anonymous.
	maxCoordinatedMembers = 100_000
	// maxSubscribedTopics bounds one member's subscription.
	maxSubscribedTopics = 1_000
	// maxMemberIDLen and maxClientIDLen bound a member's id and its client id, in bytes: room
	// for Kafka's forms (the coordinator makes 32 hex digits; a Java consumer's client.id
	// defaults to consumer-<group.id>-<n>, a classic member id is <client.id>-<UUID>), far
	// below what a request may carry. Like group names, they are UTF-8 without control
	// characters: `group describe` prints them.
	maxMemberIDLen = 512
	maxClientIDLen = 512
)

// errGroupLimit: a join refused because its group, or the coordinator, holds as many members
// as it may (ResourceExhausted on the wire, as DESIGN.md's limits: the request is well formed,
// and a member that leaves makes room). Nothing was changed.
var errGroupLimit = errors.New("server: consumer group limit reached")

// validateMemberIDs checks a heartbeat's member id and client id (either may be empty).
// Errors: fsm.ErrInvalidGroup, wrapped.
func validateMemberIDs(member, client string) error {
	for _, f := range []struct {
		what, v string
		limit   int
	}{{"member id", member, maxMemberIDLen}, {"client id", client, maxClientIDLen}} {
		switch {
		case len(f.v) > f.limit:
			return fmt.Errorf("%w: %s of %d bytes, limit %d", fsm.ErrInvalidGroup, f.what, len(f.v), f.limit)
		case !utf8.ValidString(f.v):
			return fmt.Errorf("%w: %s is not UTF-8", fsm.ErrInvalidGroup, f.what)
		case strings.ContainsFunc(f.v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			return fmt.Errorf("%w: %s %q has a control character", fsm.ErrInvalidGroup, f.what, f.v)
		}
	}
	return nil
}

// Coordinator errors. On the wire: FailedPrecondition with a log.v1.GroupError detail naming
// the reason (toWire).
var (
	// ErrUnknownMember: the coordinator does not know the member (removed after its session
	// timeout, or a new leader): it rejoins with epoch 0.
	ErrUnknownMember = errors.New("server: unknown group member")
	// ErrStaleMemberEpoch: a heartbeat or commit with an epoch under which the member does not
	// own what it names.
	ErrStaleMemberEpoch = errors.New("server: stale member epoch")
	// ErrNotOwner: a commit for a partition the member does not own.
	ErrNotOwner = errors.New("server: partition not owned by the member")
	// ErrGroupNotEmpty: the operation needs a group without members.
	ErrGroupNotEmpty = errors.New("server: group has members")
	// errGroupBusy: an operation on a group without members (delete, reset, a commit without a
	// member) is being proposed; a join, or another such operation, waits for it by retrying.
	// Nothing was done (Unavailable with the NotProposed detail: the SDK retries).
	errGroupBusy = errors.New("server: consumer group is being changed by another request")
)

// groupError is a coordinator's refusal: which of the errors above, for which group and member,
// and the member's current epoch.
type groupError struct {
	kind   error
	group  string
	member string
	epoch  int32
	msg    string
}

func (e *groupError) Error() string { return e.kind.Error() + ": " + e.msg }
func (e *groupError) Unwrap() error { return e.kind }

// detail returns the wire detail of e.
func (e *groupError) detail() *logv1.GroupError {
	reason := logv1.GroupError_REASON_UNSPECIFIED
	switch e.kind {
	case ErrUnknownMember:
		reason = logv1.GroupError_REASON_UNKNOWN_MEMBER
	case ErrStaleMemberEpoch:
		reason = logv1.GroupError_REASON_STALE_MEMBER_EPOCH
	case ErrNotOwner:
		reason = logv1.GroupError_REASON_NOT_OWNER
	case ErrGroupNotEmpty:
		reason = logv1.GroupError_REASON_GROUP_NOT_EMPTY
	}
	return &logv1.GroupError{Reason: reason, Group: e.group, MemberId: e.member, MemberEpoch: e.epoch}
}

func groupErrorf(kind error, group, member string, epoch int32, format string, args ...any) error {
	return &groupError{kind: kind, group: group, member: member, epoch: epoch, msg: fmt.Sprintf(format, args...)}
}

// leaderView is what the coordinator needs of the consensus.
type leaderView interface {
	Status() consensus.Status
	Leader() (consensus.Server, bool)
}

// coordinator is the leader's group coordinator. Its methods are safe for concurrent use.
type coordinator struct {
	node    leaderView
	sm      *fsm.Machine
	session time.Duration
	now     func() time.Time
	logger  *slog.Logger

	mu sync.Mutex
	// term is the Raft term the state below belongs to: a new term (or not leading) clears it.
	term uint64
	// since is when this node began coordinating in term.
	since  time.Time
	groups map[string]*group
	// members counts the members of all groups.
	members int
	// emptySince is when a group lost its last member in this term.
	emptySince map[string]time.Time
	// admin holds the groups an operation of whileEmpty is changing: none joins them meanwhile.
	// A new term does not clear it: the operation's own end does.
	admin map[string]struct{}
	// epochs is the highest member epoch this coordinator has answered (a new term does not
	// clear it). A member that joins starts above it, so that an earlier incarnation of its
	// ID (replaced by a join under the ID, or removed and then joined again) is fenced: its
	// heartbeats and commits carry an epoch the new one never has.
	epochs int32
}

// group is one group's membership and assignment.
type group struct {
	name string
	// epoch is the group epoch: it grows whenever the target assignment changes.
	epoch   int32
	members map[string]*member
	// target is the assignor's latest result, member → partitions.
	target map[string]partitionSet
	// owner says which member owns each partition now: granted to it and not yet released.
	owner map[topicPartition]string
	// partitions are the subscribed topics' partition counts the target was computed with.
	partitions map[string]uint32
}

// member is one member of a group.
type member struct {
	id, client string
	epoch      int32
	topics     []string // sorted
	// owned maps each partition the member owns to its grant.
	owned map[topicPartition]grant
	// gone are partitions the member still holds of a topic deleted since they were granted
	// (perhaps created again under its name): they are answered no more, so that the member
	// drops its position there, and released once it no longer reports them.
	gone partitionSet
	// sent is the assignment last answered, sorted; answered says whether one was.
	sent     []topicPartition
	answered bool
	deadline time.Time
	// releaseBy, when set, is when the member must have released the partitions it was told
	// to give up (revoked, or of a deleted topic): a session timeout after it was first told.
	releaseBy time.Time
}

// holdsRevoked reports whether m still holds a partition it was told to give up: one not in
// its target, or of a deleted topic.
func (m *member) holdsRevoked(target partitionSet) bool {
	if len(m.gone) > 0 {
		return true
	}
	for p := range m.owned {
		if !target[p] {
			return true
		}
	}
	return false
}

// grant is how a member came to own a partition: the member epoch it was granted in, and the
// ID its topic had then (a topic deleted and created again under its name is another topic).
type grant struct {
	epoch int32
	topic fsm.TopicID
}

func newCoordinator(node leaderView, sm *fsm.Machine, session time.Duration, logger *slog.Logger) *coordinator {
	return &coordinator{node: node, sm: sm, session: session, now: time.Now, logger: logger,
		groups: map[string]*group{}, emptySince: map[string]time.Time{}, admin: map[string]struct{}{}}
}

// heartbeatInterval is what members are told.
func (c *coordinator) heartbeatInterval() time.Duration {
	return min(maxHeartbeatInterval, max(c.session/3, time.Millisecond))
}

// leadLocked checks that this node leads and resets the state when the term changed. c.mu
// must be held. Errors: *consensus.NotLeaderError (forwarded by the service), or
// consensus.ErrNoLeader.
func (c *coordinator) leadLocked() error {
	st := c.node.Status()
	if st.State != "leader" {
		c.resetLocked(0)
		if leader, ok := c.node.Leader(); ok && leader.ID != "" {
			return &consensus.NotLeaderError{Leader: leader}
		}
		return consensus.ErrNoLeader
	}
	if st.Term != c.term {
		c.resetLocked(st.Term)
		c.logger.Info("coordinating consumer groups: members rejoin", "term", st.Term)
	}
	return nil
}

func (c *coordinator) resetLocked(term uint64) {
	if c.term == term && term == 0 {
		return
	}
	c.term, c.since = term, c.now()
	clear(c.groups)
	c.members = 0
	clear(c.emptySince)
}

// heartbeatRequest is a heartbeat as the coordinator reads it.
type heartbeatRequest struct {
	group, member, client string
	epoch                 int32
	topics                []string // nil: unchanged
	owned                 partitionSet
	// mayAct, when set, says whether the caller may act for an existing member subscribed to
	// topics (keep, remove or replace it): the service's consume check on each of them.
	mayAct func(topics []string) error
}

// heartbeatResult is the coordinator's answer.
type heartbeatResult struct {
	member     string
	epoch      int32
	assignment []topicPartition
	pending    bool
}

// heartbeat joins (epoch 0), keeps (epoch > 0) or removes (epoch -1) a member and answers its
// assignment. Errors: ErrUnknownMember, ErrStaleMemberEpoch (as *groupError),
// fsm.ErrInvalidGroup, the leadership errors of leadLocked.
func (c *coordinator) heartbeat(req heartbeatRequest) (heartbeatResult, error) {
	if err := fsm.ValidateGroupName(req.group); err != nil {
		return heartbeatResult{}, err
	}
	if err := validateMemberIDs(req.member, req.client); err != nil {
		return heartbeatResult{}, err
	}
	if len(req.topics) > maxSubscribedTopics {
		return heartbeatResult{}, fmt.Errorf("%w: %d topics in a subscription, limit %d", fsm.ErrInvalidGroup, len(req.topics), maxSubscribedTopics)
	}
	for _, t := range req.topics {
		if err := fsm.ValidateTopicName(t); err != nil {
			return heartbeatResult{}, fmt.Errorf("%w: subscription: %w", fsm.ErrInvalidGroup, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.leadLocked(); err != nil {
		return heartbeatResult{}, err
	}
	now := c.now()
	g := c.groups[req.group]
	if g != nil && req.mayAct != nil {
		if m := g.members[req.member]; m != nil {
			if err := req.mayAct(m.topics); err != nil {
				return heartbeatResult{}, err
			}
		}
	}
	switch {
	case req.epoch == -1:
		if g != nil && g.members[req.member] != nil {
			c.removeLocked(g, req.member, "left")
		}
		return heartbeatResult{member: req.member, epoch: -1}, nil
	case req.epoch == 0:
		if len(req.topics) == 0 {
			return heartbeatResult{}, fmt.Errorf("%w: a join needs the topics the member subscribes to", fsm.ErrInvalidGroup)
		}
		if _, busy := c.admin[req.group]; busy {
			return heartbeatResult{}, fmt.Errorf("%w: group %q: retry the join", errGroupBusy, req.group)
		}
		if g != nil && g.members[req.member] != nil {
			// A rejoin (the member lost its state): it starts over, owning nothing. Removing
			// a group's last member drops the group, so it is looked up again below.
			c.removeLocked(g, req.member, "rejoined")
			g = c.groups[req.group]
		}
		// The limits, before anything changes (a rejoin's removal above aside).
		switch {
		case g != nil && len(g.members) >= maxGroupMembers:
			return heartbeatResult{}, fmt.Errorf("%w: group %q has %d members, the limit; retry later", errGroupLimit, req.group, maxGroupMembers)
		case c.members >= maxCoordinatedMembers:
			return heartbeatResult{}, fmt.Errorf("%w: the consumer groups have %d members together (in %d groups), the most this coordinator holds; retry later",
				errGroupLimit, maxCoordinatedMembers, len(c.groups))
		}
		if g == nil {
			g = &group{name: req.group, members: map[string]*member{}, target: map[string]partitionSet{}, owner: map[topicPartition]string{}}
			c.groups[req.group] = g
			delete(c.emptySince, req.group)
		}
		id := req.member
		if id == "" {
			id = newMemberID()
		}
		if c.epochs > math.MaxInt32/2 {
			c.epochs = 0 // after a billion joins: room for the members' own epochs to grow
		}
		// Its epochs start above every one answered here: see coordinator.epochs.
		g.members[id] = &member{id: id, client: req.client, epoch: c.epochs, owned: map[topicPartition]grant{}, gone: partitionSet{}}
		c.members++
		req.member = id
		c.logger.Debug("group member joined", "group", req.group, "member", id, "client", req.client)
	default:
		var m *member
		if g != nil {
			m = g.members[req.member]
		}
		if m == nil {
			return heartbeatResult{}, groupErrorf(ErrUnknownMember, req.group, req.member, 0, "member %q is not in group %q: rejoin", req.member, req.group)
		}
		if req.epoch != m.epoch {
			return heartbeatResult{}, groupErrorf(ErrStaleMemberEpoch, req.group, req.member, m.epoch, "member %q sent epoch %d, its epoch is %d: rejoin", req.member, req.epoch, m.epoch)
		}
	}
	m := g.members[req.member]
	m.deadline = now.Add(c.session)
	if req.client != "" {
		m.client = req.client
	}
	changed := false
	if req.topics != nil {
		ts := slices.Clone(req.topics)
		slices.Sort(ts)
		ts = slices.Compact(ts)
		if !slices.Equal(ts, m.topics) {
			m.topics, changed = ts, true
		}
	}
	if c.refreshLocked(g, changed) {
		c.logger.Debug("group rebalanced", "group", g.name, "epoch", g.epoch, "members", len(g.members))
	}
	return c.reconcileLocked(g, m, req.owned, req.epoch > 0), nil
}

// refreshLocked recomputes g's target assignment when its members or subscriptions changed
// (force) or a subscribed topic's partition count did, and reports whether the target changed.
func (c *coordinator) refreshLocked(g *group, force bool) bool {
	parts := map[string]uint32{}
	for _, m := range g.members {
		for _, t := range m.topics {
			if _, ok := parts[t]; ok {
				continue
			}
			if tp, err := c.sm.Topic(t); err == nil {
				parts[t] = tp.Partitions
			} else {
				parts[t] = 0
			}
		}
	}
	if !force && maps.Equal(parts, g.partitions) {
		return false
	}
	g.partitions = parts
	ids := slices.Sorted(maps.Keys(g.members))
	subs := make([]subscription, len(ids))
	for i, id := range ids {
		subs[i] = subscription{member: id, topics: g.members[id].topics}
	}
	target := assign(g.target, subs, parts)
	if maps.EqualFunc(target, g.target, func(a, b partitionSet) bool { return maps.Equal(a, b) }) {
		return false
	}
	g.target = target
	g.epoch++
	return true
}

// reconcileLocked moves g toward its target for member m: partitions m no longer reports
// (after a revocation) are released, free partitions of its target granted; it answers m's
// assignment, bumping its epoch when the assignment changed. reported says whether owned is
// the member's report (a heartbeat, not a join).
func (c *coordinator) reconcileLocked(g *group, m *member, owned partitionSet, reported bool) heartbeatResult {
	target := g.target[m.id]
	for p, gr := range m.owned {
		if gr.topic != c.topicID(p.topic) {
			// Its topic was deleted since it was granted: the member's position there means
			// nothing in a topic created again under the name. Revoked, whatever the target.
			delete(m.owned, p)
			m.gone[p] = true
		}
	}
	for p := range m.gone {
		if !reported || !owned[p] {
			delete(m.gone, p)
			delete(g.owner, p)
		}
	}
	for p := range m.owned {
		if !target[p] && (!reported || !owned[p]) {
			// Revoked, and the member says it no longer holds it: the next owner may have it.
			delete(m.owned, p)
			delete(g.owner, p)
		}
	}
	var granted []topicPartition
	for _, p := range target.sorted() {
		if _, taken := g.owner[p]; !taken {
			g.owner[p] = m.id
			granted = append(granted, p)
		}
	}
	var assignment []topicPartition
	for p := range m.owned {
		if target[p] {
			assignment = append(assignment, p)
		}
	}
	assignment = append(assignment, granted...)
	slices.SortFunc(assignment, compareTP)
	if !m.answered || !slices.Equal(assignment, m.sent) {
		m.epoch++
		m.sent, m.answered = assignment, true
		c.epochs = max(c.epochs, m.epoch)
	}
	for _, p := range granted {
		m.owned[p] = grant{epoch: m.epoch, topic: c.topicID(p.topic)}
	}
	switch {
	case !m.holdsRevoked(target):
		m.releaseBy = time.Time{}
	case m.releaseBy.IsZero():
		m.releaseBy = c.now().Add(c.session)
	}
	return heartbeatResult{member: m.id, epoch: m.epoch, assignment: assignment, pending: len(assignment) < len(target)}
}

// topicID returns the ID of the topic named topic, or the zero ID when there is none.
func (c *coordinator) topicID(topic string) fsm.TopicID {
	t, err := c.sm.Topic(topic)
	if err != nil {
		return fsm.TopicID{}
	}
	return t.ID
}

// removeLocked removes a member: its partitions become free for their next owners.
func (c *coordinator) removeLocked(g *group, id, why string) {
	m := g.members[id]
	for p := range m.owned {
		if g.owner[p] == id {
			delete(g.owner, p)
		}
	}
	for p := range m.gone {
		if g.owner[p] == id {
			delete(g.owner, p)
		}
	}
	delete(g.members, id)
	c.members--
	delete(g.target, id)
	c.logger.Debug("group member removed", "group", g.name, "member", id, "reason", why)
	if len(g.members) == 0 {
		delete(c.groups, g.name)
		c.emptySince[g.name] = c.now()
		return
	}
	c.refreshLocked(g, true)
}

// expireMembers removes the members whose session timed out at now, or that still hold
// partitions they were told to give up a session timeout before now, and returns how many. It
// also forgets the groups that emptied a session timeout or more before now: expirable no
// longer holds them back, and a client joining and leaving ever new groups must not grow
// emptySince for the rest of the term.
func (c *coordinator) expireMembers(now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leadLocked() != nil {
		return 0 // not leading: leadLocked dropped every member
	}
	n := 0
	for _, g := range c.groups {
		for _, id := range slices.Sorted(maps.Keys(g.members)) {
			m := g.members[id]
			switch {
			case now.After(m.deadline):
				c.removeLocked(g, id, "session timeout")
				n++
			case !m.releaseBy.IsZero() && now.After(m.releaseBy):
				// It heartbeats but keeps what it was told to give up, and the next owner
				// waits for it: as KIP-848's rebalance timeout, it is fenced.
				c.removeLocked(g, id, "rebalance timeout: revoked partitions not released")
				n++
			}
		}
	}
	maps.DeleteFunc(c.emptySince, func(_ string, t time.Time) bool { return now.Sub(t) >= c.session })
	return n
}

// checkCommit checks that member (with epoch) may commit offsets for partitions of group (a
// commit without a member goes through whileEmpty). Errors: *groupError, the leadership errors.
func (c *coordinator) checkCommit(group, memberID string, epoch int32, parts []topicPartition) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.leadLocked(); err != nil {
		return err
	}
	var m *member
	g := c.groups[group]
	if g != nil {
		m = g.members[memberID]
	}
	if m == nil {
		return groupErrorf(ErrUnknownMember, group, memberID, 0, "member %q is not in group %q: rejoin", memberID, group)
	}
	for _, p := range parts {
		gr, ok := m.owned[p]
		switch {
		case !ok || g.owner[p] != memberID:
			return groupErrorf(ErrNotOwner, group, memberID, m.epoch, "member %q does not own %s/%d", memberID, p.topic, p.partition)
		case gr.topic != c.topicID(p.topic):
			// Its position is in a topic deleted since: it must not land in the one created
			// again under the name.
			return groupErrorf(ErrNotOwner, group, memberID, m.epoch, "member %q owns %s/%d of a topic deleted since: it was revoked", memberID, p.topic, p.partition)
		case epoch > m.epoch || epoch < gr.epoch:
			return groupErrorf(ErrStaleMemberEpoch, group, memberID, m.epoch, "member %q commits %s/%d with epoch %d; it owns it since epoch %d (now %d)", memberID, p.topic, p.partition, epoch, gr.epoch, m.epoch)
		}
	}
	return nil
}

// whileEmpty runs fn (a Raft proposal: delete, reset, a commit without a member) while group has
// no members. No member joins the group until fn returns; the coordinator's lock is not held
// meanwhile, so other groups' heartbeats go on. Errors: *groupError (ErrGroupNotEmpty),
// errGroupBusy (another such operation on the group is running), the leadership errors, fn's.
func (c *coordinator) whileEmpty(group string, fn func() error) error {
	c.mu.Lock()
	if err := c.emptyLocked(group); err != nil {
		c.mu.Unlock()
		return err
	}
	c.admin[group] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.admin, group)
		c.mu.Unlock()
	}()
	return fn()
}

// emptyLocked checks that group may be changed as a group without members. c.mu is held.
func (c *coordinator) emptyLocked(group string) error {
	if err := c.leadLocked(); err != nil {
		return err
	}
	if g := c.groups[group]; g != nil {
		return groupErrorf(ErrGroupNotEmpty, group, "", 0, "group %q has %d members: only they commit, and it cannot be deleted or reset", group, len(g.members))
	}
	if _, busy := c.admin[group]; busy {
		return fmt.Errorf("%w: group %q", errGroupBusy, group)
	}
	return c.rejoiningLocked(group)
}

// rejoiningLocked refuses (ErrGroupNotEmpty) to treat a group without members as empty while
// members this coordinator never saw may still rejoin it: the group's offsets were last
// committed before this node began coordinating (a leader change, a new term, a restart), and
// that was less than a session timeout ago, so members of the previous coordinator may be
// alive, between two heartbeats. Kafka's coordinator answers COORDINATOR_LOAD_IN_PROGRESS while
// it loads a group's membership; ours has none to load, so it waits the longest a live member
// can go without a heartbeat. A group committed to since (by a member that joined here, or by
// an administrator while it was empty) is not held back. c.mu is held.
func (c *coordinator) rejoiningLocked(group string) error {
	left := c.session - c.now().Sub(c.since)
	if left <= 0 {
		return nil
	}
	offs, ok := c.sm.GroupOffsets(group)
	if !ok {
		return nil
	}
	for _, o := range offs {
		if o.CommitTime >= c.since.UnixMilli() {
			return nil
		}
	}
	return groupErrorf(ErrGroupNotEmpty, group, "", 0,
		"group %q may still have members: this server became its coordinator less than the session timeout (%v) ago and they may rejoin; retry in %v",
		group, c.session, left.Round(time.Millisecond))
}

// expirable returns the groups with committed offsets that have had no member for at least the
// session timeout on this leader (members of a previous leader have had the time to rejoin),
// as of now.
func (c *coordinator) expirable(now time.Time) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leadLocked() != nil || now.Sub(c.since) < c.session {
		return nil
	}
	var out []string
	for _, gi := range c.sm.Groups() {
		if c.groups[gi.Name] != nil {
			continue
		}
		if t, ok := c.emptySince[gi.Name]; ok && now.Sub(t) < c.session {
			continue
		}
		out = append(out, gi.Name)
	}
	return out
}

// memberView is a member as DescribeGroup shows it.
type memberView struct {
	id, client string
	epoch      int32
	topics     []string
	assignment []topicPartition
	target     []topicPartition
}

// groupView is a group as the coordinator knows it.
type groupView struct {
	exists  bool
	epoch   int32
	state   string
	members []memberView
	owner   map[topicPartition]string
}

// describe returns a group's membership. Errors: the leadership errors.
func (c *coordinator) describe(name string) (groupView, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.leadLocked(); err != nil {
		return groupView{}, err
	}
	g := c.groups[name]
	if g == nil {
		return groupView{state: "empty"}, nil
	}
	v := groupView{exists: true, epoch: g.epoch, state: "stable", owner: maps.Clone(g.owner)}
	for _, id := range slices.Sorted(maps.Keys(g.members)) {
		m := g.members[id]
		mv := memberView{id: id, client: m.client, epoch: m.epoch, topics: slices.Clone(m.topics), assignment: slices.Clone(m.sent), target: g.target[id].sorted()}
		if !slices.Equal(mv.assignment, mv.target) {
			v.state = "reconciling"
		}
		v.members = append(v.members, mv)
	}
	return v, nil
}

// summaries returns the state and member count of every group with members. Errors: the
// leadership errors.
func (c *coordinator) summaries() (map[string]groupView, error) {
	c.mu.Lock()
	names := slices.Collect(maps.Keys(c.groups))
	c.mu.Unlock()
	sort.Strings(names)
	out := map[string]groupView{}
	for _, n := range names {
		v, err := c.describe(n)
		if err != nil {
			return nil, err
		}
		if v.exists {
			out[n] = v
		}
	}
	return out, nil
}

func newMemberID() string { return randomHex(16) }
