package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
)

// TestRecordSizeCountsKeyAndHeaders: --max-record-bytes bounds a record's key, headers and
// value together on every produce path. A record whose value fits but whose value, key and
// headers do not is refused with ResourceExhausted and nothing is stored; one exactly at the
// limit is stored.
func TestRecordSizeCountsKeyAndHeaders(t *testing.T) {
	const limit = 1024
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			srv := startServer(t, Config{Transport: tr, MaxRecordBytes: limit})
			c := newClient(t, tr, srv.Addr())
			ctx := ctxT(t, 30*time.Second)
			if _, err := c.(transport.TopicsClient).CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "t", Partitions: 1}); err != nil {
				t.Fatal(err)
			}
			// value 1000 fits alone; with a 20-byte key and a 4+10-byte header it is 1034.
			over := func() *logv1.Record {
				return &logv1.Record{Value: make([]byte, 1000), Key: make([]byte, 20), Headers: []*logv1.Header{{Key: "hdr1", Value: make([]byte, 10)}}}
			}
			atLimit := &logv1.Record{Value: make([]byte, 990), Key: make([]byte, 20), Headers: []*logv1.Header{{Key: "hdr1", Value: make([]byte, 10)}}}
			if n := recordBytes(over()); n <= limit {
				t.Fatalf("test record is %d bytes, want more than %d", n, limit)
			}
			stream := func(topic string, r *logv1.Record) error {
				ps, err := c.ProduceStream(ctx)
				if err != nil {
					return err
				}
				defer ps.Close()
				if err := ps.Send(&logv1.ProduceRequest{Topic: topic, Record: r}); err != nil {
					return err
				}
				if err := ps.CloseSend(); err != nil {
					return err
				}
				_, err = ps.Receive()
				return err
			}
			for _, topic := range []string{"", "t"} {
				paths := map[string]func(r *logv1.Record) error{
					"Produce": func(r *logv1.Record) error {
						_, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: topic, Record: r})
						return err
					},
					"ProduceBatch": func(r *logv1.Record) error {
						_, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: topic, Records: []*logv1.Record{{Value: []byte("ok")}, r}})
						return err
					},
					"ProduceStream": func(r *logv1.Record) error { return stream(topic, r) },
				}
				for name, produce := range paths {
					if err := produce(over()); transport.CodeOf(err) != transport.ResourceExhausted {
						t.Errorf("%s to topic %q of a %d-byte record (value %d): %v, want ResourceExhausted", name, topic, recordBytes(over()), len(over().Value), err)
					}
					b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{Topic: topic, Linearizable: true})
					if err != nil {
						t.Fatal(err)
					}
					if b.GetNextOffset() != 0 {
						t.Fatalf("after %s to topic %q was refused: next offset %d, want 0 (nothing stored)", name, topic, b.GetNextOffset())
					}
				}
			}
			if _, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: "t", Record: atLimit}); err != nil {
				t.Fatalf("a record of exactly %d bytes: %v", recordBytes(atLimit), err)
			}
			if err := stream("", atLimit); err != nil {
				t.Fatalf("a record of exactly %d bytes on ProduceStream: %v", recordBytes(atLimit), err)
			}
		})
	}
}

