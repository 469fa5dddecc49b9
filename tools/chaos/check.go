package chaos

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Record is one record of a node's log as read at the end of a run.
type Record struct {
	Offset uint64
	Value  string
}

// NodeLog is a node's whole log as read at the end of a run; Err is set when it could not be
// read completely.
type NodeLog struct {
	Node    string
	Records []Record
	Err     error
}

// Verdict is one checker's result.
type Verdict struct {
	Name string `json:"name"`
	// OK: no anomaly. Inconclusive: the checker could not decide (e.g. porcupine timed out);
	// it is not counted as a failure.
	OK           bool   `json:"ok"`
	Inconclusive bool   `json:"inconclusive,omitempty"`
	Anomalies    int    `json:"anomalies"`
	First        string `json:"first,omitempty"` // the first anomaly, with its operations
	Note         string `json:"note,omitempty"`
}

// CheckConfig tunes Check.
type CheckConfig struct {
	// LinearizabilityTimeout bounds porcupine; 0 means 1 minute.
	LinearizabilityTimeout time.Duration
	// NotAllVoters, when set, says why the healed cluster did not have every node back as a
	// voter (Cluster.WaitVoters): caught-up fails with it.
	NotAllVoters error
}

// Check runs every checker over a run's ops and the nodes' final logs.
func Check(cfg CheckConfig, ops []*Op, logs []NodeLog) []Verdict {
	if cfg.LinearizabilityTimeout <= 0 {
		cfg.LinearizabilityTimeout = time.Minute
	}
	var out []Verdict
	ref, agree, caught, dense := checkLogs(logs)
	out = append(out, dense, agree, votersBack(caught, cfg.NotAllVoters))
	out = append(out, checkWrites(ops, ref)...)
	out = append(out, checkReads(ops, ref))
	out = append(out, checkFreshReads(ops))
	out = append(out, checkReplicaReadsCommitted(ops))
	out = append(out, checkLinearizable(ops, ref, cfg.LinearizabilityTimeout))
	out = append(out, checkProgress(ops))
	return out
}

// votersBack fails caught (caught-up) when notVoters says why not every node is a voter again.
func votersBack(caught Verdict, notVoters error) Verdict {
	if notVoters != nil {
		if caught.OK {
			caught.First = fmt.Sprintf("not every node is a voter again: %v", notVoters)
		}
		caught.OK = false
		caught.Anomalies++
	}
	return caught
}

// checkNemesis: every fault of the schedule was applied and healed (err says which were not).
// A run whose faults did not happen, or were left in place, is no pass: the checkers would
// judge a quiet cluster, or one the final reads found partitioned.
func checkNemesis(err error) Verdict {
	var a anomalies
	if err != nil {
		a.add("the schedule's faults were not all applied and healed: %v", err)
	}
	return a.verdict("nemesis")
}

// checkProgress: the workload got something done. Every other checker passes an empty
// history, so a cluster that refused or timed out every op (never formed a quorum, every write
// failing) would pass them all: a run needs acknowledged writes and answered linearizable reads.
func checkProgress(ops []*Op) Verdict {
	writes, reads := 0, 0
	for _, op := range ops {
		switch {
		case op.Status != StatusOK:
		case op.IsWrite():
			writes++
		case linearizableRead(op) || op.Kind == KindBoundsNode:
			reads++
		}
	}
	var a anomalies
	if writes == 0 {
		a.add("no write was acknowledged in %d operations", len(ops))
	}
	if reads == 0 {
		a.add("no linearizable read was answered in %d operations", len(ops))
	}
	v := a.verdict("progress")
	v.Note = fmt.Sprintf("%d acknowledged writes, %d answered linearizable reads", writes, reads)
	return v
}

// Failed reports whether any verdict found an anomaly.
func Failed(vs []Verdict) bool {
	for _, v := range vs {
		if !v.OK && !v.Inconclusive {
			return true
		}
	}
	return false
}

// anomalies counts anomalies and keeps the first one's description.
type anomalies struct {
	n     int
	first string
}

func (a *anomalies) add(format string, args ...any) {
	if a.n == 0 {
		a.first = fmt.Sprintf(format, args...)
	}
	a.n++
}

