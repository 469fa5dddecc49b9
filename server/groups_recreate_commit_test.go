package server

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestCommitOfRecreatedTopicRefused: a member's commit is checked against the topic it was
// granted (a topic deleted and created again under its name is another topic), then proposed.
// When the topic was deleted and created again between the check and the proposal, the commit
// was stored in the new topic, with a position read in the old one: the group then skipped the
// new topic's first records, never delivered. The offsets now name the topic they were checked
// against, and such a commit is refused (NOT_OWNER, as any commit of a replaced topic).
func TestCommitOfRecreatedTopicRefused(t *testing.T) {
	srv, ctx, gc, recreate := recreatedTopicServer(t)
	m := &wireMember{group: "g", topics: []string{"r"}}
	settleWire(t, ctx, gc, m)

	srv.svc.commitChecked = recreate
	_, err := gc.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g", MemberId: m.id, MemberEpoch: m.epoch,
		Offsets: []*logv1.OffsetToCommit{{Topic: "r", Partition: 0, Offset: 3}}})
	srv.svc.commitChecked = nil
	if transport.GroupErrorReason(err) != logv1.GroupError_REASON_NOT_OWNER {
		t.Errorf("commit of a position in a topic deleted and created again since the commit was checked: %v, want NOT_OWNER", err)
	}
	noOffsetsStored(t, ctx, gc)
}

// recreatedTopicServer starts a server holding topic "r" (one partition, 5 records) and returns
// it, a context for the test, a groups client, and recreate: its first call (a hook run in the
// window between a check and a store) deletes "r" and creates it again with 5 new records; later
// calls do nothing.
func recreatedTopicServer(t *testing.T) (*testServer, context.Context, transport.GroupsClient, func()) {
	t.Helper()
	srv := startServer(t, Config{})
	ctx := ctxT(t, 60*time.Second)
	c := newClient(t, TransportConnect, srv.Addr())
	createTopicT(t, ctx, c, "r", 1)
	fillTopicT(t, ctx, c, "r", 1, 5)
	tc := c.(transport.TopicsClient)
	var once sync.Once
	recreate := func() {
		once.Do(func() {
			if _, err := tc.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "r"}); err != nil {
				t.Error(err)
			}
			if _, err := tc.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "r", Partitions: 1}); err != nil {
				t.Error(err)
			}
			fillTopicT(t, ctx, c, "r", 1, 5)
		})
	}
	return srv, ctx, groupsClient(t, c), recreate
}

// noOffsetsStored checks that group "g" has no committed offsets: the old topic's position 3,
// stored in the new topic, would skip its records 0 to 2.
func noOffsetsStored(t *testing.T, ctx context.Context, gc transport.GroupsClient) {
	t.Helper()
	f, err := gc.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.GetOffsets()) != 0 {
		t.Errorf("offsets of the new topic: %v; the old topic's position 3 skips its records 0 to 2", f.GetOffsets())
	}
}

// TestResetOfRecreatedTopicRefused: group reset --execute plans the offsets from the topic as it
// is, then stores them. When the topic was deleted and created again under its name between the
// plan and the store, the old topic's offsets were stored in the new topic (here position 3: the
// group would skip the new topic's records 0 to 2). The offsets now name the topic they were
// planned in, as a member's commit does, and such a reset is refused: the topic it planned in is
// gone (NotFound, "deleted and created again since"), and nothing is stored.
func TestResetOfRecreatedTopicRefused(t *testing.T) {
	srv, ctx, gc, recreate := recreatedTopicServer(t)
	srv.svc.resetPlanned = recreate
	_, err := gc.ResetOffsets(ctx, &logv1.ResetOffsetsRequest{Group: "g", Topic: "r",
		Verb: &logv1.ResetOffsetsRequest_ToOffset{ToOffset: 3}, Execute: true})
	srv.svc.resetPlanned = nil
	if transport.CodeOf(err) != transport.NotFound || !strings.Contains(err.Error(), "deleted and created again") {
		t.Errorf("reset planned in a topic deleted and created again before it was stored: %v, want NotFound (the topic was replaced)", err)
	}
	noOffsetsStored(t, ctx, gc)

	// Without a replacement, the same reset is stored.
	res, err := gc.ResetOffsets(ctx, &logv1.ResetOffsetsRequest{Group: "g", Topic: "r",
		Verb: &logv1.ResetOffsetsRequest_ToOffset{ToOffset: 3}, Execute: true})
	if err != nil || !res.GetExecuted() {
		t.Fatalf("reset: %v, %v", res, err)
	}
}