// TestProduceStreamGroupsCountKeys: records with small values and large keys and headers are
// split into commands by their whole size, so that each command fits the command limit (4 MiB;
// requests may be larger here, so the request bound does not split them): 12 records of
// 700 KiB keys (8.4 MiB, three commands' worth) are all stored, in order.
func TestProduceStreamGroupsCountKeys(t *testing.T) {
	srv := startServer(t, Config{MaxRequestBytes: 16 << 20})
	c := newClient(t, TransportConnect, srv.Addr())
	ctx := ctxT(t, 60*time.Second)
	const n = 12
	rec := func(i int) *logv1.Record {
		k := bytes.Repeat([]byte{byte(i)}, 700<<10)
		return &logv1.Record{Value: []byte(fmt.Sprint(i)), Key: k, Headers: []*logv1.Header{{Key: "h", Value: make([]byte, 1000)}}}
	}
	recs := make([]*logv1.Record, n)
	for i := range recs {
		recs[i] = rec(i)
	}
	lim := srv.fsm.Limits()
	for _, g := range srv.svc.commandGroups(recs, 0) {
		batch := make([]fsm.AppendRecord, len(g))
		for i, r := range g {
			batch[i] = appendRecord(r)
		}
		if size := fsm.EncodedBatchSize(fsm.Batch{Records: batch}); len(g) > 1 && size > lim.MaxCommandBytes {
			t.Errorf("a group of %d records encodes to %d bytes, above the %d-byte command limit", len(g), size, lim.MaxCommandBytes)
		}
	}
	ps, err := c.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	sendErr := make(chan error, 1)
	go func() {
		for i := range n {
			if err := ps.Send(&logv1.ProduceRequest{Record: rec(i)}); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- ps.CloseSend()
	}()
	for i := range n {
		res, err := ps.Receive()
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if res.GetOffset() != uint64(i) {
			t.Fatalf("response %d has offset %d", i, res.GetOffset())
		}
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Receive(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v", err)
	}
	for i := range n {
		got, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: uint64(i)})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.GetRecord().GetKey(), rec(i).Key) || string(got.GetRecord().GetValue()) != fmt.Sprint(i) {
			t.Fatalf("offset %d holds another record", i)
		}
	}
}

// TestConsumeStreamBatchOwnsKeys: a batched ConsumeStream sends records whose keys and header
// values are their own, not bytes the next read overwrites.
func TestConsumeStreamBatchOwnsKeys(t *testing.T) {
	srv := startServer(t, Config{})
	c := newClient(t, TransportGRPC, srv.Addr())
	ctx := ctxT(t, 30*time.Second)
	const n = 200
	recs := make([]*logv1.Record, n)
	for i := range recs {
		recs[i] = &logv1.Record{Value: []byte(fmt.Sprint("v", i)), Key: []byte(fmt.Sprint("key-", i)), Headers: []*logv1.Header{{Key: "h", Value: []byte(fmt.Sprint("hv-", i))}}}
	}
	if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: recs}); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := c.ConsumeStream(sctx, &logv1.ConsumeRequest{MaxBatch: 64})
	if err != nil {
		t.Fatal(err)
	}
	for got := 0; got < n; {
		res, err := cs.Receive()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.GetRecords() {
			i := int(r.GetOffset())
			if string(r.GetKey()) != fmt.Sprint("key-", i) || string(r.GetValue()) != fmt.Sprint("v", i) ||
				len(r.GetHeaders()) != 1 || string(r.GetHeaders()[0].GetValue()) != fmt.Sprint("hv-", i) {
				t.Fatalf("offset %d: key %q value %q headers %v", i, r.GetKey(), r.GetValue(), r.GetHeaders())
			}
			got++
		}
	}
}

// TestRecordSizeDefaultTopicLimit: a max_record_bytes set on the default topic (AlterTopicConfig)
// bounds every record produced to it on every path, the seed's plain records (no key, headers
// or timestamp) included, as it bounds records with a key; records within it are stored.
func TestRecordSizeDefaultTopicLimit(t *testing.T) {
	srv := startServer(t, Config{Transport: TransportConnect})
	c := newClient(t, TransportConnect, srv.Addr())
	ctx := ctxT(t, 30*time.Second)
	limit := uint32(16)
	if _, err := c.(transport.TopicsClient).AlterTopicConfig(ctx, &logv1.AlterTopicConfigRequest{Name: fsm.DefaultTopic, MaxRecordBytes: &limit}); err != nil {
		t.Fatalf("AlterTopicConfig(default): %v", err)
	}
	big, small := bytes.Repeat([]byte{'x'}, 100), []byte("fits")
	paths := map[string]func(r *logv1.Record) error{
		"Produce": func(r *logv1.Record) error {
			_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: r})
			return err
		},
		"ProduceBatch": func(r *logv1.Record) error {
			_, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{r}})
			return err
		},
	}
	for name, produce := range paths {
		for _, r := range []*logv1.Record{{Value: big}, {Value: big, Key: []byte("k")}} {
			if err := produce(r); transport.CodeOf(err) != transport.ResourceExhausted {
				t.Errorf("%s of a 100-byte record (key %q) to the default topic limited to %d bytes: %v, want ResourceExhausted", name, r.Key, limit, err)
			}
		}
		if err := produce(&logv1.Record{Value: small}); err != nil {
			t.Errorf("%s of a record within the limit: %v", name, err)
		}
	}
	b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{Linearizable: true})
	if err != nil || b.GetNextOffset() != 2 {
		t.Fatalf("GetBounds = %v, %v; want the two small records only", b, err)
	}
}

