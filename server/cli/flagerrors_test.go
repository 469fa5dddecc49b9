package cli

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestServeConfigErrorsNameFlags: a flag value that the server's configuration refuses is
// reported with the flag's name, as given: the message named the Go field of server.Config
// ("invalid config: RPCPort 70000 is out of range"), and a negative duration in nanoseconds.
func TestServeConfigErrorsNameFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rpc-port", "70000"}, "--rpc-port 70000 is out of range"},
		{[]string{"--sync", "bogus"}, `--sync "bogus": want never, interval or always`},
		{[]string{"--read-header-timeout", "-1s"}, "--read-header-timeout -1s is negative"},
		{[]string{"--group-offsets-retention", "-2h"}, "--group-offsets-retention -2h0m0s is negative"},
		{[]string{"--bootstrap-expect", "3", "--bootstrap"}, "--bootstrap-expect and --bootstrap are mutually exclusive"},
		{[]string{"--max-request-bytes", "10"}, "--max-request-bytes 10 must be at least --max-record-bytes + 64 KiB"},
		{[]string{"--segment-bytes", "10"}, "--segment-bytes 10 is not in"},
	} {
		args := append([]string{"serve", "--data-dir", filepath.Join(t.TempDir(), "data"), "--bind-addr", "127.0.0.1:" + strconv.Itoa(freePort(t)),
			"--gossip-profile", "test", "--bootstrap-wait", "0s", "--log-level", "error"}, tc.args...)
		if !strings.Contains(strings.Join(tc.args, " "), "--rpc-port") {
			args = append(args, "--rpc-port", "0")
		}
		code, _, errOut := run(t, t.Context(), args...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("serve %s: exit %d, stderr %q; want exit 1 and %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
}

// TestServeRefusesReplacedValues: a value that the server's Config would silently replace is
// refused, naming the flag: a zero where the flag gives 0 no meaning (the Config took it as its
// default: --segment-bytes 0 rolled segments at 64 MiB), and a negative --bootstrap-wait
// (taken as 0: bootstrapped at once), --divergence-check-interval (never) or
// --metrics-max-partition-series (none), where every other flag refuses a negative value.
func TestServeRefusesReplacedValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--segment-bytes", "0"}, "--segment-bytes 0: want more than 0 (default: 67108864)"},
		{[]string{"--max-record-bytes", "0"}, "--max-record-bytes 0: want more than 0"},
		{[]string{"--max-batch-records", "0"}, "--max-batch-records 0: want more than 0"},
		{[]string{"--max-concurrent-streams", "0"}, "--max-concurrent-streams 0: want more than 0"},
		{[]string{"--idle-timeout", "0s"}, "--idle-timeout 0s: want more than 0 (default: 10m0s)"},
		{[]string{"--group-session-timeout", "0"}, "--group-session-timeout 0s: want more than 0"},
		{[]string{"--bootstrap-wait", "-1s"}, "--bootstrap-wait -1s is negative"},
		{[]string{"--divergence-check-interval", "-5s"}, "--divergence-check-interval -5s is negative"},
		{[]string{"--metrics-max-partition-series", "-1"}, "--metrics-max-partition-series -1 is negative"},
	} {
		_, err := serveConfigOf(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve %s: error %v; want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	// A config-file key and an environment variable are refused alike.
	if _, err := serveConfigFrom(t, "segment-bytes: 0\n"); err == nil || !strings.Contains(err.Error(), "--segment-bytes 0") {
		t.Errorf("config file segment-bytes: 0: error %v; want --segment-bytes 0 refused", err)
	}
	t.Setenv("COMMITLOG_MAX_FORWARD_CLIENTS", "0")
	if _, err := serveConfigOf(); err == nil || !strings.Contains(err.Error(), "--max-forward-clients 0") {
		t.Errorf("COMMITLOG_MAX_FORWARD_CLIENTS=0: error %v; want --max-forward-clients 0 refused", err)
	}
}

// TestClientFlagValuesRefused: a client flag value that was ignored or taken silently is
// refused, naming the flag, and nothing is stored: produce --batch 0 (or --linger -1s) with
// values as arguments stored them (the values go in one request, without the producer that
// refuses such settings, unnamed, on standard input); consume --offsets with --format text or
// json was ignored; a negative consume --auto-commit was refused by the SDK without the flag's
// name; group reset --by-duration -1h (now plus an hour) reset every partition to its end.
func TestClientFlagValuesRefused(t *testing.T) {
	addr := startOne(t)
	mustRun(t, "topic", "create", "--addr", addr, "orders")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"produce", "--batch", "0", "v"}, "--batch 0: want 1 or more"},
		{[]string{"produce", "--batch", "-1", "v"}, "--batch -1: want 1 or more"},
		{[]string{"produce", "--linger", "-1s", "v"}, "--linger -1s is negative"},
		{[]string{"consume", "--format", "text", "--offsets"}, "--offsets goes with --format value"},
		{[]string{"consume", "--format", "json", "--offsets"}, "--offsets goes with --format value"},
		{[]string{"consume", "--group", "g", "--auto-commit", "-1s"}, "--auto-commit -1s is negative"},
		{[]string{"group", "reset", "--topic", "orders", "--by-duration", "-1h", "g"}, "--by-duration -1h0m0s is negative"},
	} {
		args := append([]string{tc.args[0]}, "--addr", addr)
		if tc.args[0] == "group" {
			args = append([]string{"group", "reset", "--addr", addr}, tc.args[2:]...)
		} else {
			args = append(args, tc.args[1:]...)
		}
		code, out, errOut := run(t, t.Context(), args...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and %q", strings.Join(tc.args, " "), code, out, errOut, tc.want)
		}
	}
	if stored := mustRun(t, "consume", "--addr", addr); stored != "" {
		t.Errorf("stored %q after refused produce commands, want nothing", stored)
	}
}

