package fsm

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
	"unicode/utf8"
)

// Consumer groups' committed offsets: replicated state, like the topic catalog. A group's
// membership and assignment are not here: the leader's coordinator keeps them in memory
// (server/groups.go) and checks members before it proposes their commits; what every replica
// holds, answers identically and keeps in snapshots is where each group stands.
//
// Command kinds 8-10 of version 3 carry a JSON body (decoded strictly, see format_v3.go), and
// the command header's timestamp, the proposer's (leader's) clock, stamps every offset a
// commit stores:
//
//	kind 8 (commit offsets): {"group":G,"offsets":[{"topic":T,"topic_id":UUID,"partition":P,
//	                          "offset":O,"metadata":M},...]}
//	kind 9 (delete group):   {"group":G}
//	kind 10 (expire offsets):{"groups":[G,...],"before":MS}
//
// A commit is all or nothing: an offset for a topic that does not exist (by ID: a topic
// deleted and created again is another topic) or a partition it lacks refuses the command.
// Expiry removes a named group's offsets when its newest commit is older than before (Unix
// ms): the leader decides which groups are empty and old enough, every replica applies the
// same decision. Deleting a topic removes every group's offsets for it.
const (
	commandKindCommitOffsets = 8
	commandKindDeleteGroup   = 9
	commandKindExpireOffsets = 10
)

// Command kinds of the consumer groups.
const (
	// KindCommitOffsets stores a group's committed offsets.
	KindCommitOffsets CommandKind = commandKindCommitOffsets
	// KindDeleteGroup removes a group's committed offsets.
	KindDeleteGroup CommandKind = commandKindDeleteGroup
	// KindExpireOffsets removes the offsets of groups whose newest commit is too old.
	KindExpireOffsets CommandKind = commandKindExpireOffsets
)

// Group limits, checked by the proposer and again by Apply (the same on every replica).
const (
	// MaxGroupNameLen bounds a group name (Kafka has no limit; 255 keeps names printable).
	MaxGroupNameLen = 255
	// MaxOffsetMetadata bounds a committed offset's metadata (Kafka's
	// offset.metadata.max.bytes default: 4096).
	MaxOffsetMetadata = 4096
	// MaxGroups caps the groups with committed offsets.
	MaxGroups = 100_000
)

// Group errors. As Apply results they are deterministic.
var (
	// ErrUnknownGroup: the group has no committed offsets.
	ErrUnknownGroup = errors.New("fsm: unknown group")
	// ErrInvalidGroup: a bad group name or offset metadata.
	ErrInvalidGroup = errors.New("fsm: invalid group request")
	// ErrTooManyGroups: MaxGroups groups have committed offsets, and a commit would add one.
	// A limit of the cluster's, not a bad request: the server answers ResourceExhausted.
	ErrTooManyGroups = errors.New("fsm: too many groups")
)

// OffsetCommit is one offset of a commit: the next offset the group will read in a partition.
type OffsetCommit struct {
	Topic     string  `json:"topic"`
	TopicID   TopicID `json:"topic_id"`
	Partition uint32  `json:"partition"`
	Offset    uint64  `json:"offset"`
	Metadata  string  `json:"metadata,omitempty"`
}

// CommittedOffset is a group's committed offset in one partition, as every replica holds it.
type CommittedOffset struct {
	OffsetCommit
	// CommitTime is when the leader proposed the commit (Unix ms).
	CommitTime int64 `json:"commit_time"`
}

// GroupInfo summarises a group with committed offsets.
type GroupInfo struct {
	Name string
	// Offsets is how many partitions the group has an offset for.
	Offsets int
	// LastCommit is the newest commit's time (Unix ms).
	LastCommit int64
}

// CommitResult is the Apply result of a commit command.
type CommitResult struct {
	Group   string
	Offsets int
}

// GroupResult is the Apply result of a delete group command.
type GroupResult struct {
	Group string
}

// ExpireResult is the Apply result of an expire command: the groups whose offsets were removed.
type ExpireResult struct {
	Expired []string
}

