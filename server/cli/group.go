package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/commitlog-go/commitlog/client"
)

func groupCommand() *cli.Command {
	return &cli.Command{
		Name:  "group",
		Usage: "list, describe, delete consumer groups and reset their committed offsets",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list the groups with members or committed offsets: name, state, members, partitions with offsets",
				Flags: clientFlags(),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					return useClient(c, func(cl *client.Client) error {
						gs, err := cl.ListGroups(c.Context)
						if err != nil {
							return err
						}
						w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
						fmt.Fprintln(w, "GROUP\tSTATE\tMEMBERS\tOFFSETS")
						for _, g := range gs {
							fmt.Fprintf(w, "%s\t%s\t%d\t%d\n", g.Name, g.State, g.Members, g.Offsets)
						}
						return w.Flush()
					})
				},
			},
			{
				Name:      "describe",
				Usage:     "show a group's members, their partitions, the committed offsets and the lag per partition",
				ArgsUsage: "GROUP",
				Flags:     clientFlags(),
				Action: func(c *cli.Context) error {
					group, err := groupArg(c)
					if err != nil {
						return err
					}
					return useClient(c, func(cl *client.Client) error {
						d, err := cl.DescribeGroup(c.Context, group)
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "group %s: %s, epoch %d, %d members\n", d.Name, d.State, d.Epoch, len(d.Members))
						w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
						if len(d.Members) > 0 {
							fmt.Fprintln(w, "MEMBER\tCLIENT\tEPOCH\tTOPICS\tASSIGNMENT")
							for _, m := range d.Members {
								fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", m.ID, dash(m.ClientID), m.Epoch, strings.Join(m.Topics, ","), formatTPs(m.Assignment))
							}
							if err := w.Flush(); err != nil {
								return err
							}
							fmt.Fprintln(c.App.Writer)
						}
						fmt.Fprintln(w, "TOPIC\tPARTITION\tCOMMITTED\tLOG-END\tLAG\tMEMBER")
						for _, p := range d.Partitions {
							committed := "-"
							if p.HasCommitted {
								committed = strconv.FormatUint(p.Committed, 10)
							}
							fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%d\t%s\n", p.Topic, p.Partition, committed, p.LogEnd, p.Lag, dash(p.Member))
						}
						return w.Flush()
					})
				},
			},
			{
				Name:      "delete",
				Usage:     "delete a group's committed offsets (refused while it has members)",
				ArgsUsage: "GROUP",
				Flags:     clientFlags(),
				Action: func(c *cli.Context) error {
					group, err := groupArg(c)
					if err != nil {
						return err
					}
					return useClient(c, func(cl *client.Client) error {
						if err := cl.DeleteGroup(c.Context, group); err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "deleted group %s\n", group)
						return nil
					})
				},
			},
			{
				Name: "reset",
				Usage: "compute new committed offsets for a group's partitions of a topic with one of Kafka's verbs, " +
					"and print them; --execute stores them (refused while the group has members)",
				ArgsUsage: "--topic TOPIC (--to-earliest|--to-latest|--to-offset N|--to-datetime T|--by-duration D|--shift-by N) [--execute] GROUP",
				Flags: append(clientFlags(),
					&cli.StringFlag{Name: "topic", Required: true, Usage: "the topic whose partitions to reset"},
					&cli.UintSliceFlag{Name: "partition", Usage: "a partition to reset (repeat; default: every partition)"},
					&cli.BoolFlag{Name: "to-earliest", Usage: "the partition's start"},
					&cli.BoolFlag{Name: "to-latest", Usage: "the partition's end"},
					&cli.Uint64Flag{Name: "to-offset", Usage: "this offset (clamped to the partition's start and end)"},
					&cli.StringFlag{Name: "to-datetime", Usage: "the first record at or after this time (RFC 3339, e.g. 2026-12-04T10:00:00Z)"},
					&cli.DurationFlag{Name: "by-duration", Usage: "the first record at or after now minus this duration (e.g. 1h)"},
					&cli.Int64Flag{Name: "shift-by", Usage: "move the committed offset by this many records (negative: back)"},
					&cli.BoolFlag{Name: "execute", Usage: "store the new offsets (without it: a dry run)"},
				),
				Action: func(c *cli.Context) error {
					group, err := groupArg(c)
					if err != nil {
						return err
					}
					r, err := resetRequest(c)
					if err != nil {
						return err
					}
					return useClient(c, func(cl *client.Client) error {
						plan, executed, err := cl.ResetGroupOffsets(c.Context, group, r)
						if err != nil {
							return err
						}
						w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
						fmt.Fprintln(w, "TOPIC\tPARTITION\tPREVIOUS\tNEW")
						for _, o := range plan {
							prev := "-"
							if o.HasPrevious {
								prev = strconv.FormatUint(o.Previous, 10)
							}
							fmt.Fprintf(w, "%s\t%d\t%s\t%d\n", o.Topic, o.Partition, prev, o.New)
						}
						if err := w.Flush(); err != nil {
							return err
						}
						if executed {
							fmt.Fprintln(c.App.Writer, "offsets stored")
						} else {
							fmt.Fprintln(c.App.Writer, "dry run: nothing stored (add --execute to store these offsets)")
						}
						return nil
					})
				},
			},
		},
	}
}