// TestProduceStreamMessageRefusedWithItsCode: a ProduceStream message the transport refuses
// before decoding it (larger than the stream's per-message bound) ends the stream with
// ResourceExhausted, as Produce answers it (DESIGN.md §2), not Internal; and a malformed one
// with InvalidArgument (gRPC, whose server decodes each message itself). Nothing is stored.
func TestProduceStreamMessageRefusedWithItsCode(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			srv := startServer(t, Config{Transport: tr, MaxRecordBytes: 1024})
			c := newClient(t, tr, srv.Addr())
			ctx := ctxT(t, 30*time.Second)
			ps, err := c.ProduceStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer ps.Close()
			// The bound of one stream message is MaxRecordBytes + 64 KiB.
			_ = ps.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: make([]byte, 200<<10)}})
			_ = ps.CloseSend()
			_, err = ps.Receive()
			if code := transport.CodeOf(err); code != transport.ResourceExhausted {
				t.Errorf("ProduceStream of a 200 KiB message: %v (code %v), want ResourceExhausted", err, code)
			}
			b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{Linearizable: true})
			if err != nil {
				t.Fatal(err)
			}
			if b.GetNextOffset() != 0 {
				t.Fatalf("next offset %d after the refused message, want 0", b.GetNextOffset())
			}
		})
	}
	t.Run("grpc/malformed", func(t *testing.T) {
		srv := startServer(t, Config{Transport: TransportGRPC})
		// Field 1 (record) as bytes whose length runs past the message's end.
		msg := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.BytesType), 100)
		if code := rawGRPC(t, srv.Addr(), transport.MethodProduceStream, nil, grpcFrame(msg)); code != fmt.Sprint(int(transport.InvalidArgument)) {
			t.Errorf("ProduceStream of a malformed message: grpc-status %s, want %d (InvalidArgument)", code, transport.InvalidArgument)
		}
	})
}

// TestProduceStreamEndsUnavailableOnStop: a server that stops while a ProduceStream is open
// ends it with Unavailable and the NotProposed detail (nothing it had not answered was
// proposed: the client may send it again elsewhere), not with OK, which says that every
// request was answered, nor with Canceled, which the client did not ask for.
func TestProduceStreamEndsUnavailableOnStop(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			srv := startServer(t, Config{Transport: tr})
			c := newClient(t, tr, srv.Addr())
			ctx := ctxT(t, 30*time.Second)
			ps, err := c.ProduceStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer ps.Close()
			if err := ps.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("a")}}); err != nil {
				t.Fatal(err)
			}
			if _, err := ps.Receive(); err != nil {
				t.Fatal(err)
			}
			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				srv.shutdown(t)
			}()
			_, err = ps.Receive()
			<-stopped
			if transport.CodeOf(err) != transport.Unavailable || !transport.IsNotProposed(err) {
				t.Errorf("ProduceStream open while the server stopped ended with %v (code %v), want Unavailable with the NotProposed detail", err, transport.CodeOf(err))
			}
		})
	}
}