type (
	commitOffsetsBody struct {
		Group   string         `json:"group"`
		Offsets []OffsetCommit `json:"offsets"`
	}
	deleteGroupBody struct {
		Group string `json:"group"`
	}
	expireOffsetsBody struct {
		Groups []string `json:"groups"`
		Before int64    `json:"before"`
	}
)

// groupState is one group's committed offsets as snapshots keep it.
type groupState struct {
	Name    string            `json:"name"`
	Offsets []CommittedOffset `json:"offsets"`
}

type offsetKey struct {
	topic TopicID
	part  uint32
}

// groupTable holds every group's offsets. Written by the Apply goroutine under Machine.gmu,
// read under its read lock.
type groupTable map[string]map[offsetKey]CommittedOffset

// ValidateGroupName checks a group name: 1 to MaxGroupNameLen bytes of UTF-8 without control
// characters. Errors: ErrInvalidGroup, wrapped.
func ValidateGroupName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty group name", ErrInvalidGroup)
	case len(name) > MaxGroupNameLen:
		return fmt.Errorf("%w: group name of %d bytes, limit %d", ErrInvalidGroup, len(name), MaxGroupNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: group name is not UTF-8", ErrInvalidGroup)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: group name %q has a control character", ErrInvalidGroup, name)
		}
	}
	return nil
}

// applyGroup applies a group command. m.gmu is taken here.
func (m *Machine) applyGroup(cmd Command) (any, error) {
	switch cmd.Kind {
	case KindCommitOffsets:
		var b commitOffsetsBody
		if err := decodeStrict(cmd.Meta, &b); err != nil {
			return nil, err
		}
		if err := ValidateGroupName(b.Group); err != nil {
			return nil, err
		}
		if len(b.Offsets) == 0 {
			return nil, fmt.Errorf("%w: a commit without offsets", ErrInvalidGroup)
		}
		cat := m.cat.Load()
		for _, o := range b.Offsets {
			e := cat.byID[o.TopicID]
			switch {
			case e == nil || e.Name != o.Topic:
				return nil, fmt.Errorf("%w: %q (ID %s)", ErrUnknownTopic, o.Topic, o.TopicID)
			case o.Partition >= e.Partitions:
				return nil, fmt.Errorf("%w: topic %q has %d partitions, no partition %d", ErrUnknownPartition, e.Name, e.Partitions, o.Partition)
			case len(o.Metadata) > MaxOffsetMetadata:
				return nil, fmt.Errorf("%w: offset metadata of %d bytes, limit %d", ErrInvalidGroup, len(o.Metadata), MaxOffsetMetadata)
			}
		}
		m.gmu.Lock()
		defer m.gmu.Unlock()
		g := m.groups[b.Group]
		if g == nil {
			if len(m.groups) >= MaxGroups {
				return nil, fmt.Errorf("%w: %d groups have offsets, the limit", ErrTooManyGroups, MaxGroups)
			}
			g = map[offsetKey]CommittedOffset{}
			m.groups[b.Group] = g
		}
		for _, o := range b.Offsets {
			g[offsetKey{o.TopicID, o.Partition}] = CommittedOffset{OffsetCommit: o, CommitTime: cmd.Timestamp}
		}
		return CommitResult{Group: b.Group, Offsets: len(b.Offsets)}, nil
	case KindDeleteGroup:
		var b deleteGroupBody
		if err := decodeStrict(cmd.Meta, &b); err != nil {
			return nil, err
		}
		m.gmu.Lock()
		defer m.gmu.Unlock()
		if m.groups[b.Group] == nil {
			return nil, fmt.Errorf("%w: %q", ErrUnknownGroup, b.Group)
		}
		delete(m.groups, b.Group)
		return GroupResult(b), nil
	case KindExpireOffsets:
		var b expireOffsetsBody
		if err := decodeStrict(cmd.Meta, &b); err != nil {
			return nil, err
		}
		m.gmu.Lock()
		defer m.gmu.Unlock()
		res := ExpireResult{}
		for _, name := range b.Groups {
			g := m.groups[name]
			if g == nil || lastCommit(g) >= b.Before {
				continue
			}
			delete(m.groups, name)
			res.Expired = append(res.Expired, name)
		}
		return res, nil
	}
	return nil, fmt.Errorf("%w: kind %d", ErrInvalidCommand, cmd.Kind)
}

