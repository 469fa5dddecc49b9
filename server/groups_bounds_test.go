package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/transport"
)

// TestGroupMemberIDsBounded: a heartbeat's member id and client id were bounded only by the
// request size (16 KiB), and the coordinator kept them, in the leader's memory, for every
// member: a client joining under 16 KiB ids kept 32 KiB per member, and `group describe`
// printed whatever bytes they held. Each is refused beyond 512 bytes, or with a control
// character, InvalidArgument, naming which and the limit; 512 bytes are accepted.
func TestGroupMemberIDsBounded(t *testing.T) {
	f := newCoordFixture(t, map[string]uint32{"t": 1})
	join := func(member, client string) error {
		_, err := f.c.heartbeat(heartbeatRequest{group: "g", member: member, client: client, topics: []string{"t"}})
		return err
	}
	long := strings.Repeat("m", 513)
	for _, tc := range []struct {
		name, member, client, want string
	}{
		{"member id of 513 bytes", long, "", "member id of 513 bytes, limit 512"},
		{"client id of 513 bytes", "", long, "client id of 513 bytes, limit 512"},
		{"client id with a newline", "", "app\n\x1b[2Jforged", "control character"},
		{"member id not UTF-8", "m\xff", "", "not UTF-8"},
	} {
		err := join(tc.member, tc.client)
		if code := transport.CodeOf(toWire(err)); code != transport.InvalidArgument || !strings.Contains(fmt.Sprint(err), tc.want) {
			t.Errorf("join with a %s: %v (code %v), want InvalidArgument saying %q", tc.name, err, code, tc.want)
		}
	}
	if err := join(long[:512], long[:512]); err != nil {
		t.Errorf("join with a member id and a client id of 512 bytes: %v, want it accepted", err)
	}
}

// TestCoordinatorMembersCapped: the leader's coordinator took any number of members and groups
// (a client could join ever new groups, each a group and a member in memory). It holds at most
// 100,000 members in all (so at most as many groups): a join beyond them, to a new group or to
// an existing one, is refused ResourceExhausted; a member that leaves makes room.
func TestCoordinatorMembersCapped(t *testing.T) {
	f := newCoordFixture(t, map[string]uint32{"t": 1})
	const limit = 100_000
	first := ""
	for i := range limit {
		res, err := f.c.heartbeat(heartbeatRequest{group: fmt.Sprintf("g%d", i), topics: []string{"t"}})
		if err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		if i == 0 {
			first = res.member
		}
	}
	for _, group := range []string{"new", "g1"} {
		_, err := f.c.heartbeat(heartbeatRequest{group: group, topics: []string{"t"}})
		if code := transport.CodeOf(toWire(err)); code != transport.ResourceExhausted || !strings.Contains(fmt.Sprint(err), "100000 members") {
			t.Errorf("join %s with %d members in the coordinator: %v (code %v), want ResourceExhausted naming the limit", group, limit, err, code)
		}
	}
	if _, err := f.c.heartbeat(heartbeatRequest{group: "g0", member: first, epoch: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.heartbeat(heartbeatRequest{group: "new", topics: []string{"t"}}); err != nil {
		t.Errorf("join after a member left: %v, want it accepted", err)
	}
}

// TestGroupMembersCapped: a join to a group that holds 10,000 members (the limit, Kafka's
// group.max.size) was refused InvalidArgument, as a malformed request, though the request was
// well formed and the same join succeeds once a member leaves: it is ResourceExhausted, as
// DESIGN.md's limits and the coordinator's own, naming the limit. Another group still takes
// members.
func TestGroupMembersCapped(t *testing.T) {
	f := newCoordFixture(t, map[string]uint32{"t": 1})
	const limit = 10_000
	res, err := f.c.heartbeat(heartbeatRequest{group: "g", topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	first := res.member
	// The other members are added as the coordinator holds them: joining them one by one
	// rebalances the group at each join, which takes minutes under -race.
	f.c.mu.Lock()
	g := f.c.groups["g"]
	for i := 1; i < limit; i++ {
		id := fmt.Sprintf("m%d", i)
		g.members[id] = &member{id: id, epoch: 1, topics: []string{"t"}, owned: map[topicPartition]grant{}, deadline: f.now.Add(testSession)}
	}
	f.c.members += limit - 1
	f.c.mu.Unlock()
	_, err = f.c.heartbeat(heartbeatRequest{group: "g", topics: []string{"t"}})
	if code := transport.CodeOf(toWire(err)); code != transport.ResourceExhausted || !strings.Contains(fmt.Sprint(err), "10000 members") {
		t.Errorf("join to a group of %d members: %v (code %v), want ResourceExhausted naming the limit", limit, err, code)
	}
	if _, err := f.c.heartbeat(heartbeatRequest{group: "other", topics: []string{"t"}}); err != nil {
		t.Errorf("join to another group: %v, want it accepted", err)
	}
	if _, err := f.c.heartbeat(heartbeatRequest{group: "g", member: first, epoch: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.heartbeat(heartbeatRequest{group: "g", topics: []string{"t"}}); err != nil {
		t.Errorf("join after a member left: %v, want it accepted", err)
	}
}

// TestCoordinatorForgetsEmptyGroups: the coordinator remembered when each group lost its last
// member (emptySince) for the rest of its term: a client joining and leaving ever new groups
// grew the leader's memory without bound. An entry serves only for a session timeout (offsets
// of a group empty for less are not expired), and is dropped once that has passed.
func TestCoordinatorForgetsEmptyGroups(t *testing.T) {
	f := newCoordFixture(t, map[string]uint32{"t": 1})
	for i := range 1000 {
		g := fmt.Sprintf("g%d", i)
		res, err := f.c.heartbeat(heartbeatRequest{group: g, topics: []string{"t"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.c.heartbeat(heartbeatRequest{group: g, member: res.member, epoch: -1}); err != nil {
			t.Fatal(err)
		}
	}
	f.now = f.now.Add(testSession / 2)
	f.c.expireMembers(f.now)
	if n := emptyGroupsRemembered(f.c); n != 1000 {
		t.Fatalf("%d groups remembered as empty within the session timeout, want 1000", n)
	}
	f.now = f.now.Add(testSession/2 + time.Millisecond)
	f.c.expireMembers(f.now)
	if n := emptyGroupsRemembered(f.c); n != 0 {
		t.Errorf("%d groups still remembered as empty a session timeout after they emptied, want 0", n)
	}
}

func emptyGroupsRemembered(c *coordinator) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.emptySince)
}

// TestTooManyGroupsIsResourceExhausted: the cap on groups with committed offsets
// (fsm.MaxGroups) is a limit reached, answered ResourceExhausted as the coordinator's member
// caps are, not InvalidArgument (a commit refused there is not a bad request).
func TestTooManyGroupsIsResourceExhausted(t *testing.T) {
	err := fmt.Errorf("commit offsets: %w: 100000 groups have offsets, the limit", fsm.ErrTooManyGroups)
	if code := transport.CodeOf(toWire(err)); code != transport.ResourceExhausted {
		t.Fatalf("%v answered %v, want ResourceExhausted", err, code)
	}
}
