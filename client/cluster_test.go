package client_test

// A fake commitlog cluster for the client's tests and examples: N nodes,
// each a real transport server (gRPC or Connect) on a loopback port, serving
// one shared in-memory log. One node is the leader; the others answer writes
// (and linearizable reads) with FailedPrecondition + NotLeader naming it, or
// Unavailable + an empty NotLeader while there is no leader, as the real
// server does. Tests switch the leader, stop and restart nodes, break
// streams and inject write faults.

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
)

// transports are the wire transports every behaviour is tested over.
var transports = []string{"connect", "grpc"}

// writeFault decides the fate of one write on the leader: it returns
// (apply, err). apply says whether the records are appended; a non-nil err
// is returned to the client either way.
type writeFault func(node string, values [][]byte) (apply bool, err error)

type fakeCluster struct {
	transport string
	tls       *tls.Config // servers' TLS; nil: plaintext
	nodes     []*fakeNode

	mu       sync.Mutex
	leader   int // index into nodes; -1: no leader
	term     uint64
	log      []*logv1.Record
	appended chan struct{} // closed and replaced on every append
	fault    writeFault
	// replay makes a resumed stream (one that does not start at 0) start
	// this many records early, as a sloppy server might: clients must
	// drop the duplicates.
	replay  uint64
	gapAt   uint64          // if > 0, streams skip the record at this offset
	removed map[string]bool // node ids removed by RemoveServer
	// leaderlessStreams > 0: every ConsumeStream ends after that long (a
	// time.Duration) with the empty NotLeader detail, as the servers of a
	// cluster without a leader end them.
	leaderlessStreams atomic.Int64
	// blindTransfer > 0 (a time.Duration): TransferLeadership answers an
	// empty leader id, as an old leader that stepped down before hearing
	// from its successor does, and the servers keep naming the old leader
	// for that long before the new one leads.
	blindTransfer atomic.Int64
	// transferHook, when set (before the client is used), runs when a
	// transfer to node index to is accepted, without mu held, before the
	// empty answer of a blind transfer.
	transferHook func(to int)
}

type fakeNode struct {
	c    *fakeCluster
	id   string
	addr string

	mu      sync.Mutex
	srv     transport.Server
	done    chan error    // Serve's result
	streams chan struct{} // closed to break this node's open streams

	calls sync.Map // method name → *atomic.Int64

	subject atomic.Value // string: the Peer.Subject of the last Produce

	clusterID atomic.Value // string: the cluster ID GetServers answers (default "fake-cluster")

	diverged atomic.Bool // every read answers DataLoss, as a server whose divergence alarm is raised

	// hung makes the node answer nothing, as a paused process: its streams send no more and
	// GetServers and GetBounds wait until the caller gives up.
	hung atomic.Bool

	// noBounds makes GetBounds answer Unimplemented, as a server older than it.
	noBounds atomic.Bool

	// stopped makes the node, while it leads, answer linearizable reads errStoppedLeader, as a
	// leader whose state machine stopped applying does (its followers still name it leader).
	stopped atomic.Bool

	// denied makes GetServers answer this error (a refusal of the caller, say).
	denied atomic.Pointer[error]
}

// hang, when the node is hung, waits until ctx ends and returns its error.
func (nd *fakeNode) hang(ctx context.Context) error {
	if !nd.hung.Load() {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

// newFakeCluster starts n nodes serving over the named transport, node 0
// leading. Stopped by t.Cleanup.
func newFakeCluster(tb testing.TB, tr string, n int) *fakeCluster {
	tb.Helper()
	c, err := startFakeCluster(tr, n)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.stop)
	return c
}

// startFakeCluster is newFakeCluster for examples (no testing.TB): the caller
// must call stop.
func startFakeCluster(tr string, n int) (*fakeCluster, error) {
	return startFakeClusterTLS(tr, n, nil)
}

// startFakeClusterTLS is startFakeCluster with servers speaking TLS.
func startFakeClusterTLS(tr string, n int, tlsCfg *tls.Config) (*fakeCluster, error) {
	c := &fakeCluster{transport: tr, tls: tlsCfg, term: 1, appended: make(chan struct{}), removed: make(map[string]bool)}
	for i := range n {
		nd := &fakeNode{c: c, id: fmt.Sprintf("node-%d", i), streams: make(chan struct{})}
		c.nodes = append(c.nodes, nd)
		if err := nd.start("127.0.0.1:0"); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

func (c *fakeCluster) stop() {
	for _, nd := range c.nodes {
		nd.stop()
	}
}

// addrs returns the API addresses of every node.
func (c *fakeCluster) addrs() []string {
	out := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		out[i] = nd.addr
	}
	return out
}

// setLeader makes node i the leader in a new term (-1: no leader).
func (c *fakeCluster) setLeader(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leader = i
	c.term++
}

func (c *fakeCluster) setFault(f writeFault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fault = f
}

func (c *fakeCluster) setGap(off uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gapAt = off
}

func (c *fakeCluster) setReplay(n uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.replay = n
}

// values returns the log's values, in offset order.
func (c *fakeCluster) values() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.log))
	for i, r := range c.log {
		out[i] = string(r.Value)
	}
	return out
}