func (a *anomalies) verdict(name string) Verdict {
	return Verdict{Name: name, OK: a.n == 0, Anomalies: a.n, First: a.first}
}

// checkLogs compares the nodes' logs: offsets dense, one value per offset across nodes, every
// node holding the whole log. It returns the reference log (the longest one, by offset).
func checkLogs(logs []NodeLog) (ref map[uint64]string, agree, caught, dense Verdict) {
	return checkLogsFrom(logs, false)
}

// checkLogsFrom is checkLogs for logs that retention may have cut (trimmed): a node's log may
// start above 0, but every node's at the same offset.
func checkLogsFrom(logs []NodeLog, trimmed bool) (ref map[uint64]string, agree, caught, dense Verdict) {
	ref = map[uint64]string{}
	owner := map[uint64]string{}
	var da, aa, ca anomalies
	longest := uint64(0)
	for _, l := range logs {
		for i, r := range l.Records {
			if i > 0 && r.Offset != l.Records[i-1].Offset+1 {
				da.add("node %s: offset %d follows offset %d", l.Node, r.Offset, l.Records[i-1].Offset)
			}
			if v, ok := ref[r.Offset]; ok && v != r.Value {
				aa.add("offset %d: node %s holds %q, node %s holds %q", r.Offset, owner[r.Offset], v, l.Node, r.Value)
				continue
			}
			ref[r.Offset], owner[r.Offset] = r.Value, l.Node
		}
		if n := len(l.Records); n > 0 {
			longest = max(longest, l.Records[n-1].Offset+1)
		}
		if len(l.Records) > 0 && l.Records[0].Offset != 0 && !trimmed {
			da.add("node %s: log starts at offset %d, not 0", l.Node, l.Records[0].Offset)
		}
	}
	if trimmed {
		var first *NodeLog
		for i, l := range logs {
			switch {
			case len(l.Records) == 0:
			case first == nil:
				first = &logs[i]
			case l.Records[0].Offset != first.Records[0].Offset:
				da.add("node %s: log starts at offset %d, node %s's at %d", l.Node, l.Records[0].Offset, first.Node, first.Records[0].Offset)
			}
		}
	}
	for _, l := range logs {
		end := uint64(0)
		if n := len(l.Records); n > 0 {
			end = l.Records[n-1].Offset + 1
		}
		switch {
		case l.Err != nil:
			ca.add("node %s: its log could not be read to the end: %v", l.Node, l.Err)
		case end != longest:
			ca.add("node %s: holds offsets up to %d, another node up to %d", l.Node, end, longest)
		}
	}
	agree = aa.verdict("nodes-agree")
	agree.Note = fmt.Sprintf("%d nodes, %d offsets", len(logs), len(ref))
	caught = ca.verdict("caught-up")
	dense = da.verdict("offsets-dense")
	return ref, agree, caught, dense
}

// checkWrites: acknowledged records stored at their offsets, no duplicates, refused writes
// never stored, nothing stored that nobody wrote.
func checkWrites(ops []*Op, ref map[uint64]string) []Verdict {
	return checkWritesFrom(ops, ref, 0)
}

