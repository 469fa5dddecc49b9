package server

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	craft "github.com/commitlog-go/commitlog/consensus/raft"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestProduceStreamSplitsCommands: 600 pipelined 8 KiB records (4.8 MiB, more than one 4 MiB
// command) all succeed, answered in order, stored in order.
func TestProduceStreamSplitsCommands(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			srv := startServer(t, Config{Transport: tr})
			c := newClient(t, tr, srv.Addr())
			ctx := ctxT(t, 60*time.Second)
			ps, err := c.ProduceStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer ps.Close()
			const n, size = 600, 8 << 10
			value := func(i int) []byte {
				v := make([]byte, size)
				binary.BigEndian.PutUint32(v, uint32(i))
				return v
			}
			produceStreamInOrder(t, ps, n, value)
			for _, off := range []uint64{0, 299, 511, 512, 599} {
				got, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: off})
				if err != nil {
					t.Fatalf("Consume(%d): %v", off, err)
				}
				if !bytes.Equal(got.GetRecord().GetValue(), value(int(off))) {
					t.Fatalf("record %d holds request %d's value", off, binary.BigEndian.Uint32(got.GetRecord().GetValue()))
				}
			}
		})
	}
}

// gatedStream is a ProduceStream whose requests arrive as fast as the server reads them and
// whose responses wait for open. It records how far the server read ahead of its answers.
type gatedStream struct {
	total int
	value func(i int) []byte
	// request, when set, makes each request instead of value.
	request func() *logv1.ProduceRequest
	open    chan struct{}

	mu       sync.Mutex
	received int      // requests returned by Receive
	answered int      // responses sent
	maxAhead int      // the most received-and-unanswered requests when Receive was called
	offsets  []uint64 // responses, in order
}

func (s *gatedStream) Receive() (*logv1.ProduceRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxAhead = max(s.maxAhead, s.received-s.answered)
	if s.received == s.total {
		return nil, io.EOF
	}
	s.received++
	if s.request != nil {
		return s.request(), nil
	}
	return &logv1.ProduceRequest{Record: &logv1.Record{Value: s.value(s.received - 1)}}, nil
}

func (s *gatedStream) Send(r *logv1.ProduceResponse) error {
	<-s.open
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answered++
	s.offsets = append(s.offsets, r.GetOffset())
	return nil
}

func (s *gatedStream) counts() (received, answered int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received, s.answered
}

// TestProduceStreamBackpressure: while the client reads no response, the server reads no more
// of the stream than its in-flight budget allows; then every request is answered in order.
func TestProduceStreamBackpressure(t *testing.T) {
	const budget, size = 64 << 10, 8 << 10
	srv := startServer(t, Config{MaxRecordBytes: 16 << 10, MaxStreamInflightBytes: budget})
	fits := budget / streamCost(&logv1.ProduceRequest{Record: &logv1.Record{Value: make([]byte, size)}})
	st := &gatedStream{total: 300, value: func(int) []byte { return make([]byte, size) }, open: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- srv.svc.ProduceStream(ctxT(t, 60*time.Second), st) }()
	// The server reads what fits in its budget, and one more request that waits for room.
	waitFor(t, 20*time.Second, "the server fills its in-flight budget", func() bool {
		received, _ := st.counts()
		return received >= fits+1
	})
	received, answered := st.counts()
	if received != fits+1 || answered != 0 {
		t.Errorf("with no response read: %d requests received, %d answered; want %d received (budget %d bytes)", received, answered, fits+1, budget)
	}
	close(st.open)
	if err := <-done; err != nil {
		t.Fatalf("ProduceStream: %v", err)
	}
	if st.maxAhead > fits {
		t.Errorf("the server read %d requests ahead of its answers, want at most %d (budget %d bytes)", st.maxAhead, fits, budget)
	}
	if len(st.offsets) != st.total {
		t.Fatalf("%d responses, want %d", len(st.offsets), st.total)
	}
	for i, off := range st.offsets {
		if off != uint64(i) {
			t.Fatalf("response %d has offset %d", i, off)
		}
	}
}

