package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// clientFlags are the flags every client command takes.
func clientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "addr", Value: cli.NewStringSlice("127.0.0.1:8400"), EnvVars: []string{"COMMITLOG_ADDR"},
			Usage: "API address of one or more servers (the client finds the leader itself)"},
		&cli.StringFlag{Name: "transport", Value: client.TransportConnect, EnvVars: []string{"COMMITLOG_TRANSPORT"},
			Usage: "API transport: connect or grpc, as the servers' serve --transport (a grpc client talks to a connect server too)"},
		&cli.StringFlag{Name: "tls-cert-file", EnvVars: []string{"COMMITLOG_TLS_CERT_FILE"}, Usage: "client certificate (PEM) for mTLS"},
		&cli.StringFlag{Name: "tls-key-file", EnvVars: []string{"COMMITLOG_TLS_KEY_FILE"}, Usage: "client key (PEM) for mTLS"},
		&cli.StringFlag{Name: "tls-ca-file", EnvVars: []string{"COMMITLOG_TLS_CA_FILE"}, Usage: "CA that the server certificate must chain to (default: the system's roots); any --tls-* flag enables TLS"},
		&cli.StringFlag{Name: "tls-server-name", EnvVars: []string{"COMMITLOG_TLS_SERVER_NAME"}, Usage: "name to verify the server certificate against (default: the address's host); enables TLS"},
		&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, EnvVars: []string{"COMMITLOG_TIMEOUT"}, Usage: "deadline of each attempt of a request (0: none); a failed attempt is tried again, up to 8 times with backoff, so a command can take several times this"},
	}
}

// dial connects to the cluster named by the client flags.
func dial(c *cli.Context, extra ...client.Option) (*client.Client, error) {
	if d := c.Duration("timeout"); d < 0 {
		return nil, fmt.Errorf("--timeout %v: want a duration of 0 (none) or more", d)
	}
	if err := checkAddrs(c.StringSlice("addr")); err != nil {
		return nil, err
	}
	switch t := c.String("transport"); t {
	case client.TransportConnect, client.TransportGRPC:
	default:
		// The SDK's refusal named its option (WithTransport), not the flag.
		return nil, fmt.Errorf("--transport %q: want %s or %s", t, client.TransportConnect, client.TransportGRPC)
	}
	opts := []client.Option{
		client.WithTransport(c.String("transport")),
		client.WithRequestTimeout(c.Duration("timeout")),
		// Room for a record at the largest --max-record-bytes a server takes, and its framing:
		// the client's 4 MiB default refused to send such a record, or to receive it.
		client.WithMaxMessageBytes(fsm.MaxRecordValueBytes + 64<<10),
	}
	tlsCfg, err := clientTLS(c)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, client.WithTLS(tlsCfg))
	}
	opts = append(opts, extra...)
	ctx, cancel := requestContext(c)
	defer cancel()
	cl, err := client.New(ctx, c.StringSlice("addr"), opts...)
	if err != nil {
		if hint := flagHint(err); hint != "" {
			// The hint first: the SDK's error that follows is long.
			return nil, fmt.Errorf("connect to %s: %s: %w", strings.Join(c.StringSlice("addr"), ","), hint, err)
		}
		return nil, fmt.Errorf("connect to %s: %w", strings.Join(c.StringSlice("addr"), ","), err)
	}
	return cl, nil
}

// checkAddrs refuses at once, naming --addr, an --addr the SDK would not take
// (client.CheckAddress: no port, a port number outside 1-65535), or none at all. The SDK took
// "127.0.0.1:99999" (or ":0") and dialled it for every attempt of its retry budget, about 9 s,
// before its error ("dial tcp: address 99999: invalid port") named neither the flag nor that
// retrying could not help.
func checkAddrs(addrs []string) error {
	given := 0
	for _, a := range addrs {
		if a == "" {
			continue
		}
		given++
		if err := client.CheckAddress(a); err != nil {
			return fmt.Errorf("--addr %q: %w", a, err)
		}
	}
	if given == 0 {
		return errors.New("--addr: want the host:port of one or more servers, got none")
	}
	return nil
}