// TestBoolUsageErrorNamesFlag: a boolean flag's value that does not parse named the flag as the
// flag package does ("for -leave-on-shutdown"), where every other usage error names it as users
// type it.
func TestBoolUsageErrorNamesFlag(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--leave-on-shutdown=maybe"},
		{"consume", "--follow=often"},
	} {
		flag, _, _ := strings.Cut(args[1], "=")
		code, _, errOut := run(t, t.Context(), args...)
		if code != 1 || !strings.Contains(errOut, "for "+flag+":") {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and the flag named %s", args, code, errOut, flag)
		}
	}
}

// TestVersionRefusesArguments: version printed the version whatever followed it (`commitlog
// version --json`, an unknown flag after an argument...), as no other command without arguments
// does.
func TestVersionRefusesArguments(t *testing.T) {
	code, out, errOut := run(t, t.Context(), "version", "extra")
	if code != 1 || out != "" || !strings.Contains(errOut, `version takes no arguments, got ["extra"]`) {
		t.Errorf("version extra: exit %d, stdout %q, stderr %q; want exit 1 and the arguments refused", code, out, errOut)
	}
	if out := mustRun(t, "version"); !strings.HasPrefix(out, "commitlog ") {
		t.Errorf("version printed %q", out)
	}
}

// TestClientTransportAndTLSFlags: an unknown --transport was refused by the SDK, naming its
// option (WithTransport), not the flag; and --tls-server-name alone enables TLS (with the
// system's roots), which the help did not say: only --tls-ca-file said "enables TLS", and a
// plaintext server then failed with "server gave HTTP response to HTTPS client".
func TestClientTransportAndTLSFlags(t *testing.T) {
	t.Setenv("COMMITLOG_ADDR", "127.0.0.1:"+strconv.Itoa(freePort(t))) // nothing dialled answers
	code, _, errOut := run(t, t.Context(), "cluster", "status", "--timeout", "1s", "--transport", "http")
	if code != 1 || !strings.Contains(errOut, `--transport "http": want connect or grpc`) {
		t.Errorf("cluster status --transport http: exit %d, stderr %q; want the flag named", code, errOut)
	}
	_, help, _ := run(t, t.Context(), "cluster", "status", "--help")
	if !strings.Contains(help, "the address's host); enables TLS") || !strings.Contains(help, "any --tls-* flag enables TLS") {
		t.Errorf("cluster status --help does not say that any --tls-* flag enables TLS:\n%s", help)
	}
}

// TestConfigFileWrongTypeNamesFile: a config-file value of the wrong type was refused as
// "Mismatched type for flag 'rpc-port'", which did not say that the value came from the file
// (the flag and its environment variable may be unset, or right).
func TestConfigFileWrongTypeNamesFile(t *testing.T) {
	for _, body := range []string{"rpc-port: abc\n", "leave-on-shutdown: maybe\n", "bootstrap-wait: 5\n"} {
		_, err := serveConfigFrom(t, body)
		if err == nil || !strings.Contains(err.Error(), "--config-file ") || !strings.Contains(err.Error(), ".yaml: ") {
			t.Errorf("config file %q: error %v; want the file named", body, err)
		}
	}
}

// TestRequiredFlagNamed: a required flag not given was reported as urfave/cli words it,
// `Required flag "topic" not set`, without the flag's dashes.
func TestRequiredFlagNamed(t *testing.T) {
	t.Setenv("COMMITLOG_ADDR", "127.0.0.1:"+strconv.Itoa(freePort(t))) // nothing dialled answers
	code, _, errOut := run(t, t.Context(), "group", "reset", "--to-earliest", "g")
	if code != 1 || errOut != "commitlog: missing flag --topic\n" {
		t.Errorf("group reset without --topic: exit %d, stderr %q; want exit 1 and \"missing flag --topic\"", code, errOut)
	}
}

