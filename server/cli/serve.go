package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"

	"github.com/commitlog-go/commitlog/server"
	"github.com/commitlog-go/commitlog/server/telemetry"
)

// unsetEnvMark ends the name of a flag's environment variable that is set to nothing, which
// counts as unset (see serveFlags): a name holding a NUL byte is never found in the
// environment (by urfave/cli, altsrc or os.LookupEnv), and init's FlagStringer drops the mark from --help.
// Dropping the name instead hid "[$COMMITLOG_…]" from --help while the variable was empty.
const unsetEnvMark = "\x00"

func init() {
	// urfave/cli v2.27 renders a flag's help through FlagStringer (its FlagEnvHinter is unused).
	stringer := cli.FlagStringer
	cli.FlagStringer = func(f cli.Flag) string { return strings.ReplaceAll(stringer(f), unsetEnvMark, "") }
}

// serveFlags are serve's flags. The seed's names and defaults are kept; every flag can also be
// set by an environment variable COMMITLOG_<NAME> and by a key of the same name in --config-file.
func serveFlags() []cli.Flag {
	// A variable set to nothing (COMMITLOG_DATA_DIR=, as a compose file's ${VAR} of an unset VAR
	// gives) counts as unset: urfave/cli took it as given, so it hid the config file's key and
	// the flag kept its default (or, for a string, ""). Its name then carries unsetEnvMark, so
	// that no lookup finds it while --help still shows it (the FlagStringer set in init).
	env := func(name string) []string {
		v := "COMMITLOG_" + envName(name)
		if val, ok := os.LookupEnv(v); ok && val == "" {
			return []string{v + unsetEnvMark}
		}
		return []string{v}
	}
	host, _ := os.Hostname()
	flags := []cli.Flag{
		altsrc.NewStringFlag(&cli.StringFlag{Name: "data-dir", Value: server.DefaultDataDir, EnvVars: env("data-dir"),
			Usage: "directory for the node's data (the commit log and Raft's log and snapshots), relative to the working directory unless absolute; created with mode 0700, refused when writable by group or others"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "node-name", Value: host, EnvVars: env("node-name"),
			Usage: "unique id of this node in the cluster: letters, digits, '-', '_' and '.'"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "bind-addr", Value: server.DefaultBindAddr, EnvVars: env("bind-addr"),
			Usage: "host:port for Serf gossip; its host is also where the API and Raft listen"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "rpc-port", Value: server.DefaultRPCPort, EnvVars: env("rpc-port"),
			Usage: "port of the client API and of Raft, which share it; 0 (or -1) picks a free port (the start line prints the address)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "advertise-host", EnvVars: env("advertise-host"),
			Usage: "host that other nodes and clients reach this node at; a name that does not resolve yet (a Kubernetes pod's own DNS name) is waited for, up to 2 minutes or until SIGINT or SIGTERM; one that never can (a space, an empty label) is refused at once (default: the bind address's host; bound to every interface (0.0.0.0, ::), the first non-loopback IPv4 address of this host)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "gossip-advertise-host", EnvVars: env("gossip-advertise-host"),
			Usage: "host (an IP address, or a name resolved at start) that other nodes reach this node's Serf gossip at; Raft and the API keep --advertise-host (default: --advertise-host), e.g. a Kubernetes pod's IP, which its DNS name may not resolve to yet at start"}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "start-join-addrs", EnvVars: env("start-join-addrs"),
			Usage: "Serf addresses of existing members to join (repeat or separate with commas)"}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "bootstrap", EnvVars: env("bootstrap"),
			Usage: "with no Raft state, bootstrap a new cluster with this node as its only voter, after --bootstrap-wait finds no existing cluster (implied when --start-join-addrs and --bootstrap-expect are unset)"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "bootstrap-expect", EnvVars: env("bootstrap-expect"),
			Usage: "with no Raft state, wait until this many servers are in gossip, then the lowest node name bootstraps them all as voters; never bootstraps when a server already in a cluster is seen (0: off)"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "bootstrap-wait", Value: server.DefaultBootstrapWait, EnvVars: env("bootstrap-wait"),
			Usage: "how long a node without Raft state that would bootstrap alone first looks for an existing cluster to join instead (a lost data dir must not found a second cluster); 0 bootstraps at once"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "transport", Value: server.TransportConnect, EnvVars: env("transport"),
			Usage: "API transport: connect (Connect, gRPC, gRPC-Web; JSON too) or grpc"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "acl-model-file", EnvVars: env("acl-model-file"),
			Usage: "casbin model file (default: the embedded model, the seed's model.conf)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "acl-policy-file", EnvVars: env("acl-policy-file"),
			Usage: "casbin policy file; when set, every call is authorized against it (deny by default)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "server-tls-cert-file", EnvVars: env("server-tls-cert-file"), Usage: "API server certificate (PEM)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "server-tls-key-file", EnvVars: env("server-tls-key-file"), Usage: "API server key (PEM)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "server-tls-ca-file", EnvVars: env("server-tls-ca-file"), Usage: "CA that client certificates must chain to (enables mTLS)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "peer-tls-cert-file", EnvVars: env("peer-tls-cert-file"),
			Usage: "peer certificate for Raft traffic (PEM); it must name this node (tls cert create --server --node-name) and chain to --peer-tls-ca-file; default: the server certificate when --server-tls-ca-file is given"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "peer-tls-key-file", EnvVars: env("peer-tls-key-file"), Usage: "peer key for Raft traffic (PEM)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "peer-tls-ca-file", EnvVars: env("peer-tls-ca-file"),
			Usage: "CA that peer certificates must chain to (default: --server-tls-ca-file)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "peer-tls-server-name", EnvVars: env("peer-tls-server-name"),
			Usage: "name verified in dialed peers' certificates, e.g. " + DefaultPeerServerName + " (default: the host of the peer's address)"}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "insecure-plaintext-peers", EnvVars: env("insecure-plaintext-peers"),
			Usage: "INSECURE: allow plaintext Raft next to a TLS API (anyone reaching the port can depose the leader, append records past the ACL " +
				"and join unproven); without --peer-tls-*, mutual TLS on the API (--server-tls-ca-file) secures Raft and this is refused otherwise"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "gossip-key-file", EnvVars: env("gossip-key-file"),
			Usage: "file holding the base64 key that encrypts Serf gossip (make one with: commitlog tls gossip-key); every member needs the same key; " +
				"required with TLS; refused when group or others may access it (except, for a non-root server, a root-owned file only its group may read: a Kubernetes Secret with an fsGroup)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "gossip-profile", Value: "lan", EnvVars: env("gossip-profile"),
			Usage: "Serf timings: lan, local (one host or a fast network: failures detected sooner) or test"}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "leave-on-shutdown", EnvVars: env("leave-on-shutdown"),
			Usage: "on a graceful stop, leave the cluster (the leader removes this node from Raft); off, a restart keeps the quorum"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "sync", Value: "never", EnvVars: env("sync"),
			Usage: "commit-log fsync policy: never (safe: Raft's log is fsynced before every acknowledgement), interval, always"}),
		altsrc.NewInt64Flag(&cli.Int64Flag{Name: "segment-bytes", Value: server.DefaultSegmentBytes, EnvVars: env("segment-bytes"),
			Usage: "size at which commit-log segments roll, from 56 to 1073741824 (1 GiB)"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-record-bytes", Value: server.DefaultMaxRecordBytes, EnvVars: env("max-record-bytes"),
			Usage: "largest record this node accepts while it leads, at most 4194304 (followers forward larger ones to the leader, in a Produce or ProduceStream message of at most their own limit + 64 KiB; every node stores whatever the leader committed)"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-request-bytes", EnvVars: env("max-request-bytes"), DefaultText: "4 MiB, or max-record-bytes + 64 KiB if more",
			Usage: "largest request read (a ProduceBatch), checked before decoding; 0: the default"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-small-request-bytes", Value: server.DefaultMaxSmallRequestBytes, EnvVars: env("max-small-request-bytes"),
			Usage: "largest request that carries no record (Consume, GetServers, GetBounds, cluster commands, health, reflection); Produce and ProduceStream messages get max-record-bytes + 64 KiB"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-batch-records", Value: server.DefaultMaxBatchRecords, EnvVars: env("max-batch-records"),
			Usage: "most records in one ProduceBatch (counted before decoding) and in one command, at most 65536"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-stream-inflight-bytes", Value: server.DefaultMaxStreamInflightBytes, EnvVars: env("max-stream-inflight-bytes"),
			Usage: "bytes a ProduceStream may have received and not yet answered; beyond it the server stops reading the stream (backpressure)"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-concurrent-streams", Value: server.DefaultMaxConcurrentStreams, EnvVars: env("max-concurrent-streams"),
			Usage: "calls in flight on one HTTP/2 connection (streams included)"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "read-header-timeout", Value: server.DefaultReadHeaderTimeout, EnvVars: env("read-header-timeout"),
			Usage: "time a new connection has for its TLS handshake and a request for its headers"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "request-read-timeout", Value: server.DefaultRequestReadTimeout, EnvVars: env("request-read-timeout"),
			Usage: "time a unary request's body has to arrive (connect transport; streams are exempt)"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "idle-timeout", Value: server.DefaultIdleTimeout, EnvVars: env("idle-timeout"),
			Usage: "close API connections that carried no call for this long (an open stream is not idle)"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-pending-conns", EnvVars: env("max-pending-conns"), DefaultText: "1024, at most a quarter of the open-files limit (ulimit -n) and at most max-conns",
			Usage: "connections the shared port holds while waiting for their first byte (an API connection over TLS: until its handshake is over); a new one beyond it closes the oldest; 0: the default"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-conns", EnvVars: env("max-conns"), DefaultText: "65536, at most half the open-files limit (ulimit -n)",
			Usage: "API connections open at once on the shared port (Raft's are not counted); one more closes the oldest still in its TLS handshake, or with none is closed at once and logged; 0: the default, which leaves half the open files to segment files, Raft's log and snapshots"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-forward-clients", Value: server.DefaultMaxForwardClients, EnvVars: env("max-forward-clients"),
			Usage: "API clients a node keeps open to other nodes (forwarding writes, asking peers); the least recently used is closed"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "max-consume-wait", Value: server.DefaultMaxConsumeWait, EnvVars: env("max-consume-wait"),
			Usage: "cap on every Consume wait, whatever the client's deadline: a long poll asked with max_wait_ms, and a follower catching up to the leader's commit point, which then answers Unavailable (retryable: read elsewhere), e.g. for the seconds of a restarted node's log replay (a past-end Consume without max_wait_ms answers OutOfRange at once)"}),
		altsrc.NewInt64Flag(&cli.Int64Flag{Name: "retention-bytes", EnvVars: env("retention-bytes"),
			Usage: "keep at most this many bytes of stored records: the leader moves the log start up and every node cuts there, dropping whole segments below it (0: keep everything)"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "retention-age", EnvVars: env("retention-age"),
			Usage: "drop records older than this, by the leader's append time stored in each record: the leader moves the log start up and every node cuts there (0: keep everything)"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "retention-check-interval", Value: server.DefaultRetentionInterval, EnvVars: env("retention-check-interval"),
			Usage: "how often retention runs: the leader applies --retention-bytes, --retention-age and each topic's retention, and every node drops the segments below the log start (Kafka's log.retention.check.interval.ms; 0: the default, 1m)"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "group-session-timeout", Value: server.DefaultGroupSessionTimeout, EnvVars: env("group-session-timeout"),
			Usage: "a consumer group member that sends no heartbeat for this long is removed and its partitions move to the other members"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "group-offsets-retention", Value: server.DefaultGroupOffsetsRetention, EnvVars: env("group-offsets-retention"),
			Usage: "the committed offsets of a consumer group without members are dropped this long after its last commit (decided by the leader, applied through Raft)"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "divergence-check-interval", Value: server.DefaultDivergenceCheckInterval, EnvVars: env("divergence-check-interval"),
			Usage: "how often the leader compares the checksum of its log with every follower's; a server whose log differs from the majority's raises an alarm, refuses reads, and neither votes nor leads until it is repaired (0: never)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "metrics-addr", Value: "off", EnvVars: env("metrics-addr"),
			Usage: "host:port serving /metrics (Prometheus), /healthz (liveness) and /readyz (readiness: a leader is known and this node caught up), e.g. 127.0.0.1:9400; off: none. Plain HTTP without authentication, and the metrics name topics and groups: bind it to loopback or a private address (it holds at most 64 connections: one more closes the oldest)"}),
		altsrc.NewFloat64Flag(&cli.Float64Flag{Name: "trace-sample-ratio", Value: 0.1, EnvVars: env("trace-sample-ratio"),
			Usage: "fraction of new traces sampled, 0 to 1 (a sampled caller's trace is always followed); spans go over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, and the other OTEL_* variables apply"}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "rpc-metrics", EnvVars: env("rpc-metrics"),
			Usage: "also export the OpenTelemetry RPC metrics of the transports (rpc_server_call_duration_seconds...), which repeat commitlog_request_duration_seconds at a CPU cost"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "metrics-max-partition-series", Value: telemetry.DefaultMaxPartitionSeries, EnvVars: env("metrics-max-partition-series"),
			Usage: "partitions whose records are counted under their own topic and partition labels (commitlog_partition_*): the first ones this node serves; the rest count as topic=\"other\", partition=\"other\", so the series stay bounded (0: none of their own); the same cap bounds commitlog_group_lag's group, topic and partition series, the rest summed under \"other\""}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "disable-telemetry", EnvVars: env("disable-telemetry"),
			Usage: "no tracing and no metrics (health and readiness still answer); to measure what telemetry costs"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: env("log-level"), Usage: "debug, info, warn or error"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-format", Value: "text", EnvVars: env("log-format"), Usage: "text or json"}),
		&cli.StringFlag{Name: "config-file", EnvVars: env("config-file"),
			Usage: "YAML file whose keys are the other flags' names (any other key is refused); flags and environment variables override it (an empty variable does not)"},
	}
	return flags
}

