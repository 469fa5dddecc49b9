package chaos

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// hist builds ops for the checker tests: times in ms.
type hist struct{ ops []*Op }

func (h *hist) add(kind, status string, offset uint64, found bool, invoke, complete int64, values ...string) *Op {
	op := &Op{ID: int64(len(h.ops) + 1), Process: len(h.ops) % 4, Kind: kind, Status: status, Offset: offset, Found: found,
		Invoke: invoke * 1e6, Complete: complete * 1e6, Values: values}
	h.ops = append(h.ops, op)
	return op
}

func logOf(node string, values ...string) NodeLog {
	l := NodeLog{Node: node}
	for i, v := range values {
		l.Records = append(l.Records, Record{Offset: uint64(i), Value: v})
	}
	return l
}

func verdictOf(t *testing.T, vs []Verdict, name string) Verdict {
	t.Helper()
	for _, v := range vs {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no verdict %q in %+v", name, vs)
	return Verdict{}
}

// good is a history every checker accepts: writes of each kind, an unknown write that took
// effect and one that did not, a refused write, linearizable and follower reads.
func good() (*hist, []NodeLog) {
	h := &hist{}
	h.add(KindProduce, StatusOK, 0, false, 0, 10, "a")
	h.add(KindProduceBatch, StatusOK, 1, false, 5, 20, "b", "c")
	h.add(KindProduceStream, StatusUnknown, 0, false, 21, 30, "d") // stored at 3
	h.add(KindProduceAsync, StatusUnknown, 0, false, 21, 30, "x")  // not stored
	h.add(KindProduce, StatusFail, 0, false, 22, 25, "y")          // refused
	h.add(KindReadLin, StatusOK, 1, true, 25, 26, "b")
	h.add(KindReadNode, StatusOK, 9, false, 40, 41)
	h.add(KindReadFollower, StatusOK, 3, true, 50, 51, "d")
	h.add(KindReadStream, StatusOK, 0, true, 50, 60, "a", "b", "c", "d")
	h.add(KindReadLin, StatusFail, 2, false, 50, 60)
	h.add(KindBoundsNode, StatusOK, 3, false, 22, 24) // before or after "d"
	logs := []NodeLog{logOf("n1", "a", "b", "c", "d"), logOf("n2", "a", "b", "c", "d"), logOf("n3", "a", "b", "c", "d")}
	return h, logs
}

func TestCheckAcceptsAGoodHistory(t *testing.T) {
	h, logs := good()
	vs := Check(CheckConfig{}, h.ops, logs)
	if Failed(vs) {
		t.Fatalf("anomalies in a good history: %+v", vs)
	}
	if v := verdictOf(t, vs, "linearizable"); !v.OK || v.Note != "6 operations" {
		t.Fatalf("linearizable: %+v (want 6 operations: 2 acknowledged writes, 1 stored unknown one, 2 answered linearizable reads, 1 bounds)", v)
	}
}

// TestCheckFindsEachAnomaly: each mutation of the good history trips its checker, and only
// the expected ones.
func TestCheckFindsEachAnomaly(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(h *hist, logs []NodeLog) []NodeLog
		want   []string
	}{
		{"lost ack", func(h *hist, logs []NodeLog) []NodeLog {
			for i := range logs {
				logs[i].Records = logs[i].Records[:3] // "d" unknown: fine; now make "c" lost
				logs[i].Records[2].Value = "d"
			}
			return logs
		}, []string{"acknowledged-not-lost", "reads-match-log", "linearizable"}},
		{"divergent node", func(h *hist, logs []NodeLog) []NodeLog {
			logs[1].Records[3].Value = "zz"
			return logs
		}, []string{"nodes-agree"}},
		{"node behind", func(h *hist, logs []NodeLog) []NodeLog {
			logs[2].Records = logs[2].Records[:2]
			return logs
		}, []string{"caught-up"}},
		{"gap", func(h *hist, logs []NodeLog) []NodeLog {
			for i := range logs {
				logs[i].Records[3].Offset = 5
			}
			return logs
		}, []string{"offsets-dense", "reads-match-log", "linearizable"}},
		{"duplicate", func(h *hist, logs []NodeLog) []NodeLog {
			for i := range logs {
				logs[i].Records = append(logs[i].Records, Record{Offset: 4, Value: "a"})
			}
			return logs
		}, []string{"no-duplicates"}},
		{"refused stored", func(h *hist, logs []NodeLog) []NodeLog {
			for i := range logs {
				logs[i].Records = append(logs[i].Records, Record{Offset: 4, Value: "y"})
			}
			return logs
		}, []string{"refused-never-stored"}},
		{"phantom", func(h *hist, logs []NodeLog) []NodeLog {
			for i := range logs {
				logs[i].Records = append(logs[i].Records, Record{Offset: 4, Value: "ghost"})
			}
			return logs
		}, []string{"no-phantoms"}},
		{"follower read a wrong value", func(h *hist, logs []NodeLog) []NodeLog {
			h.ops[7].Values = []string{"c"}
			return logs
		}, []string{"reads-match-log"}},
		{"stale linearizable read", func(h *hist, logs []NodeLog) []NodeLog {
			// Offset 1 was acknowledged at 20 ms; a linearizable read begun at 30 ms saw nothing.
			h.add(KindReadNode, StatusOK, 1, false, 30, 31)
			return logs
		}, []string{"linearizable-reads-fresh", "linearizable"}},
		{"stale linearizable bounds", func(h *hist, logs []NodeLog) []NodeLog {
			// Three records were acknowledged by 20 ms; bounds begun at 30 ms said 1.
			h.add(KindBoundsNode, StatusOK, 1, false, 30, 31)
			return logs
		}, []string{"linearizable-reads-fresh", "linearizable"}},
		{"follower out of range for an acknowledged offset", func(h *hist, logs []NodeLog) []NodeLog {
			// Offset 1 was acknowledged at 20 ms; a follower read begun at 30 ms said out of range.
			h.add(KindReadFollower, StatusOK, 1, false, 30, 31)
			return logs
		}, []string{"replica-reads-committed"}},
		{"acknowledged out of order", func(h *hist, logs []NodeLog) []NodeLog {
			// A write acknowledged at offset 0 after one at 1 had completed, both stored as acked.
			h.ops[0].Invoke, h.ops[0].Complete = 21e6, 22e6
			return logs
		}, []string{"linearizable"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, logs := good()
			logs = tc.mutate(h, logs)
			vs := Check(CheckConfig{LinearizabilityTimeout: time.Minute}, h.ops, logs)
			var got []string
			for _, v := range vs {
				if !v.OK {
					got = append(got, v.Name)
					if v.First == "" {
						t.Errorf("%s failed without describing its first anomaly", v.Name)
					}
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("failed checkers %v, want %v: %+v", got, tc.want, vs)
			}
		})
	}
}

// TestLinearizableFirstAnomalyNamesTheOp: the report names the op that cannot be placed.
func TestLinearizableFirstAnomalyNamesTheOp(t *testing.T) {
	h, logs := good()
	stale := h.add(KindReadNode, StatusOK, 1, false, 30, 31)
	stale.Node = "n3"
	v := verdictOf(t, Check(CheckConfig{}, h.ops, logs), "linearizable")
	if v.OK || !strings.Contains(v.First, "read(1) -> none") || !strings.Contains(v.First, "at n3") {
		t.Fatalf("first anomaly %q does not name the stale read", v.First)
	}
}

func TestHistoryRoundTrip(t *testing.T) {
	path := t.TempDir() + "/h.jsonl"
	h, err := NewHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	op := h.Invoke(1, KindProduce, "", 0, []string{"v"})
	h.Complete(op, StatusOK, 7, false, nil, nil)
	h.Nemesis(NemesisEvent{Name: "kill", Start: 1, End: 2})
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := openFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ops, nem, err := ReadHistory(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 1 || ops[0].Status != StatusOK || ops[0].Offset != 7 || len(nem) != 1 {
		t.Fatalf("read back %+v %+v", ops, nem)
	}
}

func TestScheduleIsReproducible(t *testing.T) {
	a, b := NewSchedule(42, time.Minute, nil), NewSchedule(42, time.Minute, nil)
	if a.String() != b.String() {
		t.Fatalf("same seed, different schedules:\n%s\n%s", a, b)
	}
	if c := NewSchedule(43, time.Minute, nil); c.String() == a.String() {
		t.Fatalf("seeds 42 and 43 drew the same schedule")
	}
	var total time.Duration
	for _, w := range a.Windows {
		total += w.Quiet + w.Hold
		if w.Hold < 3*time.Second {
			t.Fatalf("a fault held %s, less than the 3 s that outlast an election timeout", w.Hold)
		}
	}
	if total < time.Minute {
		t.Fatalf("schedule covers %s of a minute", total)
	}
}

// TestScheduleNeverCombinesSlowMembershipFaults: rolling restarts, remove/add and wipes always
// run alone (a graceful stop during a partition waits out Raft's timeouts; a wipe's heal waits
// for the node to catch up, which a partition healed after it would prevent), while other
// faults do combine. The default schedules never draw a wipe (the extra faults).
func TestScheduleNeverCombinesSlowMembershipFaults(t *testing.T) {
	for _, faults := range [][]string{nil, KnownFaults()} {
		combined, wipes := 0, 0
		for seed := uint64(1); seed <= 300; seed++ {
			for _, w := range NewSchedule(seed, time.Minute, faults).Windows {
				if slices.Contains(w.Faults, "wipe") || slices.Contains(w.Faults, "wipe-kill-leader") {
					wipes++
				}
				if len(w.Faults) > 1 {
					combined++
					for _, f := range w.Faults {
						if f == "rolling-restart" || f == "remove-add" || f == "wipe" || f == "wipe-kill-leader" {
							t.Fatalf("seed %d combines %v", seed, w.Faults)
						}
					}
				}
			}
		}
		if combined == 0 {
			t.Fatal("no schedule combined two faults")
		}
		if (faults == nil) != (wipes == 0) {
			t.Fatalf("faults %v: %d windows wipe a node", faults, wipes)
		}
	}
}

// TestCheckFailsAWorkloadThatMadeNoProgress: a run in which every op failed, or no
// linearizable read was ever answered, is not a pass, although no other checker finds an
// anomaly in it.
func TestCheckFailsAWorkloadThatMadeNoProgress(t *testing.T) {
	empty := []NodeLog{logOf("n1"), logOf("n2"), logOf("n3")}
	nothing := &hist{}
	nothing.add(KindProduce, StatusFail, 0, false, 0, 10, "a")
	nothing.add(KindProduceStream, StatusUnknown, 0, false, 0, 10, "b") // never stored
	nothing.add(KindReadLin, StatusFail, 0, false, 5, 15)
	nothing.add(KindBoundsNode, StatusFail, 0, false, 5, 15)
	noReads := &hist{}
	noReads.add(KindProduce, StatusOK, 0, false, 0, 10, "a")
	noReads.add(KindReadFollower, StatusOK, 0, true, 20, 21, "a")
	noReads.add(KindReadNode, StatusFail, 0, false, 20, 30)
	for _, tc := range []struct {
		name string
		ops  []*Op
		logs []NodeLog
	}{
		{"no op succeeded", nothing.ops, empty},
		{"no ops", nil, empty},
		{"no linearizable read answered", noReads.ops, []NodeLog{logOf("n1", "a"), logOf("n2", "a"), logOf("n3", "a")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := Check(CheckConfig{}, tc.ops, tc.logs)
			if !Failed(vs) {
				t.Fatalf("a run that made no progress passes: %+v", vs)
			}
			if v := verdictOf(t, vs, "progress"); v.OK || v.First == "" {
				t.Fatalf("progress: %+v", v)
			}
		})
	}
}

// TestCheckCaughtUpNeedsEveryVoter: nodes that hold the whole log but are not all voters again
// after the heal (a removed node never promoted back) fail caught-up.
func TestCheckCaughtUpNeedsEveryVoter(t *testing.T) {
	h, logs := good()
	vs := Check(CheckConfig{NotAllVoters: errors.New("2 voters of 3")}, h.ops, logs)
	if v := verdictOf(t, vs, "caught-up"); v.OK || !strings.Contains(v.First, "2 voters of 3") {
		t.Fatalf("caught-up: %+v", v)
	}
}

// TestCheckNemesis: a fault that could not be applied or healed fails the run.
func TestCheckNemesis(t *testing.T) {
	if v := checkNemesis(nil); !v.OK {
		t.Fatalf("every fault applied: %+v", v)
	}
	v := checkNemesis(errors.Join(nil, errors.New("partition-leader: nft: exit status 1")))
	if v.OK || !Failed([]Verdict{v}) || !strings.Contains(v.First, "nft") {
		t.Fatalf("a fault not applied: %+v", v)
	}
}
