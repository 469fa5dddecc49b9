package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/memory"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// fakeLeader is the consensus as the coordinator sees it: this node leads in term, or not.
type fakeLeader struct {
	mu      sync.Mutex
	term    uint64
	leading bool
}

func (f *fakeLeader) Status() consensus.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := consensus.Status{Term: f.term, State: "follower"}
	if f.leading {
		st.State = "leader"
	}
	return st
}

func (f *fakeLeader) Leader() (consensus.Server, bool) {
	return consensus.Server{ID: "other", Address: "other:1"}, true
}

func (f *fakeLeader) set(term uint64, leading bool) {
	f.mu.Lock()
	f.term, f.leading = term, leading
	f.mu.Unlock()
}

// directProposer applies every command to a Machine at once, as a one-node Raft would.
type directProposer struct {
	mu    sync.Mutex
	m     *fsm.Machine
	index uint64
}

func (p *directProposer) Propose(_ context.Context, cmd []byte) (any, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.index++
	return p.m.Apply([]consensus.Entry{{Index: p.index, Term: 1, Data: bytes.Clone(cmd)}})[0], nil
}
func (p *directProposer) IsLeader() bool                   { return true }
func (p *directProposer) Leader() (consensus.Server, bool) { return consensus.Server{ID: "self"}, true }

// coordFixture is a coordinator over a Machine of memory logs, with a controllable clock.
type coordFixture struct {
	t    *testing.T
	c    *coordinator
	lead *fakeLeader
	m    *fsm.Machine
	p    *directProposer
	now  time.Time
}

const testSession = 10 * time.Second