// flagHint names the client flags that likely fix err, when the SDK said the client's
// configuration does not match the server's; "" otherwise.
func flagHint(err error) string {
	// A server at its connection limit closes new connections at once, as these do.
	const atLimit = "; or it is at its connection limit (serve --max-conns; its commitlog_api_connections_refused_total counts them)"
	switch {
	case errors.Is(err, client.ErrTransportMismatch):
		return "the server speaks gRPC only (serve --transport grpc): pass --transport grpc"
	case errors.Is(err, client.ErrTLSRequired):
		return "the server likely requires TLS: pass --tls-ca-file, and --tls-cert-file and --tls-key-file if it requires client certificates" + atLimit
	case errors.Is(err, client.ErrServerNotTLS):
		return "the server does not use TLS: leave out the --tls-* flags"
	case errors.Is(err, client.ErrServerCertificate):
		return "the server's certificate was not verified: pass --tls-ca-file with the CA that signed it, and --tls-server-name if it is not for the address's host"
	case errors.Is(err, client.ErrClientCertificate):
		return "the server likely requires a client certificate: pass --tls-cert-file and --tls-key-file with one signed by a CA it trusts" + atLimit
	}
	return ""
}

func produceCommand() *cli.Command {
	return &cli.Command{
		Name: "produce",
		Usage: "append records: the arguments, or one record per line of standard input (batched; a line holds at most 16 MiB). " +
			"Prints each record's offset; with --topic, --partition, --key or --header, its partition, a tab and its offset",
		Description: "Offsets are printed in input order as their batches complete. A record that fails is reported on standard\n" +
			"error with its line (or argument) number (the next ones failing with the same error: in one line, lines N-M);\n" +
			"produce then stops reading, still waits for and reports every record it\n" +
			"sent, and exits 1. A line of standard input over 16 MiB, and Ctrl-C, stop it the same way. A line (or, with --topic,\n" +
			"--partition, --key or --header, an argument) that no server takes (none leads, or they are down) is retried for up to\n" +
			"2 minutes; a second Ctrl-C (or SIGTERM) meanwhile exits at once, with status 1, naming the first record whose outcome\n" +
			"is unknown. Flags go before the values.\n" +
			"A line's end (\\n, or \\r\\n: the carriage return is dropped too) is not part of its record: a value that holds a\n" +
			"newline or ends with a carriage return goes as an argument.",
		ArgsUsage: "[VALUE...]",
		Flags: append(clientFlags(),
			&cli.StringFlag{Name: "topic", Usage: `topic to append to (default: "default", the single log of servers before topics)`},
			&cli.IntFlag{Name: "partition", Value: -1, Usage: "partition to append to; -1: the key's partition as Kafka maps it, or a sticky one without a key"},
			&cli.StringFlag{Name: "key", Usage: "key of every record (its partition is murmur2(key) mod partitions, as in Kafka)"},
			&cli.GenericFlag{Name: "header", Value: &headerList{}, Usage: "header of every record, as KEY=VALUE (repeatable; the value may hold commas)"},
			&cli.IntFlag{Name: "batch", Value: client.DefaultBatchRecords, Usage: "most records per request when reading standard input; a batch the server refuses as too large (its --max-batch-records or --max-request-bytes) is split until it fits, each record stored once, in order"},
			&cli.DurationFlag{Name: "linger", Value: 5 * time.Millisecond, Usage: "how long a batch from standard input waits to fill"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "do not print the offsets"},
		),
		Action: func(c *cli.Context) error {
			args, err := commandArgs(c)
			if err != nil {
				return err
			}
			// Checked here, not only by the producer: with arguments and no record flag, produce
			// sends one batch without a producer, and took any value silently.
			if n := c.Int("batch"); n < 1 {
				return fmt.Errorf("--batch %d: want 1 or more records per request", n)
			}
			if d := c.Duration("linger"); d < 0 {
				return fmt.Errorf("--linger %v is negative: want 0 (send at once) or more", d)
			}
			tmpl, err := recordTemplate(c)
			if err != nil {
				return err
			}
			return useClient(c, func(cl *client.Client) error {
				out := bufio.NewWriter(c.App.Writer)
				defer out.Flush()
				if tmpl != nil {
					return produceRecords(c, cl, out, args, *tmpl, true)
				}
				if len(args) > 0 {
					values := make([][]byte, len(args))
					for i, v := range args {
						values[i] = []byte(v)
					}
					return produceSplit(c.Context, cl, values, func(first uint64, n int) {
						if !c.Bool("quiet") {
							for i := range n {
								fmt.Fprintln(out, first+uint64(i))
							}
						}
					})
				}
				return produceRecords(c, cl, out, nil, client.Record{}, false)
			})
		},
	}
}

