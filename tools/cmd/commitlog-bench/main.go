// Command commitlog-bench drives load against a commitlog cluster and reports throughput and
// latency. See tools/README.md for examples and the output format, and
// `commitlog-bench -help` for every flag.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/tools/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1 // the run failed or read corrupt records
	exitUsage   = 2
	exitCorrupt = 3
)

// options are the command line's settings besides the loadgen.Config.
type options struct {
	json       bool
	verbose    bool
	cpuProfile string
}

// run is the whole command, callable from tests: it parses args, runs the load and writes the
// summary to stdout and progress and errors to stderr. It returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "commitlog-bench:", err)
		return exitUsage
	}
	if opts.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		cfg.ClientOptions = append(cfg.ClientOptions, client.WithLogger(cfg.Logger))
	}
	stopProfile, err := startCPUProfile(opts.cpuProfile)
	if err != nil {
		fmt.Fprintln(stderr, "commitlog-bench:", err)
		return exitFailed
	}
	res, err := loadgen.Run(ctx, cfg, stderr)
	if perr := stopProfile(); perr != nil {
		fmt.Fprintln(stderr, "commitlog-bench:", perr)
		return exitFailed
	}
	if err != nil && errors.Is(err, loadgen.ErrInvalidConfig) {
		fmt.Fprintln(stderr, "commitlog-bench:", err)
		return exitUsage
	}
	if err != nil && res.Produce == nil && res.Consume == nil && res.Stream == nil {
		fmt.Fprintln(stderr, "commitlog-bench:", err)
		return exitFailed
	}
	if opts.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if werr := enc.Encode(res); werr != nil {
			fmt.Fprintln(stderr, "commitlog-bench: write result:", werr)
			return exitFailed
		}
	} else if werr := res.WriteText(stdout); werr != nil {
		fmt.Fprintln(stderr, "commitlog-bench: write result:", werr)
		return exitFailed
	}
	if err != nil {
		fmt.Fprintln(stderr, "commitlog-bench:", err)
		return exitFailed
	}
	for _, s := range []*loadgen.Stats{res.Consume, res.Stream} {
		if s != nil && s.Corrupt > 0 {
			fmt.Fprintf(stderr, "commitlog-bench: %d corrupt records read back\n", s.Corrupt)
			return exitCorrupt
		}
	}
	return exitOK
}

// addrList is a flag that may be repeated and takes comma-separated lists.
type addrList []string

func (a *addrList) String() string { return strings.Join(*a, ",") }

func (a *addrList) Set(v string) error {
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*a = append(*a, s)
		}
	}
	return nil
}