func newCoordFixture(t *testing.T, topics map[string]uint32) *coordFixture {
	t.Helper()
	def, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var logs []storage.Log
	m, err := fsm.NewMachine(fsm.MachineConfig{Config: fsm.Config{Log: def}, Dir: t.TempDir(), OpenLog: func(string) (storage.Log, error) {
		l, err := memory.New(memory.Config{})
		if err != nil {
			return nil, err
		}
		logs = append(logs, l)
		return l, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.Close()
		_ = def.Close()
		for _, l := range logs {
			_ = l.Close()
		}
	})
	f := &coordFixture{t: t, lead: &fakeLeader{term: 1, leading: true}, m: m, p: &directProposer{m: m}, now: time.Unix(1_000_000, 0)}
	f.c = newCoordinator(f.lead, m, testSession, slog.New(slog.DiscardHandler))
	f.c.now = func() time.Time { return f.now }
	for name, n := range topics {
		if _, err := m.CreateTopic(context.Background(), f.p, name, n, fsm.TopicConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// client is a group member as the SDK plays it: it heartbeats with what it holds and holds
// what it was assigned.
type gclient struct {
	id    string
	epoch int32
	held  partitionSet
	// revoked accumulates every partition taken away from it.
	revoked []topicPartition
}

func (f *coordFixture) beat(group string, cl *gclient, topics ...string) heartbeatResult {
	f.t.Helper()
	res, err := f.c.heartbeat(heartbeatRequest{group: group, member: cl.id, epoch: cl.epoch, topics: topics, owned: cl.held})
	if err != nil {
		f.t.Fatalf("heartbeat %s: %v", cl.id, err)
	}
	cl.id, cl.epoch = res.member, res.epoch
	next := partitionSet{}
	for _, p := range res.assignment {
		next[p] = true
	}
	for p := range cl.held {
		if !next[p] {
			cl.revoked = append(cl.revoked, p)
		}
	}
	cl.held = next
	return res
}

// settle heartbeats every client until none is pending and a round changes nothing.
func (f *coordFixture) settle(group string, cls ...*gclient) {
	f.t.Helper()
	for range 20 {
		stable := true
		for _, cl := range cls {
			before := slices.Clone(cl.held.sorted())
			res := f.beat(group, cl)
			if res.pending || !slices.Equal(before, cl.held.sorted()) {
				stable = false
			}
		}
		if stable {
			return
		}
	}
	f.t.Fatal("the group did not settle in 20 rounds")
}

// checkOwners: every partition of the topic is held by exactly one client.
func checkOwners(t *testing.T, topic string, n uint32, cls ...*gclient) {
	t.Helper()
	for p := range n {
		holders := 0
		for _, cl := range cls {
			if cl.held[topicPartition{topic, p}] {
				holders++
			}
		}
		if holders != 1 {
			t.Fatalf("%s/%d is held by %d members", topic, p, holders)
		}
	}
}

func TestGroupsCoordinatorJoinLeaveKill(t *testing.T) {
	f := newCoordFixture(t, map[string]uint32{"t": 6})
	a, b, c := &gclient{}, &gclient{}, &gclient{}
	for _, cl := range []*gclient{a, b, c} {
		f.beat("g", cl, "t")
	}
	f.settle("g", a, b, c)
	checkOwners(t, "t", 6, a, b, c)
	for _, cl := range []*gclient{a, b, c} {
		if len(cl.held) != 2 {
			t.Fatalf("%s holds %v, want 2 partitions", cl.id, cl.held.sorted())
		}
	}

	// A fourth member: exactly one partition is revoked, from one member, and d gets it only
	// after that member released it.
	before := map[*gclient]int{a: len(a.revoked), b: len(b.revoked), c: len(c.revoked)}
	d := &gclient{}
	if res := f.beat("g", d, "t"); len(res.assignment) != 0 || !res.pending {
		t.Fatalf("d's first assignment %v pending %v: want nothing yet (its partition is still held)", res.assignment, res.pending)
	}
	f.settle("g", a, b, c, d)
	checkOwners(t, "t", 6, a, b, c, d)
	revoked := 0
	for cl, n := range before {
		revoked += len(cl.revoked) - n
	}
	if revoked != 1 || len(d.held) != 1 {
		t.Fatalf("a join revoked %d partitions and d holds %d; want 1 and 1", revoked, len(d.held))
	}

	// b leaves: only b's partitions move.
	for cl := range before {
		before[cl] = len(cl.revoked)
	}
	bHeld := b.held
	if _, err := f.c.heartbeat(heartbeatRequest{group: "g", member: b.id, epoch: -1}); err != nil {
		t.Fatal(err)
	}
	f.settle("g", a, c, d)
	checkOwners(t, "t", 6, a, c, d)
	for _, cl := range []*gclient{a, c} {
		if len(cl.revoked) != before[cl] {
			t.Fatalf("b's leave revoked %v from %s", cl.revoked[before[cl]:], cl.id)
		}
	}
	for p := range bHeld {
		if !a.held[p] && !c.held[p] && !d.held[p] {
			t.Fatalf("b's %v went nowhere", p)
		}
	}

	// c stops heartbeating: after the session timeout it is removed and its partitions move;
	// a and d lose nothing.
	na, nd := len(a.revoked), len(d.revoked)
	cHeld := c.held
	f.now = f.now.Add(testSession / 2)
	f.settle("g", a, d)
	if n := f.c.expireMembers(f.now); n != 0 {
		t.Fatalf("expired %d members before the session timeout", n)
	}
	f.now = f.now.Add(testSession/2 + time.Millisecond)
	if n := f.c.expireMembers(f.now); n != 1 {
		t.Fatalf("expired %d members, want c", n)
	}
	f.settle("g", a, d)
	checkOwners(t, "t", 6, a, d)
	if len(a.revoked) != na || len(d.revoked) != nd {
		t.Fatal("c's removal revoked partitions from the members that stayed")
	}
	for p := range cHeld {
		if !a.held[p] && !d.held[p] {
			t.Fatalf("c's %v went nowhere", p)
		}
	}
	// c comes back with its old identity: unknown, it must rejoin.
	if _, err := f.c.heartbeat(heartbeatRequest{group: "g", member: c.id, epoch: c.epoch}); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("heartbeat of a removed member: %v, want ErrUnknownMember", err)
	}
}

func TestGroupsCoordinatorFencing(t *testing.T) {
	f := newCoordFixture(t, map[string]uint32{"t": 4})
	a, b := &gclient{}, &gclient{}
	f.beat("g", a, "t")
	f.settle("g", a)
	aEpoch := a.epoch
	aAll := a.held.sorted()
	f.beat("g", b, "t")
	f.settle("g", a, b)
	if a.epoch == aEpoch {
		t.Fatal("a's epoch did not change with its assignment")
	}
	lost := a.revoked[0]
	kept := a.held.sorted()[0]
	for _, c := range []struct {
		name   string
		member string
		epoch  int32
		parts  []topicPartition
		want   error
	}{
		{"owner, current epoch", a.id, a.epoch, []topicPartition{kept}, nil},
		{"owner, epoch it got the partition in", a.id, aEpoch, []topicPartition{kept}, nil},
		{"former owner", a.id, a.epoch, []topicPartition{lost}, ErrNotOwner},
		{"former owner, old epoch", a.id, aEpoch, []topicPartition{lost}, ErrNotOwner},
		{"future epoch", a.id, a.epoch + 1, []topicPartition{kept}, ErrStaleMemberEpoch},
		{"epoch before it got the partition", b.id, b.epoch - 1, b.held.sorted()[:1], ErrStaleMemberEpoch},
		{"unknown member", "nobody", 1, []topicPartition{kept}, ErrUnknownMember},
		{"one foreign partition among owned ones", a.id, a.epoch, []topicPartition{kept, b.held.sorted()[0]}, ErrNotOwner},
	} {
		err := f.c.checkCommit("g", c.member, c.epoch, c.parts)
		if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if len(aAll) != 4 {
		t.Fatalf("a alone held %v", aAll)
	}
	// A heartbeat with an old epoch is fenced.
	if _, err := f.c.heartbeat(heartbeatRequest{group: "g", member: a.id, epoch: aEpoch}); !errors.Is(err, ErrStaleMemberEpoch) {
		t.Fatalf("heartbeat with an old epoch: %v", err)
	}
	// Without a member, only a group without members may be committed to (whileEmpty).
	if err := f.c.whileEmpty("g", func() error { return nil }); !errors.Is(err, ErrGroupNotEmpty) {
		t.Fatalf("commit without a member while the group has members: %v, want ErrGroupNotEmpty", err)
	}
	if err := f.c.whileEmpty("other", func() error { return nil }); err != nil {
		t.Fatalf("commit to a group nobody joined: %v", err)
	}
}

// TestGroupsCoordinatorLeaderChange: a new term (or losing leadership) forgets every member;
// the committed offsets, replicated, remain.
func TestGroupsCoordinatorLeaderChange(t *testing.T) {
	f := newCoordFixture(t, map[string]uint32{"t": 2})
	a := &gclient{}
	f.beat("g", a, "t")
	f.settle("g", a)
	if _, err := f.m.CommitOffsets(context.Background(), f.p, "g", []fsm.GroupOffset{{Topic: "t", Partition: 1, Offset: 7}}); err != nil {
		t.Fatal(err)
	}
	f.lead.set(1, false)
	var nl *consensus.NotLeaderError
	if _, err := f.c.heartbeat(heartbeatRequest{group: "g", member: a.id, epoch: a.epoch}); !errors.As(err, &nl) || nl.Leader.ID != "other" {
		t.Fatalf("heartbeat on a follower: %v, want NotLeaderError naming the leader", err)
	}
	f.lead.set(2, true)
	if _, err := f.c.heartbeat(heartbeatRequest{group: "g", member: a.id, epoch: a.epoch}); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("heartbeat after a leader change: %v, want ErrUnknownMember", err)
	}
	a.epoch, a.held = 0, nil
	f.beat("g", a, "t")
	f.settle("g", a)
	if len(a.held) != 2 {
		t.Fatalf("after rejoining a holds %v", a.held.sorted())
	}
	if o, ok := f.m.CommittedOffset("g", "t", 1); !ok || o.Offset != 7 {
		t.Fatalf("offset after the leader change: %+v, %v", o, ok)
	}
}

// TestGroupsCoordinatorExpirable: a group is offered for expiry only once it has had no member
// for a session timeout, and a new leader waits a session timeout for members to rejoin.
func TestGroupsCoordinatorExpirable(t *testing.T) {
	f := newCoordFixture(t, map[string]uint32{"t": 1})
	for _, g := range []string{"idle", "busy"} {
		if _, err := f.m.CommitOffsets(context.Background(), f.p, g, []fsm.GroupOffset{{Topic: "t", Offset: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	f.c.heartbeat(heartbeatRequest{}) // takes the term: since = now (fails validation afterwards)
	if got := f.c.expirable(f.now); len(got) != 0 {
		t.Fatalf("a new coordinator offers %v before members had a session timeout to rejoin", got)
	}
	busy := &gclient{}
	f.beat("busy", busy, "t")
	f.now = f.now.Add(testSession)
	f.beat("busy", busy)
	if got := f.c.expirable(f.now); !slices.Equal(got, []string{"idle"}) {
		t.Fatalf("expirable = %v, want [idle]", got)
	}
	if _, err := f.c.heartbeat(heartbeatRequest{group: "busy", member: busy.id, epoch: -1}); err != nil {
		t.Fatal(err)
	}
	if got := f.c.expirable(f.now); !slices.Equal(got, []string{"idle"}) {
		t.Fatalf("expirable right after busy's last member left = %v, want [idle]", got)
	}
	f.now = f.now.Add(testSession)
	if got := f.c.expirable(f.now); !slices.Equal(got, []string{"busy", "idle"}) {
		t.Fatalf("expirable = %v, want [busy idle]", got)
	}
}

func TestGroupsCoordinatorSubscriptions(t *testing.T) {
	f := newCoordFixture(t, map[string]uint32{"x": 3, "y": 2})
	a, b := &gclient{}, &gclient{}
	f.beat("g", a, "x", "y")
	f.beat("g", b, "y")
	f.settle("g", a, b)
	checkOwners(t, "x", 3, a, b)
	checkOwners(t, "y", 2, a, b)
	for p := range b.held {
		if p.topic != "y" {
			t.Fatalf("b holds %v of a topic it does not subscribe to", p)
		}
	}
	// Partitions added to x reach its subscriber at its next heartbeat.
	if _, err := f.m.CreatePartitions(context.Background(), f.p, "x", 5); err != nil {
		t.Fatal(err)
	}
	f.settle("g", a, b)
	checkOwners(t, "x", 5, a, b)
	// b changes its subscription to x: y's partitions go to a, x's are shared.
	f.beat("g", b, "x")
	f.settle("g", a, b)
	checkOwners(t, "x", 5, a, b)
	checkOwners(t, "y", 2, a, b)
	if len(b.held) < 2 {
		t.Fatalf("b holds %v after subscribing to x", b.held.sorted())
	}
	if _, err := f.c.heartbeat(heartbeatRequest{group: "g", epoch: 0}); !errors.Is(err, fsm.ErrInvalidGroup) {
		t.Fatalf("a join without topics: %v", err)
	}
	if _, err := f.c.heartbeat(heartbeatRequest{group: "", epoch: 0, topics: []string{"x"}}); !errors.Is(err, fsm.ErrInvalidGroup) {
		t.Fatalf("a join without a group: %v", err)
	}
}

// TestGroupsCoordinatorSoleMemberRejoins: the only member of a group rejoins under its own id
// (epoch 0, as the SDK does after a stale epoch): the group is still there, with that member,
// and the member's next heartbeat is answered, not refused as unknown.
func TestGroupsCoordinatorSoleMemberRejoins(t *testing.T) {
	f := newCoordFixture(t, map[string]uint32{"t": 2})
	a := &gclient{}
	f.beat("g", a, "t")
	f.settle("g", a)
	id := a.id
	a.epoch, a.held = 0, partitionSet{}
	f.beat("g", a, "t")
	if a.id != id {
		t.Fatalf("rejoined as %q, want %q", a.id, id)
	}
	if f.c.groups["g"] == nil || f.c.groups["g"].members[id] == nil {
		t.Fatal("after the sole member's rejoin the coordinator has no group with it")
	}
	f.settle("g", a)
	checkOwners(t, "t", 2, a)
}

// TestGroupsCoordinatorRejoinGrace: a coordinator that took over does not call a group empty
// (for an administrator's commit, reset or delete) while members of the previous coordinator
// may still rejoin: for a session timeout, unless the group was committed to since.
func TestGroupsCoordinatorRejoinGrace(t *testing.T) {
	f := newCoordFixture(t, map[string]uint32{"t": 1})
	f.now = time.Now() // commit times are the real clock's
	a := &gclient{}
	f.beat("g", a, "t")
	f.settle("g", a)
	for _, g := range []string{"g", "later"} {
		if _, err := f.m.CommitOffsets(context.Background(), f.p, g, []fsm.GroupOffset{{Topic: "t", Offset: 5}}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Millisecond) // the takeover comes after those commits, in ms
	f.lead.set(1, false)
	f.c.expireMembers(f.now)
	f.now = time.Now()
	f.lead.set(2, true)

	called := false
	if err := f.c.whileEmpty("g", func() error { called = true; return nil }); !errors.Is(err, ErrGroupNotEmpty) || called {
		t.Fatalf("delete or reset right after the takeover: %v (ran: %v), want ErrGroupNotEmpty", err, called)
	}

	// A group without offsets, or committed to since the takeover, is empty at once.
	if err := f.c.whileEmpty("never-committed", func() error { return nil }); err != nil {
		t.Fatalf("a group without offsets: %v", err)
	}
	time.Sleep(2 * time.Millisecond)
	if _, err := f.m.CommitOffsets(context.Background(), f.p, "later", []fsm.GroupOffset{{Topic: "t", Offset: 6}}); err != nil {
		t.Fatal(err)
	}
	if err := f.c.whileEmpty("later", func() error { return nil }); err != nil {
		t.Fatalf("a group committed to since the takeover: %v", err)
	}
	// Once a session timeout has passed, members that did not rejoin are gone.
	f.now = f.now.Add(testSession)
	if err := f.c.whileEmpty("g", func() error { called = true; return nil }); err != nil || !called {
		t.Fatalf("a session timeout after the takeover: %v (ran: %v)", err, called)
	}
}

// TestGroupsCoordinatorWhileEmpty: an operation on a group without members (delete, reset, a
// commit without a member) does not hold the coordinator while it is proposed: other groups'
// members heartbeat meanwhile. The group itself takes no member, and no second such operation,
// until it ends: both are refused with errGroupBusy (retried by the SDK: NotProposed).
func TestGroupsCoordinatorWhileEmpty(t *testing.T) {
	f := newCoordFixture(t, map[string]uint32{"t": 2})
	other := &gclient{}
	f.beat("other", other, "t")

	fnErr := errors.New("the proposal failed")
	err := f.c.whileEmpty("g", func() error {
		// The coordinator is free: these run on this goroutine, and would deadlock were it
		// held across the proposal.
		f.beat("other", other)
		if _, err := f.c.describe("other"); err != nil {
			t.Errorf("describe during the operation: %v", err)
		}
		if _, err := f.c.heartbeat(heartbeatRequest{group: "g", topics: []string{"t"}}); !errors.Is(err, errGroupBusy) {
			t.Errorf("join during the operation: %v, want errGroupBusy", err)
		}
		if err := f.c.whileEmpty("g", func() error { t.Error("a second operation ran"); return nil }); !errors.Is(err, errGroupBusy) {
			t.Errorf("second operation: %v, want errGroupBusy", err)
		}
		if err := toWire(errGroupBusy); transport.CodeOf(err) != transport.Unavailable || !transport.IsNotProposed(err) {
			t.Errorf("errGroupBusy on the wire: %v, want Unavailable with NotProposed", err)
		}
		return fnErr
	})
	if !errors.Is(err, fnErr) {
		t.Fatalf("whileEmpty: %v, want fn's error", err)
	}
	// Over (here with fn's error): the group takes members again, and operations once empty.
	a := &gclient{}
	f.beat("g", a, "t")
	f.beat("g", a)
	if err := f.c.whileEmpty("g", func() error { return nil }); !errors.Is(err, ErrGroupNotEmpty) {
		t.Fatalf("operation on a group with a member: %v, want ErrGroupNotEmpty", err)
	}
	if _, err := f.c.heartbeat(heartbeatRequest{group: "g", member: a.id, epoch: -1}); err != nil {
		t.Fatal(err)
	}
	ran := false
	if err := f.c.whileEmpty("g", func() error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("operation once the member left: %v (ran %v)", err, ran)
	}
}

// TestGroupsCoordinatorTopicRecreated: a topic deleted and created again under its name is
// another topic: its partitions are revoked from the member that held them (which may not
// commit its position in the old topic to the new one), then granted again.
func TestGroupsCoordinatorTopicRecreated(t *testing.T) {
	f := newCoordFixture(t, map[string]uint32{"t": 2})
	a := &gclient{}
	f.beat("g", a, "t")
	f.settle("g", a)
	if len(a.held) != 2 {
		t.Fatalf("a holds %v", a.held.sorted())
	}
	ctx := context.Background()
	if _, err := f.m.DeleteTopic(ctx, f.p, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.CreateTopic(ctx, f.p, "t", 2, fsm.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := f.c.checkCommit("g", a.id, a.epoch, a.held.sorted()); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("commit of a partition of the deleted topic: %v, want ErrNotOwner", err)
	}
	f.settle("g", a)
	if len(a.revoked) != 2 || len(a.held) != 2 {
		t.Fatalf("a gave up %v and holds %v; want both revoked, then granted again", a.revoked, a.held.sorted())
	}
	if err := f.c.checkCommit("g", a.id, a.epoch, a.held.sorted()); err != nil {
		t.Fatalf("commit of the partitions granted again: %v", err)
	}
}

// catchUpOnRead is a new leader that has not applied the previous term's entries yet: it
// applies them when asked for a linearizable read, as Raft's barrier makes it do.
type catchUpOnRead struct {
	consensus.Consensus
	*directProposer
	catchUp func()
}

func (c catchUpOnRead) Propose(ctx context.Context, cmd []byte) (any, error) {
	return c.directProposer.Propose(ctx, cmd)
}
func (c catchUpOnRead) IsLeader() bool                   { return true }
func (c catchUpOnRead) Leader() (consensus.Server, bool) { return consensus.Server{ID: "self"}, true }

func (c catchUpOnRead) LinearizableRead(context.Context) error {
	c.catchUp()
	return nil
}

// TestGroupReadsCatchUp: DescribeGroup, ListGroups and DeleteGroup answered from a new
// leader's applied state before it caught up, so a group whose commits it had not applied yet
// was "unknown" (and a delete was authorized without the topics of its offsets); FetchOffsets
// already caught up first. An invalid group name was answered NOT_FOUND, not INVALID_ARGUMENT
// as GROUPS.md says.
func TestGroupReadsCatchUp(t *testing.T) {
	ctx := t.Context()
	for _, op := range []string{"describe", "list", "delete"} {
		t.Run(op, func(t *testing.T) {
			f := newCoordFixture(t, map[string]uint32{"t": 1})
			// The commit of the previous term: proposed, not applied here yet.
			var held []byte
			hold := proposeFunc(func(cmd []byte) { held = bytes.Clone(cmd) })
			_, _ = f.m.CommitOffsets(ctx, hold, "g", []fsm.GroupOffset{{Topic: "t", Partition: 0, Offset: 3}})
			if held == nil {
				t.Fatal("no commit command was proposed")
			}
			caughtUp := false
			svc := &service{sm: f.m, groups: f.c, cfg: &Config{}, stop: make(chan struct{}),
				node: catchUpOnRead{directProposer: f.p, catchUp: func() {
					if !caughtUp {
						caughtUp = true
						_, _ = f.p.Propose(ctx, held)
					}
				}}}
			var err error
			switch op {
			case "describe":
				var res *logv1.DescribeGroupResponse
				res, err = svc.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: "g"})
				if err == nil && (len(res.GetPartitions()) != 1 || res.GetPartitions()[0].GetCommittedOffset() != 3) {
					t.Errorf("DescribeGroup: %v, want the committed offset 3", res)
				}
			case "list":
				var res *logv1.ListGroupsResponse
				res, err = svc.ListGroups(ctx, &logv1.ListGroupsRequest{})
				if err == nil && (len(res.GetGroups()) != 1 || res.GetGroups()[0].GetName() != "g") {
					t.Errorf("ListGroups: %v, want g", res)
				}
			case "delete":
				_, err = svc.DeleteGroup(ctx, &logv1.DeleteGroupRequest{Group: "g"})
				if _, ok := f.m.GroupOffsets("g"); err == nil && ok {
					t.Error("DeleteGroup succeeded, but g's offsets are still there")
				}
			}
			if err != nil {
				t.Fatalf("%s before the leader caught up: %v", op, err)
			}
			if op == "list" {
				return
			}
			for _, name := range []string{"", string(make([]byte, fsm.MaxGroupNameLen+1))} {
				if op == "describe" {
					_, err = svc.DescribeGroup(ctx, &logv1.DescribeGroupRequest{Group: name})
				} else {
					_, err = svc.DeleteGroup(ctx, &logv1.DeleteGroupRequest{Group: name})
				}
				if code := transport.CodeOf(err); code != transport.InvalidArgument {
					t.Errorf("%s of group %.10q: %v (code %v), want InvalidArgument", op, name, err, code)
				}
			}
		})
	}
}

// proposeFunc is a proposer that hands each command to a function and applies nothing.
type proposeFunc func(cmd []byte)

func (p proposeFunc) Propose(_ context.Context, cmd []byte) (any, error) {
	p(cmd)
	return nil, errors.New("held: not applied")
}
func (p proposeFunc) IsLeader() bool                   { return true }
func (p proposeFunc) Leader() (consensus.Server, bool) { return consensus.Server{ID: "self"}, true }

// TestGroupsCoordinatorRebalanceTimeout: a member that heartbeats but never releases a partition
// it was told to give up would hold the partition's next owner back for ever; a session timeout
// after it was told, it is removed (KIP-848's rebalance timeout), and the partition moves. A
// member that releases within that time stays.
func TestGroupsCoordinatorRebalanceTimeout(t *testing.T) {
	f := newCoordFixture(t, map[string]uint32{"t": 2})
	a := &gclient{}
	f.beat("g", a, "t")
	f.settle("g", a)
	b := &gclient{}
	if res := f.beat("g", b, "t"); !res.pending {
		t.Fatalf("b's first answer %v is not pending", res.assignment)
	}
	// a is told to give up one partition, and keeps reporting both.
	stubborn := a.held
	beatStubborn := func() {
		t.Helper()
		res, err := f.c.heartbeat(heartbeatRequest{group: "g", member: a.id, epoch: a.epoch, owned: stubborn})
		if err != nil {
			t.Fatalf("a's heartbeat: %v", err)
		}
		a.epoch = res.epoch
		if len(res.assignment) != 1 {
			t.Fatalf("a's assignment %v, want one partition", res.assignment)
		}
	}
	beatStubborn()
	for range 3 {
		f.now = f.now.Add(testSession / 3)
		beatStubborn()
		if res := f.beat("g", b, "t"); len(res.assignment) != 0 || !res.pending {
			t.Fatalf("b got %v while a still holds its partition", res.assignment)
		}
		if n := f.c.expireMembers(f.now); n != 0 {
			t.Fatalf("expired %d members within the session timeout of the revocation", n)
		}
	}
	f.now = f.now.Add(time.Millisecond)
	if n := f.c.expireMembers(f.now); n != 1 {
		t.Fatalf("expired %d members a session timeout after the revocation, want a", n)
	}
	if _, err := f.c.heartbeat(heartbeatRequest{group: "g", member: a.id, epoch: a.epoch, owned: stubborn}); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("a's heartbeat after its removal: %v, want ErrUnknownMember", err)
	}
	f.settle("g", b)
	checkOwners(t, "t", 2, b)

	// c joins: b gives up a partition late, but within the time; it stays, and nothing is
	// held against it afterwards.
	c := &gclient{}
	f.beat("g", c, "t")
	held := b.held
	res, err := f.c.heartbeat(heartbeatRequest{group: "g", member: b.id, epoch: b.epoch, owned: held})
	if err != nil {
		t.Fatal(err)
	}
	b.epoch = res.epoch
	f.now = f.now.Add(testSession - time.Millisecond)
	f.settle("g", b, c)
	checkOwners(t, "t", 2, b, c)
	f.now = f.now.Add(testSession / 2)
	f.settle("g", b, c)
	if n := f.c.expireMembers(f.now); n != 0 {
		t.Fatalf("expired %d members that released in time", n)
	}
}