// resetRequest reads the reset verb flags: exactly one.
func resetRequest(c *cli.Context) (client.ResetRequest, error) {
	r := client.ResetRequest{Topic: c.String("topic"), Execute: c.Bool("execute")}
	for _, p := range c.UintSlice("partition") {
		r.Partitions = append(r.Partitions, uint32(p))
	}
	var verbs []string
	if c.Bool("to-earliest") {
		r.Verb, verbs = client.ResetToEarliest, append(verbs, "--to-earliest")
	}
	if c.Bool("to-latest") {
		r.Verb, verbs = client.ResetToLatest, append(verbs, "--to-latest")
	}
	if c.IsSet("to-offset") {
		r.Verb, r.Offset, verbs = client.ResetToOffset, c.Uint64("to-offset"), append(verbs, "--to-offset")
	}
	if c.IsSet("to-datetime") {
		t, err := time.Parse(time.RFC3339, c.String("to-datetime"))
		if err != nil {
			return r, fmt.Errorf("--to-datetime: %w", err)
		}
		r.Verb, r.Time, verbs = client.ResetToDatetime, t, append(verbs, "--to-datetime")
	}
	if c.IsSet("by-duration") {
		if d := c.Duration("by-duration"); d < 0 {
			// now minus a negative duration is in the future: every partition's end, silently.
			return r, fmt.Errorf("--by-duration %v is negative: want how far back from now (e.g. 1h), or --to-latest", d)
		}
		r.Verb, r.Duration, verbs = client.ResetByDuration, c.Duration("by-duration"), append(verbs, "--by-duration")
	}
	if c.IsSet("shift-by") {
		r.Verb, r.Shift, verbs = client.ResetShiftBy, c.Int64("shift-by"), append(verbs, "--shift-by")
	}
	if len(verbs) != 1 {
		return r, errors.New("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime, --by-duration, --shift-by")
	}
	return r, nil
}

func groupArg(c *cli.Context) (string, error) {
	args, err := commandArgs(c)
	if err != nil {
		return "", err
	}
	if len(args) != 1 || args[0] == "" {
		return "", errors.New("give one group name, after the flags")
	}
	return args[0], nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func formatTPs(tps []client.TopicPartition) string {
	if len(tps) == 0 {
		return "-"
	}
	var b strings.Builder
	last := ""
	for i, tp := range tps {
		switch {
		case tp.Topic != last:
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s:%d", tp.Topic, tp.Partition)
			last = tp.Topic
		default:
			fmt.Fprintf(&b, ",%d", tp.Partition)
		}
	}
	return b.String()
}

// consumeGroup consumes topic as a member of group (consume --group): it prints the records of
// the partitions the coordinator assigns, commits their positions every autoCommit, and on
// Ctrl-C, or after count records (0: no limit), commits and leaves the group.
func consumeGroup(c *cli.Context, cl *client.Client, group string, topics []string, count uint64, print func(client.Record) error) error {
	// A member subscribed to a topic that does not exist waits for it (the coordinator
	// assigns nothing): from the command line that is a mistyped --topic, waited on
	// silently forever. Refuse it, as consume without --group does.
	for _, topic := range topics {
		if _, err := cl.DescribeTopic(c.Context, topic); err != nil {
			return err // it names the topic
		}
	}
	gc, err := cl.NewGroupConsumer(c.Context, group, topics, client.WithClientID("commitlog-cli"),
		client.WithAutoCommit(c.Duration("auto-commit")))
	if err != nil {
		return err
	}
	var n uint64
	// last is the error yielded last, if no record came after it: Records goes on after a
	// partition's error (from the partition's start when retention removed the position, from
	// where it stopped when the cluster was out of reach), and ends only after a final one.
	var last error
	for rec, err := range gc.Records(c.Context) {
		if err != nil {
			if errors.Is(err, context.Canceled) {
				last = nil
				break
			}
			fmt.Fprintf(c.App.ErrWriter, "commitlog: %v\n", err)
			last = err
			continue
		}
		last = nil
		if err := print(rec); err != nil {
			_ = gc.Close()
			return err
		}
		if n++; count > 0 && n >= count {
			break
		}
	}
	if last != nil {
		_ = gc.Close()
		return last
	}
	return gc.Close()
}

// groupConsumeFlags are consume's flags for consuming as a group member.
func groupConsumeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "group", Usage: "consume as a member of this consumer group: the records of the partitions the group gives this member, from the group's committed offsets; positions are committed as they are printed (at least once) and on exit, when the member leaves the group (also when the reader of its output goes away, as a pipe into head does: it then exits with status 1); a --topic that does not exist is refused"},
		&cli.DurationFlag{Name: "auto-commit", Value: time.Second, Usage: "with --group: how often positions are committed (0: only on exit and when the group takes a partition away)"},
	}
}
