package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// memberlist's Shutdown does not wait for a probe already under way when a node stops
		// without leaving (as tests that restart a node must): the probe goroutine ends on its
		// own timeout, sometimes after the last test. Every other goroutine still counts.
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
		// A proposal whose entry raft had committed and queued for the FSM goroutine when it
		// shut down is never resolved by hashicorp/raft v1.8.0: consensus/raft's Node.await
		// leaves its waiting goroutine, holding only the future (see await's doc comment).
		goleak.IgnoreAnyFunction("github.com/commitlog-go/commitlog/consensus/raft.(*Node).await.func1"),
	)
}

var transports = []string{TransportConnect, TransportGRPC}

// testServer runs a Server until the test ends (or stop is called).
type testServer struct {
	*Server
	done     chan error
	stop     context.CancelFunc
	stopOnce sync.Once
}

func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	return startNode(t, cfg, true)
}

// startNode starts a server; with wantLeader it waits until the server leads.
func startNode(t *testing.T, cfg Config, wantLeader bool) *testServer {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.NodeName == "" {
		cfg.NodeName = "node-0"
	}
	cfg.BindAddr = "127.0.0.1:0"
	cfg.RPCPort = -1
	// COMMITLOG_TEST_LOG=1 shows the servers' debug logs (not -v: make test always runs -v).
	if os.Getenv("COMMITLOG_TEST_LOG") != "" && cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: srv, done: make(chan error, 1), stop: cancel}
	go func() { ts.done <- srv.Run(ctx) }()
	t.Cleanup(func() { ts.shutdown(t) })
	if wantLeader {
		waitLeader(t, srv)
	}
	return ts
}

// shutdown stops the server and waits for Run to return. Idempotent.
func (ts *testServer) shutdown(t *testing.T) {
	t.Helper()
	ts.stopOnce.Do(func() {
		ts.stop()
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			// The goroutines say where it hangs: the log of a CI run is all there is of it.
			buf := make([]byte, 4<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("Run did not return after its context ended; goroutines:\n%s", buf)
		}
	})
}

func waitLeader(t *testing.T, s *Server) {
	t.Helper()
	waitFor(t, 20*time.Second, "the node leads", s.node.IsLeader)
}

func newClient(t *testing.T, tr, addr string) transport.Client {
	t.Helper()
	newc := tconnect.NewClient
	if tr == TransportGRPC {
		newc = tgrpc.NewClient
	}
	c, err := newc(addr, transport.ClientConfig{})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestSingleNodeAPI(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			srv := startServer(t, Config{Transport: tr})
			c := newClient(t, tr, srv.Addr())
			ctx := ctxT(t, 30*time.Second)

			for i := range 3 {
				res, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: fmt.Appendf(nil, "r%d", i), Type: 7}})
				if err != nil {
					t.Fatalf("Produce %d: %v", i, err)
				}
				if res.GetOffset() != uint64(i) {
					t.Fatalf("Produce %d: offset %d", i, res.GetOffset())
				}
			}
			batch, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{{Value: []byte("b0")}, {Value: []byte("b1")}}})
			if err != nil || batch.GetBaseOffset() != 3 || batch.GetCount() != 2 {
				t.Fatalf("ProduceBatch = %v, %v; want base 3 count 2", batch, err)
			}
			want := []string{"r0", "r1", "r2", "b0", "b1"}
			for off, v := range want {
				res, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: uint64(off)})
				if err != nil {
					t.Fatalf("Consume %d: %v", off, err)
				}
				if r := res.GetRecord(); string(r.GetValue()) != v || r.GetOffset() != uint64(off) || r.GetTerm() == 0 {
					t.Fatalf("Consume %d = %v, want value %q", off, r, v)
				}
			}
			if res, _ := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 0}); res.GetRecord().GetType() != 7 {
				t.Errorf("record type = %d, want 7 (kept from the produce)", res.GetRecord().GetType())
			}
			lin, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 4, Linearizable: true})
			if err != nil || string(lin.GetRecord().GetValue()) != "b1" {
				t.Fatalf("linearizable Consume = %v, %v", lin, err)
			}

			// An offset not yet written is OutOfRange at once (the seed's contract).
			_, err = c.Consume(ctx, &logv1.ConsumeRequest{Offset: 5})
			if code := transport.CodeOf(err); code != transport.OutOfRange {
				t.Fatalf("Consume past the end: %v (code %v), want OutOfRange", err, code)
			}

			// A long poll (max_wait_ms) is answered as soon as the record is written.
			got := make(chan error, 1)
			go func() {
				res, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 5, MaxWaitMs: 30_000})
				if err == nil && string(res.GetRecord().GetValue()) != "late" {
					err = fmt.Errorf("got %q", res.GetRecord().GetValue())
				}
				got <- err
			}()
			// Only once the server holds the read (a goroutine parked in the state machine's
			// Read) is the record written: the long poll is seen waiting, not given time.
			waitParked(t, "fsm.(*FSM).Read", got)
			if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("late")}}); err != nil {
				t.Fatal(err)
			}
			if err := <-got; err != nil {
				t.Fatalf("long-poll Consume: %v", err)
			}

			bounds, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{})
			if err != nil || bounds.GetLowestOffset() != 0 || bounds.GetNextOffset() != 6 {
				t.Fatalf("GetBounds = %v, %v", bounds, err)
			}
			servers, err := c.GetServers(ctx, &logv1.GetServersRequest{})
			if err != nil || len(servers.GetServers()) != 1 || !servers.GetServers()[0].GetIsLeader() ||
				servers.GetServers()[0].GetRpcAddr() != srv.Addr() || servers.GetServers()[0].GetId() != "node-0" {
				t.Fatalf("GetServers = %v, %v", servers, err)
			}

			// Bad input: a batch with no records, and a record larger than the limit.
			if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{}); transport.CodeOf(err) != transport.InvalidArgument {
				t.Errorf("empty batch: %v, want InvalidArgument", err)
			}
			huge := make([]byte, DefaultMaxRecordBytes+1)
			if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: huge}}); transport.CodeOf(err) != transport.ResourceExhausted {
				t.Errorf("oversized record: %v, want ResourceExhausted", err)
			}
			if res, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 5}); err != nil || string(res.GetRecord().GetValue()) != "late" {
				t.Errorf("after bad input, Consume 5 = %v, %v: stored data changed", res, err)
			}
		})
	}
}

