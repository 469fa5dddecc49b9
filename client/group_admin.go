package client

import (
	"context"
	"fmt"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// GroupSummary is a consumer group as ListGroups reports it.
type GroupSummary struct {
	Name string
	// State is "empty" (no members), "stable" or "reconciling" (partitions are moving).
	State   string
	Members int
	// Offsets is how many partitions the group has committed offsets for.
	Offsets int
}

// GroupMember is a member of a group as DescribeGroup reports it.
type GroupMember struct {
	ID, ClientID string
	Epoch        int32
	Topics       []string
	// Assignment is what the member may consume now; Target what it gets once every move
	// completed.
	Assignment, Target []TopicPartition
}

// GroupPartition is one partition of a group as DescribeGroup reports it.
type GroupPartition struct {
	TopicPartition
	// Member owns the partition now ("" for none).
	Member string
	// Committed is the group's committed offset; HasCommitted is false when it committed none.
	Committed    uint64
	HasCommitted bool
	// LogEnd is the partition's next offset on the leader; Lag is LogEnd minus the committed
	// offset (or the partition's start).
	LogEnd, Lag uint64
}

// GroupDescription is what DescribeGroup answers.
type GroupDescription struct {
	Name, State string
	Epoch       int32
	Members     []GroupMember
	Partitions  []GroupPartition
}

// onGroupsLeader runs op against the leader's Groups service. write says whether a resend of
// op could do harm after an attempt whose outcome is unknown (DeleteGroup, an executed reset,
// a join that makes the coordinator create a member): then such an attempt is not resent and
// the error wraps ErrOutcomeUnknown, as for any write (the retry table in the README). Reads,
// heartbeats of a member and commits, whose resend stores the same thing again, are retried.
func (c *Client) onGroupsLeader(ctx context.Context, write bool, op func(context.Context, transport.GroupsClient) error) error {
	return groupsErr(c.onLeader(ctx, write, func(ctx context.Context, tc transport.Client) error {
		gc, ok := tc.(transport.GroupsClient)
		if !ok {
			return fmt.Errorf("%w: transport %T has no Groups client", ErrGroupsUnsupported, tc)
		}
		return op(ctx, gc)
	}))
}

// ListGroups lists the consumer groups with members or committed offsets. Errors: the
// server's (PermissionDenied), ErrGroupsUnsupported.
func (c *Client) ListGroups(ctx context.Context) ([]GroupSummary, error) {
	var out []GroupSummary
	err := c.onGroupsLeader(ctx, false, func(ctx context.Context, gc transport.GroupsClient) error {
		res, err := gc.ListGroups(ctx, &logv1.ListGroupsRequest{})
		if err != nil {
			return err
		}
		out = out[:0]
		for _, g := range res.GetGroups() {
			out = append(out, GroupSummary{Name: g.GetName(), State: g.GetState(), Members: int(g.GetMembers()), Offsets: int(g.GetOffsets())})
		}
		return nil
	})
	return out, err
}

// DescribeGroup reports a group's members, partitions, committed offsets and lag. Errors: a
// *transport.Error with a GroupError detail (REASON_UNKNOWN_GROUP) for a group with neither
// members nor offsets; ErrGroupsUnsupported.
func (c *Client) DescribeGroup(ctx context.Context, group string) (GroupDescription, error) {
	var d GroupDescription
	err := c.onGroupsLeader(ctx, false, func(ctx context.Context, gc transport.GroupsClient) error {
		res, err := gc.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: group})
		if err != nil {
			return err
		}
		d = GroupDescription{Name: res.GetGroup(), State: res.GetState(), Epoch: res.GetGroupEpoch()}
		for _, m := range res.GetMembers() {
			d.Members = append(d.Members, GroupMember{ID: m.GetMemberId(), ClientID: m.GetClientId(), Epoch: m.GetMemberEpoch(), Topics: m.GetTopics(),
				Assignment: fromWireTPs(m.GetAssignment()), Target: fromWireTPs(m.GetTarget())})
		}
		for _, p := range res.GetPartitions() {
			d.Partitions = append(d.Partitions, GroupPartition{TopicPartition: TopicPartition{p.GetTopic(), p.GetPartition()}, Member: p.GetMemberId(),
				Committed: p.GetCommittedOffset(), HasCommitted: p.CommittedOffset != nil, LogEnd: p.GetLogEndOffset(), Lag: p.GetLag()})
		}
		return nil
	})
	return d, err
}

