package transporttest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	ggrpc "google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// Harness tells Run how to build the implementation under test.
type Harness struct {
	// NewServer builds an unstarted server from cfg.
	NewServer func(cfg transport.ServerConfig) (transport.Server, error)
	// NewClient builds a client for addr.
	NewClient transport.NewClientFunc
}

// callTimeout bounds every call of the suite, so a broken implementation
// fails instead of hanging.
const callTimeout = 10 * time.Second

// Run runs the conformance suite against h. Subtests run one after another,
// each with its own server on a loopback port.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"Unary", testUnary},
		{"Cluster", testCluster},
		{"ClusterUnimplemented", testClusterUnimplemented},
		{"Groups", testGroups},
		{"DescribeTopicRequireLeader", testDescribeTopicRequireLeader},
		{"ConsumeStream", testConsumeStream},
		{"ConsumeStreamReceiveAfterCancel", testConsumeStreamReceiveAfterCancel},
		{"ProduceStream", testProduceStream},
		{"Errors", testErrors},
		{"OversizedMessage", testOversized},
		{"Interceptor", testInterceptor},
		{"MutualTLS", testMutualTLS},
		{"ConfigMismatch", testConfigMismatch},
		{"Health", testHealth},
		{"Reflection", testReflection},
		{"StopEndsStreams", testStopEndsStreams},
		{"StopHealthWatchSeesNotServing", testStopHealthWatchSeesNotServing},
		{"StopIdempotent", testStopIdempotent},
		{"ClientClose", testClientClose},
		{"SeedWire", testSeedWire},
		{"Telemetry", testTelemetry},
		{"GzipBomb", testGzipBomb},
		{"AdmitBeforeRead", testAdmitBeforeRead},
		{"MalformedRequest", testMalformedRequest},
		{"AdmittedPeer", testAdmittedPeer},
		{"BatchRecords", testBatchRecords},
		{"BatchHeaders", testBatchHeaders},
		{"RecordHeaders", testRecordHeaders},
		{"RequestBounds", testRequestBounds},
		{"MaxConcurrentStreams", testMaxConcurrentStreams},
		{"HeaderBounds", testHeaderBounds},
		{"BrokenConnection", testBrokenConnection},
		{"ClosedConnection", testClosedConnection},
		{"ClientCloseEndsConnections", testClientCloseEndsConnections},
		{"HandlerPanic", testHandlerPanic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, h) })
	}
}

// Started is a running server of the suite.
type Started struct {
	Server  transport.Server
	Addr    string
	Service *Service
	serveCh chan error
}

// Start serves cfg on a fresh 127.0.0.1 port (cfg.Log defaults to a new
// Service) and stops the server when the test ends, checking that Serve
// returned nil.
func Start(t testing.TB, h Harness, cfg transport.ServerConfig) *Started {
	t.Helper()
	svc, _ := cfg.Log.(*Service)
	if cfg.Log == nil {
		svc = NewService()
		cfg.Log = svc
	}
	srv, err := h.NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &Started{Server: srv, Addr: l.Addr().String(), Service: svc, serveCh: make(chan error, 1)}
	go func() { s.serveCh <- srv.Serve(l) }()
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Stop stops the server (idempotent) and checks Serve's result.
func (s *Started) Stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := s.Server.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if s.serveCh == nil {
		return
	}
	select {
	case err := <-s.serveCh:
		// ErrServerStopped: Serve's goroutine had not called it yet when Stop ran (a short test
		// under load), which its contract answers so.
		if err != nil && !errors.Is(err, transport.ErrServerStopped) {
			t.Errorf("Serve returned %v after Stop, want nil", err)
		}
		s.serveCh = nil
	case <-ctx.Done():
		t.Errorf("Serve did not return after Stop")
	}
}

