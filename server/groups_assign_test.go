package server

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

func subs(topics []string, members ...string) []subscription {
	out := make([]subscription, len(members))
	for i, m := range members {
		out[i] = subscription{member: m, topics: topics}
	}
	return out
}

// checkAssignment checks that every partition of every subscribed topic has exactly one
// member, a subscribed one, and that each topic's shares differ by at most one.
func checkAssignment(t *testing.T, a map[string]partitionSet, ss []subscription, parts map[string]uint32) {
	t.Helper()
	owner := map[topicPartition]string{}
	for m, set := range a {
		for p := range set {
			if o, dup := owner[p]; dup {
				t.Fatalf("%v has two members: %s and %s", p, o, m)
			}
			owner[p] = m
		}
	}
	for topic, n := range parts {
		var subscribed []string
		for _, s := range ss {
			for _, x := range s.topics {
				if x == topic {
					subscribed = append(subscribed, s.member)
				}
			}
		}
		for p := range n {
			o, ok := owner[topicPartition{topic, p}]
			if len(subscribed) > 0 && !ok {
				t.Fatalf("%s/%d has no member", topic, p)
			}
			if ok && !contains(subscribed, o) {
				t.Fatalf("%s/%d given to %s, not subscribed", topic, p, o)
			}
		}
		lo, hi := int(n), 0
		for _, m := range subscribed {
			c := 0
			for p := range a[m] {
				if p.topic == topic {
					c++
				}
			}
			lo, hi = min(lo, c), max(hi, c)
		}
		if len(subscribed) > 0 && hi-lo > 1 {
			t.Fatalf("topic %s: shares from %d to %d", topic, lo, hi)
		}
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// moved counts the partitions whose member changed (including newly owned ones when from
// had no member for them).
func moved(from, to map[string]partitionSet) (revoked int) {
	for m, set := range from {
		for p := range set {
			if !to[m][p] {
				revoked++
			}
		}
	}
	return revoked
}

func TestAssignThreeMembersSixPartitions(t *testing.T) {
	parts := map[string]uint32{"t": 6}
	ss := subs([]string{"t"}, "a", "b", "c")
	a := assign(nil, ss, parts)
	checkAssignment(t, a, ss, parts)
	for m, set := range a {
		if len(set) != 2 {
			t.Fatalf("%s holds %d partitions, want 2", m, len(set))
		}
	}
	if b := assign(nil, ss, parts); !reflect.DeepEqual(a, b) {
		t.Fatal("the assignor is not deterministic")
	}
	// Same inputs again: nothing moves.
	if again := assign(a, ss, parts); !reflect.DeepEqual(a, again) {
		t.Fatalf("a stable group moved: %v → %v", a, again)
	}
}

// TestAssignMovesOnlyWhatMust: a join takes from the members above the new share only the
// excess; a leave moves only the leaver's partitions.
func TestAssignMovesOnlyWhatMust(t *testing.T) {
	parts := map[string]uint32{"t": 6}
	three := subs([]string{"t"}, "a", "b", "c")
	a := assign(nil, three, parts)

	four := subs([]string{"t"}, "a", "b", "c", "d")
	b := assign(a, four, parts)
	checkAssignment(t, b, four, parts)
	if n := moved(a, b); n != len(b["d"]) || n != 1 {
		t.Fatalf("a join revoked %d partitions and gave d %d; want 1 and 1", n, len(b["d"]))
	}

	left := subs([]string{"t"}, "a", "c", "d")
	c := assign(b, left, parts)
	checkAssignment(t, c, left, parts)
	delete(b, "b")
	if n := moved(b, c); n != 0 {
		t.Fatalf("b's leave revoked %d partitions of the members that stayed", n)
	}
}

// TestAssignRandomChurn runs random joins, leaves, subscription changes and partition
// additions over three topics and checks the assignment each time: one member per partition,
// balanced shares, and no partition revoked from a member that stays unless the member is
// above its new share or unsubscribed.
func TestAssignRandomChurn(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	parts := map[string]uint32{"x": 4, "y": 7, "z": 1}
	topics := []string{"x", "y", "z"}
	var ss []subscription
	var cur map[string]partitionSet
	next := 0
	for step := range 300 {
		switch r := rng.IntN(10); {
		case r < 4 || len(ss) == 0:
			var ts []string
			for _, x := range topics {
				if rng.IntN(2) == 0 {
					ts = append(ts, x)
				}
			}
			ss = append(ss, subscription{member: fmt.Sprintf("m%03d", next), topics: ts})
			next++
		case r < 8:
			i := rng.IntN(len(ss))
			ss = append(ss[:i], ss[i+1:]...)
		case r < 9:
			parts[topics[rng.IntN(3)]]++
		default:
			i := rng.IntN(len(ss))
			ss[i].topics = []string{topics[rng.IntN(3)]}
		}
		nxt := assign(cur, ss, parts)
		checkAssignment(t, nxt, ss, parts)
		// A member that stays and is subscribed gives up a partition only when it holds more
		// than its share of that topic now.
		for _, s := range ss {
			for p := range cur[s.member] {
				if nxt[s.member][p] || !contains(s.topics, p.topic) {
					continue
				}
				share := 0
				for _, o := range ss {
					if contains(o.topics, p.topic) {
						share++
					}
				}
				held := 0
				for q := range cur[s.member] {
					if q.topic == p.topic {
						held++
					}
				}
				if ceil := (int(parts[p.topic]) + share - 1) / share; held <= int(parts[p.topic])/share && held <= ceil {
					t.Fatalf("step %d: %s lost %v while holding %d of %s (share %d of %d partitions)", step, s.member, p, held, p.topic, share, parts[p.topic])
				}
			}
		}
		cur = nxt
	}
}