// DeleteGroup removes a group's committed offsets. Errors: a *transport.Error with a
// GroupError detail: REASON_GROUP_NOT_EMPTY while it has members, REASON_UNKNOWN_GROUP;
// ErrOutcomeUnknown when the request may have deleted the group but its answer was lost (it is
// not resent: a resend would answer REASON_UNKNOWN_GROUP for a delete that happened).
func (c *Client) DeleteGroup(ctx context.Context, group string) error {
	return c.onGroupsLeader(ctx, true, func(ctx context.Context, gc transport.GroupsClient) error {
		_, err := gc.DeleteGroup(ctx, &logv1.DeleteGroupRequest{Group: group})
		return err
	})
}

// ResetVerb is one of Kafka's offset reset verbs.
type ResetVerb int

// The reset verbs.
const (
	// ResetToEarliest: the partition's start.
	ResetToEarliest ResetVerb = iota + 1
	// ResetToLatest: the partition's end.
	ResetToLatest
	// ResetToOffset: ResetRequest.Offset.
	ResetToOffset
	// ResetToDatetime: the first record at or after ResetRequest.Time.
	ResetToDatetime
	// ResetByDuration: the first record at or after now (this client's clock) minus
	// ResetRequest.Duration.
	ResetByDuration
	// ResetShiftBy: the committed offset (or the start) plus ResetRequest.Shift.
	ResetShiftBy
)

// ResetRequest asks for new committed offsets of a group's partitions of one topic.
type ResetRequest struct {
	Topic string
	// Partitions limits the reset (empty: every partition).
	Partitions []uint32
	Verb       ResetVerb
	Offset     uint64
	Time       time.Time
	Duration   time.Duration
	Shift      int64
	// Execute stores the offsets; false: a dry run.
	Execute bool
}

// OffsetReset is a partition's planned (or executed) reset.
type OffsetReset struct {
	TopicPartition
	Previous    uint64
	HasPrevious bool
	New         uint64
}

// ResetGroupOffsets plans new offsets for a group's partitions (each clamped to the
// partition's start and end) and, with Execute, stores them. It reports whether they were
// stored. Errors: ErrInvalidOption for a missing verb; a *transport.Error with a GroupError
// detail (REASON_GROUP_NOT_EMPTY: Execute while the group has members); ErrUnknownTopic
// wrapped in the server's NotFound (also when, with Execute, the topic was deleted and
// created again under its name between the plan and the store: nothing is stored, as the
// plan was made in the old topic); with Execute, ErrOutcomeUnknown when the offsets may have
// been stored but the answer was lost. An executed reset is never resent after such an answer
// (ResetShiftBy is relative to the committed offset: a resend would shift twice); check the
// offsets with DescribeGroup before resetting again. A dry run is retried as a read.
func (c *Client) ResetGroupOffsets(ctx context.Context, group string, r ResetRequest) ([]OffsetReset, bool, error) {
	req := &logv1.ResetOffsetsRequest{Group: group, Topic: r.Topic, Partitions: r.Partitions, Execute: r.Execute}
	switch r.Verb {
	case ResetToEarliest:
		req.Verb = &logv1.ResetOffsetsRequest_ToEarliest{ToEarliest: true}
	case ResetToLatest:
		req.Verb = &logv1.ResetOffsetsRequest_ToLatest{ToLatest: true}
	case ResetToOffset:
		req.Verb = &logv1.ResetOffsetsRequest_ToOffset{ToOffset: r.Offset}
	case ResetToDatetime:
		req.Verb = &logv1.ResetOffsetsRequest_ToDatetimeMs{ToDatetimeMs: millisAtOrAfter(r.Time)}
	case ResetByDuration:
		// As Kafka's tool does: now minus the duration, by this client's clock.
		req.Verb = &logv1.ResetOffsetsRequest_ToDatetimeMs{ToDatetimeMs: millisAtOrAfter(time.Now().Add(-r.Duration))}
	case ResetShiftBy:
		req.Verb = &logv1.ResetOffsetsRequest_ShiftBy{ShiftBy: r.Shift}
	default:
		return nil, false, fmt.Errorf("%w: a reset needs a verb", ErrInvalidOption)
	}
	var out []OffsetReset
	var executed bool
	err := c.onGroupsLeader(ctx, r.Execute, func(ctx context.Context, gc transport.GroupsClient) error {
		res, err := gc.ResetOffsets(ctx, req)
		if err != nil {
			return err
		}
		out, executed = out[:0], res.GetExecuted()
		for _, o := range res.GetOffsets() {
			out = append(out, OffsetReset{TopicPartition: TopicPartition{o.GetTopic(), o.GetPartition()}, Previous: o.GetPreviousOffset(),
				HasPrevious: o.PreviousOffset != nil, New: o.GetNewOffset()})
		}
		return nil
	})
	return out, executed, err
}

// millisAtOrAfter returns the first Unix millisecond at or after t: records carry
// millisecond timestamps, and one at the millisecond below a time between two is before it
// (time.Time.UnixMilli rounds down).
func millisAtOrAfter(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}