func serveCommand() *cli.Command {
	flags := serveFlags()
	return &cli.Command{
		Name:  "serve",
		Usage: "run a commitlog server (with no flags: a single-node server on 127.0.0.1:8400)",
		Description: "SIGINT or SIGTERM stops the server gracefully: a leader hands leadership over, --leave-on-shutdown\n" +
			"leaves the cluster, calls in flight are drained (each step bounded, up to seconds). A second SIGINT or\n" +
			"SIGTERM meanwhile exits at once, with status 1, without finishing the graceful stop. During the start,\n" +
			"the first one cuts short the waits that can be (an advertised host name that does not resolve yet) and\n" +
			"serve stops; a second one exits at once, with status 1, even while a start step that cannot be cut\n" +
			"short (the data dir or Raft's log on a slow or hung disk) holds the start up.\n" +
			"SIGHUP reloads the ACL policy (--acl-policy-file) and the TLS certificates, keys and CAs (--server-tls-*,\n" +
			"--peer-tls-*): new connections use them; a file that does not load, or a certificate that has expired or is not\n" +
			"valid yet, is logged and the previous version kept. serve refuses to start with such a certificate.\n" +
			"The certificate presented to peers (--peer-tls-cert-file, else --server-tls-cert-file) must chain to the peer\n" +
			"CA file (--peer-tls-ca-file, else --server-tls-ca-file), as peers require: serve refuses to start otherwise,\n" +
			"naming the files and the certificate's issuer, and a reload keeps the previous certificate.",
		Flags: flags,
		Before: func(c *cli.Context) error {
			path := c.String("config-file")
			if path == "" {
				return nil
			}
			src, err := loadConfigFile(path, flags)
			if err != nil {
				return err
			}
			// Each flag takes the file's value unless given as a flag or an environment variable.
			if err := altsrc.ApplyInputSourceValues(c, src, flags); err != nil {
				// altsrc's error ("Mismatched type for flag 'rpc-port'") did not say where the
				// value came from.
				return fmt.Errorf("--config-file %s: %w", path, err)
			}
			return nil
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			logger, err := newLogger(c.App.ErrWriter, c.String("log-level"), c.String("log-format"))
			if err != nil {
				return err
			}
			cfg, err := serveConfig(c, logger)
			if err != nil {
				return err
			}
			// The first SIGINT or SIGTERM stops the server gracefully (ctx); a second one, while
			// that takes its time, makes serve return at once (forced).
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			ctx, stop := context.WithCancel(c.Context)
			defer stop()
			// SIGHUP reloads the ACL policy and the TLS certificates. Registered before the server
			// starts, so that an early SIGHUP does not kill the process.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			var wg sync.WaitGroup
			defer wg.Wait()
			// The stop signals are watched from here on: the start may wait (for an advertised
			// host name that does not resolve yet, up to 2 minutes), and a SIGTERM or Ctrl-C
			// meanwhile must end it, not wait it out.
			forced := make(chan os.Signal, 1)
			done := make(chan struct{})
			defer close(done) // before wg.Wait: ends watchStopSignals
			var started atomic.Bool
			wg.Add(1)
			go func() {
				defer wg.Done()
				watchStopSignals(sigs, done, &started, stop, forced, logger)
			}()
			// The start runs on its own goroutine, so that a second signal ends serve even while
			// a step that does not watch ctx holds it up (a data dir or Raft's log on a hung
			// disk or NFS mount, a file that never ends): the first signal only cancels ctx.
			type startResult struct {
				srv *server.Server
				err error
			}
			startDone := make(chan startResult, 1)
			go func() {
				srv, err := server.NewContext(ctx, cfg)
				startDone <- startResult{srv, err}
			}()
			var srv *server.Server
			select {
			case r := <-startDone:
				srv, err = r.srv, r.err
			case sig := <-forced:
				// NewContext goes on until the process exits: main exits (status 1, printing
				// this error) as soon as serve returns.
				return fmt.Errorf("serve: %s received again while starting: exited without finishing the start", signalName(sig))
			}
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("serve: stopped while starting: %w", err)
				}
				return flagNamedError(err)
			}
			started.Store(true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				reloadOnSignal(ctx, hup, srv, logger)
			}()
			dataDir := cfg.DataDir
			if dataDir == "" {
				dataDir = server.DefaultDataDir // what the server uses: an empty flag said "data in "
			}
			gossip := cfg.BindAddr
			if host, port, err := net.SplitHostPort(gossip); err == nil && port == "0" {
				// The port Serf took, which other nodes' --start-join-addrs need.
				if _, p, err := net.SplitHostPort(srv.GossipAddr()); err == nil {
					gossip = net.JoinHostPort(host, p)
				}
			}
			fmt.Fprintf(c.App.Writer, "commitlog %s: node %s serving the API on %s (%s), gossip on %s, data in %s\n",
				Version, srv.ID(), srv.Addr(), cfg.Transport, gossip, dataDir)
			ran := make(chan error, 1)
			go func() { ran <- srv.Run(ctx) }()
			select {
			case err = <-ran:
				stop() // ends reloadOnSignal
				return err
			case sig := <-forced:
				// srv.Run goes on stopping until the process exits: main exits (status 1,
				// printing this error) as soon as serve returns.
				return fmt.Errorf("serve: %s received again while stopping gracefully: exited without finishing the graceful stop (leadership transfer, leave, draining calls)", signalName(sig))
			}
		},
	}
}

