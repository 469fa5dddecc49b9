package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/server/telemetry"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

var _ transport.GroupsService = (*service)(nil)

// groupCall runs a Groups call on the leader: here when this node leads, otherwise forwarded
// to the leader's Groups service. While no leader is known it waits, up to leaderWait. write
// says whether the call changes the group state (see onLeader).
func groupCall[Res any](ctx context.Context, s *service, write bool, local func() (*Res, error), remote func(context.Context, transport.GroupsClient) (*Res, error)) (*Res, error) {
	if s.sm == nil || s.groups == nil {
		return nil, transport.Errorf(transport.Unimplemented, "this server has no consumer groups")
	}
	return onLeader(ctx, s, write, local, remote)
}

func toPartitionSet(tps []*logv1.TopicPartitions) partitionSet {
	out := partitionSet{}
	for _, t := range tps {
		for _, p := range t.GetPartitions() {
			out[topicPartition{t.GetTopic(), p}] = true
		}
	}
	return out
}

func wirePartitions(ps []topicPartition) []*logv1.TopicPartitions {
	var out []*logv1.TopicPartitions
	for _, p := range ps {
		if n := len(out); n == 0 || out[n-1].Topic != p.topic {
			out = append(out, &logv1.TopicPartitions{Topic: p.topic})
		}
		last := out[len(out)-1]
		last.Partitions = append(last.Partitions, p.partition)
	}
	return out
}

// Heartbeat joins, keeps or removes a group member (see log.v1.Groups).
func (s *service) Heartbeat(ctx context.Context, req *logv1.HeartbeatRequest) (*logv1.HeartbeatResponse, error) {
	// The bound before the work it bounds: each topic costs an authorization (here, and again
	// on the leader this may forward to), and a record-sized request names ~10^5 of them.
	if n := len(req.GetTopics()); n > maxSubscribedTopics {
		return nil, toWire(fmt.Errorf("%w: %d topics in a subscription, limit %d", fsm.ErrInvalidGroup, n, maxSubscribedTopics))
	}
	for _, t := range req.GetTopics() {
		if err := s.authorizeTopic(ctx, t, authz.ActionConsume); err != nil {
			return nil, err
		}
	}
	if err := s.authorizeGroup(ctx, req.GetGroup(), authz.ActionConsume); err != nil {
		return nil, err
	}
	return groupCall(ctx, s, false, func() (*logv1.HeartbeatResponse, error) {
		hr := heartbeatRequest{group: req.GetGroup(), member: req.GetMemberId(), client: req.GetClientId(), epoch: req.GetMemberEpoch(), owned: toPartitionSet(req.GetOwned()),
			// Whoever names a member (a heartbeat, a leave, a rejoin under its ID) may consume
			// what it is subscribed to: the member's own client always may.
			mayAct: func(topics []string) error {
				for _, t := range topics {
					if err := s.authorizeTopic(ctx, t, authz.ActionConsume); err != nil {
						return err
					}
				}
				return nil
			}}
		if len(req.GetTopics()) > 0 {
			hr.topics = req.GetTopics()
		}
		res, err := s.groups.heartbeat(hr)
		if err != nil {
			return nil, err
		}
		return &logv1.HeartbeatResponse{MemberId: res.member, MemberEpoch: res.epoch, Assignment: wirePartitions(res.assignment),
			HeartbeatIntervalMs: uint32(s.groups.heartbeatInterval().Milliseconds()), SessionTimeoutMs: uint32(s.groups.session.Milliseconds()),
			Pending: res.pending}, nil
	}, func(ctx context.Context, c transport.GroupsClient) (*logv1.HeartbeatResponse, error) {
		return c.Heartbeat(ctx, req)
	})
}

