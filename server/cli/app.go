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
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
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
		Action:       unknownCommand(cli.ShowAppHelp),
		// urfave/cli prints an ExitCoder's message to os.Stderr and calls os.Exit itself
		// ("No help topic for 'x'", status 3, from `commitlog help x`): Main reports every
		// error, on the app's standard error, with status 1.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	setUsageError(app.Commands)
	return app
}

// unknownCommand is the Action of the app and of every command made of subcommands: without
// arguments it shows the help (showHelp), as urfave/cli does; an argument that names no
// subcommand (a typo: `commitlog cluster stauts`) is a usage error. urfave/cli's own answer,
// "No help topic for 'stauts'", exited with status 3 past Main.
func unknownCommand(showHelp func(*cli.Context) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() == 0 {
			return showHelp(c)
		}
		name := c.App.HelpName
		if c.Command != nil && c.Command.HelpName != "" {
			name = c.Command.HelpName
		}
		return fmt.Errorf("unknown command %q (see %s --help)", c.Args().First(), name)
	}
}

// setUsageError makes every command among cmds and their subcommands report a usage error as
// usageError does (urfave/cli does not pass the app's OnUsageError down), and an unknown
// subcommand as unknownCommand does.
func setUsageError(cmds []*cli.Command) {
	for _, cmd := range cmds {
		if cmd.OnUsageError == nil {
			cmd.OnUsageError = usageError
		}
		if cmd.Action == nil && len(cmd.Subcommands) > 0 {
			cmd.Action = unknownCommand(cli.ShowSubcommandHelp)
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
	msg := err.Error()
	if m := invalidValueRE.FindStringSubmatch(msg); m != nil && c.Command != nil && !strings.Contains(msg, "out of range") {
		if want := flagValueHint(c.Command.Flags, m[2]); want != "" {
			// The flag package's "parse error" (or strconv's words) said nothing of the form
			// wanted: "--bootstrap-wait 5" or "--by-duration 5" lacked only a unit.
			msg = fmt.Sprintf(`invalid value "%s" for flag --%s: %s`, m[1], m[2], want)
		}
	}
	msg = longFlagRE.ReplaceAllString(msg, "$1--$2")
	return fmt.Errorf("%s (see %s --help)", msg, name)
}

// invalidValueRE matches the flag package's error for a value that does not parse.
var invalidValueRE = regexp.MustCompile(`^invalid value "((?:[^"\\]|\\.)*)" for flag -([a-z0-9][a-z0-9-]+): `)

// flagValueHint says what form flag name of flags takes, from its type; "" when it has none
// to say.
func flagValueHint(flags []cli.Flag, name string) string {
	for _, f := range flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		switch f.(type) {
		case *cli.DurationFlag, *altsrc.DurationFlag:
			return "want a duration with its unit, such as 500ms, 30s or 1h30m"
		case *cli.UintFlag, *cli.Uint64Flag, *cli.UintSliceFlag:
			return "want a whole number, 0 or more"
		case *cli.IntFlag, *cli.Int64Flag, *altsrc.IntFlag, *altsrc.Int64Flag:
			return "want a whole number"
		case *cli.Float64Flag, *altsrc.Float64Flag:
			return "want a number"
		}
	}
	return ""
}

// longFlagRE finds a long flag as the flag package names it in its errors ("-from"; a
// boolean's value: `invalid boolean value "x" for -follow`), to name it as users type it
// ("--from").
var longFlagRE = regexp.MustCompile(`(flag |defined: |argument: |boolean value "[^"]*" for )-([a-z0-9][a-z0-9-]+)`)

// Main runs the program with args (args[0] is the program name) and returns its exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := NewApp(stdin, stdout, stderr)
	if err := app.RunContext(ctx, args); err != nil {
		msg := err.Error()
		if m := requiredFlagsRE.FindStringSubmatch(msg); m != nil {
			// urfave/cli names a required flag without its dashes: `Required flag "topic" not set`.
			msg = "missing " + m[1] + " --" + strings.ReplaceAll(m[2], ", ", ", --")
		}
		fmt.Fprintf(stderr, "commitlog: %s\n", msg)
		return 1
	}
	return 0
}

// requiredFlagsRE matches urfave/cli's error for required flags not given.
var requiredFlagsRE = regexp.MustCompile(`^Required (flags?) "([^"]+)" not set$`)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version and build information",
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
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

// commandArgs returns the command's arguments, refusing one that names a flag of the command.
// The flag package that urfave/cli uses stops reading flags at the first argument, so in
// `produce hello --topic orders` "--topic" and "orders" are arguments: produce would store
// them as records, and a command taking a name would read the flag as its name or ignore it.
// After "--" everything is an argument: a "--" before the first argument is the flag
// package's, and the first "--" among the arguments ends them the same way (it is dropped).
func commandArgs(c *cli.Context) ([]string, error) {
	args := c.Args().Slice()
	if terminatedBefore(c, len(args)) {
		return args, nil
	}
	for i, a := range args {
		if a == "--" {
			return append(args[:i:i], args[i+1:]...), nil
		}
		if name, ok := namesFlag(c.Command, a); ok {
			after := ""
			if i > 0 {
				after = fmt.Sprintf(" after the argument %q", args[i-1])
			}
			return nil, fmt.Errorf("%q%s is the flag --%s: put flags before the arguments (or -- before the arguments to pass it as one)", a, after, name)
		}
	}
	return args, nil
}

// terminatedBefore reports whether the command's arguments, its last n raw arguments, follow
// a "--" that ended its flags (not the value of a flag: `--key --`).
func terminatedBefore(c *cli.Context, n int) bool {
	lineage := c.Lineage()
	if len(lineage) < 2 {
		return false
	}
	raw := lineage[1].Args().Slice() // the parent's: the command's name, then its raw arguments
	i := len(raw) - n - 1
	if i < 0 || raw[i] != "--" {
		return false
	}
	if i > 0 {
		prev := raw[i-1]
		if name, ok := namesFlag(c.Command, prev); ok && !strings.Contains(prev, "=") {
			for _, f := range c.Command.Flags {
				if v, ok := f.(interface{ TakesValue() bool }); ok && v.TakesValue() && slices.Contains(f.Names(), name) {
					return false // the "--" is prev's value
				}
			}
		}
	}
	return true
}

// namesFlag reports whether arg, as -name, --name or --name=value, names a flag of cmd, and
// which.
func namesFlag(cmd *cli.Command, arg string) (string, bool) {
	if cmd == nil || len(arg) < 2 || arg[0] != '-' {
		return "", false
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(arg[1:], "-"), "=")
	if name == "" {
		return "", false
	}
	for _, f := range cmd.Flags {
		if slices.Contains(f.Names(), name) {
			return f.Names()[0], true
		}
	}
	return "", false
}