// Dial returns a client for s, closed when the test ends.
func Dial(t testing.TB, h Harness, addr string, cfg transport.ClientConfig) transport.Client {
	t.Helper()
	c, err := h.NewClient(addr, cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t testing.TB, what string, err error, codes ...transport.Code) {
	t.Helper()
	if _, ok := errors.AsType[*transport.Error](err); err != nil && !ok {
		t.Errorf("%s: error %v (%T) is not a *transport.Error", what, err, err)
	}
	if got := transport.CodeOf(err); !slices.Contains(codes, got) {
		t.Errorf("%s: code %v (err %v), want one of %v", what, got, err, codes)
	}
}

func testUnary(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{})
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	ctx := ctxT(t)

	for i, v := range []string{"a", "", "ccc"} {
		res, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(v)}})
		if err != nil {
			t.Fatalf("Produce %d: %v", i, err)
		}
		if res.GetOffset() != uint64(i) {
			t.Fatalf("Produce %d: offset %d", i, res.GetOffset())
		}
	}
	batch, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{{Value: []byte("d")}, {Value: []byte("e")}}})
	if err != nil {
		t.Fatalf("ProduceBatch: %v", err)
	}
	if batch.GetBaseOffset() != 3 || batch.GetCount() != 2 {
		t.Fatalf("ProduceBatch = %v, want base 3 count 2", batch)
	}
	for i, want := range []string{"a", "", "ccc", "d", "e"} {
		res, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: uint64(i), Linearizable: i%2 == 0})
		if err != nil {
			t.Fatalf("Consume %d: %v", i, err)
		}
		if got := res.GetRecord(); string(got.GetValue()) != want || got.GetOffset() != uint64(i) {
			t.Fatalf("Consume %d = %v, want value %q", i, got, want)
		}
	}
	bounds, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{})
	if err != nil {
		t.Fatalf("GetBounds: %v", err)
	}
	if bounds.GetLowestOffset() != 0 || bounds.GetNextOffset() != 5 || bounds.GetCommittedOffset() != 5 {
		t.Fatalf("GetBounds = %v", bounds)
	}
	servers, err := c.GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil {
		t.Fatalf("GetServers: %v", err)
	}
	if len(servers.GetServers()) != 1 || !servers.GetServers()[0].GetIsLeader() || servers.GetServers()[0].GetSuffrage() != logv1.Suffrage_SUFFRAGE_VOTER {
		t.Fatalf("GetServers = %v", servers)
	}
}

func testCluster(t *testing.T, h Harness) {
	svc := NewService()
	s := Start(t, h, transport.ServerConfig{Log: svc, Cluster: svc})
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	ctx := ctxT(t)

	if _, err := c.Join(ctx, &logv1.JoinRequest{Id: "b", RaftAddr: "127.0.0.1:2", RpcAddr: "127.0.0.1:3", Nonvoter: true}); err != nil {
		t.Fatalf("Join: %v", err)
	}
	_, err := c.Join(ctx, &logv1.JoinRequest{Id: "b"})
	wantCode(t, "Join twice", err, transport.AlreadyExists)
	tr, err := c.TransferLeadership(ctx, &logv1.TransferLeadershipRequest{})
	if err != nil || tr.GetLeaderId() != "b" {
		t.Fatalf("TransferLeadership = %v, %v; want leader b", tr, err)
	}
	servers, err := c.GetServers(ctx, &logv1.GetServersRequest{})
	if err != nil {
		t.Fatalf("GetServers: %v", err)
	}
	want := []*logv1.Server{
		{Id: "self", RpcAddr: "self:0", Suffrage: logv1.Suffrage_SUFFRAGE_VOTER, Healthy: true},
		{Id: "b", RaftAddr: "127.0.0.1:2", RpcAddr: "127.0.0.1:3", IsLeader: true, Suffrage: logv1.Suffrage_SUFFRAGE_NONVOTER, LastContact: durationpb.New(time.Second)},
	}
	if !slices.EqualFunc(servers.GetServers(), want, func(a, b *logv1.Server) bool { return proto.Equal(a, b) }) {
		t.Fatalf("GetServers = %v, want %v", servers.GetServers(), want)
	}
	if _, err := c.RemoveServer(ctx, &logv1.RemoveServerRequest{Id: "b"}); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	_, err = c.RemoveServer(ctx, &logv1.RemoveServerRequest{Id: "b"})
	wantCode(t, "RemoveServer twice", err, transport.NotFound)
}

func testClusterUnimplemented(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{})
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	_, err := c.RemoveServer(ctxT(t), &logv1.RemoveServerRequest{Id: "x"})
	wantCode(t, "RemoveServer without Cluster", err, transport.Unimplemented)
}

