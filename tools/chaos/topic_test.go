package chaos

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// logFrom is logOf for a log whose first offset is from.
func logFrom(node string, from uint64, values ...string) NodeLog {
	l := logOf(node, values...)
	for i := range l.Records {
		l.Records[i].Offset += from
	}
	return l
}

func TestCheckTopicsAcceptsAGoodRun(t *testing.T) {
	var p0, p1, r0 hist
	p0.add(KindProduce, StatusOK, 0, false, 1, 2, "a")
	p0.add(KindProduceBatch, StatusOK, 1, false, 3, 4, "b", "c")
	p1.add(KindProduceIdem, StatusOK, 0, false, 1, 2, "x")
	p1.add(KindProduce, StatusUnknown, 0, false, 3, 4, "y")
	p1.add(KindProduce, StatusFail, 0, false, 5, 6, "z")
	r0.add(KindProduce, StatusOK, 0, false, 1, 2, "gone")
	r0.add(KindProduce, StatusOK, 3, false, 3, 4, "kept")
	r0.add(KindProduce, StatusUnknown, 0, false, 5, 6, "u")
	parts := []topicPartition{
		{topic: "t", partition: 0, logs: []NodeLog{logOf("n1", "a", "b", "c"), logOf("n2", "a", "b", "c")}, ops: p0.ops},
		{topic: "t", partition: 1, logs: []NodeLog{logOf("n1", "x", "y"), logOf("n2", "x", "y")}, ops: p1.ops},
		{topic: "r", partition: 0, trimmed: true, logs: []NodeLog{logFrom("n1", 2, "u", "kept"), logFrom("n2", 2, "u", "kept")}, ops: r0.ops},
	}
	vs := checkTopics(parts, nil)
	if len(vs) != 8 {
		t.Fatalf("%d verdicts, want 8: %+v", len(vs), vs)
	}
	for _, v := range vs {
		if !v.OK || !strings.HasPrefix(v.Name, "topic-") {
			t.Errorf("verdict %+v, want a passing topic-… verdict", v)
		}
	}
	if n := verdictOf(t, vs, "topic-nodes-agree").Note; !strings.Contains(n, "t/1: 2 nodes, 2 offsets") {
		t.Errorf("note %q does not count t/1", n)
	}
	if n := verdictOf(t, vs, "topic-acknowledged-not-lost").Note; !strings.Contains(n, "r/0: 2 acknowledged records; 1 of 1 unknown-outcome records stored; 1 acknowledged records below offset 2, dropped by retention") {
		t.Errorf("note %q does not count r/0's dropped record", n)
	}
}