func lastCommit(g map[offsetKey]CommittedOffset) int64 {
	var last int64
	for _, o := range g {
		last = max(last, o.CommitTime)
	}
	return last
}

// dropTopicOffsets removes every group's offsets for a deleted topic (Apply goroutine).
func (m *Machine) dropTopicOffsets(id TopicID) {
	m.gmu.Lock()
	defer m.gmu.Unlock()
	for name, g := range m.groups {
		for k := range g {
			if k.topic == id {
				delete(g, k)
			}
		}
		if len(g) == 0 {
			delete(m.groups, name)
		}
	}
}

// groupStates returns the table as snapshots keep it: groups by name, offsets by topic name
// and partition.
func (m *Machine) groupStates() []groupState {
	m.gmu.RLock()
	defer m.gmu.RUnlock()
	out := make([]groupState, 0, len(m.groups))
	for name, g := range m.groups {
		out = append(out, groupState{Name: name, Offsets: sortedOffsets(g)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func sortedOffsets(g map[offsetKey]CommittedOffset) []CommittedOffset {
	out := make([]CommittedOffset, 0, len(g))
	for _, o := range g {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// restoreGroups replaces the table with a snapshot's (Apply goroutine).
func (m *Machine) restoreGroups(st []groupState) {
	t := make(groupTable, len(st))
	for _, g := range st {
		offs := make(map[offsetKey]CommittedOffset, len(g.Offsets))
		for _, o := range g.Offsets {
			offs[offsetKey{o.TopicID, o.Partition}] = o
		}
		t[g.Name] = offs
	}
	m.gmu.Lock()
	m.groups = t
	m.gmu.Unlock()
}

// Groups returns every group with committed offsets, by name. Safe for concurrent use.
func (m *Machine) Groups() []GroupInfo {
	m.gmu.RLock()
	defer m.gmu.RUnlock()
	out := make([]GroupInfo, 0, len(m.groups))
	for name, g := range m.groups {
		out = append(out, GroupInfo{Name: name, Offsets: len(g), LastCommit: lastCommit(g)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// GroupOffsets returns a group's committed offsets by topic name and partition, and whether
// the group has any. Safe for concurrent use.
func (m *Machine) GroupOffsets(group string) ([]CommittedOffset, bool) {
	m.gmu.RLock()
	defer m.gmu.RUnlock()
	g := m.groups[group]
	if g == nil {
		return nil, false
	}
	return sortedOffsets(g), true
}

// CommittedOffset returns a group's committed offset in a topic's partition ("" means the
// default topic). Safe for concurrent use.
func (m *Machine) CommittedOffset(group, topic string, partition uint32) (CommittedOffset, bool) {
	t, err := m.Topic(topic)
	if err != nil {
		return CommittedOffset{}, false
	}
	m.gmu.RLock()
	defer m.gmu.RUnlock()
	o, ok := m.groups[group][offsetKey{t.ID, partition}]
	return o, ok
}

// GroupOffset names an offset to commit by topic name ("" means the default topic).
type GroupOffset struct {
	Topic     string
	Partition uint32
	Offset    uint64
	Metadata  string
	// TopicID, when not zero, is the topic the offset was read in, as the caller checked it:
	// when the topic of that name is another by now (deleted and created again), the commit
	// is refused (ErrTopicReplaced) instead of storing a position of the old one in the new one.
	TopicID TopicID
}

// CommitOffsets stores a group's offsets through c, stamped with this node's clock. The
// caller (the leader's coordinator) has checked that the committer may commit them.
//
// Errors: ErrInvalidGroup, ErrUnknownTopic, ErrUnknownPartition; the proposer's errors, as for
// ProposeAppend.
func (m *Machine) CommitOffsets(ctx context.Context, c Proposer, group string, offsets []GroupOffset) (CommitResult, error) {
	b, err := m.commitBody(group, offsets)
	if err != nil {
		return CommitResult{}, err
	}
	res, err := m.proposeMeta(ctx, c, KindCommitOffsets, b)
	if err != nil {
		return CommitResult{}, err
	}
	r, ok := res.(CommitResult)
	if !ok {
		return CommitResult{}, fmt.Errorf("fsm: unexpected apply result %T for a commit", res)
	}
	return r, nil
}

func (m *Machine) commitBody(group string, offsets []GroupOffset) (commitOffsetsBody, error) {
	if err := ValidateGroupName(group); err != nil {
		return commitOffsetsBody{}, err
	}
	if len(offsets) == 0 {
		return commitOffsetsBody{}, fmt.Errorf("%w: a commit without offsets", ErrInvalidGroup)
	}
	b := commitOffsetsBody{Group: group, Offsets: make([]OffsetCommit, len(offsets))}
	seen := make(map[offsetKey]struct{}, len(offsets))
	for i, o := range offsets {
		t, err := m.Topic(o.Topic)
		if err != nil {
			return commitOffsetsBody{}, err
		}
		// One offset per partition: of two, which one the group would keep is nobody's choice.
		if _, dup := seen[offsetKey{t.ID, o.Partition}]; dup {
			return commitOffsetsBody{}, fmt.Errorf("%w: topic %q partition %d is named twice in one commit", ErrInvalidGroup, t.Name, o.Partition)
		}
		seen[offsetKey{t.ID, o.Partition}] = struct{}{}
		if o.TopicID != (TopicID{}) && o.TopicID != t.ID {
			return commitOffsetsBody{}, fmt.Errorf("%w: topic %q (ID %s, now %s)", ErrTopicReplaced, t.Name, o.TopicID, t.ID)
		}
		if o.Partition >= t.Partitions {
			return commitOffsetsBody{}, fmt.Errorf("%w: topic %q has %d partitions, no partition %d", ErrUnknownPartition, t.Name, t.Partitions, o.Partition)
		}
		if len(o.Metadata) > MaxOffsetMetadata {
			return commitOffsetsBody{}, fmt.Errorf("%w: offset metadata of %d bytes, limit %d", ErrInvalidGroup, len(o.Metadata), MaxOffsetMetadata)
		}
		b.Offsets[i] = OffsetCommit{Topic: t.Name, TopicID: t.ID, Partition: o.Partition, Offset: o.Offset, Metadata: o.Metadata}
	}
	return b, nil
}

// DeleteGroup removes a group's committed offsets on every replica. Errors: ErrUnknownGroup;
// the proposer's.
func (m *Machine) DeleteGroup(ctx context.Context, c Proposer, group string) error {
	if _, ok := m.GroupOffsets(group); !ok {
		return fmt.Errorf("%w: %q", ErrUnknownGroup, group)
	}
	_, err := m.proposeMeta(ctx, c, KindDeleteGroup, deleteGroupBody{Group: group})
	return err
}

// ExpireOffsets removes, on every replica, the offsets of those groups whose newest commit is
// older than before. The leader calls it with the groups that have no members. Errors: the
// proposer's.
func (m *Machine) ExpireOffsets(ctx context.Context, c Proposer, groups []string, before time.Time) (ExpireResult, error) {
	var out ExpireResult
	for len(groups) > 0 {
		// Commands stay far below MaxCommandBytes: at most 1,000 names of 255 bytes.
		n := min(len(groups), 1000)
		res, err := m.proposeMeta(ctx, c, KindExpireOffsets, expireOffsetsBody{Groups: groups[:n], Before: before.UnixMilli()})
		if err != nil {
			return out, err
		}
		r, ok := res.(ExpireResult)
		if !ok {
			return out, fmt.Errorf("fsm: unexpected apply result %T for an expiry", res)
		}
		out.Expired = append(out.Expired, r.Expired...)
		groups = groups[n:]
	}
	return out, nil
}
