package chaos

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckTopicAcceptsAGoodRun(t *testing.T) {
	var p0, p1 hist
	p0.add(KindProduce, StatusOK, 0, false, 1, 2, "a")
	p0.add(KindProduceBatch, StatusOK, 1, false, 3, 4, "b", "c")
	p1.add(KindProduceIdem, StatusOK, 0, false, 1, 2, "x")
	p1.add(KindProduce, StatusUnknown, 0, false, 3, 4, "y")
	p1.add(KindProduce, StatusFail, 0, false, 5, 6, "z")
	parts := [][]NodeLog{
		{logOf("n1", "a", "b", "c"), logOf("n2", "a", "b", "c")},
		{logOf("n1", "x", "y"), logOf("n2", "x", "y")},
	}
	vs := checkTopic(parts, [][]*Op{p0.ops, p1.ops}, nil)
	if len(vs) != 7 {
		t.Fatalf("%d verdicts, want 7: %+v", len(vs), vs)
	}
	for _, v := range vs {
		if !v.OK || !strings.HasPrefix(v.Name, "topic-") {
			t.Errorf("verdict %+v, want a passing topic-… verdict", v)
		}
	}
	if n := verdictOf(t, vs, "topic-nodes-agree").Note; !strings.Contains(n, "partition 1: 2 nodes, 2 offsets") {
		t.Errorf("note %q does not count partition 1", n)
	}
}

func TestCheckTopicFindsEachAnomaly(t *testing.T) {
	for _, tc := range []struct {
		name    string
		parts   [][]NodeLog
		p1      []string // values of an acknowledged write to partition 1 at offset 0
		voters  error
		verdict string
		first   string
	}{
		{
			name:    "replicas disagree",
			parts:   [][]NodeLog{{logOf("n1", "a")}, {logOf("n1", "x"), logOf("n2", "w")}},
			p1:      []string{"x"},
			verdict: "topic-nodes-agree",
			first:   `partition 1: offset 0: node n1 holds "x", node n2 holds "w"`,
		},
		{
			name:    "a record stored in another partition",
			parts:   [][]NodeLog{{logOf("n1", "a", "x")}, {logOf("n1")}},
			p1:      []string{"x"},
			verdict: "topic-acknowledged-not-lost",
			first:   `partition 1: acknowledged produce`,
		},
		{
			name:    "the same record stored in its partition's wrong place",
			parts:   [][]NodeLog{{logOf("n1", "a", "x")}, {logOf("n1", "x")}},
			p1:      []string{"x"},
			verdict: "topic-no-phantoms",
			first:   `partition 0: offset 1 holds "x", which no operation wrote`,
		},
		{
			name:    "a node behind",
			parts:   [][]NodeLog{{logOf("n1", "a"), logOf("n2", "a")}, {logOf("n1", "x"), logOf("n2")}},
			p1:      []string{"x"},
			verdict: "topic-caught-up",
			first:   "partition 1: node n2: holds offsets up to 0, another node up to 1",
		},
		{
			name:    "a node not a voter",
			parts:   [][]NodeLog{{logOf("n1", "a")}, {logOf("n1", "x")}},
			p1:      []string{"x"},
			voters:  errors.New("n3 is a nonvoter"),
			verdict: "topic-caught-up",
			first:   "partition 0: not every node is a voter again: n3 is a nonvoter",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p0, p1 hist
			p0.add(KindProduce, StatusOK, 0, false, 1, 2, "a")
			p1.add(KindProduce, StatusOK, 0, false, 1, 2, tc.p1...)
			vs := checkTopic(tc.parts, [][]*Op{p0.ops, p1.ops}, tc.voters)
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
