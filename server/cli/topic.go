package cli

import (
	"fmt"
	"math"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/commitlog-go/commitlog/client"
)

// topicConfigFlags are the settings of a topic, as create and alter take them (the fields of
// AlterTopicConfig).
func topicConfigFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Int64Flag{Name: "retention-bytes", Usage: "bound on each partition's size in bytes (0: the server's --retention-bytes; -1: unlimited)"},
		&cli.Int64Flag{Name: "retention-ms", Usage: "bound on the age of each partition's records in milliseconds (0: the server's; -1: unlimited)"},
		&cli.UintFlag{Name: "max-record-bytes", Usage: "bound on one record: key, headers and value (0: the server's --max-record-bytes)"},
		&cli.StringFlag{Name: "timestamp-type", Usage: `record timestamps: "create" (the producer's, the default) or "append" (the leader's append time)`},
	}
}

func topicCommand() *cli.Command {
	return &cli.Command{
		Name:  "topic",
		Usage: "create, list, describe, alter and delete topics (a topic is a set of partitions, each its own log)",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create a topic (the admin action on the topic)",
				ArgsUsage: "NAME",
				Flags: append(append(clientFlags(),
					&cli.UintFlag{Name: "partitions", Value: 1, Usage: "partition count"}),
					topicConfigFlags()...),
				Action: func(c *cli.Context) error {
					name, err := oneName(c)
					if err != nil {
						return err
					}
					partitions, err := uint32Flag(c, "partitions")
					if err != nil {
						return err
					}
					maxRecordBytes, err := uint32Flag(c, "max-record-bytes")
					if err != nil {
						return err
					}
					// The API reads 0 as 1 (its wire default); given on the command line it is a
					// mistake, refused as Kafka refuses it.
					if partitions == 0 {
						return fmt.Errorf("--partitions 0: a topic needs at least one partition")
					}
					return useClient(c, func(cl *client.Client) error {
						t, err := cl.CreateTopic(c.Context, name, partitions, client.TopicConfig{
							RetentionBytes: c.Int64("retention-bytes"),
							RetentionMs:    c.Int64("retention-ms"),
							MaxRecordBytes: maxRecordBytes,
							TimestampType:  c.String("timestamp-type"),
						})
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "created topic %s (id %s) with %s\n", t.Name, t.ID, plural(int(t.Partitions), "partition"))
						return nil
					})
				},
			},
			{
				Name:  "list",
				Usage: "list the topics: name, id, partitions and settings",
				Flags: clientFlags(),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					return useClient(c, func(cl *client.Client) error {
						topics, err := cl.ListTopics(c.Context)
						if err != nil {
							return err
						}
						tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
						fmt.Fprintln(tw, "NAME\tID\tPARTITIONS\tRETENTION BYTES\tRETENTION MS\tMAX RECORD BYTES\tTIMESTAMP TYPE")
						for _, t := range topics {
							fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", t.Name, orDash(t.ID), t.Partitions, configColumns(t.Config))
						}
						return tw.Flush()
					})
				},
			},
			{
				Name:      "describe",
				Usage:     "show a topic and each partition's offsets on the answering server",
				ArgsUsage: "NAME",
				Flags:     clientFlags(),
				Action: func(c *cli.Context) error {
					name, err := oneName(c)
					if err != nil {
						return err
					}
					return useClient(c, func(cl *client.Client) error {
						d, err := cl.DescribeTopic(c.Context, name)
						if err != nil {
							return err
						}
						w := c.App.Writer
						fmt.Fprintf(w, "topic: %s\nid: %s\npartitions: %d\n", d.Name, orDash(d.ID), d.Partitions)
						fmt.Fprintf(w, "retention bytes: %s\nretention ms: %s\nmax record bytes: %s\ntimestamp type: %s\n",
							setting(d.Config.RetentionBytes), setting(d.Config.RetentionMs), setting(int64(d.Config.MaxRecordBytes)), orServer(d.Config.TimestampType))
						tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
						fmt.Fprintln(tw, "PARTITION\tLOWEST\tNEXT\tRECORDS")
						for _, p := range d.PartitionInfo {
							fmt.Fprintf(tw, "%d\t%d\t%d\t%d\n", p.Partition, p.Lowest, p.Next, p.Next-p.Lowest)
						}
						return tw.Flush()
					})
				},
			},
			{
				Name:      "alter",
				Usage:     "change a topic's settings (only the flags given) or raise its partition count",
				ArgsUsage: "NAME",
				Flags: append(append(clientFlags(),
					&cli.UintFlag{Name: "partitions", Usage: "new partition count (raise only; keys then map to other partitions)"}),
					topicConfigFlags()...),
				Action: func(c *cli.Context) error {
					name, err := oneName(c)
					if err != nil {
						return err
					}
					var alt client.TopicAlteration
					if c.IsSet("partitions") {
						v, err := uint32Flag(c, "partitions")
						if err != nil {
							return err
						}
						alt.Partitions = &v
					}
					if c.IsSet("retention-bytes") {
						v := c.Int64("retention-bytes")
						alt.RetentionBytes = &v
					}
					if c.IsSet("retention-ms") {
						v := c.Int64("retention-ms")
						alt.RetentionMs = &v
					}
					if c.IsSet("max-record-bytes") {
						v, err := uint32Flag(c, "max-record-bytes")
						if err != nil {
							return err
						}
						alt.MaxRecordBytes = &v
					}
					if c.IsSet("timestamp-type") {
						v := c.String("timestamp-type")
						alt.TimestampType = &v
					}
					if alt == (client.TopicAlteration{}) {
						return fmt.Errorf("topic alter: nothing to change: give --partitions or a setting flag")
					}
					return useClient(c, func(cl *client.Client) error {
						t, err := cl.AlterTopic(c.Context, name, alt)
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "altered topic %s: %s, retention bytes %s, retention ms %s, max record bytes %s, timestamp type %s\n",
							t.Name, plural(int(t.Partitions), "partition"), setting(t.Config.RetentionBytes), setting(t.Config.RetentionMs), setting(int64(t.Config.MaxRecordBytes)), orServer(t.Config.TimestampType))
						return nil
					})
				},
			},
			{
				Name:      "delete",
				Usage:     "delete a topic and its records on every server (the default topic cannot be deleted)",
				ArgsUsage: "NAME",
				Flags:     clientFlags(),
				Action: func(c *cli.Context) error {
					name, err := oneName(c)
					if err != nil {
						return err
					}
					return useClient(c, func(cl *client.Client) error {
						if err := cl.DeleteTopic(c.Context, name); err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "deleted topic %s\n", name)
						return nil
					})
				},
			},
		},
	}
}

