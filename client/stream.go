package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"sync/atomic"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// Stream returns an iterator over the log's records from offset from on: it
// yields every record already written, then tails the log, yielding records
// as they are committed, until ctx ends or the loop stops.
//
// It reads from a server chosen by the read policy. When the stream breaks
// (server stopped, connection lost, leader change) it reconnects, to
// another server if need be, and resumes at the offset after the last
// record it yielded: the records it yields have consecutive offsets,
// without duplicates or gaps. A server that hangs (a paused process, a
// connection cut off without a reset) is left as a broken one: after 3 s
// without a message the client asks it for its bounds, and one that does
// not answer within 2 s (or WithRequestTimeout, if shorter) is left.
//
// The sequence ends with exactly one non-nil error unless the loop stops
// first: ctx's error when ctx ends (no record is yielded once ctx has ended,
// even one already received); an error wrapping ErrOutOfRange when from
// is below the log's start; ErrGap when the server skipped offsets; ErrClosed
// when the client is closed; an error wrapping ErrUnavailable after more than
// the retry budget of consecutive failed reconnections (a reconnection that
// yields a record resets the count; a server that ended the stream because it
// knows no leader is not counted, so that a tailing Stream waits out a cluster
// without a leader, though it is backed off from as a failure is); the
// server's DataLoss once every server refused the stream so (a server that
// does is left for another at once, without a backoff or a count); or the
// server's error (e.g. PermissionDenied). The Record values are owned by the loop body.
//
// Each call of the returned iterator opens its own stream; the iterator may
// be used by one goroutine at a time. Stream reads partition 0 of
// DefaultTopic; StreamPartition reads any partition.
func (c *Client) Stream(ctx context.Context, from uint64) iter.Seq2[Record, error] {
	return c.StreamPartition(ctx, "", 0, from)
}