// TestProduceStreamBudgetCountsReceivedBytes: the in-flight budget counts what a received
// request holds, not only its record's key, header and value bytes. Requests of 16 value
// bytes, 256 empty headers (2 bytes each on the wire, a struct each once decoded) and an 8 KiB
// field this server does not know (kept by the decoder) counted 80 bytes each: with a 64 KiB
// budget and no response read, the server read and held all 300 of them (2.6 MB received,
// more in memory) instead of stopping at its budget.
func TestProduceStreamBudgetCountsReceivedBytes(t *testing.T) {
	const budget, total = 64 << 10, 300
	srv := startServer(t, Config{MaxRecordBytes: 16 << 10, MaxStreamInflightBytes: budget})
	rec := &logv1.Record{Value: make([]byte, 16), Headers: make([]*logv1.Header, 256)}
	for i := range rec.Headers {
		rec.Headers[i] = &logv1.Header{}
	}
	wire, err := proto.Marshal(&logv1.ProduceRequest{Record: rec})
	if err != nil {
		t.Fatal(err)
	}
	wire = protowire.AppendBytes(protowire.AppendTag(wire, 99, protowire.BytesType), make([]byte, 8<<10))
	request := func() *logv1.ProduceRequest {
		var req logv1.ProduceRequest
		if err := proto.Unmarshal(wire, &req); err != nil {
			t.Error(err)
		}
		return &req
	}
	// What one request holds: its bytes as received, and a struct per header.
	held := len(wire) + len(rec.Headers)*int(unsafe.Sizeof(logv1.Header{}))
	st := &gatedStream{total: total, request: request, open: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- srv.svc.ProduceStream(ctxT(t, 60*time.Second), st) }()
	waitFor(t, 20*time.Second, "the server reads", func() bool {
		received, _ := st.counts()
		return received > 0
	})
	time.Sleep(200 * time.Millisecond) // room to read on, were the budget not spent
	// The server holds what fits in its budget, and reads one more request that waits for room.
	if received, _ := st.counts(); (received-1)*held > budget {
		t.Errorf("with no response read: %d requests of %d bytes held received; the budget is %d bytes", received, held, budget)
	}
	close(st.open)
	if err := <-done; err != nil {
		t.Fatalf("ProduceStream: %v", err)
	}
	if len(st.offsets) != total {
		t.Fatalf("%d responses, want %d", len(st.offsets), total)
	}
}

// TestProduceStreamRequestWithoutRecord: a ProduceStream request that carries no record (an
// empty message, as any client can send) ends the stream with InvalidArgument, as Produce
// answers it, and nothing is stored. It made the server dereference the missing record while
// sizing the request's command: with --transport grpc the panic killed the server process
// (grpc-go recovers no handler panic); over Connect the stream was reset without a status.
func TestProduceStreamRequestWithoutRecord(t *testing.T) {
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
			if res, err := ps.Receive(); err != nil || res.GetOffset() != 0 {
				t.Fatalf("first record: %v, %v", res, err)
			}
			_ = ps.Send(&logv1.ProduceRequest{}) // an error here says the stream broke: Receive tells why
			if res, err := ps.Receive(); transport.CodeOf(err) != transport.InvalidArgument {
				t.Fatalf("after a request without a record: %v, %v; want InvalidArgument", res, err)
			}
			if res, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("b")}}); err != nil || res.GetOffset() != 1 {
				t.Fatalf("Produce after the refused stream: %v, %v; want offset 1", res, err)
			}
		})
	}
}