func TestCheckTopicsFindsEachAnomaly(t *testing.T) {
	for _, tc := range []struct {
		name     string
		t0, t1   []NodeLog
		trimmed  bool     // t/1 is cut by retention
		t1Values []string // an acknowledged write to t/1 at offset t1At
		t1At     uint64
		voters   error
		verdict  string
		first    string
	}{
		{
			name: "replicas disagree",
			t0:   []NodeLog{logOf("n1", "a")}, t1: []NodeLog{logOf("n1", "x"), logOf("n2", "w")}, t1Values: []string{"x"},
			verdict: "topic-nodes-agree",
			first:   `t/1: offset 0: node n1 holds "x", node n2 holds "w"`,
		},
		{
			name: "a record stored in another partition",
			t0:   []NodeLog{logOf("n1", "a", "x")}, t1: []NodeLog{logOf("n1")}, t1Values: []string{"x"},
			verdict: "topic-acknowledged-not-lost",
			first:   `t/1: acknowledged produce`,
		},
		{
			name: "the same record stored in another partition too",
			t0:   []NodeLog{logOf("n1", "a", "x")}, t1: []NodeLog{logOf("n1", "x")}, t1Values: []string{"x"},
			verdict: "topic-no-phantoms",
			first:   `t/0: offset 1 holds "x", which no operation wrote`,
		},
		{
			name: "a node behind",
			t0:   []NodeLog{logOf("n1", "a"), logOf("n2", "a")}, t1: []NodeLog{logOf("n1", "x"), logOf("n2")}, t1Values: []string{"x"},
			verdict: "topic-caught-up",
			first:   "t/1: node n2: holds offsets up to 0, another node up to 1",
		},
		{
			name: "a node not a voter",
			t0:   []NodeLog{logOf("n1", "a")}, t1: []NodeLog{logOf("n1", "x")}, t1Values: []string{"x"},
			voters:  errors.New("n3 is a nonvoter"),
			verdict: "topic-caught-up",
			first:   "t/0: not every node is a voter again: n3 is a nonvoter",
		},
		{
			name: "a log not cut by retention starting above 0",
			t0:   []NodeLog{logOf("n1", "a")}, t1: []NodeLog{logFrom("n1", 1, "x")}, t1Values: []string{"x"}, t1At: 1,
			verdict: "topic-offsets-dense",
			first:   "t/1: node n1: log starts at offset 1, not 0",
		},
		{
			name: "retention cut the nodes at different offsets",
			t0:   []NodeLog{logOf("n1", "a")}, t1: []NodeLog{logFrom("n1", 1, "w", "x"), logFrom("n2", 2, "x")}, trimmed: true,
			t1Values: []string{"x"}, t1At: 2,
			verdict: "topic-offsets-dense",
			first:   "t/1: node n2: log starts at offset 2, node n1's at 1",
		},
		{
			name: "an acknowledged record above retention's cut lost",
			t0:   []NodeLog{logOf("n1", "a")}, t1: []NodeLog{logFrom("n1", 2, "w")}, trimmed: true,
			t1Values: []string{"x"}, t1At: 3,
			verdict: "topic-acknowledged-not-lost",
			first:   `t/1: acknowledged produce`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p0, p1 hist
			p0.add(KindProduce, StatusOK, 0, false, 1, 2, "a")
			p1.add(KindProduce, StatusOK, tc.t1At, false, 1, 2, tc.t1Values...)
			p1.add(KindProduce, StatusUnknown, 0, false, 3, 4, "w")
			vs := checkTopics([]topicPartition{
				{topic: "t", partition: 0, logs: tc.t0, ops: p0.ops},
				{topic: "t", partition: 1, trimmed: tc.trimmed, logs: tc.t1, ops: p1.ops},
			}, tc.voters)
			v := verdictOf(t, vs, tc.verdict)
			if v.OK || !strings.HasPrefix(v.First, tc.first) {
				t.Fatalf("%s: %+v, want a failure starting %q", tc.verdict, v, tc.first)
			}
			if !Failed(vs) {
				t.Fatalf("Failed(%+v) = false", vs)
			}
		})
	}
}

// cuttingReader is a cluster whose retention cut of chaos-r/0 (proposed by the leader's last
// retention check, after the writers stopped) reaches its nodes while finish reads them: the
// first read finds n1 not cut yet, n2 and n3 cut; every later read finds all three cut.
type cuttingReader struct{ reads int }

func (c *cuttingReader) partitionConverged(context.Context, string, uint32) bool { return true }

func (c *cuttingReader) readCopies(_ context.Context, topic string, p uint32) []NodeLog {
	if topic == "chaos-t" && p == 0 {
		return []NodeLog{logOf("n1", "t"), logOf("n2", "t"), logOf("n3", "t")}
	}
	if topic != "chaos-r" || p != 0 {
		return []NodeLog{logOf("n1"), logOf("n2"), logOf("n3")}
	}
	c.reads++
	if c.reads == 1 {
		return []NodeLog{logOf("n1", "a", "b", "c"), logFrom("n2", 2, "c"), logFrom("n3", 2, "c")}
	}
	return []NodeLog{logFrom("n1", 2, "c"), logFrom("n2", 2, "c"), logFrom("n3", 2, "c")}
}