// noArgs refuses arguments, for a command that takes none (serve, consume, the list commands):
// the flag package stops reading flags at the first one, so in `serve --leave-on-shutdown false
// --log-level error` the boolean flag was set, and "false" and every flag after it were
// silently ignored.
func noArgs(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 {
		return nil
	}
	hint := ""
	if lineage := c.Lineage(); len(lineage) > 1 {
		raw := lineage[1].Args().Slice() // the command's name, then its raw arguments
		if i := len(raw) - len(args) - 1; i > 0 && raw[i] != "--" {
			if name, ok := namesFlag(c.Command, raw[i]); ok && !strings.Contains(raw[i], "=") {
				if _, err := strconv.ParseBool(args[0]); err == nil && !flagTakesValue(c.Command, name) {
					hint = fmt.Sprintf(" (--%s takes no separate value: write --%s=%s)", name, name, args[0])
				}
			}
		}
	}
	return fmt.Errorf("%s takes no arguments, got %q%s; flags after an argument are not read", strings.TrimPrefix(c.Command.HelpName, c.App.Name+" "), args, hint)
}

// flagTakesValue reports whether cmd's flag name takes a value (boolean flags do not).
func flagTakesValue(cmd *cli.Command, name string) bool {
	for _, f := range cmd.Flags {
		if v, ok := f.(interface{ TakesValue() bool }); ok && slices.Contains(f.Names(), name) {
			return v.TakesValue()
		}
	}
	return false
}