// produceSplit appends values as one atomic batch, or, when the server refuses it as too
// large (ResourceExhausted: more records or bytes than its --max-batch-records or
// --max-request-bytes; nothing was stored), as two halves in order, split again until they fit,
// as Kafka's producer splits a batch the broker refuses. stored is called with the first offset
// and the count of each part stored, in order; at the first part that fails, the rest is not
// sent and its error is returned.
func produceSplit(ctx context.Context, cl *client.Client, values [][]byte, stored func(first uint64, n int)) error {
	first, err := cl.ProduceBatch(ctx, values...)
	switch {
	case err == nil:
		stored(first, len(values))
		return nil
	case len(values) > 1 && transport.CodeOf(err) == transport.ResourceExhausted && !errors.Is(err, client.ErrOutcomeUnknown):
		h := len(values) / 2
		if err := produceSplit(ctx, cl, values[:h], stored); err != nil {
			return err
		}
		return produceSplit(ctx, cl, values[h:], stored)
	default:
		return err
	}
}

// manualPartition reports whether --partition names a partition (-1, its default, does not).
func manualPartition(c *cli.Context) bool {
	return c.IsSet("partition") && c.Int("partition") != -1
}

// recordTemplate returns the record every produced value is put in when a topic, partition,
// key or header flag is given (even --partition -1: what produce prints depends on the flags
// given, not on their values); nil without any (the single log, as before topics).
func recordTemplate(c *cli.Context) (*client.Record, error) {
	if !c.IsSet("topic") && !c.IsSet("partition") && !c.IsSet("key") && !c.IsSet("header") {
		return nil, nil
	}
	rec := &client.Record{Topic: c.String("topic")}
	if c.IsSet("key") {
		rec.Key = []byte(c.String("key"))
	}
	var headers []string
	if l, ok := c.Generic("header").(*headerList); ok {
		headers = *l
	}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--header %q: want KEY=VALUE", h)
		}
		rec.Headers = append(rec.Headers, client.Header{Key: k, Value: []byte(v)})
	}
	if p := c.Int("partition"); manualPartition(c) {
		if p < 0 || p > math.MaxUint32 {
			return nil, fmt.Errorf("--partition %d: want a partition number, or -1 for the key's", p)
		}
		rec.Partition = uint32(p)
	}
	return rec, nil
}

// headerList is produce's --header values, one per flag given. A list flag split each at its
// commas, so a header's value could not hold one.
type headerList []string

func (l *headerList) Set(v string) error { *l = append(*l, v); return nil }
func (l *headerList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, " ")
}

// maxLineBytes bounds a line of standard input, which produce reads whole as one record.
const maxLineBytes = 16 << 20

// produceInput is one value for produceRecords: argument or line n (from 1); or, last, end
// with the error that ended the input (nil at its end).
type produceInput struct {
	n     int
	value []byte
	end   bool
	err   error
}

// readProduceInput sends args, or without any each line of r, to ch, then a last input with
// end set. It gives up when quit is closed; it is run on its own goroutine, so that produce
// can stop (Ctrl-C) while a read of standard input waits for the next line.
func readProduceInput(r io.Reader, args []string, ch chan<- produceInput, quit <-chan struct{}) {
	send := func(in produceInput) bool {
		select {
		case ch <- in:
			return true
		case <-quit:
			return false
		}
	}
	if len(args) > 0 {
		for i, a := range args {
			if !send(produceInput{n: i + 1, value: []byte(a)}) {
				return
			}
		}
		send(produceInput{end: true})
		return
	}
	sc := bufio.NewScanner(r)
	// Room for a line of maxLineBytes and its "\r\n": the scanner refuses a line that does not
	// fit in its buffer with its end, so a buffer of maxLineBytes refused a line of exactly that.
	sc.Buffer(make([]byte, 64<<10), maxLineBytes+2)
	n := 0
	var err error
	for sc.Scan() {
		if len(sc.Bytes()) > maxLineBytes {
			err = bufio.ErrTooLong
			break
		}
		n++
		if !send(produceInput{n: n, value: append([]byte(nil), sc.Bytes()...)}) {
			return
		}
	}
	if err == nil {
		err = sc.Err()
	}
	switch {
	case errors.Is(err, bufio.ErrTooLong):
		err = fmt.Errorf("line %d is over the %d MiB limit of a line of standard input", n+1, maxLineBytes>>20)
	case err != nil:
		err = fmt.Errorf("read standard input after line %d: %w", n, err)
	}
	send(produceInput{end: true, err: err})
}