// checkWritesFrom is checkWrites for a log whose records below from were dropped by
// retention: an acknowledged record there is not looked for.
func checkWritesFrom(ops []*Op, ref map[uint64]string, from uint64) []Verdict {
	where := map[string][]uint64{}
	for off, v := range ref {
		where[v] = append(where[v], off)
	}
	written := map[string]*Op{}
	var lost, refused, dup, phantom anomalies
	okCount, unknownStored, unknownCount, dropped := 0, 0, 0, 0
	for _, op := range ops {
		if !op.IsWrite() {
			continue
		}
		for i, v := range op.Values {
			written[v] = op
			switch op.Status {
			case StatusOK:
				okCount++
				want := op.Offset + uint64(i)
				if want < from {
					dropped++
					continue
				}
				if got, ok := ref[want]; !ok || got != v {
					at := "nowhere"
					if offs := where[v]; len(offs) > 0 {
						at = fmt.Sprintf("at offset(s) %v", offs)
					}
					lost.add("acknowledged %s (op %d, process %d, [%s, %s]) of %q at offset %d: the log holds %q there; the value is stored %s",
						op.Kind, op.ID, op.Process, fmtNS(op.Invoke), fmtNS(op.Complete), v, want, got, at)
				}
			case StatusFail:
				if offs := where[v]; len(offs) > 0 {
					refused.add("refused %s (op %d, process %d, [%s, %s], error %q) of %q is stored at offset(s) %v",
						op.Kind, op.ID, op.Process, fmtNS(op.Invoke), fmtNS(op.Complete), op.Err, v, offs)
				}
			default:
				unknownCount++
				if len(where[v]) > 0 {
					unknownStored++
				}
			}
		}
	}
	var vals []string
	for v := range where {
		vals = append(vals, v)
	}
	sort.Strings(vals)
	for _, v := range vals {
		offs := where[v]
		if len(offs) > 1 {
			slices.Sort(offs)
			dup.add("%q is stored %d times, at offsets %v", v, len(offs), offs)
		}
		if written[v] == nil {
			phantom.add("offset %d holds %q, which no operation wrote", offs[0], v)
		}
	}
	l := lost.verdict("acknowledged-not-lost")
	l.Note = fmt.Sprintf("%d acknowledged records; %d of %d unknown-outcome records stored", okCount, unknownStored, unknownCount)
	if from > 0 {
		l.Note += fmt.Sprintf("; %d acknowledged records below offset %d, dropped by retention", dropped, from)
	}
	return []Verdict{l, dup.verdict("no-duplicates"), refused.verdict("refused-never-stored"), phantom.verdict("no-phantoms")}
}

// checkReads: every record a read returned is the one stored at its offset.
func checkReads(ops []*Op, ref map[uint64]string) Verdict {
	var a anomalies
	n := 0
	for _, op := range ops {
		if op.IsWrite() || op.Kind == KindBoundsNode || op.Status != StatusOK || !op.Found {
			continue
		}
		for i, v := range op.Values {
			n++
			off := op.Offset + uint64(i)
			if got, ok := ref[off]; !ok || got != v {
				a.add("%s (op %d, process %d, node %s, [%s, %s]) read %q at offset %d; the log holds %q there",
					op.Kind, op.ID, op.Process, opNode(op), fmtNS(op.Invoke), fmtNS(op.Complete), v, off, got)
			}
		}
	}
	v := a.verdict("reads-match-log")
	v.Note = fmt.Sprintf("%d records read", n)
	return v
}

// ackedBefore returns a function that tells, for a time, one past the highest offset of the
// writes acknowledged before it (0 when none was).
func ackedBefore(ops []*Op) func(at int64) uint64 {
	type ack struct {
		at  int64
		end uint64 // one past the write's last offset
	}
	var acks []ack
	for _, op := range ops {
		if op.IsWrite() && op.Status == StatusOK {
			acks = append(acks, ack{op.Complete, op.Offset + uint64(len(op.Values))})
		}
	}
	sort.Slice(acks, func(i, j int) bool { return acks[i].at < acks[j].at })
	// prefix[i]: the largest end among acks[:i+1].
	prefix := make([]uint64, len(acks))
	for i, a := range acks {
		prefix[i] = a.end
		if i > 0 {
			prefix[i] = max(prefix[i], prefix[i-1])
		}
	}
	return func(at int64) uint64 {
		i := sort.Search(len(acks), func(i int) bool { return acks[i].at >= at }) - 1
		if i < 0 {
			return 0
		}
		return prefix[i]
	}
}

// checkFreshReads is a fast necessary condition of linearizability that needs no search: a
// linearizable read begun after a write was acknowledged sees it (GetBounds answers past its
// last offset; a Consume of an offset at or below it finds a record). porcupine finds the same
// anomalies, but may give up on a long history; this never does.
func checkFreshReads(ops []*Op) Verdict {
	knownAt := ackedBefore(ops)
	var a anomalies
	n := 0
	for _, op := range ops {
		if op.Status != StatusOK || !(linearizableRead(op) || op.Kind == KindBoundsNode) {
			continue
		}
		n++
		known := knownAt(op.Invoke) // offsets below it were acknowledged before the read began
		switch {
		case op.Kind == KindBoundsNode && op.Offset < known:
			a.add("%s (op %d at %s, [%s, %s]) answered next offset %d, but offsets up to %d were acknowledged before it began",
				op.Kind, op.ID, opNode(op), fmtNS(op.Invoke), fmtNS(op.Complete), op.Offset, known-1)
		case op.Kind != KindBoundsNode && !op.Found && op.Offset < known:
			a.add("%s (op %d at %s, [%s, %s]) found no record at offset %d, acknowledged before it began",
				op.Kind, op.ID, opNode(op), fmtNS(op.Invoke), fmtNS(op.Complete), op.Offset)
		}
	}
	v := a.verdict("linearizable-reads-fresh")
	v.Note = fmt.Sprintf("%d linearizable reads", n)
	return v
}

