package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"

	"github.com/commitlog-go/commitlog/server"
)

// TestExampleConfigFile checks that every key of the documented example config file is a serve
// flag that a config file can set.
func TestExampleConfigFile(t *testing.T) {
	raw, err := os.ReadFile("../commitlog.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := yaml.Unmarshal(raw, &keys); err != nil {
		t.Fatalf("the example does not parse: %v", err)
	}
	fromFile := map[string]bool{}
	for _, f := range serveFlags() {
		if _, ok := f.(altsrc.FlagInputSourceExtension); ok {
			fromFile[f.Names()[0]] = true
		}
	}
	if len(keys) < 10 {
		t.Fatalf("the example has only %d keys", len(keys))
	}
	for k := range keys {
		if !fromFile[k] {
			t.Errorf("example key %q is not a serve flag that a config file can set", k)
		}
	}
	// Complete, as server/README.md calls it: every such flag is a key, or a commented one.
	for k := range fromFile {
		if _, ok := keys[k]; !ok && !regexp.MustCompile(`(?m)^# `+regexp.QuoteMeta(k)+`:`).Match(raw) {
			t.Errorf("serve flag --%s is not in the example, as a key or a commented one", k)
		}
	}
}

// TestServeReadsConfigFile starts serve from a config file and checks that its values apply,
// that a flag overrides the file and the environment, and the environment the file.
func TestServeReadsConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "commitlog.yaml")
	body := "node-name: from-file\ndata-dir: " + filepath.Join(dir, "data") + "\nrpc-port: -1\nbind-addr: 127.0.0.1:0\nlog-level: error\ntransport: connect\n"
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	gossip := "127.0.0.1:" + strconv.Itoa(freePort(t))
	t.Setenv("COMMITLOG_BIND_ADDR", gossip)
	t.Setenv("COMMITLOG_TRANSPORT", "connect")
	var out syncBuffer
	addr := startServeTo(t, &out, "--config-file", cfg, "--transport", "grpc")
	if !regexp.MustCompile(`node from-file serving the API on \S+ \(grpc\), gossip on ` + regexp.QuoteMeta(gossip)).MatchString(out.String()) {
		t.Fatalf("serve output %q: want node from-file (from the file) on grpc (the flag overrides the file and the environment), gossip on %s (the environment overrides the file)",
			out.String(), gossip)
	}
	if !strings.Contains(out.String(), filepath.Join(dir, "data")) || addr == "" {
		t.Fatalf("serve output %q: want the file's data dir", out.String())
	}
}

// TestServeLimitFlags: every limit flag (and --retention-check-interval) reaches the server's
// Config.
func TestServeLimitFlags(t *testing.T) {
	got, err := serveConfigOf(
		"--max-request-bytes", "8388608", "--max-small-request-bytes", "1024", "--max-batch-records", "7",
		"--max-stream-inflight-bytes", "2097152", "--max-concurrent-streams", "9", "--read-header-timeout", "3s",
		"--request-read-timeout", "4s", "--idle-timeout", "5m", "--max-pending-conns", "11", "--max-conns", "13", "--max-forward-clients", "3",
		"--retention-check-interval", "2s")
	if err != nil {
		t.Fatal(err)
	}
	want := server.Config{MaxRequestBytes: 8 << 20, MaxSmallRequestBytes: 1024, MaxBatchRecords: 7, MaxStreamInflightBytes: 2 << 20,
		MaxConcurrentStreams: 9, ReadHeaderTimeout: 3 * time.Second, RequestReadTimeout: 4 * time.Second, IdleTimeout: 5 * time.Minute,
		MaxPendingConns: 11, MaxConns: 13, MaxForwardClients: 3, RetentionInterval: 2 * time.Second}
	g := server.Config{RetentionInterval: got.RetentionInterval, MaxRequestBytes: got.MaxRequestBytes, MaxSmallRequestBytes: got.MaxSmallRequestBytes, MaxBatchRecords: got.MaxBatchRecords,
		MaxStreamInflightBytes: got.MaxStreamInflightBytes, MaxConcurrentStreams: got.MaxConcurrentStreams, ReadHeaderTimeout: got.ReadHeaderTimeout,
		RequestReadTimeout: got.RequestReadTimeout, IdleTimeout: got.IdleTimeout, MaxPendingConns: got.MaxPendingConns, MaxConns: got.MaxConns, MaxForwardClients: got.MaxForwardClients}
	if fmt.Sprintf("%+v", g) != fmt.Sprintf("%+v", want) {
		t.Errorf("limits from flags:\n got %+v\nwant %+v", g, want)
	}
}