// CommitOffsets stores a group's offsets, fenced by the coordinator (see log.v1.Groups).
func (s *service) CommitOffsets(ctx context.Context, req *logv1.CommitOffsetsRequest) (*logv1.CommitOffsetsResponse, error) {
	offs := make([]fsm.GroupOffset, len(req.GetOffsets()))
	parts := make([]topicPartition, len(req.GetOffsets()))
	for i, o := range req.GetOffsets() {
		offs[i] = fsm.GroupOffset{Topic: o.GetTopic(), Partition: o.GetPartition(), Offset: o.GetOffset(), Metadata: o.GetMetadata()}
		parts[i] = topicPartition{o.GetTopic(), o.GetPartition()}
		if err := s.authorizeTopic(ctx, o.GetTopic(), authz.ActionConsume); err != nil {
			return nil, err
		}
	}
	if err := s.authorizeGroup(ctx, req.GetGroup(), authz.ActionConsume); err != nil {
		return nil, err
	}
	return groupCall(ctx, s, true, func() (*logv1.CommitOffsetsResponse, error) {
		if err := fsm.ValidateGroupName(req.GetGroup()); err != nil {
			return nil, err
		}
		// The topics as they are before the checks: a topic deleted and created again under
		// its name after them is another topic, which the positions were not read in (the
		// proposal refuses it, ErrTopicReplaced).
		for i := range offs {
			if t, err := s.sm.Topic(offs[i].Topic); err == nil {
				offs[i].TopicID = t.ID
			}
		}
		commit := func() error { // after the member's checks: a fenced member learns it first
			if err := s.offsetsWithinLogs(ctx, offs); err != nil {
				return err
			}
			_, err := s.sm.CommitOffsets(ctx, s.node, req.GetGroup(), offs)
			return err
		}
		var err error
		if req.GetMemberId() == "" {
			err = s.groups.whileEmpty(req.GetGroup(), commit) // an administrator's
		} else if err = s.groups.checkCommit(req.GetGroup(), req.GetMemberId(), req.GetMemberEpoch(), parts); err == nil {
			if s.commitChecked != nil {
				s.commitChecked()
			}
			if err = commit(); errors.Is(err, fsm.ErrTopicReplaced) {
				// As checkCommit answers for a partition of a topic deleted since its grant.
				err = groupErrorf(ErrNotOwner, req.GetGroup(), req.GetMemberId(), 0, "member %q owns a partition of a topic deleted since: it was revoked (%v)", req.GetMemberId(), err)
			}
		}
		if err != nil {
			return nil, err
		}
		return &logv1.CommitOffsetsResponse{}, nil
	}, func(ctx context.Context, c transport.GroupsClient) (*logv1.CommitOffsetsResponse, error) {
		return c.CommitOffsets(ctx, req)
	})
}

// offsetsWithinLogs refuses a commit of an offset beyond its partition's next offset: a group
// reading from there would wait for that offset and never deliver the records written before it
// (a committed offset is the next record to read, so at most the partition's next offset). The
// leader may not yet have applied records another replica served: it catches up before it
// refuses. Partitions it does not know are left to the commit's own checks.
func (s *service) offsetsWithinLogs(ctx context.Context, offs []fsm.GroupOffset) error {
	beyond := func() (fsm.GroupOffset, uint64, bool) {
		for _, o := range offs {
			f, _, err := s.sm.Partition(o.Topic, o.Partition)
			if err != nil {
				continue
			}
			if _, next := f.Bounds(); o.Offset > next {
				return o, next, true
			}
		}
		return fsm.GroupOffset{}, 0, false
	}
	if _, _, ok := beyond(); !ok || !s.caughtUp(ctx) {
		return nil // or: cannot tell (the commit's own errors, or a refusal by a later leader, follow)
	}
	if o, next, ok := beyond(); ok {
		return fmt.Errorf("%w: offset %d of topic %q partition %d is beyond the partition's end (next offset %d): a committed offset is the next record to read",
			errInvalid, o.Offset, o.Topic, o.Partition, next)
	}
	return nil
}

// FetchOffsets answers a group's committed offsets, from the leader (which has applied every
// commit it acknowledged).
func (s *service) FetchOffsets(ctx context.Context, req *logv1.FetchOffsetsRequest) (*logv1.FetchOffsetsResponse, error) {
	if err := s.authorizeGroup(ctx, req.GetGroup(), authz.ActionConsume); err != nil {
		return nil, err
	}
	return groupCall(ctx, s, false, func() (*logv1.FetchOffsetsResponse, error) {
		if err := s.groupRead(ctx, req.GetGroup()); err != nil {
			return nil, err
		}
		offs, _ := s.sm.GroupOffsets(req.GetGroup())
		res := &logv1.FetchOffsetsResponse{}
		for _, o := range offs {
			if len(req.GetTopics()) > 0 && !slices.Contains(req.GetTopics(), o.Topic) {
				continue
			}
			if s.authorizeTopic(ctx, o.Topic, authz.ActionConsume) != nil {
				continue // only the topics the caller may consume
			}
			res.Offsets = append(res.Offsets, &logv1.CommittedOffset{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset, Metadata: o.Metadata, CommitTimeMs: o.CommitTime})
		}
		return res, nil
	}, func(ctx context.Context, c transport.GroupsClient) (*logv1.FetchOffsetsResponse, error) {
		return c.FetchOffsets(ctx, req)
	})
}