// StreamPartition is Stream over partition of topic ("" means DefaultTopic).
// An unknown topic or partition ends the sequence with an error wrapping
// ErrUnknownTopic; so does the topic's deletion, even when a topic of the same
// name is created while the stream reconnects (it is another topic: the
// stream learns its topic's ID before its first record and names it when it
// resumes; a failure to learn it that another try may not meet, such as
// Unavailable, fails that attempt like a broken stream).
func (c *Client) StreamPartition(ctx context.Context, topic string, partition uint32, from uint64) iter.Seq2[Record, error] {
	loc := partitionRef{topic: wireTopic(topic), partition: partition}
	return func(yield func(Record, error) bool) {
		ctx, cancel := c.merged(ctx)
		defer cancel()
		next := from
		failures := 0
		waits := 0 // streams ended for want of a leader since the last record: not failures, but backed off as they are
		targets := c.readTargets(false)
		// failed are the servers whose stream failed since the last record: the next
		// attempt goes to the first target not among them (every one in turn, however many),
		// and once all have failed, round again.
		failed := map[string]bool{}
		// refused are the servers that refused the stream with DataLoss (their log diverged,
		// or their copy is corrupt) since the last record: never asked again until a record
		// comes; once every target has, the stream ends with the DataLoss.
		refused := map[string]bool{}
		redirectTo := ""
		// id is the ID of the topic the stream began with (learned before its first record;
		// none for the default topic or a server without topic IDs): every resumed stream
		// names it, so that a topic deleted and created again under its name while the
		// stream reconnected ends the stream (ErrUnknownTopic) instead of going on in it.
		id, yielded := "", false
		for {
			addr := redirectTo
			if addr == "" {
				i := slices.IndexFunc(targets, func(a string) bool { return !failed[a] && !refused[a] })
				if i < 0 {
					clear(failed)
					i = max(slices.IndexFunc(targets, func(a string) bool { return !refused[a] }), 0)
				}
				addr = targets[i]
			}
			redirectTo = ""
			progressed, stop, err := c.streamFrom(ctx, addr, loc, &next, &id, !yielded, yield)
			yielded = yielded || progressed
			if stop {
				return
			}
			if c.isClosed() {
				yield(Record{}, ErrClosed)
				return
			}
			if ctx.Err() != nil {
				yield(Record{}, ctx.Err())
				return
			}
			if progressed {
				failures, waits = 0, 0
				clear(failed)
				clear(refused)
			}
			if errors.Is(err, ErrGap) {
				yield(Record{}, err)
				return
			}
			if errors.Is(err, io.EOF) {
				// The server ended the stream (it is stopping):
				// resume elsewhere.
				err = fmt.Errorf("%w: stream from %s ended by the server", ErrUnavailable, addr)
			}
			v, err := classify(ctx, err, false)
			if v == fatal {
				yield(Record{}, fmt.Errorf("stream from offset %d: %w", next, err))
				return
			}
			if transport.CodeOf(err) == transport.DataLoss {
				// This server cannot serve the log; the others hold it: go to one of
				// them at once, with no backoff and no failed reconnection counted.
				refused[addr] = true
				if !slices.ContainsFunc(targets, func(a string) bool { return !refused[a] }) {
					yield(Record{}, fmt.Errorf("stream from offset %d: every server refused it: %w", next, err))
					return
				}
				c.opts.logger.Debug("stream refused (data loss), resuming on another server", "addr", addr, "next", next, "err", err)
				continue
			}
			nl, isNL := errors.AsType[*NotLeaderError](err)
			leaderless := isNL && nl.LeaderAddr == ""
			if leaderless {
				// A server that knows no leader (it ends a tailing stream once that has
				// lasted an election) answered: no failed reconnection. A tailing Stream
				// waits for the cluster to elect one, however long, as a Kafka consumer
				// does, and meanwhile goes round the servers for one that has a leader,
				// backing off as from failures (a server may refuse each stream at once).
				failures = 0
				waits++
			} else {
				failures++
			}
			if failures > c.opts.maxRetries {
				yield(Record{}, fmt.Errorf("stream from offset %d: %d reconnections failed: %w", next, failures, err))
				return
			}
			if isNL && v == redirect && nl.LeaderAddr != addr {
				c.setLeader(nl.LeaderAddr)
				redirectTo = nl.LeaderAddr
				continue
			}
			c.opts.logger.Debug("stream broken, resuming", "addr", addr, "next", next, "err", err)
			failed[addr] = true
			c.forgetLeader(addr)
			if failures > 1 || leaderless {
				if err := c.backoff(ctx, max(failures-2, waits-1, 0)); err != nil {
					continue // reported at the top of the next round
				}
			}
			if err := c.refreshServers(ctx); err == nil {
				targets = c.readTargets(false)
			}
		}
	}
}

