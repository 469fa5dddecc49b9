package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// topicSpec is one topic of the topic workload.
type topicSpec struct {
	name       string
	partitions uint32
	cfg        client.TopicConfig
}

// trimmed reports whether retention cuts the topic during a run.
func (s topicSpec) trimmed() bool { return s.cfg.RetentionBytes > 0 }

// The topic workload's topics, created at the start of a run: one kept whole, and one whose
// retention (4 KiB of records a partition, with the servers' 4 KiB segments and a retention
// check every second, see Node.Start) cuts its partitions during the faults.
var chaosTopics = []topicSpec{
	{name: "chaos-t", partitions: 3},
	{name: "chaos-r", partitions: 2, cfg: client.TopicConfig{RetentionBytes: 4 << 10}},
}

// topicWriter is the topic workload: while the nemesis runs, three writers produce to the
// partitions of topics of their own: unary ProduceRecord and atomic ProduceRecords to a
// topic and partition they pick, and an idempotent Producer whose keys spread its records
// over a topic's partitions. Each write is recorded with its partition; after the run every
// node's copy of every partition is read and judged as the default topic's log is
// (checkTopics): the nodes agree, acknowledged records are at their offsets (or below the
// start retention moved up), nothing is stored twice, nor in another partition than the one
// it was written to.
type topicWriter struct {
	addrs  []string
	seed   uint64
	tag    string
	began  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	created map[string]bool
	nextID  int64
	seq     int
	ops     map[string][][]*Op // topic → partition → writes
}

// startTopicWriter starts the topic workload against the cluster at addrs; tag makes its
// values unique to the run.
func startTopicWriter(addrs []string, seed uint64, tag string) *topicWriter {
	ctx, cancel := context.WithCancel(context.Background())
	t := &topicWriter{addrs: addrs, seed: seed, tag: tag, began: time.Now(), cancel: cancel,
		created: map[string]bool{}, ops: map[string][][]*Op{}}
	for _, spec := range chaosTopics {
		t.ops[spec.name] = make([][]*Op, spec.partitions)
	}
	for w := range 3 {
		t.wg.Go(func() { t.writer(ctx, w) })
	}
	return t
}

func (t *topicWriter) writer(ctx context.Context, w int) {
	r := rand.New(rand.NewPCG(t.seed, uint64(0x70c+w)))
	c, err := client.New(ctx, t.addrs, client.WithRequestTimeout(3*time.Second), client.WithRefreshInterval(time.Second))
	if err != nil {
		return
	}
	defer c.Close()
	for ctx.Err() == nil && !t.create(ctx, c) {
		_ = sleepCtx(ctx, 200*time.Millisecond)
	}
	if w == 2 {
		t.producerLoop(ctx, r, c, w)
		return
	}
	for sleepCtx(ctx, time.Duration(20+r.IntN(100))*time.Millisecond) == nil {
		spec := chaosTopics[r.IntN(len(chaosTopics))]
		p := r.Uint32N(spec.partitions)
		n := 1
		if w == 1 {
			n = 1 + r.IntN(3)
		}
		kind, vals := KindProduce, t.values(w, n)
		if n > 1 {
			kind = KindProduceBatch
		}
		op := t.invoke(w, kind, vals)
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var off uint64
		if n == 1 {
			off, err = c.ProduceRecord(octx, client.Record{Topic: spec.name, Partition: p, Value: []byte(vals[0])})
		} else {
			recs := make([]client.Record, n)
			for i, v := range vals {
				recs[i] = client.Record{Value: []byte(v)}
			}
			off, err = c.ProduceRecords(octx, spec.name, p, recs...)
		}
		cancel()
		t.complete(ctx, op, spec.name, p, off, err)
	}
}