// loadConfigFile reads the YAML file at path, whose keys are the names of flags that a config
// file can set, and refuses any other key: altsrc ignores a key no flag asks for, so a typo
// (data_dir for data-dir) silently left the flag at its default.
func loadConfigFile(path string, flags []cli.Flag) (altsrc.InputSourceContext, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config-file: %w", err)
	}
	var values map[any]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		return nil, fmt.Errorf("--config-file %s: %w", path, err)
	}
	known := map[string]bool{}
	for _, f := range flags {
		if _, ok := f.(altsrc.FlagInputSourceExtension); ok {
			for _, name := range f.Names() {
				known[name] = true
			}
		}
	}
	var unknown []string
	for k := range values {
		if name, ok := k.(string); !ok || !known[name] {
			unknown = append(unknown, fmt.Sprint(k))
		}
	}
	if len(unknown) == 0 {
		coerceFileValues(values, flags)
		return altsrc.NewMapInputSource(path, values), nil
	}
	slices.Sort(unknown)
	for i, k := range unknown {
		unknown[i] = strconv.Quote(k)
		if k == "config-file" {
			// A flag's name, refused all the same: one file does not name another.
			unknown[i] += " (a file cannot name another: give --config-file on the command line)"
			continue
		}
		if alt := strings.ReplaceAll(k, "_", "-"); known[alt] {
			unknown[i] += " (did you mean " + alt + "?)"
		}
	}
	keys := "key"
	if len(unknown) > 1 {
		keys = "keys"
	}
	return nil, fmt.Errorf("--config-file %s: unknown %s %s; its keys are the names of serve's flags (commitlog serve --help), such as data-dir",
		path, keys, strings.Join(unknown, ", "))
}

