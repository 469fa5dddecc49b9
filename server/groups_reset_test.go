package server

import (
	"slices"
	"testing"
	"time"

	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestGroupsResetListedPartitionsOnce: a reset naming a partition twice (group reset
// --partition 0 --partition 0) plans it once, in partition order; its plan listed it once per
// mention, so the dry run printed the same partition twice.
func TestGroupsResetListedPartitionsOnce(t *testing.T) {
	srv := startServer(t, Config{})
	c := newClient(t, TransportConnect, srv.Addr())
	gc := groupsClient(t, c)
	ctx := ctxT(t, 60*time.Second)
	createTopicT(t, ctx, c, "d", 3)
	fillTopicT(t, ctx, c, "d", 3, 2)
	for _, execute := range []bool{false, true} {
		res, err := gc.ResetOffsets(ctx, &logv1.ResetOffsetsRequest{Group: "g", Topic: "d", Partitions: []uint32{2, 0, 2, 0},
			Verb: &logv1.ResetOffsetsRequest_ToLatest{ToLatest: true}, Execute: execute})
		if err != nil {
			t.Fatal(err)
		}
		var got []uint32
		for _, o := range res.GetOffsets() {
			got = append(got, o.GetPartition())
		}
		if !slices.Equal(got, []uint32{0, 2}) {
			t.Errorf("reset (execute %v) of partitions 2, 0, 2, 0 planned partitions %v, want [0 2]", execute, got)
		}
	}
}