func testConsumeStream(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{})
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	ctx := ctxT(t)
	for _, v := range []string{"0", "1", "2"} {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(v)}}); err != nil {
			t.Fatalf("Produce: %v", err)
		}
	}
	stream, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 1})
	if err != nil {
		t.Fatalf("ConsumeStream: %v", err)
	}
	defer stream.Close()
	expect := func(off uint64) {
		t.Helper()
		res, err := stream.Receive()
		if err != nil {
			t.Fatalf("Receive offset %d: %v", off, err)
		}
		if res.GetRecord().GetOffset() != off {
			t.Fatalf("Receive = offset %d, want %d", res.GetRecord().GetOffset(), off)
		}
	}
	expect(1)
	expect(2)
	// The stream now tails: a new record reaches it.
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("3")}}); err != nil {
		t.Fatalf("Produce: %v", err)
	}
	expect(3)
	if err := stream.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := stream.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := stream.Receive(); err == nil {
		t.Fatalf("Receive after Close succeeded")
	}
}

func testProduceStream(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{})
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	stream, err := c.ProduceStream(ctxT(t))
	if err != nil {
		t.Fatalf("ProduceStream: %v", err)
	}
	defer stream.Close()
	const n = 50
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			if err := stream.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: []byte{byte(i)}}}); err != nil {
				t.Errorf("Send %d: %v", i, err)
				return
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Errorf("CloseSend: %v", err)
		}
	})
	for i := range n {
		res, err := stream.Receive()
		if err != nil {
			t.Fatalf("Receive %d: %v", i, err)
		}
		if res.GetOffset() != uint64(i) {
			t.Fatalf("Receive %d: offset %d", i, res.GetOffset())
		}
	}
	if _, err := stream.Receive(); err != io.EOF {
		t.Fatalf("Receive after CloseSend = %v, want io.EOF", err)
	}
	wg.Wait()
	recs := s.Service.Records()
	if len(recs) != n || !bytes.Equal(recs[n-1].GetValue(), []byte{n - 1}) {
		t.Fatalf("service holds %d records, want %d", len(recs), n)
	}

	// A handler error ends the stream with its code.
	s.Service.SetNotLeader(&transport.NotLeader{LeaderID: "b", LeaderAddr: "127.0.0.1:9"})
	stream2, err := c.ProduceStream(ctxT(t))
	if err != nil {
		t.Fatalf("ProduceStream: %v", err)
	}
	defer stream2.Close()
	if err := stream2.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}}); err != nil && err != io.EOF {
		t.Fatalf("Send: %v", err)
	}
	_, err = stream2.Receive()
	wantCode(t, "ProduceStream on follower", err, transport.FailedPrecondition)
	if nl, ok := transport.NotLeaderDetail(err); !ok || nl.LeaderID != "b" {
		t.Errorf("NotLeaderDetail = %v, %v", nl, ok)
	}
}