// TestRecordAtMaxRecordBytesIsStored: a record exactly at --max-record-bytes is stored, on
// every produce path, also at the largest limit a record may have (fsm.MaxRecordValueBytes,
// 4 MiB): the command that carries it alone is larger than the record, and the leader's
// command bound must not refuse what the record bound allows. (A larger limit is refused by
// New: TestNewRejectsInvalidConfig.)
func TestRecordAtMaxRecordBytesIsStored(t *testing.T) {
	const limit = fsm.MaxRecordValueBytes
	srv := startServer(t, Config{MaxRecordBytes: limit})
	c, err := tconnect.NewClient(srv.Addr(), transport.ClientConfig{MaxMessageBytes: 2 * limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := ctxT(t, 60*time.Second)
	value := bytes.Repeat([]byte{'v'}, limit)
	keyed := &logv1.Record{Value: value[:limit-10], Key: []byte("k"), Headers: []*logv1.Header{{Key: "h", Value: make([]byte, 8)}}}
	paths := []struct {
		name    string
		produce func() (uint64, error)
	}{
		{"Produce", func() (uint64, error) {
			res, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: value}})
			return res.GetOffset(), err
		}},
		{"ProduceBatch", func() (uint64, error) {
			res, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{{Value: value}}})
			return res.GetBaseOffset(), err
		}},
		{"Produce keyed", func() (uint64, error) {
			res, err := c.Produce(ctx, &logv1.ProduceRequest{Record: keyed})
			return res.GetOffset(), err
		}},
	}
	for i, p := range paths {
		off, err := p.produce()
		if err != nil {
			t.Fatalf("%s of a %d-byte record with --max-record-bytes %d: %v", p.name, limit, limit, err)
		}
		if off != uint64(i) {
			t.Fatalf("%s stored at %d, want %d", p.name, off, i)
		}
		res, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: off})
		if err != nil {
			t.Fatalf("Consume(%d): %v", off, err)
		}
		want := value
		if p.name == "Produce keyed" {
			want = keyed.GetValue()
		}
		if got := res.GetRecord().GetValue(); !bytes.Equal(got, want) {
			t.Fatalf("Consume(%d) returned %d bytes, want %d", off, len(got), len(want))
		}
	}
}

// TestFollowerForwardsLargeRequests: a follower forwards to the leader every write its own
// bounds admit, as the leader would store it itself: a record at --max-record-bytes (4 MiB,
// the largest) and a batch above 4 MiB that makes one command, both above the 4 MiB a
// transport client sends by default.
func TestFollowerForwardsLargeRequests(t *testing.T) {
	const limit = fsm.MaxRecordValueBytes
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			nodes := startClusterWith(t, 2, func(_ int, cfg *Config) {
				cfg.MaxRecordBytes = limit
				cfg.Transport = tr
			})
			newc := tconnect.NewClient
			if tr == TransportGRPC {
				newc = tgrpc.NewClient
			}
			c, err := newc(nodes[1].Addr(), transport.ClientConfig{MaxMessageBytes: 8 << 20})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			ctx := ctxT(t, 60*time.Second)
			one, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: bytes.Repeat([]byte{'z'}, limit)}})
			if err != nil {
				t.Fatalf("Produce of a %d-byte record to the follower (--max-record-bytes %d): %v", limit, limit, err)
			}
			if one.GetOffset() != 0 {
				t.Fatalf("Produce stored at %d, want 0", one.GetOffset())
			}
			batch := []*logv1.Record{{Value: bytes.Repeat([]byte{'a'}, 2_100_000)}, {Value: bytes.Repeat([]byte{'b'}, 2_100_000)}}
			res, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: batch})
			if err != nil {
				t.Fatalf("ProduceBatch of 4.2 MB to the follower: %v", err)
			}
			if res.GetBaseOffset() != 1 {
				t.Fatalf("ProduceBatch stored at %d, want 1", res.GetBaseOffset())
			}
		})
	}
}

// TestConsumeStreamBatchFitsMessageBound: with --max-record-bytes at its largest, a batched
// ConsumeStream whose batch already holds almost 1 MiB when a large record comes sends that
// record in a message of its own: batched with the rest it made a message beyond the
// transport's bound, and the stream failed (ResourceExhausted) at that offset on every retry,
// though each record fits a message alone (Consume reads it).
func TestConsumeStreamBatchFitsMessageBound(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			srv := startServer(t, Config{Transport: tr, MaxRecordBytes: fsm.MaxRecordValueBytes})
			newc := tconnect.NewClient
			if tr == TransportGRPC {
				newc = tgrpc.NewClient
			}
			c, err := newc(srv.Addr(), transport.ClientConfig{MaxMessageBytes: fsm.MaxRecordValueBytes + 64<<10})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := ctxT(t, 60*time.Second)
			sizes := []int{maxStreamBatchBytes - 4<<10, fsm.MaxRecordValueBytes - 4<<10}
			for i, n := range sizes {
				if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: bytes.Repeat([]byte{byte('a' + i)}, n)}}); err != nil {
					t.Fatalf("produce %d bytes: %v", n, err)
				}
			}
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			cs, err := c.ConsumeStream(sctx, &logv1.ConsumeRequest{MaxBatch: 1024})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			for got := 0; got < len(sizes); {
				res, err := cs.Receive()
				if err != nil {
					t.Fatalf("after %d records: %v", got, err)
				}
				for _, r := range res.GetRecords() {
					if r.GetOffset() != uint64(got) || len(r.GetValue()) != sizes[got] {
						t.Fatalf("record %d: offset %d, %d bytes", got, r.GetOffset(), len(r.GetValue()))
					}
					got++
				}
			}
		})
	}
}