// produceRecords appends the arguments, or each line of standard input, as records made from
// tmpl, through an idempotent Producer (partitioned by key unless --partition is given), and
// prints the offset of each (withPartition: its partition, a tab and its offset), in input
// order, as their batches complete; a record that failed is reported on standard error
// instead, with its line (or argument) number.
//
// It stops reading at the first failure, at an input it cannot read (a line over
// maxLineBytes) or when c.Context ends (Ctrl-C), and still waits for every record it sent and
// reports each, so that every stored record's offset is printed; then it returns an error
// saying why it stopped.
func produceRecords(c *cli.Context, cl *client.Client, out *bufio.Writer, args []string, tmpl client.Record, withPartition bool) error {
	opts := []client.ProducerOption{client.ProducerBatchRecords(c.Int("batch")), client.ProducerLinger(c.Duration("linger"))}
	if manualPartition(c) {
		opts = append(opts, client.ProducerManualPartitioning())
	}
	p, err := cl.NewProducer(opts...)
	if err != nil {
		return err
	}
	closing := false // p.Close runs on a goroutine of its own: a second signal does not wait for it
	defer func() {
		if !closing {
			_ = p.Close()
		}
	}()
	// The first SIGINT or SIGTERM ends c.Context: produce stops reading and waits for the records
	// it sent (up to the Producer's delivery timeout, 2 min, while no server takes them). A
	// second one exits at once, as it does serve; before, it was ignored.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	unit := "line"
	if len(args) > 0 {
		unit = "argument"
	}
	type sent struct {
		n int
		f *client.Future
	}
	var (
		queue            []sent // sent and not yet reported, in input order
		nsent, failed    int
		eof, interrupted bool
		stop             error // what stopped the input: a refused send or a read error
	)
	// Records that fail together (the tens of thousands in flight when the servers went away)
	// fail with the same error: the first of a run of consecutive ones is reported at once, the
	// rest in one line when the run ends. Each was a line of its own, tens of thousands of lines.
	var (
		runFirst, runLast int
		runErr            string
	)
	endRun := func() {
		if runLast > runFirst {
			fmt.Fprintf(c.App.ErrWriter, "commitlog: %ss %d-%d: the same error as %s %d\n", unit, runFirst+1, runLast, unit, runFirst)
		}
		runFirst, runLast, runErr = 0, 0, ""
	}
	report := func(s sent) {
		off, err := s.f.Wait(context.Background()) // done
		if err == nil {
			endRun()
		}
		switch {
		case err != nil:
			failed++
			if msg := err.Error(); msg == runErr && s.n == runLast+1 {
				runLast = s.n
				break
			}
			endRun()
			out.Flush() // the offsets before it first, on a terminal
			fmt.Fprintf(c.App.ErrWriter, "commitlog: %s %d: %v\n", unit, s.n, err)
			runFirst, runLast, runErr = s.n, s.n, err.Error()
		case c.Bool("quiet"):
		case withPartition:
			fmt.Fprintf(out, "%d\t%d\n", s.f.Partition(), off)
		default:
			fmt.Fprintln(out, off)
		}
	}
	inputs := make(chan produceInput, 64)
	quit := make(chan struct{})
	defer close(quit)
	go readProduceInput(c.App.Reader, args, inputs, quit)
	for !eof && !interrupted && stop == nil && failed == 0 {
		var head <-chan struct{}
		if len(queue) > 0 {
			head = queue[0].f.Done()
		}
		select {
		case <-c.Context.Done():
			interrupted = true
		case in := <-inputs:
			if in.end {
				eof, stop = in.err == nil, in.err
				break
			}
			rec := tmpl
			rec.Value = in.value
			f, err := p.SendRecord(c.Context, rec)
			switch {
			case c.Context.Err() != nil:
				interrupted = true
			case err != nil:
				stop = fmt.Errorf("%s %d: %w", unit, in.n, err)
			default:
				queue = append(queue, sent{in.n, f})
				nsent++
			}
		case <-head:
			for len(queue) > 0 && isDone(queue[0].f) {
				report(queue[0])
				queue = queue[1:]
			}
			if err := out.Flush(); err != nil {
				return err
			}
		}
	}
	// Every record sent completes (Close delivers them, within the delivery timeout), even
	// after Ctrl-C: they may be stored, and their offsets are printed. A second signal exits
	// without waiting for them.
	closing = true
	closed := make(chan struct{})
	go func() {
		_ = p.Close()
		close(closed)
	}()
	pending := func() int {
		n := 0
		for _, s := range queue {
			if !isDone(s.f) {
				n++
			}
		}
		return n
	}
	for signals, waiting := 0, true; waiting; {
		select {
		case <-closed:
			waiting = false
		case sig := <-sigs:
			signals++
			if signals == 1 {
				if n := pending(); n > 0 {
					out.Flush()
					fmt.Fprintf(c.App.ErrWriter, "commitlog: %s: waiting for the %d %s(s) sent and not acknowledged yet (up to 2 min); %s again exits at once, without knowing whether they were stored\n",
						signalName(sig), n, unit, signalName(sig))
				}
				continue
			}
			// The records done so far, in input order, then the first one not known.
			for len(queue) > 0 && isDone(queue[0].f) {
				report(queue[0])
				queue = queue[1:]
			}
			if err := out.Flush(); err != nil {
				return err
			}
			endRun()
			if len(queue) == 0 {
				continue // every record's outcome is known: Close returns at once
			}
			n, units := pending(), unit+"s"
			if n == 1 {
				units = unit
			}
			msg := fmt.Sprintf("%s received again: exited without waiting for %d %s sent and not acknowledged (from %s %d): they may or may not be stored",
				signalName(sig), n, units, unit, queue[0].n)
			if failed > 0 {
				msg = fmt.Sprintf("%d of the %d %ss sent failed; %s", failed, nsent, unit, msg)
			}
			return errors.New(msg)
		}
	}
	for _, s := range queue {
		report(s)
	}
	endRun()
	if err := out.Flush(); err != nil {
		return err
	}
	var why []string
	if failed > 0 {
		why = append(why, fmt.Sprintf("%d of the %d %ss sent failed", failed, nsent, unit))
	}
	if stop != nil {
		why = append(why, stop.Error())
	}
	if interrupted {
		why = append(why, "interrupted")
	}
	if len(why) == 0 {
		return nil
	}
	msg := strings.Join(why, "; ")
	switch {
	case eof:
	case nsent == 0:
		msg += " (nothing was sent)"
	default:
		msg += fmt.Sprintf(" (stopped after sending %s %d: the rest of the input, if any, was not sent)", unit, nsent)
	}
	return errors.New(msg)
}