// checkReplicaReadsCommitted: a read served by any replica (followers included) never
// answers out of range for an offset below the cluster's commit point (DESIGN: a follower
// learns the leader's commit point and waits until it applied that far); an offset
// acknowledged before the read began is below it.
func checkReplicaReadsCommitted(ops []*Op) Verdict {
	knownAt := ackedBefore(ops)
	var a anomalies
	n := 0
	for _, op := range ops {
		if op.Status != StatusOK || op.Kind != KindReadFollower {
			continue
		}
		n++
		if !op.Found && op.Offset < knownAt(op.Invoke) {
			a.add("%s (op %d at %s, [%s, %s]) answered out of range for offset %d, acknowledged before it began",
				op.Kind, op.ID, opNode(op), fmtNS(op.Invoke), fmtNS(op.Complete), op.Offset)
		}
	}
	v := a.verdict("replica-reads-committed")
	v.Note = fmt.Sprintf("%d replica reads", n)
	return v
}

// fmtNS formats a time since the run's start.
// opNode names the node an op went to: the SDK's choice is not recorded.
func opNode(op *Op) string {
	if op.Node == "" {
		return "chosen by the SDK"
	}
	return op.Node
}

func fmtNS(ns int64) string { return time.Duration(ns).Round(time.Millisecond).String() }

// logState is the model's state: a persistent (shared, immutable) list of the log's values.
type logState struct {
	n    int
	val  string
	prev *logState
	h    uint64
}

func (s *logState) length() int {
	if s == nil {
		return 0
	}
	return s.n
}

func (s *logState) hash() uint64 {
	if s == nil {
		return 0
	}
	return s.h
}

func (s *logState) push(v string) *logState {
	f := fnv.New64a()
	f.Write([]byte(v))
	return &logState{n: s.length() + 1, val: v, prev: s, h: s.hash()*1099511628211 ^ f.Sum64()}
}

// at returns the value at offset i < length.
func (s *logState) at(i int) string {
	for s.n-1 > i {
		s = s.prev
	}
	return s.val
}

func equalStates(a, b *logState) bool {
	for a != b {
		if a.length() != b.length() || a.hash() != b.hash() || a.val != b.val {
			return false
		}
		a, b = a.prev, b.prev
	}
	return true
}

type linInput struct {
	write  bool
	bounds bool     // a linearizable GetBounds: the log's length
	values []string // write
	offset uint64   // read: the offset asked
}

type linOutput struct {
	offset uint64 // write: the first offset; bounds: the next offset
	found  bool   // read
	value  string // read, when found
}

// LogModel is the porcupine model of the log: a write of values appends them at the log's end
// and returns the first offset; a read of offset o returns the value stored there, or "not
// found" when the log is shorter.
var LogModel = porcupine.Model{
	Init: func() any { return (*logState)(nil) },
	Step: func(state, input, output any) (bool, any) {
		s := state.(*logState)
		in, out := input.(linInput), output.(linOutput)
		if in.bounds {
			return int(out.offset) == s.length(), s
		}
		if in.write {
			if int(out.offset) != s.length() {
				return false, s
			}
			for _, v := range in.values {
				s = s.push(v)
			}
			return true, s
		}
		if !out.found {
			return int(in.offset) >= s.length(), s
		}
		return int(in.offset) < s.length() && s.at(int(in.offset)) == out.value, s
	},
	Equal: func(a, b any) bool { return equalStates(a.(*logState), b.(*logState)) },
	Hash:  func(s any) uint64 { return s.(*logState).hash() },
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		if in.bounds {
			return fmt.Sprintf("bounds() -> next %d", out.offset)
		}
		if in.write {
			return fmt.Sprintf("append(%s) -> %d", strings.Join(in.values, ","), out.offset)
		}
		if !out.found {
			return fmt.Sprintf("read(%d) -> none", in.offset)
		}
		return fmt.Sprintf("read(%d) -> %s", in.offset, out.value)
	},
}