// TestConsumeStreamBatchCountsHeaders: a batched ConsumeStream bounds its messages by the
// records' encoded size, headers' framing included. Records with many tiny headers (1024
// headers of one byte each: 1 KiB counted by the record-size limit, 5 KiB on the wire) were
// batched by their key, header and value bytes only: 1024 of them made a 5 MiB message, beyond
// the transport's bound, and the stream failed (ResourceExhausted) at that offset on every
// retry, though each record fits a message alone.
func TestConsumeStreamBatchCountsHeaders(t *testing.T) {
	const records, headers = 1024, fsm.MaxRecordHeaders
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			srv := startServer(t, Config{Transport: tr})
			c := newClient(t, tr, srv.Addr())
			ctx := ctxT(t, 60*time.Second)
			hdrs := make([]*logv1.Header, headers)
			for i := range hdrs {
				hdrs[i] = &logv1.Header{Key: "k"}
			}
			for range records / 256 {
				batch := make([]*logv1.Record, 256)
				for i := range batch {
					batch[i] = &logv1.Record{Headers: hdrs}
				}
				if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: batch}); err != nil {
					t.Fatalf("ProduceBatch: %v", err)
				}
			}
			readBatched(ctx, t, c, records, records, func(r *logv1.Record) bool { return len(r.GetHeaders()) == headers })
		})
	}
}

// TestConsumeStreamBatchWithinSmallRequestBound: with --max-request-bytes below the 1 MiB a
// batched ConsumeStream message may hold (a server of small records: --max-record-bytes 1024,
// --max-request-bytes 66 KiB, which bound responses too), batches stay within that bound: 100
// records of 1000 bytes were sent in one 102 KB message, beyond it, and the stream failed
// (ResourceExhausted) at that offset on every retry.
func TestConsumeStreamBatchWithinSmallRequestBound(t *testing.T) {
	const records, size = 100, 1000
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			srv := startServer(t, Config{Transport: tr, MaxRecordBytes: 1024, MaxRequestBytes: 1024 + 64<<10})
			c := newClient(t, tr, srv.Addr())
			ctx := ctxT(t, 30*time.Second)
			batch := make([]*logv1.Record, records)
			for i := range batch {
				batch[i] = &logv1.Record{Value: make([]byte, size)}
				rand.Read(batch[i].Value) // incompressible: Connect checks its bound on the compressed message
			}
			for i := 0; i < records; i += 50 {
				if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: batch[i : i+50]}); err != nil {
					t.Fatalf("ProduceBatch: %v", err)
				}
			}
			readBatched(ctx, t, c, records, 1024, func(r *logv1.Record) bool { return len(r.GetValue()) == size })
		})
	}
}

// readBatched reads records records from offset 0 with a batched ConsumeStream (maxBatch), and
// fails unless they come in order and each is ok.
func readBatched(ctx context.Context, t *testing.T, c transport.Client, records int, maxBatch uint32, ok func(*logv1.Record) bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{MaxBatch: maxBatch})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for got := 0; got < records; {
		res, err := cs.Receive()
		if err != nil {
			t.Fatalf("after %d records: %v", got, err)
		}
		for _, r := range res.GetRecords() {
			if r.GetOffset() != uint64(got) || !ok(r) {
				t.Fatalf("record %d: offset %d, %d bytes, %d headers", got, r.GetOffset(), len(r.GetValue()), len(r.GetHeaders()))
			}
			got++
		}
	}
}