func testErrors(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{})
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	ctx := ctxT(t)

	_, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 7})
	wantCode(t, "Consume past end", err, transport.OutOfRange)
	_, err = c.Produce(ctx, &logv1.ProduceRequest{})
	wantCode(t, "Produce without record", err, transport.InvalidArgument)
	if e, ok := errors.AsType[*transport.Error](err); ok && e.Message() != "record 0 is missing" {
		t.Errorf("message = %q, want %q", e.Message(), "record 0 is missing")
	}

	leader := transport.NotLeader{LeaderID: "node-2", LeaderAddr: "127.0.0.1:8402"}
	s.Service.SetNotLeader(&leader)
	_, err = c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}})
	wantCode(t, "Produce on follower", err, transport.FailedPrecondition)
	if got, ok := transport.NotLeaderDetail(err); !ok || got != leader {
		t.Errorf("NotLeaderDetail = %+v, %v; want %+v", got, ok, leader)
	}
	_, err = c.Consume(ctx, &logv1.ConsumeRequest{Linearizable: true})
	if got, ok := transport.NotLeaderDetail(err); !ok || got != leader {
		t.Errorf("linearizable Consume: NotLeaderDetail = %+v, %v; want %+v", got, ok, leader)
	}
	// A server stream ends with the handler's error and detail.
	cs, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{Linearizable: true})
	if err == nil {
		defer cs.Close()
		_, err = cs.Receive()
	}
	wantCode(t, "linearizable ConsumeStream on follower", err, transport.FailedPrecondition)
	if got, ok := transport.NotLeaderDetail(err); !ok || got != leader {
		t.Errorf("ConsumeStream: NotLeaderDetail = %+v, %v; want %+v", got, ok, leader)
	}
	// An error without a detail carries none.
	_, err = c.Consume(ctx, &logv1.ConsumeRequest{Offset: 99})
	if _, ok := transport.NotLeaderDetail(err); ok {
		t.Errorf("OutOfRange carries a NotLeader detail")
	}

	s.Service.SetNotLeader(nil)

	// The write-outcome details cross the wire, alone or with a leaderless NotLeader.
	s.Service.SetWriteError(transport.Errorf(transport.Unavailable, "lost leadership").WithOutcomeUnknown("leadership lost"))
	_, err = c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}})
	wantCode(t, "Produce, outcome unknown", err, transport.Unavailable)
	if e, ok := errors.AsType[*transport.Error](err); !ok {
		t.Errorf("Produce, outcome unknown: %T %v", err, err)
	} else if reason, ok := e.OutcomeUnknown(); !ok || reason != "leadership lost" || transport.IsNotProposed(err) {
		t.Errorf("OutcomeUnknown detail = %q, %v (not proposed: %v); want \"leadership lost\"", reason, ok, transport.IsNotProposed(err))
	}
	s.Service.SetWriteError(transport.NotLeaderError(transport.NotLeader{}, "no leader").WithNotProposed("no leader"))
	_, err = c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{{Value: []byte("x")}}})
	if got, ok := transport.NotLeaderDetail(err); !ok || got != (transport.NotLeader{}) {
		t.Errorf("ProduceBatch, no leader: NotLeaderDetail = %+v, %v; want the empty detail", got, ok)
	}
	if !transport.IsNotProposed(err) || transport.IsOutcomeUnknown(err) {
		t.Errorf("ProduceBatch, no leader: not proposed %v, outcome unknown %v; want true, false", transport.IsNotProposed(err), transport.IsOutcomeUnknown(err))
	}
	// The idempotent producer's refusal crosses the wire with its reason.
	s.Service.SetWriteError(transport.ProducerRejectedError(transport.ProducerFenced, errors.New("fenced by epoch 2")))
	_, err = c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{{Value: []byte("x")}}})
	wantCode(t, "ProduceBatch, fenced", err, transport.FailedPrecondition)
	if got, ok := transport.ProducerRejectedDetail(err); !ok || got != transport.ProducerFenced {
		t.Errorf("ProduceBatch, fenced: ProducerRejectedDetail = %v, %v; want ProducerFenced", got, ok)
	}
	if _, ok := transport.NotLeaderDetail(err); ok || transport.IsOutcomeUnknown(err) || transport.IsNotProposed(err) {
		t.Errorf("ProduceBatch, fenced: carries another detail too")
	}
	s.Service.SetWriteError(nil)
	_, err = c.Consume(ctx, &logv1.ConsumeRequest{Offset: 99})
	if _, ok := transport.ProducerRejectedDetail(err); ok {
		t.Errorf("OutOfRange carries a ProducerRejected detail")
	}
	if transport.IsNotProposed(err) || transport.IsOutcomeUnknown(err) {
		t.Errorf("OutOfRange carries a write-outcome detail")
	}

	// Deadline on the client side.
	dctx, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	<-dctx.Done()
	_, err = c.GetBounds(dctx, &logv1.GetBoundsRequest{})
	wantCode(t, "expired deadline", err, transport.DeadlineExceeded)

	// TLS to a plaintext server is refused, and the server keeps serving.
	tc := Dial(t, h, s.Addr, transport.ClientConfig{TLS: NewPKI(t).ClientTLS("root")})
	cctx, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	_, err = tc.GetBounds(cctx, &logv1.GetBoundsRequest{})
	cancel2()
	if err == nil {
		t.Errorf("TLS call to a plaintext server succeeded")
	}
	if _, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{}); err != nil {
		t.Errorf("GetBounds after a TLS attempt: %v", err)
	}

	// A dead address is Unavailable.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	dc := Dial(t, h, dead, transport.ClientConfig{})
	_, err = dc.GetBounds(ctx, &logv1.GetBoundsRequest{})
	wantCode(t, "dead server", err, transport.Unavailable)
}