// configFieldFlags maps the server.Config fields that one serve flag sets to that flag, so
// that the server's configuration errors name what the user gave: "invalid config: RPCPort
// 70000 is out of range" named a Go field, not --rpc-port.
var configFieldFlags = map[string]string{
	"DataDir": "data-dir", "NodeName": "node-name", "BindAddr": "bind-addr", "RPCPort": "rpc-port",
	"AdvertiseHost": "advertise-host", "GossipAdvertiseHost": "gossip-advertise-host", "StartJoinAddrs": "start-join-addrs",
	"Bootstrap": "bootstrap", "BootstrapExpect": "bootstrap-expect", "BootstrapWait": "bootstrap-wait", "Transport": "transport",
	"ACLModelFile": "acl-model-file", "ACLPolicyFile": "acl-policy-file", "InsecurePlaintextPeers": "insecure-plaintext-peers",
	"GossipKey": "gossip-key-file", "GossipProfile": "gossip-profile", "LeaveOnShutdown": "leave-on-shutdown", "Sync": "sync",
	"SegmentBytes": "segment-bytes", "MaxRecordBytes": "max-record-bytes", "MaxRequestBytes": "max-request-bytes",
	"MaxSmallRequestBytes": "max-small-request-bytes", "MaxBatchRecords": "max-batch-records",
	"MaxStreamInflightBytes": "max-stream-inflight-bytes", "MaxConcurrentStreams": "max-concurrent-streams",
	"ReadHeaderTimeout": "read-header-timeout", "RequestReadTimeout": "request-read-timeout", "IdleTimeout": "idle-timeout",
	"MaxPendingConns": "max-pending-conns", "MaxConns": "max-conns", "MaxForwardClients": "max-forward-clients",
	"MaxConsumeWait": "max-consume-wait", "RetentionBytes": "retention-bytes", "RetentionAge": "retention-age",
	"RetentionInterval": "retention-check-interval", "GroupSessionTimeout": "group-session-timeout",
	"GroupOffsetsRetention": "group-offsets-retention", "DivergenceCheckInterval": "divergence-check-interval",
	"MetricsAddr": "metrics-addr", "TraceSampleRatio": "trace-sample-ratio", "MetricsMaxPartitionSeries": "metrics-max-partition-series",
}