// notLeaderLocked returns the error node nd answers a leader-only request with.
func (c *fakeCluster) notLeaderLocked(nd *fakeNode) error {
	if c.leader < 0 {
		return transport.Errorf(transport.Unavailable, "no leader: election under way").WithNotLeader(transport.NotLeader{})
	}
	l := c.nodes[c.leader]
	return transport.NotLeaderError(transport.NotLeader{LeaderID: l.id, LeaderAddr: l.addr}, nd.id+" is not the leader")
}

// write appends values on behalf of node nd, if it leads.
func (c *fakeCluster) write(nd *fakeNode, values [][]byte) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader < 0 || c.nodes[c.leader] != nd {
		return 0, c.notLeaderLocked(nd)
	}
	apply, err := true, error(nil)
	if c.fault != nil {
		apply, err = c.fault(nd.id, values)
	}
	base := uint64(len(c.log))
	if apply {
		for _, v := range values {
			c.log = append(c.log, &logv1.Record{Value: slices.Clone(v), Offset: uint64(len(c.log)), Term: c.term})
		}
		close(c.appended)
		c.appended = make(chan struct{})
	}
	if err != nil {
		return 0, err
	}
	return base, nil
}

// read returns the record at off, waiting for it until shortly before ctx's
// deadline (answering OutOfRange then, so that the answer reaches the client
// before its own deadline) or until ctx ends.
func (c *fakeCluster) read(ctx context.Context, off uint64) (*logv1.Record, error) {
	if d, ok := ctx.Deadline(); ok {
		// Generous: the machines running the tests are loaded.
		margin := min(100*time.Millisecond, time.Until(d)/2)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-margin))
		defer cancel()
	}
	for {
		c.mu.Lock()
		if off < uint64(len(c.log)) {
			r := c.log[off]
			c.mu.Unlock()
			return r, nil
		}
		wait := c.appended
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, transport.Errorf(transport.OutOfRange, "offset %d not written", off)
		}
	}
}

func (nd *fakeNode) start(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// One tls.Config per server: net/http edits the one it is given
	// (NextProtos), so sharing one between servers races.
	cfg := transport.ServerConfig{Log: nd, Cluster: nd, TLS: nd.c.tls.Clone()}
	var srv transport.Server
	switch nd.c.transport {
	case "grpc":
		srv, err = tgrpc.NewServer(cfg)
	default:
		srv, err = tconnect.NewServer(cfg)
	}
	if err != nil {
		l.Close()
		return err
	}
	nd.mu.Lock()
	nd.addr = l.Addr().String()
	nd.srv = srv
	nd.done = make(chan error, 1)
	done := nd.done
	nd.mu.Unlock()
	go func() { done <- srv.Serve(l) }()
	return nil
}

// stop stops the node's server (connections are refused afterwards).
func (nd *fakeNode) stop() {
	nd.mu.Lock()
	srv, done := nd.srv, nd.done
	nd.srv = nil
	nd.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Stop(ctx)
	<-done
}

// breakStreams makes every open ConsumeStream of the node fail with
// Unavailable, as a dying connection would.
func (nd *fakeNode) breakStreams() {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	close(nd.streams)
	nd.streams = make(chan struct{})
}