func testOversized(t *testing.T, h Harness) {
	const limit = 64 << 10
	s := Start(t, h, transport.ServerConfig{MaxMessageBytes: limit})
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	ctx := ctxT(t)
	calls := s.Service.Calls()
	_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: make([]byte, 2*limit)}})
	wantCode(t, "oversized Produce", err, transport.ResourceExhausted, transport.InvalidArgument)
	stream, err := c.ProduceStream(ctx)
	if err != nil {
		t.Fatalf("ProduceStream: %v", err)
	}
	defer stream.Close()
	_ = stream.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: make([]byte, 2*limit)}})
	_, err = stream.Receive()
	wantCode(t, "oversized stream message", err, transport.ResourceExhausted, transport.InvalidArgument)
	if got := s.Service.Calls(); got > calls+1 {
		t.Errorf("service saw %d calls for oversized messages, want at most the stream's", got-calls)
	}
	if n := len(s.Service.Records()); n != 0 {
		t.Errorf("oversized messages appended %d records", n)
	}
	// A request of exactly the limit passes, and its record comes back in a
	// (larger) response.
	req := &logv1.ProduceRequest{Record: &logv1.Record{Value: make([]byte, limit-8)}}
	if n := proto.Size(req); n != limit {
		t.Fatalf("test bug: request size %d, want %d", n, limit)
	}
	res, err := c.Produce(ctx, req)
	if err != nil {
		t.Fatalf("Produce at the limit: %v", err)
	}
	got, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: res.GetOffset()})
	if err != nil {
		t.Fatalf("Consume of the largest record: %v", err)
	}
	if len(got.GetRecord().GetValue()) != limit-8 {
		t.Fatalf("Consume returned %d bytes, want %d", len(got.GetRecord().GetValue()), limit-8)
	}
}

func testInterceptor(t *testing.T, h Harness) {
	type seen struct {
		method string
		peer   transport.Peer
	}
	var (
		mu    sync.Mutex
		calls []seen
	)
	type key struct{}
	deny := transport.MethodProduceBatch
	svc := NewService()
	s := Start(t, h, transport.ServerConfig{
		Log: svc, Cluster: svc,
		Intercept: func(ctx context.Context, method string, p transport.Peer) (context.Context, error) {
			mu.Lock()
			calls = append(calls, seen{method, p})
			mu.Unlock()
			if pp, ok := transport.PeerFromContext(ctx); !ok || !samePeer(pp, p) {
				t.Errorf("PeerFromContext in hook = %v, %v; want %v", pp, ok, p)
			}
			if method == deny {
				return nil, transport.Errorf(transport.PermissionDenied, "%s denied", method)
			}
			return context.WithValue(ctx, key{}, method), nil
		},
	})
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	ctx := ctxT(t)

	calls0 := svc.Calls()
	_, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{{}}})
	wantCode(t, "denied ProduceBatch", err, transport.PermissionDenied)
	if svc.Calls() != calls0 {
		t.Errorf("handler ran after the hook denied the call")
	}
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{}}); err != nil {
		t.Fatalf("Produce: %v", err)
	}
	if _, err := c.Consume(ctx, &logv1.ConsumeRequest{}); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	if _, err := c.GetServers(ctx, &logv1.GetServersRequest{}); err != nil {
		t.Fatalf("GetServers: %v", err)
	}
	if _, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{}); err != nil {
		t.Fatalf("GetBounds: %v", err)
	}
	if _, err := c.RemoveServer(ctx, &logv1.RemoveServerRequest{Id: "self"}); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	cs, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{})
	if err != nil {
		t.Fatalf("ConsumeStream: %v", err)
	}
	if _, err := cs.Receive(); err != nil {
		t.Fatalf("ConsumeStream Receive: %v", err)
	}
	cs.Close()
	ps, err := c.ProduceStream(ctx)
	if err != nil {
		t.Fatalf("ProduceStream: %v", err)
	}
	if err := ps.Send(&logv1.ProduceRequest{Record: &logv1.Record{}}); err != nil {
		t.Fatalf("ProduceStream Send: %v", err)
	}
	if _, err := ps.Receive(); err != nil {
		t.Fatalf("ProduceStream Receive: %v", err)
	}
	ps.Close()

	mu.Lock()
	defer mu.Unlock()
	var methods []string
	for _, c := range calls {
		methods = append(methods, c.method)
		if c.peer.Addr == "" || c.peer.Protocol == "" || c.peer.Subject != "" {
			t.Errorf("%s: peer %+v: want an address and protocol, no subject (plaintext)", c.method, c.peer)
		}
	}
	want := []string{deny, transport.MethodProduce, transport.MethodConsume, transport.MethodGetServers,
		transport.MethodGetBounds, transport.MethodRemoveServer, transport.MethodConsumeStream, transport.MethodProduceStream}
	if !slices.Equal(methods, want) {
		t.Errorf("hook saw %v, want %v", methods, want)
	}
}

