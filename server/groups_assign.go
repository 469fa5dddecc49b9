package server

import (
	"slices"
	"sort"
)

// topicPartition names one partition of a topic.
type topicPartition struct {
	topic     string
	partition uint32
}

func compareTP(a, b topicPartition) int {
	if a.topic != b.topic {
		if a.topic < b.topic {
			return -1
		}
		return 1
	}
	return int(int64(a.partition) - int64(b.partition))
}

// partitionSet is a set of partitions.
type partitionSet map[topicPartition]bool

// sorted returns the set's partitions by topic and partition.
func (s partitionSet) sorted() []topicPartition {
	out := make([]topicPartition, 0, len(s))
	for p := range s {
		out = append(out, p)
	}
	slices.SortFunc(out, compareTP)
	return out
}

// subscription is a member and the topics it subscribes to.
type subscription struct {
	member string
	topics []string
}

// assign is the sticky, cooperative assignor: given the previous target assignment (member →
// partitions), the members' subscriptions and each topic's partition count, it returns the new
// target in which every partition of a subscribed topic has exactly one member, the members
// subscribed to a topic hold its partitions in shares that differ by at most one, and as few
// partitions as possible change hands:
//
//   - a member keeps the partitions it held, up to its share; only a member above its new share
//     (a member joined) gives up partitions, and only the excess;
//   - partitions whose member left, unsubscribed, or that are new, go to the members below
//     their share, the least loaded (over every topic) first.
//
// Topics are balanced one at a time, by name; for a topic whose partitions do not divide evenly,
// the extra partitions go to members that already hold them, then to the least loaded. The
// result depends only on its inputs (it is deterministic), which the tests rely on; which member
// ends up where is not otherwise part of any contract.
func assign(prev map[string]partitionSet, subs []subscription, partitions map[string]uint32) map[string]partitionSet {
	out := make(map[string]partitionSet, len(subs))
	load := make(map[string]int, len(subs))
	byTopic := map[string][]string{}
	for _, s := range subs {
		out[s.member] = partitionSet{}
		for _, t := range s.topics {
			if partitions[t] > 0 && !slices.Contains(byTopic[t], s.member) {
				byTopic[t] = append(byTopic[t], s.member)
			}
		}
	}
	topics := make([]string, 0, len(byTopic))
	for t := range byTopic {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		members := byTopic[t]
		sort.Strings(members)
		n := int(partitions[t])
		base, extra := n/len(members), n%len(members)
		kept := make(map[string][]uint32, len(members))
		for _, m := range members {
			for p := range prev[m] {
				if p.topic == t && int(p.partition) < n {
					kept[m] = append(kept[m], p.partition)
				}
			}
			slices.Sort(kept[m])
		}
		// The members that may hold base+1: those already holding that many first (they keep
		// them without a move), then the least loaded.
		order := slices.Clone(members)
		sort.SliceStable(order, func(i, j int) bool {
			ki, kj := min(len(kept[order[i]]), base+1), min(len(kept[order[j]]), base+1)
			if ki != kj {
				return ki > kj
			}
			if load[order[i]] != load[order[j]] {
				return load[order[i]] < load[order[j]]
			}
			return order[i] < order[j]
		})
		quota := make(map[string]int, len(members))
		for i, m := range order {
			quota[m] = base
			if i < extra {
				quota[m]++
			}
		}
		taken := make(map[uint32]bool, n)
		count := make(map[string]int, len(members))
		for _, m := range members {
			for _, p := range kept[m] {
				if count[m] >= quota[m] || taken[p] {
					continue
				}
				taken[p] = true
				count[m]++
				out[m][topicPartition{t, p}] = true
			}
		}
		for p := range uint32(n) {
			if taken[p] {
				continue
			}
			best := ""
			for _, m := range members {
				if count[m] >= quota[m] {
					continue
				}
				if best == "" || load[m]+count[m] < load[best]+count[best] {
					best = m
				}
			}
			// The quotas add up to n, so some member is below its own.
			count[best]++
			out[best][topicPartition{t, p}] = true
		}
		for _, m := range members {
			load[m] += count[m]
		}
	}
	return out
}