// isDone reports whether f's result is known.
func isDone(f *client.Future) bool {
	select {
	case <-f.Done():
		return true
	default:
		return false
	}
}

// Output formats of consume.
const (
	formatValue = "value"
	formatText  = "text"
	formatJSON  = "json"
)

func consumeCommand() *cli.Command {
	return &cli.Command{
		Name: "consume",
		Usage: "read records of a partition from an offset and print them, one per line: the value (--format value), " +
			"or offset, timestamp, key, headers and value (--format text: tab-separated; --format json: one object per line)",
		Flags: append(append(clientFlags(), groupConsumeFlags()...),
			&cli.StringFlag{Name: "topic", Usage: `topic to read (default: "default", the single log of servers before topics)`},
			&cli.UintFlag{Name: "partition", Usage: "partition of the topic to read (not with --group: the group assigns partitions)"},
			&cli.StringFlag{Name: "format", Value: formatValue, Usage: "output: value (the value only), text (offset, timestamp, key, headers, value; tab-separated) or json (one object per line, with topic and partition)"},
			&cli.Uint64Flag{Name: "from", DefaultText: "the partition's lowest offset", Usage: "first offset to read, from the partition's lowest to its next offset (the end: nothing to read, or with --follow the next record); outside them, refused with the bounds, with --follow too (not with --group: it reads from the group's committed offsets)"},
			&cli.Uint64Flag{Name: "count", Usage: "how many records to read; 0: up to the end of the log (every record acknowledged when consume starts, as the leader tells), or forever with --follow or --group"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep waiting for new records (stop with Ctrl-C)"},
			&cli.BoolFlag{Name: "offsets", Usage: "with --format value: print each record's offset and a tab before its value (with --group: partition:offset)"},
		),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			format := c.String("format")
			switch format {
			case formatValue, formatText, formatJSON:
			default:
				return fmt.Errorf("--format %q: want value, text or json", format)
			}
			if c.Bool("offsets") && format != formatValue {
				// It was ignored: text and json print the offset anyway.
				return fmt.Errorf("--offsets goes with --format value; --format %s prints each record's offset already", format)
			}
			if c.IsSet("group") && c.String("group") == "" {
				// It was taken as no --group: consume read partition 0 from its start.
				return errors.New("--group needs a group name (without --group, consume reads one partition from --from)")
			}
			if c.String("group") == "" && c.IsSet("auto-commit") {
				return errors.New("--auto-commit goes with --group: without it consume commits nothing")
			}
			if c.String("group") != "" {
				// The group decides both: they were ignored, and consume read from the group's
				// committed offsets as if they were not given.
				for _, f := range []string{"from", "partition"} {
					if c.IsSet(f) {
						return fmt.Errorf("--%s goes without --group: the group assigns the partitions and reads from its committed offsets (set them with group reset)", f)
					}
				}
			}
			if d := c.Duration("auto-commit"); d < 0 {
				return fmt.Errorf("--auto-commit %v is negative: want 0 (commit on exit only) or more", d)
			}
			topic := c.String("topic")
			partition, err := uint32Flag(c, "partition")
			if err != nil {
				return err
			}
			var extra []client.Option
			if c.String("group") == "" && (!c.Bool("follow") || c.IsSet("from")) {
				// The end it stops at (and, with --follow, the end --from is checked against)
				// is the cluster's commit point when it starts, asked of the leader with a
				// linearizable read: a plain one, answered by a leader just elected (which may
				// not have applied every committed record yet) or by a lagging replica, ended
				// before the last acknowledged records. Only the bounds are read so; the
				// records stream from any replica.
				extra = append(extra, client.WithLinearizableReads())
			}
			return useClient(c, func(cl *client.Client) error {
				if group := c.String("group"); group != "" {
					if topic == "" {
						topic = client.DefaultTopic
					}
					// A reader of standard output that goes away (`| head`) made the next
					// write raise SIGPIPE, which killed the member without committing what it
					// printed or leaving: the group kept it, with its partitions, for the
					// session timeout. With SIGPIPE caught, the write fails with EPIPE, and
					// consumeGroup commits and leaves (Kafka's console consumer closes its
					// consumer when standard output fails).
					pipe := make(chan os.Signal, 1)
					signal.Notify(pipe, syscall.SIGPIPE)
					defer signal.Stop(pipe)
					out := bufio.NewWriter(c.App.Writer)
					defer out.Flush()
					return consumeGroup(c, cl, group, []string{topic}, c.Uint64("count"), func(rec client.Record) error {
						switch format {
						case formatText:
							writeText(out, rec)
						case formatJSON:
							if err := writeJSON(out, rec); err != nil {
								return err
							}
						default:
							if c.Bool("offsets") {
								fmt.Fprintf(out, "%d:%d\t", rec.Partition, rec.Offset)
							}
							out.Write(rec.Value)
							out.WriteByte('\n')
						}
						return out.Flush()
					})
				}
				// Without --from, the partition's lowest offset (retention moves it up); without
				// --follow, up to the end of the log as it is now, or --count records if fewer
				// (a --count beyond the end waited there forever, as --follow does). A --from
				// outside the partition's bounds is refused, with --follow too (Kafka's offset
				// out of range without a reset policy): it waited silently, past the end, for
				// records that a typo's offset may never see; --from at the end waits for the
				// next record.
				from, count := c.Uint64("from"), c.Uint64("count")
				toEnd := !c.Bool("follow")
				b, err := cl.PartitionBounds(c.Context, topic, partition)
				if err != nil {
					return err
				}
				if !c.IsSet("from") {
					from = b.Lowest
				}
				if from < b.Lowest {
					return fmt.Errorf("offset %d is below the log start %d: %w", from, b.Lowest, client.ErrOutOfRange)
				}
				if from > b.Next {
					// A typo in --from read nothing and exited 0 (or, with --follow, waited
					// silently); as below the start.
					hint := ""
					if !toEnd {
						hint = fmt.Sprintf("; --from %d follows from the end", b.Next)
					}
					return fmt.Errorf("offset %d is past the end of the log (next offset %d)%s: %w", from, b.Next, hint, client.ErrOutOfRange)
				}
				if toEnd {
					if from == b.Next {
						return nil // nothing written there yet
					}
					if left := b.Next - from; count == 0 || count > left {
						count = left
					}
				}
				out := bufio.NewWriter(c.App.Writer)
				defer out.Flush()
				ctx, cancel := context.WithCancel(c.Context)
				defer cancel()
				var n uint64
				for rec, err := range cl.StreamPartition(ctx, topic, partition, from) {
					if err != nil {
						if c.Bool("follow") && errors.Is(err, context.Canceled) {
							return nil
						}
						return err
					}
					switch format {
					case formatText:
						writeText(out, rec)
					case formatJSON:
						if err := writeJSON(out, rec); err != nil {
							return err
						}
					default:
						if c.Bool("offsets") {
							out.WriteString(strconv.FormatUint(rec.Offset, 10))
							out.WriteByte('\t')
						}
						out.Write(rec.Value)
						out.WriteByte('\n')
					}
					if c.Bool("follow") {
						out.Flush()
					}
					if n++; count > 0 && n >= count {
						break
					}
				}
				return nil
			}, extra...)
		},
	}
}

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "see and administer the cluster's membership",
		Subcommands: []*cli.Command{
			{
				Name:  "status",
				Usage: "show the cluster id and list the servers: id, addresses, suffrage, leader, applied index, lag, log bounds and size on disk (of the default topic), divergence alarm, whether it applies (a server that stopped applying says why; a fenced server says so, and how to repair it), and security (insecure: a server listening beyond loopback without TLS or gossip encryption); with no leader (quorum lost, an election), the table as the servers that answer know it, and exit status 1",
				Flags: clientFlags(),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					return useClient(c, func(cl *client.Client) error {
						servers, err := cl.Servers(c.Context)
						if err != nil && errors.Is(err, client.ErrUnavailable) && len(servers) > 0 {
							// No leader (quorum lost, an election): the table is what an operator
							// needs then, which servers answer and which do not. It showed
							// nothing but the error. Still exit 1: no leader is a failure.
							if perr := printStatus(c, cl.ClusterID(), servers); perr != nil {
								return perr
							}
							return fmt.Errorf("%w (the servers above are the configuration as the servers that answered know it; none leads)", err)
						}
						if err != nil {
							return err
						}
						return printStatus(c, cl.ClusterID(), servers)
					})
				},
			},
			{
				Name:      "remove",
				Usage:     "remove servers from the cluster, one at a time in the order given, each once the previous removal committed; a server about to be removed that leads first hands leadership to one that stays; a transient failure (an election, a hand-over not done in time) is tried again for up to --timeout per server, a refusal (quorum) fails at once",
				ArgsUsage: "ID...",
				Flags: append(clientFlags(),
					&cli.BoolFlag{Name: "missing-ok", Usage: "an ID the leader's configuration does not list counts as removed (a retry after a partial run: the Helm chart's scale-down Job)"}),
				Action: func(c *cli.Context) error {
					args, err := commandArgs(c)
					if err != nil {
						return err
					}
					if len(args) == 0 {
						return fmt.Errorf("cluster remove takes at least one server id, got none")
					}
					for _, id := range args {
						if id == "" {
							return fmt.Errorf("cluster remove: an empty server id")
						}
					}
					return useClient(c, func(cl *client.Client) error {
						return removeServers(c, cl, args, c.Bool("missing-ok"))
					})
				},
			},
			{
				Name:      "transfer-leadership",
				Usage:     "ask the leader to hand leadership to another voter (by default the most up to date)",
				ArgsUsage: "[ID]",
				Flags:     clientFlags(),
				Action: func(c *cli.Context) error {
					args, err := commandArgs(c)
					if err != nil {
						return err
					}
					if len(args) > 1 {
						return fmt.Errorf("cluster transfer-leadership takes at most one server id, got %d arguments", len(args))
					}
					var id string // empty: the leader picks one
					if len(args) == 1 {
						id = args[0]
					}
					return useClient(c, func(cl *client.Client) error {
						// The SDK asks the servers for the new leader when the old one, having
						// stepped down, did not name it (for up to 5 s, or --timeout if shorter).
						leader, err := cl.TransferLeadership(c.Context, id)
						if err != nil {
							return err
						}
						if leader == "" {
							fmt.Fprintln(c.App.Writer, "leadership handed over; the new leader is not known yet (cluster status shows it once elected)")
							return nil
						}
						fmt.Fprintf(c.App.Writer, "leader is now %s\n", leader)
						return nil
					})
				},
			},
		},
	}
}