func testMutualTLS(t *testing.T, h Harness) {
	pki := NewPKI(t)
	var (
		mu    sync.Mutex
		peers []transport.Peer
	)
	s := Start(t, h, transport.ServerConfig{
		TLS: pki.ServerTLS(),
		Intercept: func(ctx context.Context, _ string, p transport.Peer) (context.Context, error) {
			mu.Lock()
			peers = append(peers, p)
			mu.Unlock()
			return ctx, nil
		},
	})
	ctx := ctxT(t)
	c := Dial(t, h, s.Addr, transport.ClientConfig{TLS: pki.ClientTLS("root")})
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("tls")}}); err != nil {
		t.Fatalf("Produce over mTLS: %v", err)
	}
	// A forwarded call names the original client in ForwardedFor; every verified certificate is
	// reported in Certificates, and none makes the caller a Server: that is the server's
	// interceptor's decision, whatever the certificate's usages.
	if _, err := c.Produce(transport.ContextWithForwardedFor(ctx, "alice"), &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("tls")}}); err != nil {
		t.Fatalf("forwarded Produce: %v", err)
	}
	_, peerClient := pki.PeerTLS("node-1")
	pc := Dial(t, h, s.Addr, transport.ClientConfig{TLS: peerClient})
	if _, err := pc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("tls")}}); err != nil {
		t.Fatalf("Produce with a peer certificate: %v", err)
	}
	mu.Lock()
	if len(peers) != 3 || peers[0].Subject != "root" || peers[0].Addr == "" || peers[0].Server || peers[0].ForwardedFor != "" {
		t.Errorf("peers = %+v, want the first with subject root, not a server, not forwarded", peers)
	} else if peers[1].ForwardedFor != "alice" || peers[2].Subject != "node-1" || peers[2].Server {
		t.Errorf("peers = %+v, want the second forwarded for alice and the third node-1, not marked a server", peers)
	} else if len(peers[0].Certificates) == 0 || peers[0].Certificates[0].Subject.CommonName != "root" ||
		len(peers[2].Certificates) == 0 || peers[2].Certificates[0].Subject.CommonName != "node-1" {
		t.Errorf("peers = %+v, want the verified certificates of root and node-1", peers)
	}
	mu.Unlock()

	// No client certificate, a certificate from another CA, or plaintext:
	// refused before any handler runs.
	other := NewPKI(t)
	for name, cfg := range map[string]transport.ClientConfig{
		"no client cert": {TLS: pki.ClientTLS("")},
		"foreign CA":     {TLS: func() *tls.Config { c := other.ClientTLS("root"); c.RootCAs = pki.Pool(); return c }()},
		"plaintext":      {},
	} {
		bad := Dial(t, h, s.Addr, cfg)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := bad.Produce(cctx, &logv1.ProduceRequest{Record: &logv1.Record{}})
		cancel()
		if err == nil {
			t.Errorf("%s: Produce succeeded", name)
		}
	}
	if n := len(s.Service.Records()); n != 3 {
		t.Errorf("service holds %d records, want 3", n)
	}
}

