// Package cli is the `commitlog` command line: the server (`serve`), client commands
// (`produce`, `consume`, `cluster …`), certificate tools (`tls …`) and `version`.
//
// main delegates to Main, so tests run the real program in-process.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

// Version is the program's version, set at build time with
// -ldflags "-X github.com/commitlog-go/commitlog/server/cli.Version=…".
var Version = "dev"

// NewApp returns the commitlog application writing to stdout and stderr.
func NewApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:                 "commitlog",
		Usage:                "a distributed commit log: append records, read them back by offset",
		Version:              Version,
		Reader:               stdin,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			serveCommand(),
			produceCommand(),
			consumeCommand(),
			clusterCommand(),
			topicCommand(),
			groupCommand(),
			tlsCommand(),
			versionCommand(),
		},
		OnUsageError: usageError,
	}
	setUsageError(app.Commands)
	return app
}

// setUsageError makes every command among cmds and their subcommands report a usage error as
// usageError does (urfave/cli does not pass the app's OnUsageError down).
func setUsageError(cmds []*cli.Command) {
	for _, cmd := range cmds {
		if cmd.OnUsageError == nil {
			cmd.OnUsageError = usageError
		}
		setUsageError(cmd.Subcommands)
	}
}

// usageError is the OnUsageError of the app and of every command: a flag that does not parse
// or is not defined is one line on standard error (Main prints the returned error) with a
// hint to --help, and exit status 1. Without it, urfave/cli prints the whole help to standard
// output, where a pipeline reads the command's data.
func usageError(c *cli.Context, err error, _ bool) error {
	name := c.App.HelpName
	if c.Command != nil && c.Command.HelpName != "" {
		name = c.Command.HelpName
	}
	msg := longFlagRE.ReplaceAllString(err.Error(), "$1--$2")
	return fmt.Errorf("%s (see %s --help)", msg, name)
}

// longFlagRE finds a long flag as the flag package names it in its errors ("-from"), to name
// it as users type it ("--from").
var longFlagRE = regexp.MustCompile(`(flag |defined: |argument: )-([a-z0-9][a-z0-9-]+)`)

// Main runs the program with args (args[0] is the program name) and returns its exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := NewApp(stdin, stdout, stderr)
	if err := app.RunContext(ctx, args); err != nil {
		fmt.Fprintf(stderr, "commitlog: %v\n", err)
		return 1
	}
	return 0
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version and build information",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(c.App.Writer, "commitlog %s\n", Version)
			fmt.Fprintf(c.App.Writer, "go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if strings.HasPrefix(s.Key, "vcs.") {
						fmt.Fprintf(c.App.Writer, "%s: %s\n", s.Key, s.Value)
					}
				}
			}
			return nil
		},
	}
}

func envName(flag string) string {
	return strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}