// oneName returns the command's one argument, a topic name.
func oneName(c *cli.Context) (string, error) {
	args, err := commandArgs(c)
	if err != nil {
		return "", err
	}
	if len(args) != 1 {
		return "", fmt.Errorf("topic %s takes one topic name, got %d arguments", c.Command.Name, len(args))
	}
	return args[0], nil
}

// configColumns is a topic's settings as list columns.
func configColumns(cfg client.TopicConfig) string {
	return fmt.Sprintf("%s\t%s\t%s\t%s", setting(cfg.RetentionBytes), setting(cfg.RetentionMs), setting(int64(cfg.MaxRecordBytes)), orServer(cfg.TimestampType))
}

// setting shows a numeric topic setting: 0 is the server's, -1 unlimited.
func setting(v int64) string {
	switch v {
	case 0:
		return "server"
	case -1:
		return "unlimited"
	}
	return fmt.Sprint(v)
}

func orServer(s string) string {
	if s == "" {
		return "server"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// uint32Flag returns the value of the uint flag name, refusing one beyond 32 bits, the width of
// partition numbers, counts and record bounds on the wire: it was cut to its low 32 bits
// (--partition 4294967296 read partition 0).
func uint32Flag(c *cli.Context, name string) (uint32, error) {
	v := c.Uint(name)
	if uint64(v) > math.MaxUint32 {
		return 0, fmt.Errorf("--%s %d: want at most %d", name, v, uint32(math.MaxUint32))
	}
	return uint32(v), nil
}