// printStatus prints the cluster ID, then the servers as a table, with what each server says of
// itself (applied index, log bounds, size on disk, divergence alarm), asked directly; a server
// that does not answer is shown unreachable, one that refuses the caller denied (an identity
// that may not consume, such as one allowed admin alone: it answered, and an operator must not
// take it for a server that is down). Each raised divergence alarm, and each refusal, is
// explained below the table.
func printStatus(c *cli.Context, clusterID string, servers []client.Server) error {
	tlsCfg, err := clientTLS(c)
	if err != nil {
		return err
	}
	newClient := client.NewTransportClient(c.String("transport"))
	var commit uint64
	commitKnown := false // a leader answered with its commit index
	type self struct {
		b   *logv1.GetBoundsResponse
		err error
	}
	selves := make([]self, len(servers))
	for i, s := range servers {
		tc, err := newClient(s.Addr, transport.ClientConfig{TLS: tlsCfg})
		if err != nil {
			selves[i].err = err
			continue
		}
		ctx, cancel := requestContext(c)
		selves[i].b, selves[i].err = tc.GetBounds(ctx, &logv1.GetBoundsRequest{})
		cancel()
		_ = tc.Close()
		if s.IsLeader && selves[i].err == nil {
			commit, commitKnown = selves[i].b.GetCommitIndex(), true
		}
	}
	if clusterID == "" {
		clusterID = "(none: servers older than cluster ids)"
	}
	fmt.Fprintf(c.App.Writer, "cluster id: %s\n", clusterID)
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tRAFT ADDRESS\tSUFFRAGE\tLEADER\tAPPLIED\tLAG\tOFFSETS\tSIZE\tDIVERGED\tAPPLYING\tSECURITY")
	var alarms []string
	for i, s := range servers {
		suffrage := "voter"
		if !s.Voter {
			suffrage = "nonvoter"
		}
		applied, lag, offsets, size, diverged, applying := "-", "-", "unreachable", "-", "-", "-"
		if code := transport.CodeOf(selves[i].err); code == transport.PermissionDenied || code == transport.Unauthenticated {
			offsets = "denied"
			alarms = append(alarms, fmt.Sprintf("%s: denied: it answered, but refuses this identity its bounds (consume on the default topic): %v", s.ID, selves[i].err))
		}
		if b := selves[i].b; selves[i].err == nil {
			applied = strconv.FormatUint(b.GetAppliedIndex(), 10)
			lag = lagCell(commit, commitKnown, b.GetAppliedIndex())
			offsets = fmt.Sprintf("[%d, %d)", b.GetLowestOffset(), b.GetNextOffset())
			size = humanBytes(b.GetSizeBytes())
			diverged = "no"
			if b.GetDivergence() != "" {
				diverged = "YES"
			}
			applying = "yes"
			if b.GetApplyError() != "" {
				applying = "STOPPED"
			}
			alarms = append(alarms, statusNotes(s.ID, b)...)
		}
		// insecure: listening beyond loopback without TLS or gossip encryption (the server says so).
		security := "ok"
		if s.Insecure {
			security = "insecure"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Addr, s.RaftAddr, suffrage, s.IsLeader, applied, lag, offsets, size, diverged, applying, security)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, a := range alarms {
		fmt.Fprintln(c.App.Writer, a)
	}
	return nil
}

// statusNotes explains, below the status table, a server's raised divergence alarm, why its
// state machine stopped applying, and why it is fenced when nothing else says so, with what the
// operator does about each. A server that
// lost committed data (its alarm, or a stop on damaged data: an error wrapping
// storage.ErrCorrupt, whose text is all that crosses the wire) is fenced, and a restart does
// not lift it: it is repaired from its peers (server/README.md). Any other stop is fixed and
// restarted.
func statusNotes(id string, b *logv1.GetBoundsResponse) []string {
	repair := "stop it, commitlog cluster remove " + id + " (through another server), wipe its data dir and start it"
	var notes []string
	if msg := b.GetDivergence(); msg != "" {
		notes = append(notes, fmt.Sprintf("%s: divergence alarm: %s (it refuses reads and is fenced: it neither votes nor leads, also after a restart; repair: %s)", id, msg, repair))
	}
	if msg := b.GetFenced(); msg != "" && b.GetDivergence() == "" && !strings.Contains(b.GetApplyError(), storage.ErrCorrupt.Error()) {
		// Fenced with no other sign: restarted with FENCED kept, before its replay reached the
		// damaged entry again (or a server that keeps the reason only).
		notes = append(notes, fmt.Sprintf("%s: fenced: %s (it neither votes nor leads, also after a restart; repair: %s)", id, msg, repair))
	}
	if msg := b.GetApplyError(); msg != "" {
		if strings.Contains(msg, storage.ErrCorrupt.Error()) {
			notes = append(notes, fmt.Sprintf("%s: stopped applying on damaged data: %s (it serves nothing from offset %d on, and is fenced: it neither votes nor leads, also after a restart; repair: %s)", id, msg, b.GetNextOffset(), repair))
		} else {
			notes = append(notes, fmt.Sprintf("%s: stopped applying: %s (it serves nothing from offset %d on; fix the cause and restart it)", id, msg, b.GetNextOffset()))
		}
	}
	return notes
}

// lagCell is the LAG cell of a server that applied applied: how far it is behind the leader's
// commit index, or "-" (unknown) when no leader gave one (none known, or it did not answer) or
// the server is ahead of it (the leader's answer predates the server's).
func lagCell(commit uint64, commitKnown bool, applied uint64) string {
	if !commitKnown || commit < applied {
		return "-"
	}
	return strconv.FormatUint(commit-applied, 10)
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// useClient dials the servers of the command's --addr, runs f with the client and closes it.
func useClient(c *cli.Context, f func(*client.Client) error, extra ...client.Option) error {
	cl, err := dial(c, extra...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return f(cl)
}

// requestContext is c's context bounded by --timeout; with --timeout 0 (none, as the SDK's
// request timeout 0) it is not bounded: a deadline of 0 failed every command at once with
// "cluster unavailable".
func requestContext(c *cli.Context) (context.Context, context.CancelFunc) {
	if d := c.Duration("timeout"); d > 0 {
		return context.WithTimeout(c.Context, d)
	}
	return context.WithCancel(c.Context)
}