// parseFlags turns the command line into a loadgen.Config. It returns flag.ErrHelp after
// printing the usage for -h/-help.
func parseFlags(args []string, stderr io.Writer) (loadgen.Config, options, error) {
	fs := flag.NewFlagSet("commitlog-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: commitlog-bench [flags]\n\n"+
			"Drives load against a commitlog cluster through the Go SDK and reports records/s, MB/s\n"+
			"and latency percentiles. Progress goes to stderr every second; the summary to stdout.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var (
		cfg                       loadgen.Config
		opts                      options
		addrs                     addrList
		mode, readPolicy          string
		caFile, certFile, keyFile string
		serverName                string
		requestTimeout            time.Duration
		records                   uint64
		pids                      string
	)
	fs.Var(&addrs, "addr", "API address of a server; repeat or comma-separate for several (default 127.0.0.1:8400; with -target nats 127.0.0.1:4222)")
	fs.StringVar(&cfg.Target, "target", loadgen.TargetCommitlog, "what to load: commitlog, or nats (a NATS JetStream cluster, for comparison: unary = sync publish, stream and batch = async publish with -window outstanding)")
	fs.StringVar(&cfg.NATSStream, "nats-stream", loadgen.DefaultNATSStream, "-target nats: the JetStream stream to publish to (created if missing, file storage)")
	fs.IntVar(&cfg.NATSReplicas, "nats-replicas", loadgen.DefaultNATSReplicas, "-target nats: the stream's replicas when the run creates it")
	fs.StringVar(&cfg.Transport, "transport", client.TransportConnect, "wire transport: connect or grpc")
	fs.StringVar(&caFile, "tls-ca-file", "", "PEM file of the CA that signed the servers' certificates (enables TLS)")
	fs.StringVar(&certFile, "tls-cert-file", "", "PEM client certificate for mTLS (with -tls-key-file)")
	fs.StringVar(&keyFile, "tls-key-file", "", "PEM client key for mTLS")
	fs.StringVar(&serverName, "tls-server-name", "", "name to verify in the servers' certificates (default: the address's host)")
	fs.IntVar(&cfg.Clients, "clients", 1, "independent SDK clients (connections) shared by the workers")
	fs.StringVar(&mode, "mode", string(loadgen.ModeUnary), "produce mode: unary (one request per record), batch (SDK batching Producer) or stream (pipelined ProduceStream)")
	fs.IntVar(&cfg.Producers, "producers", 1, "producing goroutines (0 with consumers: read-only run over existing records)")
	fs.IntVar(&cfg.RecordSize, "record-size", loadgen.DefaultRecordSize, "record value size in bytes")
	fs.IntVar(&cfg.Window, "window", loadgen.DefaultWindow, "records each producer keeps outstanding in batch and stream modes")
	fs.IntVar(&cfg.BatchRecords, "batch-records", 0, "batch mode: max records per batch (0: the SDK's default)")
	fs.IntVar(&cfg.BatchBytes, "batch-bytes", 0, "batch mode: max value bytes per batch (0: the SDK's default)")
	fs.DurationVar(&cfg.Linger, "linger", 0, "batch mode: how long a partial batch waits for more records (0: the SDK's default)")
	fs.IntVar(&cfg.MaxInFlight, "max-in-flight", 0, "batch mode: batches in flight per client (0: the SDK's default)")
	fs.BoolVar(&cfg.Idempotent, "idempotent", false, "batch mode: idempotent Producers (retries of unknown outcomes stored once; one batch in flight per partition)")
	fs.DurationVar(&cfg.Duration, "duration", loadgen.DefaultDuration, "length of the measured phase (0 with -records: until the count is reached)")
	fs.Uint64Var(&records, "records", 0, "stop after this many records in the measured phase (0: no count)")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "unmeasured load before the measured phase (none in a read-only run: it would read the range uncounted)")
	fs.IntVar(&cfg.Consumers, "consumers", 0, "goroutines reading records back with unary Consume")
	fs.IntVar(&cfg.StreamConsumers, "stream-consumers", 0, "goroutines each reading every record back with a stream")
	fs.Uint64Var(&cfg.From, "from", 0, "read-only runs: first offset to read (default: the log's start)")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", loadgen.DefaultDrainTimeout, "how long readers may catch up after producers stop")
	fs.DurationVar(&cfg.StallTimeout, "stall-timeout", loadgen.DefaultStallTimeout, "abandon and reopen a produce stream that leaves records unanswered, or a read stream that yields nothing while records exist, this long")
	fs.IntVar(&cfg.MaxErrors, "max-errors", loadgen.DefaultMaxErrors, "stop the run after this many failed requests (-1: never)")
	fs.StringVar(&readPolicy, "read-from", "leader", "which servers serve reads: leader, followers or any")
	fs.DurationVar(&requestTimeout, "request-timeout", 0, "per-request timeout of the SDK (0: the SDK's default)")
	fs.DurationVar(&cfg.ProgressInterval, "progress", loadgen.DefaultProgress, "interval of progress lines on stderr (negative: none)")
	fs.StringVar(&pids, "server-pids", "", "comma-separated pids of the server processes (same machine, Linux): report their CPU time per produced record")
	fs.BoolVar(&opts.json, "json", false, "print the summary as JSON")
	fs.BoolVar(&opts.verbose, "verbose", false, "log the SDK's background events to stderr")
	fs.StringVar(&opts.cpuProfile, "cpuprofile", "", "write a CPU profile of the load tool itself (runtime/pprof) to this file")
	if err := fs.Parse(args); err != nil {
		return cfg, opts, err
	}
	if fs.NArg() > 0 {
		return cfg, opts, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.Addrs = addrs
	if len(cfg.Addrs) == 0 {
		cfg.Addrs = []string{"127.0.0.1:8400"}
		if cfg.Target == loadgen.TargetNATS {
			cfg.Addrs = []string{"127.0.0.1:4222"}
		}
	}
	cfg.Mode = loadgen.Mode(mode)
	for p := range strings.SplitSeq(pids, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return cfg, opts, fmt.Errorf("-server-pids: %q is not a pid", p)
		}
		cfg.ServerPIDs = append(cfg.ServerPIDs, pid)
	}
	cfg.Records = records
	if records > 0 && !flagSet(fs, "duration") {
		cfg.Duration = 0 // a count alone bounds the run
	}
	if cfg.MaxErrors == 0 {
		return cfg, opts, errors.New("-max-errors must be positive or -1")
	}
	switch readPolicy {
	case "leader":
	case "followers":
		cfg.ClientOptions = append(cfg.ClientOptions, client.WithReadPolicy(client.ReadFollowers))
	case "any":
		cfg.ClientOptions = append(cfg.ClientOptions, client.WithReadPolicy(client.ReadAny))
	default:
		return cfg, opts, fmt.Errorf("-read-from %q: want leader, followers or any", readPolicy)
	}
	if requestTimeout > 0 {
		cfg.ClientOptions = append(cfg.ClientOptions, client.WithRequestTimeout(requestTimeout))
	}
	tlsCfg, err := client.LoadTLS(caFile, certFile, keyFile, serverName)
	if err != nil {
		return cfg, opts, err
	}
	cfg.TLS = tlsCfg
	return cfg, opts, nil
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// startCPUProfile starts profiling this process's CPU into path (none when path is empty) and
// returns the function that stops it and closes the file.
func startCPUProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		return nil
	}, nil
}