// streamFrom consumes one stream from addr starting at *next, yielding
// records and advancing *next. It reports whether it yielded a record,
// whether the loop body asked to stop, and the error that ended the stream.
// The stream names the topic ID *id; with learn (no record yielded yet) and
// no ID known, it first asks addr for the topic's ID, and fails the attempt,
// reading nothing, when addr cannot tell now (a transient error).
func (c *Client) streamFrom(ctx context.Context, addr string, loc partitionRef, next *uint64, id *string, learn bool, yield func(Record, error) bool) (progressed, stop bool, err error) {
	tc, err := c.conn(addr)
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return false, false, err
		}
		return false, false, &notSentError{err}
	}
	vctx, vcancel := c.attemptContext(ctx)
	err = c.verify(vctx, addr, tc)
	vcancel()
	if err != nil {
		return false, false, &notSentError{err}
	}
	if learn && *id == "" && loc.topic != "" {
		if tpc, ok := tc.(transport.TopicsClient); ok {
			dctx, dcancel := c.attemptContext(ctx)
			d, derr := tpc.DescribeTopic(dctx, &logv1.DescribeTopicRequest{Name: loc.topic})
			dcancel()
			if derr == nil {
				*id = d.GetTopic().GetId()
			} else if v, _ := classify(ctx, derr, false); v == retry || v == redirect {
				// A transient failure (this server cannot tell now, or the connection
				// broke): no record is read before the ID is known, or a resumed stream
				// could go on in another topic of that name. The attempt failed; the next
				// one asks again.
				return false, false, derr
			}
			// Otherwise the stream tells (an unknown topic, a refusal), or a server without
			// topic IDs (Unimplemented) reads as before.
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A server that hangs (paused, frozen, cut off without a reset) neither
	// sends nor ends the stream: without a probe the stream would wait for
	// the connection's keepalive (40 s) while the cluster serves elsewhere.
	// The probe starts before the stream opens: over Connect, opening it
	// returns only with the response headers, which the server sends with
	// its first message (none yet at the end of the log).
	var last atomic.Int64 // time of the last message, UnixNano
	last.Store(time.Now().UnixNano())
	var stalled atomic.Bool
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		c.probeStream(sctx, tc, loc, &last, func() { stalled.Store(true); cancel() })
	}()
	defer func() { cancel(); <-probed }()
	hung := func(err error) error {
		if stalled.Load() && ctx.Err() == nil {
			// Retried elsewhere, as a broken stream.
			return fmt.Errorf("%w: stream from %s: the server sent nothing for %v and did not answer a probe within %v",
				ErrUnavailable, addr, streamProbeInterval, c.probeTimeout())
		}
		return err
	}
	st, err := tc.ConsumeStream(sctx, &logv1.ConsumeRequest{Offset: *next, MaxBatch: streamBatch, Topic: loc.topic, Partition: loc.partition, TopicId: *id})
	if err != nil {
		return false, false, hung(err)
	}
	defer st.Close()
	for {
		resp, err := st.Receive()
		if err != nil {
			return progressed, false, hung(err)
		}
		last.Store(time.Now().UnixNano())
		recs := resp.GetRecords()
		if len(recs) == 0 { // a server that does not batch (the seed's form)
			recs = []*logv1.Record{resp.GetRecord()}
		}
		for _, r := range recs {
			rec := recordFromProto(r, topicName(loc.topic), loc.partition)
			switch {
			case rec.Offset < *next:
				continue // already yielded before a reconnection
			case rec.Offset > *next:
				return progressed, false, fmt.Errorf("%w: expected offset %d, server %s sent %d", ErrGap, *next, addr, rec.Offset)
			}
			if err := ctx.Err(); err != nil {
				// Cancelled (or the client closed): the records already received (the
				// rest of a batch, and the messages grpc-go or net/http buffered, which
				// they hand out after a cancellation) are not yielded.
				return progressed, false, err
			}
			*next = rec.Offset + 1
			progressed = true
			if !yield(rec, nil) {
				return progressed, true, nil
			}
		}
	}
}

// streamProbeInterval is how long a stream may go without a message before
// the client asks its server (GetBounds) whether it still answers.
var streamProbeInterval = 3 * time.Second

// probeTimeout bounds a stream's probe: as a refresh's GetServers, shorter
// than other requests (the request timeout, if lower).
func (c *Client) probeTimeout() time.Duration {
	if c.opts.requestTimeout > 0 {
		return min(maxRefreshAttempt, c.opts.requestTimeout)
	}
	return maxRefreshAttempt
}

// probeStream asks the server of a stream whether it answers, each time the
// stream has been silent (no message since last) for streamProbeInterval,
// until ctx ends. A server that does not answer within probeTimeout is
// hung: stalled is called, which ends the stream so that it resumes
// elsewhere. An answer, even an error, means the server is alive: the
// stream itself reports what it has to; a server that does not know
// GetBounds (Unimplemented) is not probed again.
func (c *Client) probeStream(ctx context.Context, tc transport.Client, loc partitionRef, last *atomic.Int64, stalled func()) {
	t := time.NewTimer(streamProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if idle := time.Since(time.Unix(0, last.Load())); idle < streamProbeInterval {
			t.Reset(streamProbeInterval - idle)
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, c.probeTimeout())
		_, err := tc.GetBounds(pctx, &logv1.GetBoundsRequest{Topic: loc.topic, Partition: loc.partition})
		timedOut := pctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case timedOut:
			stalled()
			return
		case transport.CodeOf(err) == transport.Unimplemented:
			return
		}
		t.Reset(streamProbeInterval)
	}
}

// streamBatch is how many records the client lets the server put in one ConsumeStream
// message: one message per record costs more than the records themselves.
const streamBatch = 1024
