package server

import (
	"errors"
	"maps"
	"math"
	"testing"
	"time"
)

// TestGroupsCoordinatorRejoinFencesEarlierIncarnation: a join under an existing member's ID
// (two processes configured with one ID, or a member's rejoin while its earlier self still has
// requests in flight) replaces the member, and the replaced incarnation is fenced: its
// heartbeats and commits, which carry its last epoch, are refused. Epochs counted from 1 again
// for the new incarnation let the old one heartbeat and commit as the new one: both consumed
// the same partitions, and the old one's positions overwrote the new one's. The same holds
// when the member was removed (session timeout) before the ID joined again.
func TestGroupsCoordinatorRejoinFencesEarlierIncarnation(t *testing.T) {
	f := newCoordFixture(t, map[string]uint32{"t": 2})
	a := &gclient{}
	f.beat("g", a, "t")
	f.settle("g", a)
	old := &gclient{id: a.id, epoch: a.epoch, held: maps.Clone(a.held)}

	// The same ID joins again.
	a.epoch, a.held = 0, partitionSet{}
	f.beat("g", a, "t")
	f.settle("g", a)
	if _, err := f.c.heartbeat(heartbeatRequest{group: "g", member: old.id, epoch: old.epoch, owned: old.held}); !errors.Is(err, ErrStaleMemberEpoch) {
		t.Fatalf("heartbeat of the replaced incarnation (epoch %d; the new one has %d): %v, want %v", old.epoch, a.epoch, err, ErrStaleMemberEpoch)
	}
	if err := f.c.checkCommit("g", old.id, old.epoch, old.held.sorted()); err == nil {
		t.Fatalf("commit of the replaced incarnation (epoch %d; the new one has %d) accepted", old.epoch, a.epoch)
	}

	// Removed after its session timeout, then the ID joins again.
	old = &gclient{id: a.id, epoch: a.epoch, held: maps.Clone(a.held)}
	f.now = f.now.Add(testSession + time.Second)
	if n := f.c.expireMembers(f.now); n != 1 {
		t.Fatalf("expired %d members, want 1", n)
	}
	a.epoch, a.held = 0, partitionSet{}
	f.beat("g", a, "t")
	f.settle("g", a)
	if err := f.c.checkCommit("g", old.id, old.epoch, old.held.sorted()); err == nil {
		t.Fatalf("commit of the expired incarnation (epoch %d; the new one has %d) accepted", old.epoch, a.epoch)
	}
	if _, err := f.c.heartbeat(heartbeatRequest{group: "g", member: old.id, epoch: old.epoch, owned: old.held}); !errors.Is(err, ErrStaleMemberEpoch) {
		t.Fatalf("heartbeat of the expired incarnation (epoch %d; the new one has %d): %v, want %v", old.epoch, a.epoch, err, ErrStaleMemberEpoch)
	}
	checkOwners(t, "t", 2, a)
}

// TestGroupsCoordinatorEpochsWrap: the epochs a joining member starts above are counted from 0
// again after about a billion joins, so that the members' own epochs (an int32 on the wire)
// still have room to grow; below that, a join starts above the highest answered.
func TestGroupsCoordinatorEpochsWrap(t *testing.T) {
	f := newCoordFixture(t, map[string]uint32{"t": 2})
	f.c.epochs = math.MaxInt32 / 2
	a := &gclient{}
	f.beat("g", a, "t")
	if a.epoch != math.MaxInt32/2+1 {
		t.Fatalf("member epoch %d after a join at %d answered, want %d", a.epoch, int32(math.MaxInt32/2), int32(math.MaxInt32/2+1))
	}
	b := &gclient{}
	f.beat("g", b, "t")
	if b.epoch != 1 {
		t.Fatalf("member epoch %d after a join past %d answered, want 1 (counted again)", b.epoch, int32(math.MaxInt32/2))
	}
}
