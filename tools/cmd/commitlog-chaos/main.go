// Command commitlog-chaos runs real `commitlog serve` processes, each in its own network
// namespace, under seeded schedules of faults (partitions and packet loss with nftables, slow
// links with tc tbf, kill -9, SIGSTOP, leadership transfers, rolling restarts, membership
// changes) while a workload produces and consumes through the SDK; then it checks the history (porcupine
// linearizability, lost, duplicated, refused-but-stored and phantom records, node agreement)
// and writes an HTML report per schedule. It must run as root. See tools/README.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/commitlog-go/commitlog/tools/chaos"
)

func main() {
	os.Exit(run())
}

func run() int {
	bin := flag.String("bin", "bin/commitlog", "the commitlog binary to run (for -bug: one built with -tags chaosbugs)")
	dir := flag.String("dir", "chaos-out", "directory for each schedule's data, node logs, history.jsonl, result.json and report.html")
	nodes := flag.Int("nodes", 3, "nodes per cluster")
	schedules := flag.Int("schedules", 8, "number of schedules (seeds seed, seed+1, …)")
	seed := flag.Uint64("seed", 1, "first seed")
	resume := flag.Bool("resume", false, "skip seeds whose result.json already exists in -dir (resume a long run)")
	duration := flag.Duration("duration", 30*time.Second, "length of each schedule's faults")
	faults := flag.String("faults", "", "comma-separated faults to draw from (default all but "+strings.Join(chaos.ExtraFaults, ",")+"): "+strings.Join(chaos.KnownFaults(), ","))
	bug := flag.String("bug", "", "planted bug to switch on in the servers (COMMITLOG_CHAOS_BUG; needs a -tags chaosbugs binary): "+strings.Join(chaos.PlantedBugs, ","))
	expectAnomaly := flag.Bool("expect-anomaly", false, "planted-bug mode: exit 0 and print how many schedules caught it")
	period := flag.Duration("period", 200*time.Millisecond, "pause of each workload worker between ops")
	keepData := flag.Bool("keep-data", false, "keep the nodes' data dirs of schedules without anomalies")
	flag.Parse()

	if err := chaos.CheckRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if removed := chaos.CleanupLeftovers(); len(removed) > 0 {
		fmt.Printf("removed leftovers of an earlier run: %s\n", strings.Join(removed, ", "))
	}
	absBin, err := filepath.Abs(*bin)
	if err == nil {
		_, err = os.Stat(absBin)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "commitlog binary: %v (build it: make build)\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var env []string
	var faultList []string
	if *faults != "" {
		faultList = strings.Split(*faults, ",")
		for _, f := range faultList {
			if !contains(chaos.KnownFaults(), f) {
				fmt.Fprintf(os.Stderr, "unknown fault %q\n", f)
				return 2
			}
		}
	}
	if *bug != "" {
		if !contains(chaos.PlantedBugs, *bug) {
			fmt.Fprintf(os.Stderr, "unknown bug %q\n", *bug)
			return 2
		}
		env = append(env, "COMMITLOG_CHAOS_BUG="+*bug)
		env = append(env, chaos.BugEnv(*bug)...)
	}
	var results []chaos.Result
	failed, errs := 0, 0
	// Every failing schedule's line again at the end, where a CI log's tail shows it.
	var failures []string
	for s := *seed; s < *seed+uint64(*schedules); s++ {
		sdir := filepath.Join(*dir, fmt.Sprintf("seed-%d", s))
		if *resume {
			if b, err := os.ReadFile(filepath.Join(sdir, "result.json")); err == nil {
				var r chaos.Result
				if json.Unmarshal(b, &r) == nil {
					fmt.Printf("seed %d: done before (failed=%v), skipped\n", s, r.Failed)
					results = append(results, r)
					if r.Failed {
						failed++
					}
					continue
				}
			}
		}
		_ = os.RemoveAll(sdir)
		res, err := chaos.Run(ctx, chaos.RunConfig{
			Bin: absBin, Dir: sdir, Nodes: *nodes, Seed: s, Duration: *duration, Faults: faultList, Env: env,
			Workload: chaos.WorkloadConfig{Period: *period},
			Logf: func(f string, a ...any) {
				fmt.Printf("%s seed %d: %s\n", time.Now().Format("15:04:05"), s, fmt.Sprintf(f, a...))
			},
		})
		if ctx.Err() != nil {
			fmt.Println("interrupted: everything the run made was removed")
			return 130
		}
		if err != nil && res.Verdicts != nil {
			errs++ // the run was made and checked, but left something behind
			failures = append(failures, fmt.Sprintf("seed %d: cleanup: %v", s, err))
			fmt.Println(failures[len(failures)-1])
		} else if err != nil {
			errs++
			failures = append(failures, fmt.Sprintf("seed %d: the run could not be made: %v (node logs in %s)", s, err, sdir))
			fmt.Println(failures[len(failures)-1])
			continue
		}
		results = append(results, res)
		line := fmt.Sprintf("seed %d: %d ops, %s: %s", s, res.Ops, verdictWord(res), summary(res))
		fmt.Println(line)
		if res.Failed {
			failed++
			failures = append(failures, line)
		} else if !*keepData {
			for i := 1; i <= *nodes; i++ {
				_ = os.RemoveAll(filepath.Join(sdir, fmt.Sprintf("n%d", i)))
			}
		}
	}
	_ = os.MkdirAll(*dir, 0o755)
	b, _ := json.MarshalIndent(results, "", "  ")
	_ = os.WriteFile(filepath.Join(*dir, "summary.json"), b, 0o644)
	fmt.Printf("\n%d schedules: %d with anomalies, %d could not run; reports in %s/seed-*/report.html\n", len(results)+errs, failed, errs, *dir)
	for _, f := range failures {
		fmt.Println("  " + f)
	}
	if *expectAnomaly {
		fmt.Printf("planted bug %s: caught in %d of %d schedules\n", *bug, failed, len(results)+errs)
		return 0
	}
	// The closing count line test runners print: a schedule passes when every checker does.
	fmt.Printf("chaos: %d passed, %d failed\n", len(results)-failed, failed+errs)
	if failed > 0 || errs > 0 {
		return 1
	}
	return 0
}

func verdictWord(r chaos.Result) string {
	if r.Failed {
		return "ANOMALIES"
	}
	return "ok"
}

func summary(r chaos.Result) string {
	var parts []string
	for _, v := range r.Verdicts {
		switch {
		case v.Inconclusive:
			parts = append(parts, v.Name+"=inconclusive")
		case !v.OK:
			parts = append(parts, fmt.Sprintf("%s=FAIL(%d): %s", v.Name, v.Anomalies, v.First))
		}
	}
	if len(parts) == 0 {
		return "all checkers pass"
	}
	return strings.Join(parts, "; ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