// groupRead readies the leader to answer from its applied group state: group must be a valid
// name (an empty one was answered "unknown group"), and the leader catches up first, since a
// new one may not have applied the commits of the previous term yet (the answer would miss
// them: a group reported unknown, an offset or lag from before, a delete authorized without
// the topics of the offsets it removes). On a follower it fails with NotLeader, which
// groupCall forwards.
func (s *service) groupRead(ctx context.Context, group string) error {
	if err := fsm.ValidateGroupName(group); err != nil {
		return err
	}
	return s.node.LinearizableRead(ctx)
}

// ListGroups lists the groups with members (the coordinator's) or committed offsets.
func (s *service) ListGroups(ctx context.Context, req *logv1.ListGroupsRequest) (*logv1.ListGroupsResponse, error) {
	return groupCall(ctx, s, false, func() (*logv1.ListGroupsResponse, error) {
		if err := s.node.LinearizableRead(ctx); err != nil { // see groupRead
			return nil, err
		}
		views, err := s.groups.summaries()
		if err != nil {
			return nil, err
		}
		byName := map[string]*logv1.GroupSummary{}
		for name, v := range views {
			byName[name] = &logv1.GroupSummary{Name: name, State: v.state, Members: uint32(len(v.members))}
		}
		for _, gi := range s.sm.Groups() {
			g := byName[gi.Name]
			if g == nil {
				g = &logv1.GroupSummary{Name: gi.Name, State: "empty"}
				byName[gi.Name] = g
			}
			g.Offsets = uint32(gi.Offsets)
		}
		res := &logv1.ListGroupsResponse{}
		for _, name := range slices.Sorted(maps.Keys(byName)) {
			if s.authorizeGroup(ctx, name, authz.ActionConsume) != nil {
				continue // only the groups the caller may consume (with group checks on)
			}
			res.Groups = append(res.Groups, byName[name])
		}
		return res, nil
	}, func(ctx context.Context, c transport.GroupsClient) (*logv1.ListGroupsResponse, error) {
		return c.ListGroups(ctx, req)
	})
}

// DescribeGroup reports a group's members, partitions, committed offsets and lag.
func (s *service) DescribeGroup(ctx context.Context, req *logv1.DescribeGroupRequest) (*logv1.DescribeGroupResponse, error) {
	if err := s.authorizeGroup(ctx, req.GetGroup(), authz.ActionConsume); err != nil {
		return nil, err
	}
	return groupCall(ctx, s, false, func() (*logv1.DescribeGroupResponse, error) {
		if err := s.groupRead(ctx, req.GetGroup()); err != nil {
			return nil, err
		}
		v, err := s.groups.describe(req.GetGroup())
		if err != nil {
			return nil, err
		}
		offs, hasOffsets := s.sm.GroupOffsets(req.GetGroup())
		if !v.exists && !hasOffsets {
			return nil, fmt.Errorf("%w: %q has neither members nor committed offsets", fsm.ErrUnknownGroup, req.GetGroup())
		}
		res := &logv1.DescribeGroupResponse{Group: req.GetGroup(), State: v.state, GroupEpoch: v.epoch}
		// Only the topics the caller may consume: of each member, its subscription and
		// partitions in them; a member with none of them is left out.
		mayConsume := map[string]bool{}
		visible := func(topic string) bool {
			ok, known := mayConsume[topic]
			if !known {
				ok = s.authorizeTopic(ctx, topic, authz.ActionConsume) == nil
				mayConsume[topic] = ok
			}
			return ok
		}
		visibleParts := func(ps []topicPartition) []topicPartition {
			return slices.DeleteFunc(slices.Clone(ps), func(p topicPartition) bool { return !visible(p.topic) })
		}
		parts := partitionSet{}
		for _, m := range v.members {
			topics := slices.DeleteFunc(slices.Clone(m.topics), func(t string) bool { return !visible(t) })
			if len(topics) == 0 {
				continue
			}
			target := visibleParts(m.target)
			res.Members = append(res.Members, &logv1.GroupMember{MemberId: m.id, ClientId: m.client, MemberEpoch: m.epoch, Topics: topics,
				Assignment: wirePartitions(visibleParts(m.assignment)), Target: wirePartitions(target)})
			for _, p := range target {
				parts[p] = true
			}
		}
		committed := map[topicPartition]uint64{}
		for _, o := range offs {
			p := topicPartition{o.Topic, o.Partition}
			committed[p] = o.Offset
			parts[p] = true
		}
		for _, p := range parts.sorted() {
			if !visible(p.topic) {
				continue
			}
			gp := &logv1.GroupPartition{Topic: p.topic, Partition: p.partition, MemberId: v.owner[p]}
			off, ok := committed[p]
			if ok {
				gp.CommittedOffset = &off
			}
			gp.LogEndOffset, gp.Lag = s.partitionLag(p, off, ok)
			res.Partitions = append(res.Partitions, gp)
		}
		return res, nil
	}, func(ctx context.Context, c transport.GroupsClient) (*logv1.DescribeGroupResponse, error) {
		return c.DescribeGroup(ctx, req)
	})
}

