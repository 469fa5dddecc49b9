package fsm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
)

func mustCommit(t *testing.T, n *machineNode, group string, offs ...GroupOffset) {
	t.Helper()
	if _, err := n.m.CommitOffsets(context.Background(), n, group, offs); err != nil {
		t.Fatalf("commit %s: %v", group, err)
	}
}

func offsetsOf(t *testing.T, m *Machine, group string) map[string]uint64 {
	t.Helper()
	offs, _ := m.GroupOffsets(group)
	out := map[string]uint64{}
	for _, o := range offs {
		out[o.Topic+"/"+string(rune('0'+o.Partition))] = o.Offset
	}
	return out
}

// TestGroupOffsets commits, reads, refuses and deletes offsets, and checks that the commit
// time is the command's (the leader's clock), not the applying replica's.
func TestGroupOffsets(t *testing.T) {
	n := openMachineNode(t, t.TempDir())
	ctx := context.Background()
	if _, err := n.m.CreateTopic(ctx, n, "t", 3, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	before := time.Now().UnixMilli()
	mustCommit(t, n, "g", GroupOffset{Topic: "t", Partition: 0, Offset: 5, Metadata: "m"}, GroupOffset{Topic: "t", Partition: 2, Offset: 9})
	mustCommit(t, n, "g", GroupOffset{Topic: "t", Partition: 0, Offset: 7})
	mustCommit(t, n, "h", GroupOffset{Partition: 0, Offset: 1}) // the default topic
	if got, want := offsetsOf(t, n.m, "g"), map[string]uint64{"t/0": 7, "t/2": 9}; !reflect.DeepEqual(got, want) {
		t.Fatalf("g = %v, want %v", got, want)
	}
	o, ok := n.m.CommittedOffset("g", "t", 0)
	if !ok || o.Offset != 7 || o.Metadata != "" || o.CommitTime < before || o.CommitTime > time.Now().UnixMilli() {
		t.Fatalf("CommittedOffset(g, t, 0) = %+v, %v", o, ok)
	}
	if gs := n.m.Groups(); len(gs) != 2 || gs[0].Name != "g" || gs[0].Offsets != 2 || gs[1].Name != "h" {
		t.Fatalf("Groups = %+v", gs)
	}

	for _, c := range []struct {
		group string
		offs  []GroupOffset
		want  error
	}{
		{"g", []GroupOffset{{Topic: "nope", Offset: 1}}, ErrUnknownTopic},
		{"g", []GroupOffset{{Topic: "t", Partition: 3, Offset: 1}}, ErrUnknownPartition},
		{"", []GroupOffset{{Topic: "t", Offset: 1}}, ErrInvalidGroup},
		{"bad\nname", []GroupOffset{{Topic: "t", Offset: 1}}, ErrInvalidGroup},
		{"g", nil, ErrInvalidGroup},
		{"g", []GroupOffset{{Topic: "t", Offset: 1, Metadata: strings.Repeat("x", MaxOffsetMetadata+1)}}, ErrInvalidGroup},
		// One partition named twice (last wins, before: which one was meant is not the server's to guess).
		{"g", []GroupOffset{{Topic: "t", Partition: 1, Offset: 1}, {Topic: "t", Partition: 0, Offset: 1}, {Topic: "t", Partition: 1, Offset: 2}}, ErrInvalidGroup},
	} {
		if _, err := n.m.CommitOffsets(ctx, n, c.group, c.offs); !errors.Is(err, c.want) {
			t.Errorf("commit %q %+v: %v, want %v", c.group, c.offs, err, c.want)
		}
	}
	// Apply checks too (a command proposed before a topic's deletion): all or nothing.
	body, _ := n.m.commitBody("g", []GroupOffset{{Topic: "t", Partition: 1, Offset: 3}})
	if _, err := n.m.DeleteTopic(ctx, n, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.m.proposeMeta(ctx, n, KindCommitOffsets, body); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("commit for a deleted topic: %v", err)
	}
	// Deleting the topic removed g's offsets for it, and g with them.
	if _, ok := n.m.GroupOffsets("g"); ok {
		t.Fatalf("g still has offsets after its topic was deleted: %v", offsetsOf(t, n.m, "g"))
	}
	if err := n.m.DeleteGroup(ctx, n, "h"); err != nil {
		t.Fatal(err)
	}
	if err := n.m.DeleteGroup(ctx, n, "h"); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("second delete: %v", err)
	}
	if gs := n.m.Groups(); len(gs) != 0 {
		t.Fatalf("Groups after deletes = %+v", gs)
	}
}