// TestConsumeGroupRefusesFromAndPartition: consume --group ignored --from and --partition (the
// group assigns the partitions and reads from its committed offsets): `consume --group g --from
// 5` printed offset 0. Both are refused with --group, naming the flag.
func TestConsumeGroupRefusesFromAndPartition(t *testing.T) {
	addr := startOne(t)
	mustRun(t, "produce", "--addr", addr, "a", "b")
	for _, flag := range [][]string{{"--from", "1"}, {"--partition", "0"}} {
		args := append([]string{"consume", "--addr", addr, "--group", "g", "--count", "1"}, flag...)
		code, out, errOut := run(t, t.Context(), args...)
		if code != 1 || out != "" || !strings.Contains(errOut, flag[0]+" goes without --group") {
			t.Errorf("consume --group g %s: exit %d, stdout %q, stderr %q; want exit 1 and %s refused", strings.Join(flag, " "), code, out, errOut, flag[0])
		}
	}
}

// TestTLSDaysZeroRefused: tls ca create --days 0 (and tls cert create --days 0) made a
// certificate valid for the default's years: certgen takes 0 for its default. --days takes 1
// to certgen.MaxDays, and nothing is written otherwise.
func TestTLSDaysZeroRefused(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := run(t, t.Context(), "tls", "ca", "create", "--dir", dir, "--days", "0"); code != 1 || !strings.Contains(errOut, "--days 0: want 1 to 36500") {
		t.Errorf("tls ca create --days 0: exit %d, stderr %q; want exit 1 and --days refused", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "commitlog-ca.pem")); err == nil {
		t.Errorf("tls ca create --days 0 wrote the CA")
	}
	mustRun(t, "tls", "ca", "create", "--dir", dir)
	if code, _, errOut := run(t, t.Context(), "tls", "cert", "create", "--dir", dir, "--client", "--cn", "a", "--days", "0"); code != 1 || !strings.Contains(errOut, "--days 0: want 1 to 36500") {
		t.Errorf("tls cert create --days 0: exit %d, stderr %q; want exit 1 and --days refused", code, errOut)
	}
}

// TestTimeoutFromEnvironment: --timeout, like every other client connection flag, is also read
// from its variable, COMMITLOG_TIMEOUT (it was the only one without).
func TestTimeoutFromEnvironment(t *testing.T) {
	t.Setenv("COMMITLOG_TIMEOUT", "-1s")
	code, _, errOut := run(t, t.Context(), "produce", "--addr", "127.0.0.1:1", "v")
	if code == 0 || !strings.Contains(errOut, "--timeout -1s") {
		t.Errorf("COMMITLOG_TIMEOUT=-1s: exit %d, stderr %q; want --timeout -1s refused", code, errOut)
	}
}

// TestUnknownCommandIsUsageError: an unknown command or subcommand (`commitlog prodcue`,
// `commitlog cluster stauts`) is a usage error like any other: one line on standard error naming
// it, with a --help hint, and exit status 1. urfave/cli answered "No help topic for 'prodcue'"
// and called os.Exit(3) itself, past Main (and its writers), which ended a test binary running
// Main in process.
func TestUnknownCommandIsUsageError(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"prodcue"}, `unknown command "prodcue" (see commitlog --help)`},
		{[]string{"cluster", "stauts"}, `unknown command "stauts" (see commitlog cluster --help)`},
		{[]string{"tls", "ca", "craete"}, `unknown command "craete" (see commitlog tls ca --help)`},
		{[]string{"help", "prodcue"}, `No help topic for 'prodcue'`},
	} {
		code, out, errOut := run(t, t.Context(), tc.args...)
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 1 and one line %q", tc.args, code, out, errOut, tc.want)
		}
	}
	// Without arguments a command that has subcommands still lists them.
	for _, args := range [][]string{{}, {"cluster"}, {"tls", "ca"}} {
		code, out, errOut := run(t, t.Context(), args...)
		if code != 0 || !strings.Contains(out, "COMMANDS:") || errOut != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 0 and the help", args, code, out, errOut)
		}
	}
}

// TestHelpPlaceholders: urfave/cli takes the first `quoted` words of a flag's usage as its
// value's placeholder, so serve --help read "--gossip-key-file commitlog tls gossip-key" where
// every other flag reads "--name value". No flag's usage holds a backquote, and no usage line
// names the options twice.
func TestHelpPlaceholders(t *testing.T) {
	var walk func(path string, cmds []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		for _, cmd := range cmds {
			for _, f := range cmd.Flags {
				if u, ok := f.(cli.DocGenerationFlag); ok && strings.Contains(u.GetUsage(), "`") {
					t.Errorf("%s %s --%s: usage %q holds a backquote, which --help takes as the value's name", path, cmd.Name, f.Names()[0], u.GetUsage())
				}
			}
			// urfave/cli writes "[command options]" before ArgsUsage: "group describe [command
			// options] [flags] GROUP" named the options twice.
			if strings.Contains(cmd.ArgsUsage, "[flags]") {
				t.Errorf("%s %s: usage line %q names the options again", path, cmd.Name, "[command options] "+cmd.ArgsUsage)
			}
			walk(path+" "+cmd.Name, cmd.Subcommands)
		}
	}
	walk("commitlog", NewApp(strings.NewReader(""), io.Discard, io.Discard).Commands)
	_, out, _ := run(t, t.Context(), "serve", "--help")
	if !strings.Contains(out, "--gossip-key-file value ") {
		t.Errorf("serve --help does not show --gossip-key-file value:\n%s", out)
	}
}