// partitionLag returns p's next offset and the records a group whose committed offset in p is
// committed (none: !ok) has yet to consume there: from the committed offset, or from the
// lowest retained one when none is committed or retention removed it.
func (s *service) partitionLag(p topicPartition, committed uint64, ok bool) (end, lag uint64) {
	var lowest uint64
	if f, _, err := s.sm.Partition(p.topic, p.partition); err == nil {
		lowest, end = f.Bounds()
	}
	from := lowest
	if ok {
		from = max(committed, lowest)
	}
	if end > from {
		lag = end - from
	}
	return end, lag
}

// groupLags is what the commitlog.group.lag metric reports: on the leader, each group's lag
// in each partition it committed an offset in; nothing on other nodes.
func (s *service) groupLags() []telemetry.GroupLag {
	if s.sm == nil || s.node.Status().State != "leader" {
		return nil
	}
	var out []telemetry.GroupLag
	for _, gi := range s.sm.Groups() {
		offs, _ := s.sm.GroupOffsets(gi.Name)
		for _, o := range offs {
			_, lag := s.partitionLag(topicPartition{o.Topic, o.Partition}, o.Offset, true)
			out = append(out, telemetry.GroupLag{Group: gi.Name, Topic: o.Topic, Partition: o.Partition, Lag: lag})
		}
	}
	return out
}

// DeleteGroup removes a group's committed offsets; refused while it has members.
func (s *service) DeleteGroup(ctx context.Context, req *logv1.DeleteGroupRequest) (*logv1.DeleteGroupResponse, error) {
	if err := s.authorizeGroup(ctx, req.GetGroup(), authz.ActionAdmin); err != nil {
		return nil, err
	}
	return groupCall(ctx, s, true, func() (*logv1.DeleteGroupResponse, error) {
		if err := s.groupRead(ctx, req.GetGroup()); err != nil {
			return nil, err
		}
		// Deleting a group deletes its offsets: admin on each of their topics.
		offs, _ := s.sm.GroupOffsets(req.GetGroup())
		for _, o := range offs {
			if err := s.authorizeTopic(ctx, o.Topic, authz.ActionAdmin); err != nil {
				return nil, err
			}
		}
		err := s.groups.whileEmpty(req.GetGroup(), func() error {
			return s.sm.DeleteGroup(ctx, s.node, req.GetGroup())
		})
		if err != nil {
			return nil, err
		}
		return &logv1.DeleteGroupResponse{}, nil
	}, func(ctx context.Context, c transport.GroupsClient) (*logv1.DeleteGroupResponse, error) {
		return c.DeleteGroup(ctx, req)
	})
}