// configFieldWords names the server.Config fields that several serve flags set, in the same
// messages: "invalid config: PeerServerTLS certificate "server" does not name node "n2"" named a
// Go field where a user of serve gave --server-tls-cert-file.
var configFieldWords = map[string]string{
	"PeerServerTLS": "peer TLS (--peer-tls-*, else --server-tls-*)",
}

// configFieldRE finds a Config field of configFieldFlags or configFieldWords in an error message.
var configFieldRE = func() *regexp.Regexp {
	fields := append(slices.Collect(maps.Keys(configFieldFlags)), slices.Collect(maps.Keys(configFieldWords))...)
	slices.Sort(fields)
	slices.Reverse(fields) // the longest first among fields that share a start (BootstrapExpect, Bootstrap)
	return regexp.MustCompile(`\b(` + strings.Join(fields, "|") + `)\b`)
}()

// namedError is an error whose message names serve's flags where the wrapped one named
// server.Config fields.
type namedError struct {
	msg string
	err error
}

func (e *namedError) Error() string { return e.msg }
func (e *namedError) Unwrap() error { return e.err }

// flagNamedError returns err with the Config fields named in a configuration error ("invalid
// config: …", from the server or a package it configures) replaced with their flags.
func flagNamedError(err error) error {
	msg := err.Error()
	if !strings.Contains(msg, "invalid config") {
		return err
	}
	named := configFieldRE.ReplaceAllStringFunc(msg, func(field string) string {
		if words, ok := configFieldWords[field]; ok {
			return words
		}
		return "--" + configFieldFlags[field]
	})
	return &namedError{msg: named, err: err}
}