func TestStreams(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			srv := startServer(t, Config{Transport: tr})
			c := newClient(t, tr, srv.Addr())
			ctx := ctxT(t, 30*time.Second)

			// ProduceStream: responses in order, offsets dense.
			ps, err := c.ProduceStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			const n = 200
			produceStreamInOrder(t, ps, n, func(i int) []byte { return fmt.Appendf(nil, "s%d", i) })
			_ = ps.Close()

			// Many tailing consumers see the old records, then new ones.
			const consumers = 4
			streams := make([]transport.ClientStream[logv1.ConsumeResponse], consumers)
			for i := range streams {
				if streams[i], err = c.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 0}); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 10 {
				if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: fmt.Appendf(nil, "t%d", i)}}); err != nil {
					t.Fatal(err)
				}
			}
			for i, s := range streams {
				for off := range uint64(n + 10) {
					res, err := s.Receive()
					if err != nil {
						t.Fatalf("stream %d at %d: %v", i, off, err)
					}
					if res.GetRecord().GetOffset() != off {
						t.Fatalf("stream %d: got offset %d, want %d", i, res.GetRecord().GetOffset(), off)
					}
				}
			}

			// A batched stream (max_batch) carries the same records, several per message.
			bs, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 3, MaxBatch: 64})
			if err != nil {
				t.Fatal(err)
			}
			messages := 0
			for off := uint64(3); off < n+10; {
				res, err := bs.Receive()
				if err != nil {
					t.Fatalf("batched stream at %d: %v", off, err)
				}
				messages++
				if res.GetRecord() != nil || len(res.GetRecords()) == 0 || len(res.GetRecords()) > 64 {
					t.Fatalf("batched message: record %v, %d records", res.GetRecord(), len(res.GetRecords()))
				}
				for _, r := range res.GetRecords() {
					if r.GetOffset() != off {
						t.Fatalf("batched stream: offset %d, want %d", r.GetOffset(), off)
					}
					off++
				}
			}
			if messages >= n+10-3 {
				t.Errorf("batched stream used %d messages for %d records: not batched", messages, n+10-3)
			}
			_ = bs.Close()

			// Shutdown with open streams: they end, and Run returns.
			srv.shutdown(t)
			for i, s := range streams {
				if _, err := s.Receive(); err == nil {
					t.Errorf("stream %d still open after shutdown", i)
				}
				_ = s.Close()
			}
		})
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, Config{DataDir: dir})
	c := newClient(t, TransportConnect, srv.Addr())
	ctx := ctxT(t, 60*time.Second)
	const n = 100
	for i := range n {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: fmt.Appendf(nil, "v%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	srv.shutdown(t)

	for round := range 2 {
		srv = startServer(t, Config{DataDir: dir})
		c = newClient(t, TransportConnect, srv.Addr())
		for i := range n + round {
			res, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: uint64(i)})
			if err != nil {
				t.Fatalf("round %d: Consume %d: %v", round, i, err)
			}
			want := fmt.Sprintf("v%d", i)
			if i == n {
				want = "after-restart"
			}
			if string(res.GetRecord().GetValue()) != want {
				t.Fatalf("round %d: offset %d = %q, want %q", round, i, res.GetRecord().GetValue(), want)
			}
		}
		if round == 0 {
			res, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("after-restart")}})
			if err != nil || res.GetOffset() != n {
				t.Fatalf("Produce after restart = %v, %v; want offset %d", res, err, n)
			}
		}
		srv.shutdown(t)
	}
}