// TestFinishWaitsForRetentionCut: a retention cut that lands between the reads of two nodes'
// copies is no anomaly of a correct cluster: finish reads again until the copies settle.
func TestFinishWaitsForRetentionCut(t *testing.T) {
	var r0 hist
	r0.add(KindProduce, StatusOK, 0, false, 1, 2, "a")
	r0.add(KindProduce, StatusOK, 1, false, 3, 4, "b")
	r0.add(KindProduce, StatusOK, 2, false, 5, 6, "c")
	tw := &topicWriter{cancel: func() {}, created: map[string]bool{}, ops: map[string][][]*Op{}}
	for _, spec := range chaosTopics {
		tw.created[spec.name] = true
		tw.ops[spec.name] = make([][]*Op, spec.partitions)
	}
	tw.ops["chaos-r"][0] = r0.ops
	var t0 hist
	t0.add(KindProduce, StatusOK, 0, false, 1, 2, "t")
	tw.ops["chaos-t"][0] = t0.ops
	vs := tw.finish(context.Background(), &cuttingReader{}, nil, 5*time.Second)
	for _, v := range vs {
		if !v.OK {
			t.Errorf("verdict %+v, want a pass", v)
		}
	}
}

// stuckReader is a cluster one node of which cut chaos-r/0 at another offset for good.
type stuckReader struct{ cuttingReader }

func (c *stuckReader) readCopies(_ context.Context, topic string, p uint32) []NodeLog {
	if topic != "chaos-r" || p != 0 {
		return []NodeLog{logOf("n1"), logOf("n2")}
	}
	c.reads++
	return []NodeLog{logFrom("n1", 1, "b", "c"), logFrom("n2", 2, "c")}
}

// TestFinishReportsALastingDifference: finish reads again only until its deadline; copies that
// never settle are judged as last read.
func TestFinishReportsALastingDifference(t *testing.T) {
	tw := &topicWriter{cancel: func() {}, created: map[string]bool{}, ops: map[string][][]*Op{}}
	for _, spec := range chaosTopics {
		tw.created[spec.name] = true
		tw.ops[spec.name] = make([][]*Op, spec.partitions)
	}
	r := &stuckReader{}
	v := verdictOf(t, tw.finish(context.Background(), r, nil, time.Second), "topic-offsets-dense")
	if v.OK || !strings.HasPrefix(v.First, "chaos-r/0: node n2: log starts at offset 2, node n1's at 1") {
		t.Fatalf("%+v, want the different starts reported", v)
	}
	if r.reads < 2 {
		t.Fatalf("%d reads, want the copies read again until the deadline", r.reads)
	}
}

// TestCheckTopicsWithoutProgressFails: a topic workload none of whose writes to a topic was
// acknowledged (the writers never reached the cluster, or every write failed) tested nothing
// of that topic, and every other checker passes an empty history.
func TestCheckTopicsWithoutProgressFails(t *testing.T) {
	var p0, r0 hist
	p0.add(KindProduce, StatusOK, 0, false, 1, 2, "a")
	r0.add(KindProduce, StatusFail, 0, false, 1, 2, "x")
	vs := checkTopics([]topicPartition{
		{topic: "t", partition: 0, logs: []NodeLog{logOf("n1", "a"), logOf("n2", "a")}, ops: p0.ops},
		{topic: "r", partition: 0, trimmed: true, logs: []NodeLog{logOf("n1"), logOf("n2")}, ops: r0.ops},
		{topic: "r", partition: 1, trimmed: true, logs: []NodeLog{logOf("n1"), logOf("n2")}},
	}, nil)
	if !Failed(vs) {
		t.Fatalf("Failed(%+v) = false, want topic r without an acknowledged write a failure", vs)
	}
	v := verdictOf(t, vs, "topic-progress")
	if v.OK || v.First != `topic "r": no write was acknowledged in 1 operations` {
		t.Fatalf("topic-progress: %+v", v)
	}
}