// watchStopSignals reads the stop signals on sigs until done is closed. The first one logs that
// serve stops and calls stop: once the server has started (started is set), srv.Run's context
// ends and it begins its graceful stop, as it does when the caller's context ends; before, the
// start's context ends, which cuts short the start steps that watch it. The next one goes to
// forced, to exit at once, as a second Ctrl-C does to a Consul agent, also while a start step
// that does not watch the context holds the start up. Only signals count: a graceful stop that
// the caller's context began takes one signal to force.
func watchStopSignals(sigs <-chan os.Signal, done <-chan struct{}, started *atomic.Bool, stop func(), forced chan<- os.Signal, logger *slog.Logger) {
	for seen := 0; ; seen++ {
		select {
		case <-done:
			return
		case sig := <-sigs:
			if seen > 0 {
				forced <- sig // buffered: serve reads it, or has returned
				return
			}
			if started.Load() {
				logger.Info("stopping gracefully (leadership handed over, calls drained); send the signal again to exit at once", "signal", signalName(sig))
			} else {
				logger.Info("stopping while starting (the start steps that can be cut short end, then serve exits); send the signal again to exit at once", "signal", signalName(sig))
			}
			stop()
		}
	}
}

// signalName names a stop signal as users send it (SIGINT, not "interrupt").
func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// reloadOnSignal calls srv.Reload for every signal on sig until ctx is done. A file that does
// not load is logged, and the server keeps what it had.
func reloadOnSignal(ctx context.Context, sig <-chan os.Signal, srv *server.Server, logger *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			logger.Info("SIGHUP: reloading the ACL policy and the TLS certificates")
			if err := srv.Reload(); err != nil {
				logger.Error("reload failed; what did not load keeps its previous version", "err", err)
			}
		}
	}
}

func serveConfig(c *cli.Context, logger *slog.Logger) (server.Config, error) {
	if err := checkServeValues(c); err != nil {
		return server.Config{}, err
	}
	cfg := server.Config{
		DataDir:             c.String("data-dir"),
		NodeName:            c.String("node-name"),
		BindAddr:            c.String("bind-addr"),
		RPCPort:             c.Int("rpc-port"),
		AdvertiseHost:       c.String("advertise-host"),
		GossipAdvertiseHost: c.String("gossip-advertise-host"),
		StartJoinAddrs:      c.StringSlice("start-join-addrs"),
		Bootstrap:           c.Bool("bootstrap"),
		BootstrapExpect:     c.Int("bootstrap-expect"),
		BootstrapWait:       c.Duration("bootstrap-wait"),
		Transport:           c.String("transport"),
		ACLModelFile:        c.String("acl-model-file"),
		ACLPolicyFile:       c.String("acl-policy-file"),
		Sync:                c.String("sync"),
		GossipProfile:       c.String("gossip-profile"),
		LeaveOnShutdown:     c.Bool("leave-on-shutdown"),
		SegmentBytes:        c.Int64("segment-bytes"),
		MaxRecordBytes:      c.Int("max-record-bytes"),
		MaxConsumeWait:      c.Duration("max-consume-wait"),

		MaxRequestBytes:        c.Int("max-request-bytes"),
		MaxSmallRequestBytes:   c.Int("max-small-request-bytes"),
		MaxBatchRecords:        c.Int("max-batch-records"),
		MaxStreamInflightBytes: c.Int("max-stream-inflight-bytes"),
		MaxConcurrentStreams:   c.Int("max-concurrent-streams"),
		ReadHeaderTimeout:      c.Duration("read-header-timeout"),
		RequestReadTimeout:     c.Duration("request-read-timeout"),
		IdleTimeout:            c.Duration("idle-timeout"),
		MaxPendingConns:        c.Int("max-pending-conns"),
		MaxConns:               c.Int("max-conns"),
		MaxForwardClients:      c.Int("max-forward-clients"),

		RetentionBytes:    c.Int64("retention-bytes"),
		RetentionAge:      c.Duration("retention-age"),
		RetentionInterval: c.Duration("retention-check-interval"),

		GroupSessionTimeout:   c.Duration("group-session-timeout"),
		GroupOffsetsRetention: c.Duration("group-offsets-retention"),
		Logger:                logger,
	}
	if cfg.RPCPort == 0 {
		cfg.RPCPort = -1 // the flag's 0 picks a free port; the Config's zero means the default
	}
	cfg.DivergenceCheckInterval = c.Duration("divergence-check-interval")
	if cfg.DivergenceCheckInterval == 0 {
		cfg.DivergenceCheckInterval = -1 // the flag's 0 means never; the Config's zero means the default
	}
	if err := serveTLSFromFlags(c).apply(&cfg); err != nil {
		return server.Config{}, err
	}
	cfg.MetricsAddr = c.String("metrics-addr")
	cfg.TraceSampleRatio = c.Float64("trace-sample-ratio")
	if r := cfg.TraceSampleRatio; !(r >= 0 && r <= 1) { // NaN too, which every comparison let through
		return server.Config{}, fmt.Errorf("--trace-sample-ratio %v: want a fraction from 0 (no new traces) to 1 (all)", r)
	}
	if cfg.TraceSampleRatio == 0 {
		cfg.TraceSampleRatio = -1 // the flag's 0 means none; the Config's zero means the default
	}
	cfg.DisableTelemetry = c.Bool("disable-telemetry")
	cfg.RPCMetrics = c.Bool("rpc-metrics")
	cfg.MetricsMaxPartitionSeries = c.Int("metrics-max-partition-series")
	if cfg.MetricsMaxPartitionSeries == 0 {
		cfg.MetricsMaxPartitionSeries = -1 // the flag's 0 means none; the Config's zero means the default
	}
	return cfg, nil
}