// TestProduceStreamSplitsCoalesced: while the first response waits, the server queues more
// than 512 requests of 8 KiB; it then takes 512 at once (4.2 MiB, more than one command holds)
// and must split them: every request is answered, in order, and stored in order.
func TestProduceStreamSplitsCoalesced(t *testing.T) {
	srv := startServer(t, Config{})
	value := func(i int) []byte {
		v := make([]byte, 8<<10)
		binary.BigEndian.PutUint32(v, uint32(i))
		return v
	}
	st := &gatedStream{total: 600, value: value, open: make(chan struct{})}
	done := make(chan error, 1)
	ctx := ctxT(t, 60*time.Second)
	go func() { done <- srv.svc.ProduceStream(ctx, st) }()
	waitFor(t, 20*time.Second, "more than a batch queued", func() bool {
		received, _ := st.counts()
		return received > maxStreamBatch
	})
	close(st.open)
	if err := <-done; err != nil {
		t.Fatalf("ProduceStream: %v", err)
	}
	if len(st.offsets) != st.total {
		t.Fatalf("%d responses, want %d", len(st.offsets), st.total)
	}
	for i, off := range st.offsets {
		if off != uint64(i) {
			t.Fatalf("response %d has offset %d", i, off)
		}
		rec, err := srv.fsm.Read(ctx, off)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if !bytes.Equal(rec.Value, value(i)) {
			t.Fatalf("offset %d holds request %d's value", off, binary.BigEndian.Uint32(rec.Value))
		}
	}
}

// TestCommandGroups: records are split, in order, into commands within the state machine's
// byte and record limits; a record too large alone is a group of its own.
func TestCommandGroups(t *testing.T) {
	srv := startServer(t, Config{MaxRecordBytes: 4 << 20, MaxBatchRecords: 5})
	lim := srv.fsm.Limits()
	recs := func(sizes ...int) []*logv1.Record {
		out := make([]*logv1.Record, len(sizes))
		for i, n := range sizes {
			out[i] = &logv1.Record{Value: make([]byte, n)}
		}
		return out
	}
	sizesOf := func(groups [][]*logv1.Record) [][]int {
		var out [][]int
		for _, g := range groups {
			var s []int
			for _, r := range g {
				s = append(s, len(r.GetValue()))
			}
			out = append(out, s)
		}
		return out
	}
	half := lim.MaxCommandBytes / 2
	for _, tc := range []struct {
		in   []*logv1.Record
		want string
	}{
		{recs(1, 2, 3), "[[1 2 3]]"},
		{recs(1, 2, 3, 4, 5, 6, 7), "[[1 2 3 4 5] [6 7]]"}, // records per command
		{recs(half, half, 1), fmt.Sprint([][]int{{half}, {half, 1}})},
		{recs(1, lim.MaxCommandBytes, 2), fmt.Sprint([][]int{{1}, {lim.MaxCommandBytes}, {2}})},
	} {
		got := srv.svc.commandGroups(tc.in, 0)
		if fmt.Sprint(sizesOf(got)) != tc.want {
			t.Errorf("commandGroups = %v, want %s", sizesOf(got), tc.want)
		}
		n := 0
		for _, g := range got {
			for _, r := range g {
				if r != tc.in[n] {
					t.Fatalf("record %d out of order", n)
				}
				n++
			}
		}
	}
}

// allocated returns the bytes the whole process allocates while f runs.
func allocated(f func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// grpcFrame frames msg as one uncompressed gRPC message.
func grpcFrame(msg []byte) []byte {
	frame := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	return append(frame, msg...)
}

// rawGRPC makes one gRPC call carrying frame (see grpcFrame), with no client library, over TLS,
// or over plaintext HTTP/2 (h2c) when tlsCfg is nil, and returns the grpc-status.
func rawGRPC(t *testing.T, addr, method string, tlsCfg *tls.Config, frame []byte) string {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: tlsCfg, Protocols: new(http.Protocols)}
	scheme := "https://"
	if tlsCfg == nil {
		scheme = "http://"
		tr.Protocols.SetUnencryptedHTTP2(true)
	} else {
		tr.Protocols.SetHTTP2(true)
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctxT(t, 30*time.Second), http.MethodPost, scheme+addr+method, bytes.NewReader(frame))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if code := res.Header.Get("Grpc-Status"); code != "" {
		return code
	}
	return res.Trailer.Get("Grpc-Status")
}