func testHealth(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{})
	conn, err := ggrpc.NewClient("passthrough:///"+s.Addr, ggrpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx := ctxT(t)
	check := func(service string, want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("Check(%q): %v", service, err)
		}
		if res.GetStatus() != want {
			t.Fatalf("Check(%q) = %v, want %v", service, res.GetStatus(), want)
		}
	}
	// Every log.v1 service the server serves, on both servers alike.
	services := []string{"", "log.v1.Log", "log.v1.Cluster", "log.v1.Topics", "log.v1.Groups"}
	for _, svc := range services {
		check(svc, healthpb.HealthCheckResponse_SERVING)
	}
	s.Server.SetHealth(transport.HealthNotServing)
	for _, svc := range services {
		check(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	s.Server.SetHealth(transport.HealthServing)
	check("log.v1.Log", healthpb.HealthCheckResponse_SERVING)
	_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"})
	if err == nil {
		t.Errorf("Check of an unknown service succeeded")
	}
}

func testReflection(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{})
	conn, err := ggrpc.NewClient("passthrough:///"+s.Addr, ggrpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	stream, err := reflectpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatalf("ServerReflectionInfo: %v", err)
	}
	if err := stream.Send(&reflectpb.ServerReflectionRequest{MessageRequest: &reflectpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	res, err := stream.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	var names []string
	for _, svc := range res.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	for _, want := range []string{"log.v1.Log", "log.v1.Cluster", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
	if err := stream.Send(&reflectpb.ServerReflectionRequest{MessageRequest: &reflectpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "log.v1.Log"}}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	res, err = stream.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	if len(res.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Errorf("no file descriptor for log.v1.Log: %v", res)
	}
	stream.CloseSend()
}

func testStopEndsStreams(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{})
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	ctx := ctxT(t)
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{}}); err != nil {
		t.Fatalf("Produce: %v", err)
	}
	stream, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{})
	if err != nil {
		t.Fatalf("ConsumeStream: %v", err)
	}
	defer stream.Close()
	if _, err := stream.Receive(); err != nil {
		t.Fatalf("Receive: %v", err)
	}
	// A health watch is a stream too.
	conn, err := ggrpc.NewClient("passthrough:///"+s.Addr, ggrpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if res, err := watch.Recv(); err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch Recv = %v, %v", res, err)
	}
	// The streams now wait for events that never come; Stop must end them
	// and return before its deadline (which would mean it forced conns closed).
	s.Stop(t)
	if _, err := stream.Receive(); err == nil {
		t.Fatalf("Receive after Stop succeeded")
	}
	watchNotServing(t, watch)
	_, err = c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{}})
	wantCode(t, "Produce after Stop", err, transport.Unavailable)
	if err := s.Server.Serve(mustListen(t)); !errors.Is(err, transport.ErrServerStopped) {
		t.Errorf("Serve after Stop = %v, want ErrServerStopped", err)
	}
}

// testStopHealthWatchSeesNotServing stops servers with a health watch open, whether or not
// NOT_SERVING was set before Stop: each watch reports NOT_SERVING before it ends (a load
// balancer watching learns the server stopped serving, not only that its stream broke).
func testStopHealthWatchSeesNotServing(t *testing.T, h Harness) {
	for i := range 20 {
		s := Start(t, h, transport.ServerConfig{})
		conn, err := ggrpc.NewClient("passthrough:///"+s.Addr, ggrpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		watch, err := healthpb.NewHealthClient(conn).Watch(ctxT(t), &healthpb.HealthCheckRequest{Service: "log.v1.Log"})
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		if res, err := watch.Recv(); err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Watch Recv = %v, %v", res, err)
		}
		if i%2 == 1 { // as server.Server does: NOT_SERVING first, Stop a moment later
			s.Server.SetHealth(transport.HealthNotServing)
		}
		s.Stop(t)
		watchNotServing(t, watch)
		conn.Close()
	}
}

