package loadgen

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitlog-go/commitlog/tools/latency"
)

// Targets: what a run loads.
const (
	// TargetCommitlog: a commitlog cluster through the Go SDK (the default).
	TargetCommitlog = "commitlog"
	// TargetNATS: a NATS JetStream stream through nats.go's jetstream package, for comparison.
	// ModeUnary publishes synchronously (one publish, wait for its acknowledgement, repeat);
	// ModeStream and ModeBatch publish asynchronously with up to Config.Window acknowledgements
	// outstanding per producer (JetStream has no batch publish that acknowledges per record: async
	// publish is its fastest per-record path). Readers are not supported.
	TargetNATS = "nats"
)

// Defaults of the NATS target.
const (
	DefaultNATSStream   = "CLBENCH"
	DefaultNATSReplicas = 1
)

// natsTarget is the state of a run against NATS: one connection and JetStream context per
// Config.Clients, and the stream's subject.
type natsTarget struct {
	conns   []*nats.Conn
	js      []jetstream.JetStream
	subject string
}

// dialNATS connects cfg.Clients connections to the NATS servers at cfg.Addrs and creates (or
// updates) the stream: file storage, cfg.NATSReplicas replicas, one subject.
func (r *runner) dialNATS(ctx context.Context) error {
	urls := make([]string, len(r.cfg.Addrs))
	for i, a := range r.cfg.Addrs {
		if !strings.Contains(a, "://") {
			a = "nats://" + a
		}
		urls[i] = a
	}
	opts := []nats.Option{nats.Name("commitlog-bench")}
	if r.cfg.TLS != nil {
		opts = append(opts, nats.Secure(r.cfg.TLS))
	}
	nt := &natsTarget{subject: strings.ToLower(r.cfg.NATSStream) + ".bench"}
	r.nats = nt
	perClient := (r.cfg.Producers + r.cfg.Clients - 1) / r.cfg.Clients
	for i := range r.cfg.Clients {
		nc, err := nats.Connect(strings.Join(urls, ","), opts...)
		if err != nil {
			r.closeNATS()
			return fmt.Errorf("loadgen: connect NATS client %d: %w", i, err)
		}
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(max(perClient*r.cfg.Window, 1)))
		if err != nil {
			nc.Close()
			r.closeNATS()
			return fmt.Errorf("loadgen: NATS JetStream context %d: %w", i, err)
		}
		nt.conns = append(nt.conns, nc)
		nt.js = append(nt.js, js)
	}
	_, err := nt.js[0].CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     r.cfg.NATSStream,
		Subjects: []string{nt.subject},
		Storage:  jetstream.FileStorage,
		Replicas: r.cfg.NATSReplicas,
	})
	if err != nil {
		r.closeNATS()
		return fmt.Errorf("loadgen: create NATS stream %s: %w", r.cfg.NATSStream, err)
	}
	return nil
}

func (r *runner) closeNATS() {
	if r.nats == nil {
		return
	}
	for _, nc := range r.nats.conns {
		nc.Close()
	}
	r.nats.conns, r.nats.js = nil, nil
}

// runNATSProducers is runProducers for TargetNATS.
func (r *runner) runNATSProducers() {
	done := make(chan struct{}, r.cfg.Producers)
	for i := range r.cfg.Producers {
		js, rec := r.nats.js[i%len(r.nats.js)], r.produce.recorder()
		go func() {
			defer func() { done <- struct{}{} }()
			if r.cfg.Mode == ModeUnary {
				r.natsSyncProducer(js, rec)
			} else {
				r.natsAsyncProducer(js, rec)
			}
		}()
	}
	for range r.cfg.Producers {
		<-done
	}
}

// natsSyncProducer publishes one record at a time and waits for its acknowledgement.
func (r *runner) natsSyncProducer(js jetstream.JetStream, rec *latency.Recorder) {
	for {
		t0 := time.Now()
		measured, ok := r.take(t0)
		if !ok {
			return
		}
		v := r.payload.value(t0)
		_, err := js.Publish(r.runCtx, r.nats.subject, v)
		t1 := time.Now()
		if err != nil {
			if r.fail(r.runCtx, r.produce, 1, err) {
				return
			}
			r.pause(r.runCtx, r.stop)
			continue
		}
		if measured {
			rec.Record(t1.Sub(t0))
		}
		r.produce.done(1, len(v), t1, measured)
	}
}

// natsPending is an asynchronous publish awaiting its acknowledgement.
type natsPending struct {
	f        jetstream.PubAckFuture
	at       time.Time
	measured bool
	size     int
}

// natsAsyncProducer publishes asynchronously, keeping up to cfg.Window acknowledgements
// outstanding; a second goroutine collects them in publish order.
func (r *runner) natsAsyncProducer(js jetstream.JetStream, rec *latency.Recorder) {
	inflight := make(chan natsPending, r.cfg.Window)
	acks := make(chan struct{})
	go func() {
		defer close(acks)
		for p := range inflight {
			var err error
			select {
			case <-p.f.Ok():
			case err = <-p.f.Err():
			case <-time.After(r.cfg.StallTimeout):
				err = errStalled
			}
			t1 := time.Now()
			if err != nil {
				r.fail(context.Background(), r.produce, 1, err)
				continue
			}
			if p.measured {
				rec.Record(t1.Sub(p.at))
			}
			r.produce.done(1, p.size, t1, p.measured)
		}
	}()
	defer func() {
		close(inflight)
		<-acks
	}()
	for {
		t0 := time.Now()
		measured, ok := r.take(t0)
		if !ok {
			return
		}
		v := r.payload.value(t0)
		f, err := js.PublishAsync(r.nats.subject, v)
		if err != nil {
			if errors.Is(err, context.Canceled) || r.fail(r.runCtx, r.produce, 1, err) {
				return
			}
			r.pause(r.runCtx, r.stop)
			continue
		}
		inflight <- natsPending{f: f, at: t0, measured: measured, size: len(v)}
	}
}