// TestServeConnLimitDefaultsFollowOpenFiles: without --max-pending-conns and --max-conns, serve
// leaves both to the server's defaults, which follow the open-files limit. --max-pending-conns
// passed a fixed 1024, whatever the limit.
func TestServeConnLimitDefaultsFollowOpenFiles(t *testing.T) {
	got, err := serveConfigOf()
	if err != nil {
		t.Fatal(err)
	}
	if got.MaxPendingConns != 0 || got.MaxConns != 0 {
		t.Errorf("without the flags: MaxPendingConns %d, MaxConns %d; want 0 (the server's defaults, which follow the open-files limit)",
			got.MaxPendingConns, got.MaxConns)
	}
}

// TestServeRefusesUnknownConfigKey: a config-file key that is no flag's name (data_dir for
// data-dir) was ignored, so serve ran with the flag's default; it is refused, naming the key,
// the file and the flag it resembles, before anything starts.
func TestServeRefusesUnknownConfigKey(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "commitlog.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: "+filepath.Join(dir, "typo")+"\nnode-name: n0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // the old code served until then
	defer cancel()
	var out, errOut syncBuffer
	code := Main(ctx, []string{"commitlog", "serve", "--config-file", cfg, "--data-dir", data, "--rpc-port", "-1",
		"--bind-addr", "127.0.0.1:" + strconv.Itoa(freePort(t)), "--gossip-profile", "test", "--bootstrap-wait", "0s", "--log-level", "error"},
		strings.NewReader(""), &out, &errOut)
	if e := errOut.String(); code == 0 || !strings.Contains(e, `unknown key "data_dir" (did you mean data-dir?)`) || !strings.Contains(e, cfg) {
		t.Errorf("serve with data_dir in its config file: exit %d, stderr %q; want the key, the file and data-dir named", code, e)
	}
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("serve created its data dir before refusing the config file (%v)", err)
	}
}

// TestServeRefusesSharedPort: --rpc-port equal to --bind-addr's port (the API and Raft on the
// port of Serf gossip) is refused by the configuration's validation, naming both flags, before
// the data dir is made; it failed only at bind time, after.
func TestServeRefusesSharedPort(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	port := strconv.Itoa(freePort(t))
	code, _, errOut := run(t, t.Context(), "serve", "--data-dir", data, "--rpc-port", port, "--bind-addr", "127.0.0.1:"+port,
		"--gossip-profile", "test", "--bootstrap-wait", "0s", "--log-level", "error")
	if code == 0 || !strings.Contains(errOut, "--rpc-port") || !strings.Contains(errOut, "--bind-addr") || !strings.Contains(errOut, "invalid config") {
		t.Errorf("serve --rpc-port %s --bind-addr 127.0.0.1:%s: exit %d, stderr %q; want a config error naming both flags", port, port, code, errOut)
	}
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("serve created its data dir before refusing the ports (%v)", err)
	}
}

// serveConfigFrom returns the server Config that serve builds from a config file holding body
// and the flags args (serve's command, flags and environment as in the binary).
// serveConfigOf is the Config serve builds from the flags args.
func serveConfigOf(args ...string) (server.Config, error) {
	var got server.Config
	app := &cli.App{Flags: serveFlags(), Action: func(c *cli.Context) error {
		var err error
		got, err = serveConfig(c, slog.New(slog.DiscardHandler))
		return err
	}}
	err := app.Run(append([]string{"serve"}, args...))
	return got, err
}

func serveConfigFrom(t *testing.T, body string, args ...string) (server.Config, error) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "commitlog.yaml")
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var got server.Config
	cmd := serveCommand()
	cmd.Action = func(c *cli.Context) error {
		var err error
		got, err = serveConfig(c, slog.New(slog.DiscardHandler))
		return err
	}
	app := &cli.App{Commands: []*cli.Command{cmd}}
	err := app.Run(append([]string{"commitlog", "serve", "--config-file", cfg}, args...))
	return got, err
}

// TestConfigFileWholeNumberRatio: --trace-sample-ratio takes 0 to 1, but a config file's
// "trace-sample-ratio: 1" (or 0), which YAML reads as an integer, was refused as a mismatched
// type; only 1.0 was taken.
func TestConfigFileWholeNumberRatio(t *testing.T) {
	for body, want := range map[string]float64{"trace-sample-ratio: 1\n": 1, "trace-sample-ratio: 0\n": -1, "trace-sample-ratio: 0.5\n": 0.5} {
		got, err := serveConfigFrom(t, body)
		if err != nil {
			t.Errorf("config file %q: %v", body, err)
			continue
		}
		if got.TraceSampleRatio != want {
			t.Errorf("config file %q: TraceSampleRatio %v, want %v", body, got.TraceSampleRatio, want)
		}
	}
}