// watchNotServing reads watch until it ends and fails unless it reported NOT_SERVING first,
// and never SERVING.
func watchNotServing(t *testing.T, watch ggrpc.ServerStreamingClient[healthpb.HealthCheckResponse]) {
	t.Helper()
	for {
		res, err := watch.Recv()
		if err != nil {
			t.Fatalf("the health watch ended (%v) without reporting NOT_SERVING", err)
		}
		switch res.GetStatus() {
		case healthpb.HealthCheckResponse_NOT_SERVING:
			return
		case healthpb.HealthCheckResponse_SERVING:
			t.Fatalf("health watch reports SERVING after Stop")
		}
	}
}

func testStopIdempotent(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{})
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	if _, err := c.GetBounds(ctxT(t), &logv1.GetBoundsRequest{}); err != nil { // Serve has started
		t.Fatalf("GetBounds: %v", err)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { s.Server.Stop(context.Background()) })
	}
	wg.Wait()
	s.Stop(t)
	s.Server.SetHealth(transport.HealthServing) // no effect, no panic
}

func mustListen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testConsumeStreamReceiveAfterCancel: once the stream's context is cancelled, Receive answers
// the cancellation (Canceled), not the messages already received and buffered (grpc-go and
// net/http hand those out after a cancellation, so a caller that cancelled read on).
func testConsumeStreamReceiveAfterCancel(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{})
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	ctx := ctxT(t)
	for range 100 {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("v")}}); err != nil {
			t.Fatalf("Produce: %v", err)
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.ConsumeStream(sctx, &logv1.ConsumeRequest{MaxBatch: 1})
	if err != nil {
		t.Fatalf("ConsumeStream: %v", err)
	}
	defer stream.Close()
	if _, err := stream.Receive(); err != nil {
		t.Fatalf("Receive: %v", err)
	}
	cancel()
	n := 0
	for {
		res, err := stream.Receive()
		if err != nil {
			if n > 0 || transport.CodeOf(err) != transport.Canceled {
				t.Fatalf("after the cancellation Receive returned %d messages, then %v; want none, then Canceled", n, err)
			}
			return
		}
		n++
		if n > 200 {
			t.Fatalf("Receive after the cancellation keeps answering messages (offset %d)", res.GetRecord().GetOffset())
		}
	}
}

func testClientClose(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{})
	c, err := h.NewClient(s.Addr, transport.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{}}); err != nil {
		t.Fatalf("Produce: %v", err)
	}
	stream, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{})
	if err != nil {
		t.Fatalf("ConsumeStream: %v", err)
	}
	defer stream.Close()
	if _, err := stream.Receive(); err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err = stream.Receive() // blocked on a tail that never comes: Close ends it
	wantCode(t, "stream Receive after client Close", err, transport.Canceled, transport.Unavailable)
	_, err = c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{}})
	wantCode(t, "Produce after client Close", err, transport.Canceled, transport.Unavailable)
}

// samePeer compares two Peers field by field (Certificates by identity of their elements).
func samePeer(a, b transport.Peer) bool {
	return a.Subject == b.Subject && a.Addr == b.Addr && a.Protocol == b.Protocol && a.Server == b.Server &&
		a.ForwardedFor == b.ForwardedFor && slices.Equal(a.Certificates, b.Certificates)
}

// panicService is a Service whose Produce and ConsumeStream panic.
type panicService struct{ *Service }

func (panicService) Produce(context.Context, *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	panic("transporttest: planted panic")
}

func (panicService) ConsumeStream(context.Context, *logv1.ConsumeRequest, transport.ServerStream[logv1.ConsumeResponse]) error {
	panic("transporttest: planted panic")
}

// testHandlerPanic: a handler that panics is answered Internal, and the server goes on
// serving (grpc-go recovers no handler panic: the process ended).
func testHandlerPanic(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{Log: panicService{NewService()}})
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	ctx := ctxT(t)
	for range 2 {
		_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}})
		wantCode(t, "Produce that panics", err, transport.Internal)
	}
	cs, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{})
	if err == nil {
		defer cs.Close()
		_, err = cs.Receive()
	}
	wantCode(t, "ConsumeStream that panics", err, transport.Internal)
	_, err = c.Consume(ctx, &logv1.ConsumeRequest{Offset: 0})
	wantCode(t, "Consume after the panics", err, transport.OutOfRange)
}
