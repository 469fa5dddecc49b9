package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/commitlog-go/commitlog/client"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// RunConfig configures one schedule against a fresh cluster.
type RunConfig struct {
	Bin      string        // the commitlog binary
	Dir      string        // where the run's data, logs, history and report go
	Nodes    int           // default 3
	Seed     uint64        // draws the schedule and the workload's choices
	Duration time.Duration // of the fault schedule; default 30s
	Faults   []string      // faults to draw from; nil: all
	// Env is added to the servers' environment (e.g. COMMITLOG_CHAOS_BUG=... for a planted bug).
	Env      []string
	Workload WorkloadConfig
	Check    CheckConfig
	// Logf reports progress; nil: silent.
	Logf func(format string, args ...any)
}

// Result is what one run found.
type Result struct {
	Seed     uint64    `json:"seed"`
	Schedule string    `json:"schedule"`
	Ops      int       `json:"ops"`
	Verdicts []Verdict `json:"verdicts"`
	Failed   bool      `json:"failed"`
	Dir      string    `json:"dir"`
	Elapsed  string    `json:"elapsed"`
}

// Run starts a cluster of real processes in network namespaces, runs the workload while the
// schedule's faults are applied, heals everything, reads every node's whole log and checks the
// history. It removes every namespace, link, rule and process it made before returning, also
// when ctx ends (Ctrl-C). An error means the run could not be made (setup); anomalies are in
// the Result.
func Run(ctx context.Context, cfg RunConfig) (res Result, err error) {
	began := time.Now()
	if cfg.Nodes <= 0 {
		cfg.Nodes = 3
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 30 * time.Second
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return res, err
	}
	sched := NewSchedule(cfg.Seed, cfg.Duration, cfg.Faults)
	res = Result{Seed: cfg.Seed, Schedule: sched.String(), Dir: cfg.Dir}
	logf("schedule %s", sched)

	nt, err := NewNet(cfg.Nodes)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, nt.Close()) }()
	c := NewCluster(nt, cfg.Nodes, cfg.Bin, cfg.Dir, cfg.Env)
	defer c.Stop()
	if err := c.Start(ctx); err != nil {
		return res, err
	}
	h, err := NewHistory(filepath.Join(cfg.Dir, "history.jsonl"))
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, h.Close()) }()

	admin, err := client.New(ctx, c.Addrs(), client.WithRequestTimeout(5*time.Second))
	if err != nil {
		return res, fmt.Errorf("chaos: admin client: %w", err)
	}
	defer admin.Close()

	// The group workload runs apart from the history: its checker needs only what was delivered.
	group := startGroupReader(c.Addrs(), cfg.Seed)
	defer group.stop()
	topic := startTopicWriter(c.Addrs(), cfg.Seed, fmt.Sprintf("s%d", cfg.Seed))
	defer topic.stop()

	wcfg := cfg.Workload
	wcfg.Seed = cfg.Seed
	wctx, stopWorkload := context.WithCancel(ctx)
	defer stopWorkload()
	wdone := make(chan error, 1)
	go func() { wdone <- runWorkload(wctx, wcfg, h, c, fmt.Sprintf("s%d", cfg.Seed)) }()

	nem := &nemesis{c: c, h: h, r: rand.New(rand.NewPCG(cfg.Seed, 0xfa17)), admin: admin, log: logf}
	nerr := nem.run(ctx, sched)
	herr := nem.healAll()
	logf("schedule done; healed; the workload runs 3 s more")
	_ = sleepCtx(ctx, 3*time.Second)
	stopWorkload()
	if werr := <-wdone; werr != nil {
		return res, werr
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	nemErr := errors.Join(append(nem.failed, nerr, herr)...)
	if nemErr != nil {
		logf("nemesis: %v", nemErr)
	}

	logs, notVoters := c.finalLogs(ctx, logf)
	ops := h.Ops()
	res.Ops = len(ops)
	ccfg := cfg.Check
	ccfg.NotAllVoters = notVoters
	res.Verdicts = Check(ccfg, ops, logs)
	ref, _, _, _ := checkLogs(logs)
	res.Verdicts = append(res.Verdicts, group.finish(ctx, ref, 30*time.Second, func() map[uint64]string {
		logs, _ := c.finalLogs(ctx, logf)
		late, _, _, _ := checkLogs(logs)
		return late
	}))
	res.Verdicts = append(res.Verdicts, topic.finish(ctx, c, notVoters, 60*time.Second)...)
	res.Verdicts = append(res.Verdicts, checkNemesis(nemErr))
	res.Failed = Failed(res.Verdicts)
	res.Elapsed = time.Since(began).Round(time.Second).String()
	if err := writeJSON(filepath.Join(cfg.Dir, "result.json"), res); err != nil {
		return res, err
	}
	if err := WriteReport(filepath.Join(cfg.Dir, "report.html"), res, ops, h.NemesisEvents()); err != nil {
		return res, err
	}
	return res, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// finalLogs waits until every node is a voter and all hold the same number of records (90 s
// each: a healthy cluster takes seconds), then reads each node's whole log. It returns the
// logs, and why not every node was a voter (nil when all were).
func (c *Cluster) finalLogs(ctx context.Context, logf func(string, ...any)) (_ []NodeLog, notVoters error) {
	if notVoters = c.WaitVoters(ctx, 90*time.Second); notVoters != nil {
		logf("final: %v", notVoters)
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		nexts := map[uint64]int{}
		for _, n := range c.Nodes {
			if b, err := c.bounds(ctx, n); err == nil {
				nexts[b.GetNextOffset()]++
			}
		}
		if len(nexts) == 1 {
			for _, v := range nexts {
				if v == len(c.Nodes) {
					goto read
				}
			}
		}
		if sleepCtx(ctx, 500*time.Millisecond) != nil {
			break
		}
	}
	logf("final: the nodes did not converge within 90 s; reading what they hold")
read:
	var out []NodeLog
	for _, n := range c.Nodes {
		out = append(out, c.readAll(ctx, n))
	}
	return out, notVoters
}

func (c *Cluster) bounds(ctx context.Context, n *Node) (*logv1.GetBoundsResponse, error) {
	return c.partitionBounds(ctx, n, "", 0)
}

// partitionBounds asks node n for the bounds of partition of topic ("" the default one) that
// n itself holds.
func (c *Cluster) partitionBounds(ctx context.Context, n *Node, topic string, partition uint32) (*logv1.GetBoundsResponse, error) {
	tc, err := c.conn(n)
	if err != nil {
		return nil, err
	}
	defer tc.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return tc.GetBounds(ctx, &logv1.GetBoundsRequest{Topic: topic, Partition: partition})
}

// readAll reads node n's log from 0 to its end (non-linearizable: what n itself holds).
func (c *Cluster) readAll(ctx context.Context, n *Node) NodeLog {
	return c.readPartition(ctx, n, "", 0)
}

// readPartition reads partition of topic ("" the default one) as node n holds it, from its
// lowest offset to its end.
func (c *Cluster) readPartition(ctx context.Context, n *Node, topic string, partition uint32) NodeLog {
	nl := NodeLog{Node: n.name}
	b, err := c.partitionBounds(ctx, n, topic, partition)
	if err != nil {
		nl.Err = err
		return nl
	}
	next := b.GetNextOffset()
	if next == 0 {
		return nl
	}
	tc, err := c.conn(n)
	if err != nil {
		nl.Err = err
		return nl
	}
	defer tc.Close()
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	st, err := tc.ConsumeStream(sctx, &logv1.ConsumeRequest{Offset: b.GetLowestOffset(), MaxBatch: 1000, Topic: topic, Partition: partition})
	if err != nil {
		nl.Err = err
		return nl
	}
	defer st.Close()
	for {
		m, err := st.Receive()
		if err != nil {
			if err == io.EOF {
				err = fmt.Errorf("stream ended at %d records of %d", len(nl.Records), next)
			}
			nl.Err = err
			return nl
		}
		recs := m.GetRecords()
		if m.GetRecord() != nil {
			recs = append(recs, m.GetRecord())
		}
		for _, r := range recs {
			nl.Records = append(nl.Records, Record{Offset: r.GetOffset(), Value: string(r.GetValue())})
			if r.GetOffset()+1 >= next {
				return nl
			}
		}
	}
}