// ResetOffsets plans, and with execute stores, new offsets for a group (Kafka's reset verbs).
func (s *service) ResetOffsets(ctx context.Context, req *logv1.ResetOffsetsRequest) (*logv1.ResetOffsetsResponse, error) {
	if err := s.authorizeTopic(ctx, req.GetTopic(), authz.ActionAdmin); err != nil {
		return nil, err
	}
	if err := s.authorizeGroup(ctx, req.GetGroup(), authz.ActionAdmin); err != nil {
		return nil, err
	}
	return groupCall(ctx, s, req.GetExecute(), func() (*logv1.ResetOffsetsResponse, error) {
		if err := s.node.LinearizableRead(ctx); err != nil {
			return nil, err
		}
		if err := fsm.ValidateGroupName(req.GetGroup()); err != nil {
			return nil, err
		}
		plan, topicID, err := s.resetPlan(req, time.Now())
		if err != nil {
			return nil, err
		}
		res := &logv1.ResetOffsetsResponse{Offsets: plan}
		if !req.GetExecute() {
			return res, nil
		}
		if s.resetPlanned != nil {
			s.resetPlanned()
		}
		// The offsets name the topic they were planned in: a topic deleted and created again
		// under its name since is another topic, whose records the plan never saw; storing the
		// old topic's positions there would skip (or replay) the new one's records. The commit
		// refuses it (ErrTopicReplaced, an unknown topic: NotFound).
		offs := make([]fsm.GroupOffset, len(plan))
		for i, p := range plan {
			offs[i] = fsm.GroupOffset{Topic: p.Topic, Partition: p.Partition, Offset: p.NewOffset, TopicID: topicID}
		}
		err = s.groups.whileEmpty(req.GetGroup(), func() error {
			_, err := s.sm.CommitOffsets(ctx, s.node, req.GetGroup(), offs)
			return err
		})
		if err != nil {
			return nil, err
		}
		res.Executed = true
		return res, nil
	}, func(ctx context.Context, c transport.GroupsClient) (*logv1.ResetOffsetsResponse, error) {
		return c.ResetOffsets(ctx, req)
	})
}

// resetPlan computes a reset's new offsets from this node's applied state, clamped to each
// partition's [start, end], and returns them with the ID of the topic they were planned in
// (read once, first: a topic replaced during the plan makes that ID stale, so the commit
// refuses the plan rather than store it in the new topic).
func (s *service) resetPlan(req *logv1.ResetOffsetsRequest, now time.Time) ([]*logv1.OffsetReset, fsm.TopicID, error) {
	t, err := s.sm.Topic(req.GetTopic())
	if err != nil {
		return nil, fsm.TopicID{}, err
	}
	// Each partition once, in order, however often the request names it.
	parts := slices.Compact(slices.Sorted(slices.Values(req.GetPartitions())))
	if len(parts) == 0 {
		for p := range t.Partitions {
			parts = append(parts, p)
		}
	}
	if req.GetVerb() == nil {
		return nil, fsm.TopicID{}, fmt.Errorf("%w: a reset needs a verb (to-earliest, to-latest, to-offset, to-datetime, by-duration, shift-by)", errInvalid)
	}
	var out []*logv1.OffsetReset
	for _, p := range parts {
		f, _, err := s.sm.Partition(t.Name, p)
		if err != nil {
			return nil, fsm.TopicID{}, err
		}
		lowest, next := f.Bounds()
		r := &logv1.OffsetReset{Topic: t.Name, Partition: p}
		cur, hasCur := s.sm.CommittedOffset(req.GetGroup(), t.Name, p)
		if hasCur {
			r.PreviousOffset = &cur.Offset
		}
		var target uint64
		switch v := req.GetVerb().(type) {
		case *logv1.ResetOffsetsRequest_ToEarliest:
			target = lowest
		case *logv1.ResetOffsetsRequest_ToLatest:
			target = next
		case *logv1.ResetOffsetsRequest_ToOffset:
			target = v.ToOffset
		case *logv1.ResetOffsetsRequest_ToDatetimeMs:
			if target, err = f.OffsetForTime(v.ToDatetimeMs); err != nil {
				return nil, fsm.TopicID{}, err
			}
		case *logv1.ResetOffsetsRequest_ByDuration:
			if target, err = f.OffsetForTime(now.Add(-v.ByDuration.AsDuration()).UnixMilli()); err != nil {
				return nil, fsm.TopicID{}, err
			}
		case *logv1.ResetOffsetsRequest_ShiftBy:
			base := lowest
			if hasCur {
				base = cur.Offset
			}
			switch {
			case v.ShiftBy < 0 && uint64(-v.ShiftBy) > base:
				target = 0
			case v.ShiftBy < 0:
				target = base - uint64(-v.ShiftBy)
			default:
				target = base + uint64(v.ShiftBy)
			}
		}
		r.NewOffset = min(max(target, lowest), next)
		out = append(out, r)
	}
	return out, t.ID, nil
}