// TestDeniedBatchCostsNothing: with TLS and the seed's ACL, a 4 MiB ProduceBatch of ~2 M empty
// records is refused from a caller the policy denies before it is read (PermissionDenied: under
// 32 MiB allocated), and from root because it carries too many records, counted before
// decoding.
func TestDeniedBatchCostsNothing(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			pki := newTestPKI(t)
			srv := startServer(t, pki.secureConfig(tr, filepath.Join(seedACLDir, "policy.csv")))
			rec := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.BytesType), 0)
			batch := bytes.Repeat(rec, (4<<20)/len(rec)-16)
			frame := grpcFrame(batch)
			for _, who := range []struct {
				cn       string
				want     []transport.Code
				maxAlloc uint64
			}{
				// Refused before the body is read.
				{"nobody", []transport.Code{transport.PermissionDenied}, 32 << 20},
				// Read (connect-go's read buffer grows by doubling, about 8 times the
				// message under -race), counted, refused before decoding; decoding would
				// allocate some 300 MiB. ResourceExhausted on both transports.
				{"root", []transport.Code{transport.ResourceExhausted}, 64 << 20},
			} {
				tlsCfg := pki.client(pki.cert(who.cn, certgen.Client, certgen.Options{CommonName: who.cn}))
				var code string
				n := allocated(func() { code = rawGRPC(t, srv.Addr(), transport.MethodProduceBatch, tlsCfg, frame) })
				ok := false
				for _, c := range who.want {
					ok = ok || code == fmt.Sprint(int(c))
				}
				if !ok {
					t.Errorf("%s: ProduceBatch of %d records: grpc-status %s, want %v", who.cn, len(batch)/len(rec), code, who.want)
				}
				if n > who.maxAlloc {
					t.Errorf("%s: ProduceBatch of 2 M records made the process allocate %d MiB, want under %d MiB", who.cn, n>>20, who.maxAlloc>>20)
				}
				t.Logf("%s: ProduceBatch of %d records: grpc-status %s, %d KiB allocated", who.cn, len(batch)/len(rec), code, n>>10)
			}
			if _, next := srv.fsm.Bounds(); next != 0 {
				t.Errorf("%d records appended", next)
			}
		})
	}
}

// TestRaftAppendEntriesBoundedByCommandBytes: the server tells Raft its largest command, so
// that one AppendEntries RPC carries about craft.MaxAppendBytes at most (8 commands at the
// default 4 MiB, 32 MiB), not hashicorp/raft's 512 commands whatever their size: with 4 MiB
// ProduceBatch commands a follower catching up received 2 GiB RPCs, and peaked at 8 GB of
// memory (the leader at 4.3 GB); with 64 (256 MiB RPCs) followers took seconds to store one,
// longer than the leader's lease, and the leader stepped down again and again.
func TestRaftAppendEntriesBoundedByCommandBytes(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want int
	}{
		{Config{}, 8},
		{Config{MaxRecordBytes: fsm.MaxRecordValueBytes}, 7}, // commands a little over 4 MiB
	} {
		srv := startServer(t, tt.cfg)
		cmd := srv.fsm.Limits().MaxCommandBytes
		got := srv.node.MaxAppendEntries()
		srv.shutdown(t)
		if got != tt.want || got*cmd > craft.MaxAppendBytes {
			t.Errorf("max record bytes %d (commands up to %d B): Raft sends up to %d entries per AppendEntries, want %d (at most %d B)",
				tt.cfg.MaxRecordBytes, cmd, got, tt.want, craft.MaxAppendBytes)
		}
	}
}