// TestServeStartLineNamesDefaults: an empty --node-name or --data-dir (as an empty
// COMMITLOG_NODE_NAME or COMMITLOG_DATA_DIR gives) runs the server with the host name and
// ./data, but serve's start line said "node  serving …, data in " (empty), hiding where the
// node keeps its data and what it is called.
func TestServeStartLineNamesDefaults(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		t.Fatalf("host name %q: %v", host, err) // the server needs one for an empty --node-name
	}
	dir := t.TempDir()
	t.Chdir(dir)
	var out syncBuffer
	startServeTo(t, &out, "--node-name", "", "--data-dir", "", "--bind-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)), "--rpc-port", "-1", "--log-level", "error")
	if !strings.Contains(out.String(), "node "+host+" serving") || !strings.Contains(out.String(), "data in "+server.DefaultDataDir+"\n") {
		t.Errorf("serve output %q: want node %s and data in %s", out.String(), host, server.DefaultDataDir)
	}
	if _, err := os.Stat(filepath.Join(dir, server.DefaultDataDir)); err != nil {
		t.Errorf("data dir: %v", err)
	}
}

// TestConfigFileJoinAddrsString: --start-join-addrs and COMMITLOG_START_JOIN_ADDRS take
// addresses separated with commas, but the config file refused "start-join-addrs: a:1,b:2" (or
// a single address) as a mismatched type, taking only a YAML list.
func TestConfigFileJoinAddrsString(t *testing.T) {
	for body, want := range map[string]string{
		"start-join-addrs: 10.0.0.2:8401\n":               "[10.0.0.2:8401]",
		"start-join-addrs: 10.0.0.2:8401,10.0.0.3:8401\n": "[10.0.0.2:8401 10.0.0.3:8401]",
		"start-join-addrs: [10.0.0.2:8401]\n":             "[10.0.0.2:8401]",
	} {
		got, err := serveConfigFrom(t, body)
		if err != nil {
			t.Errorf("config file %q: %v", body, err)
			continue
		}
		if fmt.Sprint(got.StartJoinAddrs) != want {
			t.Errorf("config file %q: StartJoinAddrs %v, want %s", body, got.StartJoinAddrs, want)
		}
	}
}

// TestConfigFileUnderEmptyEnv: an environment variable set to nothing (COMMITLOG_SEGMENT_BYTES=,
// as a compose file's ${VAR} of an unset VAR gives) hid the config file's key: serve ran with
// the flag's default (or, for a string, ""), not the file's value, so "COMMITLOG_DATA_DIR="
// put the node's data in ./data instead of the file's data-dir. An empty variable is as unset;
// a flag still overrides the file.
func TestConfigFileUnderEmptyEnv(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	for _, name := range []string{"COMMITLOG_SEGMENT_BYTES", "COMMITLOG_DATA_DIR", "COMMITLOG_NODE_NAME", "COMMITLOG_SYNC"} {
		t.Setenv(name, "")
	}
	got, err := serveConfigFrom(t, "segment-bytes: 1048576\ndata-dir: "+dataDir+"\nnode-name: from-file\nsync: always\n", "--sync", "interval")
	if err != nil {
		t.Fatal(err)
	}
	if got.SegmentBytes != 1<<20 || got.DataDir != dataDir || got.NodeName != "from-file" || got.Sync != "interval" {
		t.Errorf("under empty COMMITLOG_ variables: segment bytes %d, data dir %q, node name %q, sync %q; want the file's 1048576, %q and from-file, and the flag's interval",
			got.SegmentBytes, got.DataDir, got.NodeName, got.Sync, dataDir)
	}
}