// ListOffsets answers offsets by position or time from this node's applied state.
func (s *service) ListOffsets(ctx context.Context, req *logv1.ListOffsetsRequest) (*logv1.ListOffsetsResponse, error) {
	if s.sm == nil {
		return nil, transport.Errorf(transport.Unimplemented, "this server has no topics")
	}
	if err := s.authorizeTopic(ctx, req.GetTopic(), authz.ActionConsume); err != nil {
		return nil, err
	}
	if ts, ok := req.GetSpec().(*logv1.ListOffsetsRequest_TimestampMs); ok && ts.TimestampMs < 0 {
		// Kafka's ListOffsets takes -1 for the latest offset and -2 for the earliest; as a
		// time, either is before every record (none is stamped before 1970) and would answer
		// the earliest offset: a Kafka client's "latest" silently read from the start.
		return nil, transport.Errorf(transport.InvalidArgument,
			"timestamp_ms %d is negative: set latest or earliest for those offsets (Kafka's -1 and -2 are not timestamps here)", ts.TimestampMs)
	}
	t, err := s.knownTopic(ctx, req.GetTopic())
	if err != nil {
		return nil, toWire(err)
	}
	// Each partition once, in order, however often the request names it.
	parts := slices.Compact(slices.Sorted(slices.Values(req.GetPartitions())))
	if len(parts) == 0 {
		for p := range t.Partitions {
			parts = append(parts, p)
		}
	}
	res := &logv1.ListOffsetsResponse{}
	for _, p := range parts {
		f, _, err := s.knownPartition(ctx, t.Name, p)
		if err != nil {
			return nil, toWire(err)
		}
		lowest, next := f.Bounds()
		po := &logv1.PartitionOffset{Partition: p}
		switch v := req.GetSpec().(type) {
		case *logv1.ListOffsetsRequest_Earliest:
			po.Offset = lowest
		case *logv1.ListOffsetsRequest_TimestampMs:
			if po.Offset, err = f.OffsetForTime(v.TimestampMs); err != nil {
				return nil, toWire(err)
			}
		default: // latest
			po.Offset = next
		}
		res.Offsets = append(res.Offsets, po)
	}
	return res, nil
}

// groupsLoop removes members whose session timed out and, on the leader, expires the offsets
// of groups that have been empty for the retention, until the server stops.
func (s *Server) groupsLoop() {
	tick := min(max(s.cfg.GroupSessionTimeout/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	every := min(max(s.cfg.GroupOffsetsRetention/10, 100*time.Millisecond), time.Minute)
	var last time.Time
	for {
		select {
		case <-s.stopping:
			return
		case now := <-t.C:
			s.svc.groups.expireMembers(now)
			if now.Sub(last) >= every {
				last = now
				s.expireGroupOffsets(now)
			}
		}
	}
}

// expireGroupOffsets proposes, on the leader, the expiry of the offsets of groups that have no
// members and whose newest commit is older than the retention.
func (s *Server) expireGroupOffsets(now time.Time) {
	groups := s.svc.groups.expirable(now)
	if len(groups) == 0 {
		return
	}
	tctx, tcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer tcancel()
	ctx, cancel := s.untilStopping(tctx) // Close waits for groupsLoop
	defer cancel()
	res, err := s.sm.ExpireOffsets(ctx, s.node, groups, now.Add(-s.cfg.GroupOffsetsRetention))
	if err != nil {
		s.cfg.Logger.Warn("expiring the offsets of empty groups failed; retried later", "err", err)
		return
	}
	if len(res.Expired) > 0 {
		s.cfg.Logger.Info("expired the committed offsets of empty groups", "groups", res.Expired, "retention", s.cfg.GroupOffsetsRetention)
	}
}
