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

// The topic workload's topic, created at the start of a run.
const (
	chaosTopic      = "chaos-t"
	topicPartitions = 3
)

// topicWriter is the topic workload: while the nemesis runs, three writers produce to the
// partitions of a topic of their own: unary ProduceRecord and atomic ProduceRecords to a
// partition they pick, and an idempotent Producer whose keys spread its records over the
// partitions. Each write is recorded with its partition; after the run every node's copy of
// every partition is read and judged as the default topic's log is (checkTopic): the nodes
// agree, acknowledged records are at their offsets, nothing is stored twice, nor in another
// partition than the one it was written to.
type topicWriter struct {
	addrs  []string
	seed   uint64
	tag    string
	began  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	created bool
	nextID  int64
	seq     int
	ops     [topicPartitions][]*Op
}

// startTopicWriter starts the topic workload against the cluster at addrs; tag makes its
// values unique to the run.
func startTopicWriter(addrs []string, seed uint64, tag string) *topicWriter {
	ctx, cancel := context.WithCancel(context.Background())
	t := &topicWriter{addrs: addrs, seed: seed, tag: tag, began: time.Now(), cancel: cancel}
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
		p := r.Uint32N(topicPartitions)
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
			off, err = c.ProduceRecord(octx, client.Record{Topic: chaosTopic, Partition: p, Value: []byte(vals[0])})
		} else {
			recs := make([]client.Record, n)
			for i, v := range vals {
				recs[i] = client.Record{Value: []byte(v)}
			}
			off, err = c.ProduceRecords(octx, chaosTopic, p, recs...)
		}
		cancel()
		t.complete(ctx, op, p, off, err)
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
		for _, v := range t.values(w, 1+r.IntN(4)) {
			op := t.invoke(w, KindProduceIdem, []string{v})
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			f, err := prod.SendRecord(sctx, client.Record{Topic: chaosTopic, Key: fmt.Appendf(nil, "k%d", r.IntN(16)), Value: []byte(v)})
			cancel()
			if err != nil {
				// Refused by Send, never queued: no partition was picked; judged with partition 0's
				// writes (stored anywhere, it is a phantom there or refused-never-stored here).
				t.complete(ctx, op, 0, 0, err)
				continue
			}
			batch = append(batch, sent{op, f})
		}
		for _, s := range batch {
			wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			off, err := s.f.Wait(wctx)
			cancel()
			t.complete(ctx, s.op, s.f.Partition(), off, err)
		}
	}
}

// create makes the topic; it reports whether the topic exists.
func (t *topicWriter) create(ctx context.Context, c *client.Client) bool {
	t.mu.Lock()
	done := t.created
	t.mu.Unlock()
	if done {
		return true
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := c.CreateTopic(cctx, chaosTopic, topicPartitions, client.TopicConfig{})
	if err != nil && !errors.Is(err, client.ErrTopicExists) {
		return false
	}
	t.mu.Lock()
	t.created = true
	t.mu.Unlock()
	return true
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

// complete records op's outcome under partition p. A write cut short by the end of the
// workload has an unknown outcome.
func (t *topicWriter) complete(ctx context.Context, op *Op, p uint32, off uint64, err error) {
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
	t.ops[p%topicPartitions] = append(t.ops[p%topicPartitions], op)
	t.mu.Unlock()
}

// stop ends the writers and waits for them; it may be called more than once.
func (t *topicWriter) stop() {
	t.cancel()
	t.wg.Wait()
}

// finish stops the writers, waits (up to wait) until every node holds as many records of each
// partition, reads every node's copy of each and returns the verdicts.
func (t *topicWriter) finish(ctx context.Context, c *Cluster, notVoters error, wait time.Duration) []Verdict {
	t.stop()
	t.mu.Lock()
	created := t.created
	t.mu.Unlock()
	if !created {
		var a anomalies
		a.add("the topic %q was never created", chaosTopic)
		return []Verdict{a.verdict("topic-created")}
	}
	deadline := time.Now().Add(wait)
	var parts [topicPartitions][]NodeLog
	for p := range uint32(topicPartitions) {
		for time.Now().Before(deadline) && !c.partitionConverged(ctx, p) {
			if sleepCtx(ctx, 500*time.Millisecond) != nil {
				break
			}
		}
		for _, n := range c.Nodes {
			parts[p] = append(parts[p], c.readPartition(ctx, n, chaosTopic, p))
		}
	}
	return checkTopic(parts[:], t.ops[:], notVoters)
}

// partitionConverged reports whether every node holds as many records of partition p.
func (c *Cluster) partitionConverged(ctx context.Context, p uint32) bool {
	var next []uint64
	for _, n := range c.Nodes {
		b, err := c.partitionBounds(ctx, n, chaosTopic, p)
		if err != nil {
			return false
		}
		next = append(next, b.GetNextOffset())
	}
	for _, x := range next {
		if x != next[0] {
			return false
		}
	}
	return true
}

// checkTopic judges each partition as the default topic's log is judged (checkLogs,
// checkWrites), given the nodes' copies of each and the writes made to each, and merges the
// partitions' verdicts into one per checker, named "topic-<checker>".
func checkTopic(parts [][]NodeLog, ops [][]*Op, notVoters error) []Verdict {
	var per [][]Verdict
	for p, logs := range parts {
		ref, agree, caught, dense := checkLogs(logs)
		if notVoters != nil && caught.OK {
			caught.OK, caught.Anomalies = false, 1
			caught.First = fmt.Sprintf("not every node is a voter again: %v", notVoters)
		}
		vs := append([]Verdict{dense, agree, caught}, checkWrites(ops[p], ref)...)
		per = append(per, vs)
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
				v.First = fmt.Sprintf("partition %d: %s", p, pv.First)
			}
			if pv.Note != "" {
				notes = append(notes, fmt.Sprintf("partition %d: %s", p, pv.Note))
			}
		}
		v.Note = strings.Join(notes, "; ")
		out[i] = v
	}
	return out
}