// producerLoop sends keyed records through an idempotent Producer, a few at a time.
func (t *topicWriter) producerLoop(ctx context.Context, r *rand.Rand, c *client.Client, w int) {
	prod, err := c.NewProducer(client.ProducerLinger(2*time.Millisecond), client.ProducerBatchRecords(4),
		client.ProducerIdempotence(true), client.ProducerDeliveryTimeout(10*time.Second))
	if err != nil {
		return
	}
	defer func() { _ = prod.Close() }()
	for sleepCtx(ctx, time.Duration(20+r.IntN(100))*time.Millisecond) == nil {
		type sent struct {
			op *Op
			f  *client.Future
		}
		var batch []sent
		spec := chaosTopics[r.IntN(len(chaosTopics))]
		for _, v := range t.values(w, 1+r.IntN(4)) {
			op := t.invoke(w, KindProduceIdem, []string{v})
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			f, err := prod.SendRecord(sctx, client.Record{Topic: spec.name, Key: fmt.Appendf(nil, "k%d", r.IntN(16)), Value: []byte(v)})
			cancel()
			if err != nil {
				// Refused by Send, never queued: no partition was picked; judged with partition 0's
				// writes (stored anywhere, it is a phantom there or refused-never-stored here).
				t.complete(ctx, op, spec.name, 0, 0, err)
				continue
			}
			batch = append(batch, sent{op, f})
		}
		for _, s := range batch {
			wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			off, err := s.f.Wait(wctx)
			cancel()
			t.complete(ctx, s.op, spec.name, s.f.Partition(), off, err)
		}
	}
}

// create makes the topics; it reports whether they all exist.
func (t *topicWriter) create(ctx context.Context, c *client.Client) bool {
	all := true
	for _, spec := range chaosTopics {
		t.mu.Lock()
		done := t.created[spec.name]
		t.mu.Unlock()
		if done {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.CreateTopic(cctx, spec.name, spec.partitions, spec.cfg)
		cancel()
		if err != nil && !errors.Is(err, client.ErrTopicExists) {
			all = false
			continue
		}
		t.mu.Lock()
		t.created[spec.name] = true
		t.mu.Unlock()
	}
	return all
}

func (t *topicWriter) values(w, n int) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	vals := make([]string, n)
	for i := range vals {
		t.seq++
		vals[i] = fmt.Sprintf("%s-t%d-%d", t.tag, w, t.seq)
	}
	return vals
}

func (t *topicWriter) invoke(w int, kind string, vals []string) *Op {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nextID++
	return &Op{ID: t.nextID, Process: 100 + w, Kind: kind, Values: vals, Invoke: time.Since(t.began).Nanoseconds()}
}

// complete records op's outcome under partition p of topic. A write cut short by the end of
// the workload has an unknown outcome.
func (t *topicWriter) complete(ctx context.Context, op *Op, topic string, p uint32, off uint64, err error) {
	op.Complete = time.Since(t.began).Nanoseconds()
	op.Status = writeStatus(err)
	if err != nil && ctx.Err() != nil {
		op.Status = StatusUnknown
	}
	if op.Status == StatusOK {
		op.Offset = off
	}
	if err != nil {
		op.Err = err.Error()
	}
	t.mu.Lock()
	parts := t.ops[topic]
	parts[int(p)%len(parts)] = append(parts[int(p)%len(parts)], op)
	t.mu.Unlock()
}

// stop ends the writers and waits for them; it may be called more than once.
func (t *topicWriter) stop() {
	t.cancel()
	t.wg.Wait()
}

// topicPartition is what a run leaves of one partition of a topic-workload topic.
type topicPartition struct {
	topic     string
	partition uint32
	trimmed   bool // retention may have cut it
	logs      []NodeLog
	ops       []*Op
}

// name is "topic/partition".
func (tp topicPartition) name() string { return fmt.Sprintf("%s/%d", tp.topic, tp.partition) }

// finish stops the writers, waits (up to wait) until every node holds as many records of each
// partition, reads every node's copy of each and returns the verdicts.
func (t *topicWriter) finish(ctx context.Context, c partitionReader, notVoters error, wait time.Duration) []Verdict {
	t.stop()
	deadline := time.Now().Add(wait)
	var parts []topicPartition
	var missing anomalies
	for _, spec := range chaosTopics {
		if !t.created[spec.name] {
			missing.add("the topic %q was never created", spec.name)
			continue
		}
		for p := range spec.partitions {
			tp := topicPartition{topic: spec.name, partition: p, trimmed: spec.trimmed(), ops: t.ops[spec.name][p]}
			// The nodes' copies are read one after another, and retention still cuts after the
			// writers stopped (the leader's next check, every node when it applies the cut): copies
			// read on either side of a cut differ on a correct cluster. They are read again, until
			// the deadline, while they do not settle; a difference that lasts is still reported.
			for {
				for time.Now().Before(deadline) && !c.partitionConverged(ctx, spec.name, p) {
					if sleepCtx(ctx, 500*time.Millisecond) != nil {
						break
					}
				}
				tp.logs = c.readCopies(ctx, spec.name, p)
				if copiesSettled(tp.logs) || !time.Now().Before(deadline) || sleepCtx(ctx, 500*time.Millisecond) != nil {
					break
				}
			}
			parts = append(parts, tp)
		}
	}
	return append(checkTopics(parts, notVoters), missing.verdict("topic-created"))
}