// linearizableKinds are the reads that promise linearizability.
func linearizableRead(op *Op) bool {
	return op.Kind == KindReadLin || op.Kind == KindReadNode
}

// checkLinearizable checks the writes (acknowledged, and unknown ones that were stored, at
// the offset they got, as if still pending at the end) and the linearizable reads.
func checkLinearizable(ops []*Op, ref map[uint64]string, timeout time.Duration) Verdict {
	where := map[string]uint64{}
	for off, v := range ref {
		where[v] = off
	}
	var hist []porcupine.Operation
	for _, op := range ops {
		var o porcupine.Operation
		switch {
		case op.IsWrite() && op.Status == StatusOK:
			o = porcupine.Operation{Input: linInput{write: true, values: op.Values}, Output: linOutput{offset: op.Offset}, Call: op.Invoke, Return: op.Complete}
		case op.IsWrite() && op.Status == StatusUnknown:
			off, ok := where[op.Values[0]]
			if !ok {
				continue // never took effect
			}
			o = porcupine.Operation{Input: linInput{write: true, values: op.Values}, Output: linOutput{offset: off}, Call: op.Invoke, Return: math.MaxInt64}
		case op.Kind == KindBoundsNode && op.Status == StatusOK:
			o = porcupine.Operation{Input: linInput{bounds: true}, Output: linOutput{offset: op.Offset}, Call: op.Invoke, Return: op.Complete}
		case linearizableRead(op) && op.Status == StatusOK:
			out := linOutput{found: op.Found}
			if op.Found && len(op.Values) > 0 {
				out.value = op.Values[0]
			}
			o = porcupine.Operation{Input: linInput{offset: op.Offset}, Output: out, Call: op.Invoke, Return: op.Complete}
		default:
			continue
		}
		o.ClientId = op.Process
		o.Metadata = op
		hist = append(hist, o)
	}
	res, info := porcupine.CheckOperationsVerbose(LogModel, hist, timeout)
	v := Verdict{Name: "linearizable", OK: res == porcupine.Ok, Note: fmt.Sprintf("%d operations", len(hist))}
	switch res {
	case porcupine.Unknown:
		v.Inconclusive = true
		v.Note += fmt.Sprintf("; porcupine gave up after %s", timeout)
	case porcupine.Illegal:
		v.Anomalies = 1
		v.First = firstNonLinearizable(hist, info)
	}
	return v
}

// firstNonLinearizable describes where the longest partial linearization got stuck: the ops
// it linearized last and the earliest op it could not place.
func firstNonLinearizable(hist []porcupine.Operation, info porcupine.LinearizationInfo) string {
	parts := info.PartialLinearizationsOperations()
	var best []porcupine.Operation
	for _, p := range parts {
		for _, lin := range p {
			if len(lin) > len(best) {
				best = lin
			}
		}
	}
	placed := map[*Op]bool{}
	for _, o := range best {
		placed[o.Metadata.(*Op)] = true
	}
	var stuck *porcupine.Operation
	for i := range hist {
		if op := hist[i].Metadata.(*Op); !placed[op] && (stuck == nil || hist[i].Call < stuck.Call) {
			stuck = &hist[i]
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the longest linearization places %d of %d operations;", len(best), len(hist))
	if stuck != nil {
		fmt.Fprintf(&b, " it cannot place %s;", describeOp(*stuck))
	}
	b.WriteString(" the last operations it placed:")
	for _, o := range best[max(0, len(best)-3):] {
		fmt.Fprintf(&b, " %s;", describeOp(o))
	}
	return b.String()
}

func describeOp(o porcupine.Operation) string {
	op := o.Metadata.(*Op)
	ret := fmtNS(op.Complete)
	if o.Return == math.MaxInt64 {
		ret = "unknown"
	}
	node := ""
	if op.Node != "" {
		node = " at " + op.Node
	}
	return fmt.Sprintf("op %d %s%s %s [%s, %s]", op.ID, op.Kind, node, LogModel.DescribeOperation(o.Input, o.Output), fmtNS(op.Invoke), ret)
}