// TestGroupExpiry: a group expires only when its newest commit is older than the command's
// cut-off; groups not named are kept whatever their age.
func TestGroupExpiry(t *testing.T) {
	n := openMachineNode(t, t.TempDir())
	ctx := context.Background()
	mustCommit(t, n, "old", GroupOffset{Offset: 1})
	mustCommit(t, n, "unnamed", GroupOffset{Offset: 1})
	cut := time.Now().Add(time.Hour)
	mustCommit(t, n, "fresh", GroupOffset{Offset: 1})
	// "fresh" commits after the cut-off (its commit is stamped later than cut).
	body, _ := n.m.commitBody("fresh", []GroupOffset{{Offset: 2}})
	cmd, _ := encodeMeta(KindCommitOffsets, cut.Add(time.Minute), mustJSON(t, body))
	if _, err := n.Propose(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	res, err := n.m.ExpireOffsets(ctx, n, []string{"old", "fresh", "missing"}, cut)
	if err != nil || !reflect.DeepEqual(res.Expired, []string{"old"}) {
		t.Fatalf("ExpireOffsets = %+v, %v; want [old]", res, err)
	}
	if gs := n.m.Groups(); len(gs) != 2 || gs[0].Name != "fresh" || gs[1].Name != "unnamed" {
		t.Fatalf("Groups after expiry = %+v", gs)
	}
}

// TestGroupsReplicatedAndSnapshotted: two replicas applying the same entries hold the same
// offsets; a restart from a snapshot plus replay, and a snapshot installed on another node,
// keep them.
func TestGroupsReplicatedAndSnapshotted(t *testing.T) {
	dir := t.TempDir()
	n := openMachineNode(t, dir)
	ctx := context.Background()
	if _, err := n.m.CreateTopic(ctx, n, "t", 2, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, n, "a", GroupOffset{Topic: "t", Partition: 1, Offset: 10})
	manifest := n.snapshot()
	snapIndex := n.index
	mustCommit(t, n, "a", GroupOffset{Topic: "t", Partition: 0, Offset: 4})
	mustCommit(t, n, "b", GroupOffset{Topic: "t", Partition: 0, Offset: 2, Metadata: "x"})
	want := n.m.groupStates()
	entries := n.entries

	other := openMachineNode(t, t.TempDir())
	for _, e := range entries {
		other.m.Apply([]consensus.Entry{e})
	}
	if got := other.m.groupStates(); !reflect.DeepEqual(got, want) {
		t.Fatalf("replica holds %+v, want %+v", got, want)
	}
	n.close()

	r := openMachineNode(t, dir)
	if err := r.m.Restore(manifest, neverRead{t}); err != nil {
		t.Fatal(err)
	}
	if got := offsetsOf(t, r.m, "a"); !reflect.DeepEqual(got, map[string]uint64{"t/1": 10}) {
		t.Fatalf("after restore: a = %v", got)
	}
	r.m.Apply(entries[snapIndex:])
	r.index = uint64(len(entries))
	if got := r.m.groupStates(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after restart: %+v, want %+v", got, want)
	}
	m2 := r.snapshot()
	d := openMachineNode(t, t.TempDir())
	if err := d.m.Restore(m2, bytes.NewReader(r.data(m2))); err != nil {
		t.Fatal(err)
	}
	if got := d.m.groupStates(); !reflect.DeepEqual(got, want) {
		t.Fatalf("installed snapshot: %+v, want %+v", got, want)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGroupsCapped: at MaxGroups groups with committed offsets, a commit that would add a group
// is refused with ErrTooManyGroups (the server's ResourceExhausted: a limit reached, not a bad
// request, which ErrInvalidGroup's InvalidArgument said), nothing stored; a known group still
// commits. The limit had no test.
func TestGroupsCapped(t *testing.T) {
	n := openMachineNode(t, t.TempDir())
	n.m.gmu.Lock()
	for i := range MaxGroups - 1 {
		n.m.groups[fmt.Sprintf("filler-%d", i)] = map[offsetKey]CommittedOffset{}
	}
	n.m.gmu.Unlock()
	mustCommit(t, n, "last", GroupOffset{Partition: 0, Offset: 1}) // the MaxGroups-th
	_, err := n.m.CommitOffsets(context.Background(), n, "over", []GroupOffset{{Partition: 0, Offset: 1}})
	if !errors.Is(err, ErrTooManyGroups) || errors.Is(err, ErrInvalidGroup) {
		t.Fatalf("commit of group %d: %v; want ErrTooManyGroups", MaxGroups+1, err)
	}
	if _, ok := n.m.GroupOffsets("over"); ok {
		t.Fatal("the refused group was stored")
	}
	mustCommit(t, n, "last", GroupOffset{Partition: 0, Offset: 2})
}