func TestRetentionDeletesOldSegments(t *testing.T) {
	srv := startServer(t, Config{SegmentBytes: 4 << 10, RetentionBytes: 16 << 10, RetentionInterval: 50 * time.Millisecond})
	c := newClient(t, TransportConnect, srv.Addr())
	ctx := ctxT(t, 30*time.Second)
	value := make([]byte, 1000)
	for range 100 {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: value}}); err != nil {
			t.Fatal(err)
		}
	}
	var lowest uint64
	deadline := time.Now().Add(10 * time.Second)
	for lowest == 0 {
		if time.Now().After(deadline) {
			t.Fatal("retention deleted nothing in 10s")
		}
		b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		lowest = b.GetLowestOffset()
		time.Sleep(20 * time.Millisecond)
	}
	if lowest >= 100 {
		t.Fatalf("retention removed everything (log start %d): it must keep the active segment", lowest)
	}
	if _, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 0}); transport.CodeOf(err) != transport.OutOfRange {
		t.Fatalf("Consume below the log start: %v, want OutOfRange", err)
	}
	if _, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 99}); err != nil {
		t.Fatalf("Consume of the newest record: %v", err)
	}
}

// TestNewFailsCleanly: a node that cannot start returns an error (it used to panic) and leaves
// the running node and its data alone.
func TestNewFailsCleanly(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, Config{DataDir: dir})
	c := newClient(t, TransportConnect, srv.Addr())
	ctx := ctxT(t, 20*time.Second)
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("kept")}}); err != nil {
		t.Fatal(err)
	}

	// The same data directory: the storage engine's lock refuses it.
	if s2, err := New(Config{DataDir: dir, NodeName: "other", BindAddr: "127.0.0.1:0", RPCPort: -1}); err == nil {
		_ = s2.Close()
		t.Fatal("a second server opened a data directory in use")
	} else if !strings.Contains(err.Error(), "lock") {
		t.Errorf("second server on the same data dir: %v, want an error about the lock", err)
	}
	// A port in use.
	_, port, _ := net.SplitHostPort(srv.Addr())
	p, _ := strconv.Atoi(port)
	if s3, err := New(Config{DataDir: t.TempDir(), BindAddr: "127.0.0.1:0", RPCPort: p}); err == nil {
		_ = s3.Close()
		t.Fatal("a second server listened on a port in use")
	}
	// An invalid configuration.
	if _, err := New(Config{DataDir: t.TempDir(), Transport: "bogus"}); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("bogus transport: %v", err)
	}

	res, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 0})
	if err != nil || string(res.GetRecord().GetValue()) != "kept" {
		t.Fatalf("the running server after the failed starts: %v, %v", res, err)
	}
}

// waitParked polls until a goroutine whose stack holds fn is blocked (in a select, a channel
// receive or a sync.Cond wait, as a goroutine dump shows it), failing the test if early
// delivers first (what was to wait returned) or after 10s.
func waitParked(t testing.TB, fn string, early <-chan error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-early:
			t.Fatalf("returned before it was seen waiting in %s: %v", fn, err)
		default:
		}
		buf := make([]byte, 1<<20)
		for {
			n := runtime.Stack(buf, true)
			if n < len(buf) {
				buf = buf[:n]
				break
			}
			buf = make([]byte, 2*len(buf))
		}
		for _, g := range strings.Split(string(buf), "\n\n") {
			header, _, _ := strings.Cut(g, "\n")
			if !strings.Contains(g, fn) {
				continue
			}
			for _, state := range []string{"[select", "[chan receive", "[sync.Cond.Wait"} {
				if strings.Contains(header, state) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no goroutine blocked in %s within 10s", fn)
		}
		time.Sleep(time.Millisecond)
	}
}

// produceStreamInOrder pipelines n records (value(i)) on ps from another goroutine, closes its
// send side, and checks that the responses come back in order at offsets 0..n-1 and that the
// stream then ends.
func produceStreamInOrder(t *testing.T, ps transport.BidiClientStream[logv1.ProduceRequest, logv1.ProduceResponse], n int, value func(int) []byte) {
	t.Helper()
	sendErr := make(chan error, 1)
	go func() {
		for i := range n {
			if err := ps.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: value(i)}}); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- ps.CloseSend()
	}()
	for i := range n {
		res, err := ps.Receive()
		if err != nil {
			t.Fatalf("ProduceStream response %d: %v", i, err)
		}
		if res.GetOffset() != uint64(i) {
			t.Fatalf("ProduceStream response %d has offset %d", i, res.GetOffset())
		}
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Receive(); !errors.Is(err, io.EOF) {
		t.Fatalf("ProduceStream end: %v, want EOF", err)
	}
}