// TestServeStartLineNamesGossipPort: with --bind-addr host:0 the start line named the gossip
// address as "127.0.0.1:0", the port asked for, not the one Serf took, which another node's
// --start-join-addrs needs. It names the port Serf listens on.
func TestServeStartLineNamesGossipPort(t *testing.T) {
	var out syncBuffer
	startServeTo(t, &out, "--data-dir", filepath.Join(t.TempDir(), "data"), "--bind-addr", "127.0.0.1:0", "--rpc-port", "-1", "--log-level", "error")
	m := regexp.MustCompile(`, gossip on (\S+),`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("serve output %q: no gossip address", out.String())
	}
	host, port, err := net.SplitHostPort(m[1])
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("serve output %q: gossip on %s, want 127.0.0.1 and the port Serf listens on", out.String(), m[1])
	}
	conn, err := net.DialTimeout("tcp", m[1], 5*time.Second) // Serf listens on TCP and UDP
	if err != nil {
		t.Fatalf("nothing listens at the gossip address printed: %v", err)
	}
	conn.Close()
}

// TestServeAdvertiseHostWithGossipPort0: with --advertise-host (or --gossip-advertise-host),
// Serf was told to advertise that host with --bind-addr's port, and a --bind-addr of port 0 (a
// free port) was refused at start ("AdvertiseAddr ...: port 0"). It serves, and advertises the
// port gossip took, where something listens.
func TestServeAdvertiseHostWithGossipPort0(t *testing.T) {
	for _, flag := range []string{"--advertise-host", "--gossip-advertise-host"} {
		t.Run(flag, func(t *testing.T) {
			var out syncBuffer
			startServeTo(t, &out, "--data-dir", filepath.Join(t.TempDir(), "data"), "--bind-addr", "127.0.0.1:0",
				flag, "127.0.0.1", "--rpc-port", "-1", "--log-level", "error")
			m := regexp.MustCompile(`, gossip on (\S+),`).FindStringSubmatch(out.String())
			if m == nil {
				t.Fatalf("serve output %q: no gossip address", out.String())
			}
			if _, port, err := net.SplitHostPort(m[1]); err != nil || port == "0" {
				t.Fatalf("serve output %q: gossip on %s, want the port Serf listens on", out.String(), m[1])
			}
			conn, err := net.DialTimeout("tcp", m[1], 5*time.Second)
			if err != nil {
				t.Fatalf("nothing listens at the advertised gossip address: %v", err)
			}
			conn.Close()
		})
	}
}

// TestServeRefusesArguments: serve takes no arguments, and the flag package stops reading flags
// at the first one, so `serve --leave-on-shutdown false --log-level error` set
// --leave-on-shutdown (a boolean flag takes no separate value), then ignored "false" and every
// flag after it: the node served, and left the cluster when stopped. It is refused, saying why.
func TestServeRefusesArguments(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // the server, if it starts, stops then
	defer cancel()
	code, out, errOut := run(t, ctx, "serve", "--data-dir", filepath.Join(t.TempDir(), "data"), "--rpc-port", "-1",
		"--bind-addr", "127.0.0.1:0", "--bootstrap-wait", "0", "--leave-on-shutdown", "false", "--log-level", "error")
	if code == 0 || strings.Contains(out, "serving") || !strings.Contains(errOut, `"false"`) || !strings.Contains(errOut, "--leave-on-shutdown=false") {
		t.Errorf("exit %d, stdout %q, stderr %q; want a refusal naming the argument and the --flag=false form", code, out, errOut)
	}
}

// TestCommandsWithoutArgumentsRefuseThem: consume, cluster status, topic list and group list
// take no arguments, and the flag package stops reading flags at the first one, so in
// `consume --follow true --addr other:8400` --addr was silently dropped and the command read
// from the default address (another cluster, maybe). They refuse arguments.
func TestCommandsWithoutArgumentsRefuseThem(t *testing.T) {
	// Whatever happens, nothing dials the default address: the environment names a closed port.
	t.Setenv("COMMITLOG_ADDR", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	other := "127.0.0.1:" + strconv.Itoa(freePort(t))
	for _, args := range [][]string{
		{"consume", "--timeout", "2s", "--follow", "true", "--addr", other},
		{"cluster", "status", "--timeout", "2s", "extra", "--addr", other},
		{"topic", "list", "--timeout", "2s", "extra", "--addr", other},
		{"group", "list", "--timeout", "2s", "extra", "--addr", other},
	} {
		code, _, errOut := run(t, t.Context(), args...)
		if code == 0 || !strings.Contains(errOut, "takes no arguments") {
			t.Errorf("commitlog %v: exit %d, stderr %q; want a refusal of the arguments", args, code, errOut)
		}
	}
	if code, _, errOut := run(t, t.Context(), "consume", "--follow", "true"); !strings.Contains(errOut, "--follow=true") {
		t.Errorf("consume --follow true: exit %d, stderr %q; want the hint --follow=true", code, errOut)
	}
}