// Serve flags whose 0 the server's Config would take as its default, and whose help gives 0
// no meaning: given as 0 (a flag, a variable or a config-file key), they are refused rather
// than silently replaced.
var serveFlagsNotZero = []string{
	"segment-bytes", "max-record-bytes", "max-small-request-bytes", "max-batch-records", "max-stream-inflight-bytes",
	"max-concurrent-streams", "read-header-timeout", "request-read-timeout", "idle-timeout", "max-forward-clients",
	"max-consume-wait", "group-session-timeout", "group-offsets-retention",
}

// Serve flags whose negative values the server's Config takes as another setting (a negative
// --bootstrap-wait as 0, a negative --divergence-check-interval as never, a negative
// --metrics-max-partition-series as none), where the other flags refuse them.
var serveFlagsNotNegative = []string{"bootstrap-wait", "divergence-check-interval", "metrics-max-partition-series"}

// checkServeValues refuses the values of serve's flags that the server's Config does not refuse
// but would replace: a zero of serveFlagsNotZero, a negative value of serveFlagsNotNegative.
func checkServeValues(c *cli.Context) error {
	var errs []error
	for _, name := range serveFlagsNotZero {
		if c.IsSet(name) && reflect.ValueOf(c.Value(name)).IsZero() {
			errs = append(errs, fmt.Errorf("--%s %v: want more than 0 (default: %s)", name, c.Value(name), serveFlagDefault(name)))
		}
	}
	for _, name := range serveFlagsNotNegative {
		if v := reflect.ValueOf(c.Value(name)); v.CanInt() && v.Int() < 0 {
			errs = append(errs, fmt.Errorf("--%s %v is negative: want 0 or more", name, c.Value(name)))
		}
	}
	return errors.Join(errs...)
}

// serveFlagDefault is the default of serve's flag name, as --help shows it.
func serveFlagDefault(name string) string {
	for _, f := range serveFlags() {
		if d, ok := f.(cli.DocGenerationFlag); ok && slices.Contains(f.Names(), name) {
			return d.GetDefaultText()
		}
	}
	return "?"
}

// coerceFileValues reads a config file's values as their flags' own forms do: YAML reads a whole
// number ("trace-sample-ratio: 1") as an int, which altsrc refuses for a float flag; and a list
// flag's value may be a string of items separated with commas, as in its flag and environment
// variable ("start-join-addrs: a:8401,b:8401"), where altsrc took only a list.
func coerceFileValues(values map[any]any, flags []cli.Flag) {
	for _, f := range flags {
		_, isFloat := f.(*altsrc.Float64Flag)
		_, isList := f.(*altsrc.StringSliceFlag)
		if !isFloat && !isList {
			continue
		}
		for _, name := range f.Names() {
			switch v := values[name].(type) {
			case int:
				if isFloat {
					values[name] = float64(v)
				}
			case string:
				if isList {
					var items []any
					for _, item := range strings.Split(v, ",") {
						items = append(items, strings.TrimSpace(item))
					}
					values[name] = items
				}
			}
		}
	}
}