func (nd *fakeNode) count(method string) {
	v, _ := nd.calls.LoadOrStore(method, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// called returns how many times method reached the node.
func (nd *fakeNode) called(method string) int64 {
	v, ok := nd.calls.Load(method)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

func (nd *fakeNode) isLeader() bool {
	nd.c.mu.Lock()
	defer nd.c.mu.Unlock()
	return nd.c.leader >= 0 && nd.c.nodes[nd.c.leader] == nd
}

// Produce implements transport.LogService.
func (nd *fakeNode) Produce(ctx context.Context, req *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	nd.count("Produce")
	if p, ok := transport.PeerFromContext(ctx); ok {
		nd.subject.Store(p.Subject)
	}
	off, err := nd.c.write(nd, [][]byte{req.GetRecord().GetValue()})
	if err != nil {
		return nil, err
	}
	return &logv1.ProduceResponse{Offset: off}, nil
}

// ProduceBatch implements transport.LogService.
func (nd *fakeNode) ProduceBatch(ctx context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	nd.count("ProduceBatch")
	values := make([][]byte, len(req.GetRecords()))
	for i, r := range req.GetRecords() {
		values[i] = r.GetValue()
	}
	base, err := nd.c.write(nd, values)
	if err != nil {
		return nil, err
	}
	return &logv1.ProduceBatchResponse{BaseOffset: base, Count: uint64(len(values))}, nil
}

// errDiverged is what a server whose divergence alarm is raised answers every read.
var errDiverged = transport.Errorf(transport.DataLoss, "this server's log diverged from the cluster's: read from another server")

// errStoppedLeader is what a leader whose state machine stopped applying answers a
// linearizable read.
var errStoppedLeader = transport.Errorf(transport.Unavailable, "node-0 leads but its state machine stopped applying committed entries (disk full)")

// Consume implements transport.LogService.
func (nd *fakeNode) Consume(ctx context.Context, req *logv1.ConsumeRequest) (*logv1.ConsumeResponse, error) {
	nd.count("Consume")
	if nd.diverged.Load() {
		return nil, errDiverged
	}
	if req.GetLinearizable() && !nd.isLeader() {
		nd.c.mu.Lock()
		err := nd.c.notLeaderLocked(nd)
		nd.c.mu.Unlock()
		return nil, err
	}
	if req.GetLinearizable() && nd.stopped.Load() {
		return nil, errStoppedLeader
	}
	r, err := nd.c.read(ctx, req.GetOffset())
	if err != nil {
		return nil, err
	}
	return &logv1.ConsumeResponse{Record: r}, nil
}

// ConsumeStream implements transport.LogService.
func (nd *fakeNode) ConsumeStream(ctx context.Context, req *logv1.ConsumeRequest, stream transport.ServerStream[logv1.ConsumeResponse]) error {
	nd.count("ConsumeStream")
	if nd.diverged.Load() {
		return errDiverged
	}
	nd.mu.Lock()
	broken := nd.streams
	nd.mu.Unlock()
	off := req.GetOffset()
	nd.c.mu.Lock()
	if off > 0 {
		off -= min(off, nd.c.replay)
	}
	nd.c.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var leaderLost <-chan time.Time
	if d := time.Duration(nd.c.leaderlessStreams.Load()); d > 0 {
		leaderLost = time.After(d)
	}
	lost := make(chan struct{})
	go func() {
		select {
		case <-broken:
			cancel()
		case <-leaderLost:
			close(lost)
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		r, err := nd.c.read(ctx, off)
		if err != nil {
			select {
			case <-broken:
				return transport.Errorf(transport.Unavailable, "stream broken")
			case <-lost:
				// As a server that has known no leader for an election ends it.
				return transport.NotLeaderError(transport.NotLeader{}, "this node lost its leader")
			default:
				return ctx.Err() // the client left or the server stops
			}
		}
		nd.c.mu.Lock()
		skip := nd.c.gapAt > 0 && off == nd.c.gapAt
		nd.c.mu.Unlock()
		if skip {
			off++
			continue
		}
		if err := nd.hang(ctx); err != nil {
			return err
		}
		if err := stream.Send(&logv1.ConsumeResponse{Record: r}); err != nil {
			return err
		}
		off++
	}
}

// ProduceStream implements transport.LogService; the client does not use it.
func (nd *fakeNode) ProduceStream(ctx context.Context, stream transport.BidiStream[logv1.ProduceRequest, logv1.ProduceResponse]) error {
	return transport.Errorf(transport.Unimplemented, "fake: ProduceStream")
}

// GetServers implements transport.LogService.
func (nd *fakeNode) GetServers(ctx context.Context, req *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	nd.count("GetServers")
	if err := nd.hang(ctx); err != nil {
		return nil, err
	}
	if err := nd.denied.Load(); err != nil {
		return nil, *err
	}
	nd.c.mu.Lock()
	defer nd.c.mu.Unlock()
	resp := &logv1.GetServersResponse{ClusterId: "fake-cluster"}
	if id, ok := nd.clusterID.Load().(string); ok {
		resp.ClusterId = id
	}
	for i, n := range nd.c.nodes {
		if nd.c.removed[n.id] {
			continue
		}
		resp.Servers = append(resp.Servers, &logv1.Server{
			Id: n.id, RpcAddr: n.addr, RaftAddr: n.addr, IsLeader: i == nd.c.leader,
			Suffrage: logv1.Suffrage_SUFFRAGE_VOTER, Healthy: true, Insecure: i == 2,
		})
	}
	return resp, nil
}

// GetBounds implements transport.LogService.
func (nd *fakeNode) GetBounds(ctx context.Context, req *logv1.GetBoundsRequest) (*logv1.GetBoundsResponse, error) {
	nd.count("GetBounds")
	if err := nd.hang(ctx); err != nil {
		return nil, err
	}
	if nd.noBounds.Load() {
		return nil, transport.Errorf(transport.Unimplemented, "fake: GetBounds")
	}
	nd.c.mu.Lock()
	defer nd.c.mu.Unlock()
	n := uint64(len(nd.c.log))
	return &logv1.GetBoundsResponse{NextOffset: n, CommittedOffset: n}, nil
}

// Join implements transport.ClusterService.
func (nd *fakeNode) Join(ctx context.Context, req *logv1.JoinRequest) (*logv1.JoinResponse, error) {
	return nil, transport.Errorf(transport.Unimplemented, "fake: Join")
}

// RemoveServer implements transport.ClusterService: it removes the node from
// the server list.
func (nd *fakeNode) RemoveServer(ctx context.Context, req *logv1.RemoveServerRequest) (*logv1.RemoveServerResponse, error) {
	nd.count("RemoveServer")
	c := nd.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader < 0 || c.nodes[c.leader] != nd {
		return nil, c.notLeaderLocked(nd)
	}
	for i, n := range c.nodes {
		if n.id == req.GetId() && !c.removed[n.id] {
			if i == c.leader {
				return nil, transport.Errorf(transport.FailedPrecondition, "cannot remove the leader")
			}
			c.removed[n.id] = true
			return &logv1.RemoveServerResponse{}, nil
		}
	}
	return nil, transport.Errorf(transport.NotFound, "no server %q", req.GetId())
}

// TransferLeadership implements transport.ClusterService.
func (nd *fakeNode) TransferLeadership(ctx context.Context, req *logv1.TransferLeadershipRequest) (*logv1.TransferLeadershipResponse, error) {
	nd.count("TransferLeadership")
	c := nd.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader < 0 || c.nodes[c.leader] != nd {
		return nil, c.notLeaderLocked(nd)
	}
	to := (c.leader + 1) % len(c.nodes)
	if req.GetId() != "" {
		to = slices.IndexFunc(c.nodes, func(n *fakeNode) bool { return n.id == req.GetId() })
		if to < 0 {
			return nil, transport.Errorf(transport.NotFound, "no server %q", req.GetId())
		}
	}
	if d := time.Duration(c.blindTransfer.Load()); d > 0 {
		time.AfterFunc(d, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.leader = to
			c.term++
		})
		if c.transferHook != nil {
			c.mu.Unlock()
			c.transferHook(to)
			c.mu.Lock()
		}
		return &logv1.TransferLeadershipResponse{}, nil
	}
	c.leader = to
	c.term++
	return &logv1.TransferLeadershipResponse{LeaderId: c.nodes[to].id}, nil
}

// eventually polls cond every few milliseconds until it holds or 10 s pass.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