// copiesSettled reports whether the nodes' copies of a partition were all read whole and span
// the same offsets.
func copiesSettled(logs []NodeLog) bool {
	span := func(l NodeLog) [2]uint64 {
		if len(l.Records) == 0 {
			return [2]uint64{}
		}
		return [2]uint64{l.Records[0].Offset, l.Records[len(l.Records)-1].Offset + 1}
	}
	for _, l := range logs {
		if l.Err != nil || span(l) != span(logs[0]) {
			return false
		}
	}
	return true
}

// partitionReader is what finish needs of the cluster.
type partitionReader interface {
	partitionConverged(ctx context.Context, topic string, p uint32) bool
	readCopies(ctx context.Context, topic string, p uint32) []NodeLog
}

// readCopies reads every node's copy of partition p of topic, one node after another.
func (c *Cluster) readCopies(ctx context.Context, topic string, p uint32) []NodeLog {
	logs := make([]NodeLog, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		logs = append(logs, c.readPartition(ctx, n, topic, p))
	}
	return logs
}

// partitionConverged reports whether every node holds as many records of partition p of topic.
func (c *Cluster) partitionConverged(ctx context.Context, topic string, p uint32) bool {
	var first uint64
	for i, n := range c.Nodes {
		b, err := c.partitionBounds(ctx, n, topic, p)
		if err != nil || (i > 0 && b.GetNextOffset() != first) {
			return false
		}
		first = b.GetNextOffset()
	}
	return true
}

// checkTopics judges each partition as the default topic's log is judged (checkLogs,
// checkWrites; from its first offset where retention may have cut it), and merges the
// partitions' verdicts into one per checker, named "topic-<checker>".
func checkTopics(parts []topicPartition, notVoters error) []Verdict {
	var per [][]Verdict
	for _, tp := range parts {
		ref, agree, caught, dense := checkLogsFrom(tp.logs, tp.trimmed)
		caught = votersBack(caught, notVoters)
		from := uint64(0)
		for _, l := range tp.logs {
			if len(l.Records) > 0 {
				from = max(from, l.Records[0].Offset)
			}
		}
		per = append(per, append([]Verdict{dense, agree, caught}, checkWritesFrom(tp.ops, ref, from)...))
	}
	if len(per) == 0 {
		return nil
	}
	out := make([]Verdict, len(per[0]))
	for i := range out {
		v := Verdict{Name: "topic-" + per[0][i].Name, OK: true}
		var notes []string
		for p := range per {
			pv := per[p][i]
			v.OK = v.OK && pv.OK
			v.Anomalies += pv.Anomalies
			if v.First == "" && pv.First != "" {
				v.First = fmt.Sprintf("%s: %s", parts[p].name(), pv.First)
			}
			if pv.Note != "" {
				notes = append(notes, fmt.Sprintf("%s: %s", parts[p].name(), pv.Note))
			}
		}
		v.Note = strings.Join(notes, "; ")
		out[i] = v
	}
	return append(out, checkTopicProgress(parts))
}

// checkTopicProgress: every topic had a write acknowledged. As for the default topic
// (checkProgress), every other checker passes an empty history: a workload that never reached
// the cluster, or whose every write to a topic failed, would pass them all.
func checkTopicProgress(parts []topicPartition) Verdict {
	var topics []string
	acked, ops, cut := map[string]int{}, map[string]int{}, map[string]int{}
	for _, tp := range parts {
		topic := tp.topic
		if _, seen := ops[topic]; !seen {
			topics = append(topics, topic)
			ops[topic] = 0
		}
		for _, op := range tp.ops {
			if !op.IsWrite() {
				continue
			}
			ops[topic]++
			if op.Status == StatusOK {
				acked[topic]++
			}
		}
		for _, l := range tp.logs {
			if len(l.Records) > 0 && l.Records[0].Offset > 0 {
				cut[topic]++
				break
			}
		}
	}
	var a anomalies
	var notes []string
	for _, topic := range topics {
		if acked[topic] == 0 {
			a.add("topic %q: no write was acknowledged in %d operations", topic, ops[topic])
		}
		notes = append(notes, fmt.Sprintf("%s: %d acknowledged writes, %d partitions cut by retention", topic, acked[topic], cut[topic]))
	}
	v := a.verdict("topic-progress")
	v.Note = strings.Join(notes, "; ")
	return v
}
