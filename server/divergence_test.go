package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/server/telemetry/telemetrytest"
	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// plantDivergence edits, at rest, the stored record whose value is value in the commit log of
// the (stopped) server whose data dir is dataDir: its first byte changes, and the segment
// frame's checksum is recomputed, so the storage sees a valid record: a divergence only a
// comparison with the other servers can find (as a bug that stored the wrong bytes would).
func plantDivergence(t *testing.T, dataDir, value string) {
	t.Helper()
	plantDivergenceIn(t, filepath.Join(dataDir, "log"), value)
}

// plantDivergenceIn is plantDivergence in the log whose segments are in dir (a topic
// partition's: <data dir>/topics/<topic ID>/<partition>).
func plantDivergenceIn(t *testing.T, dir, value string) {
	t.Helper()
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	editStoredRecord(t, dir, value, false, func(frame []byte) {
		frame[len(frame)-len(value)] ^= 0x20
		binary.LittleEndian.PutUint32(frame, crc32.Checksum(frame[4:], castagnoli))
	})
}

// editStoredRecord calls edit with the whole frame (header included) of the stored record
// whose value is value in the segments of the commit log in dir (sealedOnly: only segments
// with an index file, which the storage does not scan at start), and writes the segment back.
// It walks the frames (storage/segment/format.go: after the 40-byte header, CRC-32C (4) |
// length (4, bit 31: last of a batch) | offset (8) | stored bytes, whose last field is the
// value): a search of the file for value's bytes cannot tell "record-5" from "record-5"
// followed by the next frame's checksum.
func editStoredRecord(t *testing.T, dir, value string, sealedOnly bool, edit func(frame []byte)) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no segment in %s: %v", dir, err)
	}
	for _, name := range files {
		if _, err := os.Stat(strings.TrimSuffix(name, ".seg") + ".idx"); sealedOnly && err != nil {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for p := 40; p+16 <= len(b); {
			n := int(binary.LittleEndian.Uint32(b[p+4:]) &^ (1 << 31))
			if p+16+n > len(b) {
				break
			}
			if bytes.HasSuffix(b[p+16:p+16+n], []byte(value)) {
				edit(b[p : p+16+n])
				if err := os.WriteFile(name, b, 0o600); err != nil {
					t.Fatal(err)
				}
				return
			}
			p += 16 + n
		}
	}
	t.Fatalf("no record %q in %s (sealed only: %v)", value, dir, sealedOnly)
}

// TestDivergenceDetector: a follower whose stored record was changed at rest (its storage sees
// nothing wrong) is found by the leader's divergence check: it raises its alarm (shown by
// GetBounds and the metrics, kept across restarts) and refuses reads with DATA_LOSS, while the
// other servers, whose logs agree, raise nothing and keep serving. The changed record is in
// the newest checksum block, or in an older one (found by the check's scrub of older blocks).
// TestDivergedLeaderLarge (not under -race) covers a diverged leader.
func TestDivergenceDetector(t *testing.T) {
	t.Run("newest block", func(t *testing.T) { testDivergenceDetector(t, 20, false) })
	t.Run("older block", func(t *testing.T) { testDivergenceDetector(t, fsm.ChecksumBlock+50, false) })
}

func testDivergenceDetector(t *testing.T, records int, leads bool) {
	const n = 3
	cfgs := make([]Config, n)
	nodes := make([]*testServer, n)
	for i := range n {
		cfgs[i] = Config{NodeName: fmt.Sprintf("node-%d", i), GossipProfile: "test", ReconcileInterval: 100 * time.Millisecond,
			DivergenceCheckInterval: 100 * time.Millisecond, DataDir: t.TempDir(), MetricsAddr: "127.0.0.1:0"}
		if leads {
			cfgs[i].DivergenceCheckInterval = -1 // only the changed server checks, once it leads
		}
		if i > 0 {
			cfgs[i].StartJoinAddrs = []string{nodes[0].GossipAddr()}
		}
		nodes[i] = startNode(t, cfgs[i], i == 0)
	}
	waitVoters(t, nodes)
	ctx := ctxT(t, 120*time.Second)
	for i := 0; i < records; i += 100 {
		var batch []*logv1.Record
		for j := i; j < min(records, i+100); j++ {
			batch = append(batch, &logv1.Record{Value: fmt.Appendf(nil, "record-%d", j)})
		}
		writeOnLeader(t, ctx, nodes, func(c transport.Client) error {
			_, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: batch})
			return err
		})
	}
	bounds := boundsOn(t, ctx)
	for _, nd := range nodes {
		waitFor(t, 30*time.Second, nd.ID()+" applied every record", func() bool { return bounds(nd).GetNextOffset() == uint64(records) })
	}
	// Agreeing servers answer the same checksum, and several checks raise nothing.
	at := uint64(records - 1)
	var sums []uint32
	for _, nd := range nodes {
		b, err := newClient(t, TransportConnect, nd.Addr()).GetBounds(ctx, &logv1.GetBoundsRequest{ChecksumAt: &at})
		if err != nil || b.Checksum == nil {
			t.Fatalf("GetBounds(checksum_at %d) on %s = %v, %v", at, nd.ID(), b, err)
		}
		sums = append(sums, b.GetChecksum())
	}
	if sums[0] != sums[1] || sums[1] != sums[2] {
		t.Fatalf("agreeing servers answer checksums %08x", sums)
	}

	leader := leaderOf(t, nodes)
	var victim int
	for i, nd := range nodes {
		if nd != leader {
			victim = i
			break
		}
	}
	nodes[victim].shutdown(t)
	plantDivergence(t, cfgs[victim].DataDir, "record-5")
	cfg := cfgs[victim]
	cfg.StartJoinAddrs = []string{leader.GossipAddr()}
	cfg.DivergenceCheckInterval = 100 * time.Millisecond
	nodes[victim] = startNode(t, cfg, false)
	v := nodes[victim]
	if leads {
		waitFor(t, 30*time.Second, v.ID()+" caught up", func() bool { return bounds(v).GetNextOffset() == uint64(records) })
		// The restarted server listens on a new port: transfer once Raft knows it (a transfer
		// to the old address holds the leader in a transfer that refuses the reconciler's
		// address change, so retrying transfers before then only delays it).
		waitFor(t, 30*time.Second, "Raft knows "+v.ID()+"'s new address", func() bool {
			servers, err := leader.node.Servers(ctx)
			if err != nil {
				return false
			}
			for _, s := range servers {
				if s.ID == v.ID() && s.Address == v.Addr() {
					return true
				}
			}
			return false
		})
		// Once it leads, v checks at once, finds itself off the majority and hands leadership
		// over again, possibly before a poll sees it lead: its alarm, which only a leading v
		// can raise here (no other server checks), shows that it led too.
		waitFor(t, 60*time.Second, "leadership moves to "+v.ID(), func() bool {
			if v.node.IsLeader() || bounds(v).GetDivergence() != "" {
				return true
			}
			// Ask whoever leads now (a transfer that timed out may have moved leadership).
			lc := newClient(t, TransportConnect, leaderOf(t, nodes).Addr())
			if _, err := lc.TransferLeadership(ctx, &logv1.TransferLeadershipRequest{Id: v.ID()}); err != nil {
				t.Logf("transfer leadership to %s: %v", v.ID(), err)
				time.Sleep(500 * time.Millisecond) // let a transfer in progress end
			}
			return v.node.IsLeader()
		})
		leader = v
	}

	alarmOnlyOn(t, ctx, nodes, v, bounds, "the planted divergence", 5)

	// The metrics tell: the victim's alarm gauge, the leader's mismatch counter.
	m, err := telemetrytest.Find(telemetrytest.Scrape(t, v.MetricsAddr()), "commitlog_divergence_alarm", nil)
	if err != nil || m.GetGauge().GetValue() != 1 {
		t.Fatalf("commitlog_divergence_alarm on %s = %v, %v; want 1", v.ID(), m, err)
	}
	// The server that led during the check counted the mismatch; on a loaded machine leadership
	// may have moved since, so any server's counter will do.
	counted := false
	for _, nd := range nodes {
		m, err := telemetrytest.Find(telemetrytest.Scrape(t, nd.MetricsAddr()), "commitlog_divergence_mismatches_total", map[string]string{"server": v.ID()})
		if err == nil && m.GetCounter().GetValue() >= 1 {
			counted = true
		}
	}
	if !counted {
		t.Fatalf("commitlog_divergence_mismatches_total{server=%s} is not >= 1 on any server", v.ID())
	}
	for _, nd := range nodes {
		if nd == v {
			continue
		}
		m, err := telemetrytest.Find(telemetrytest.Scrape(t, nd.MetricsAddr()), "commitlog_divergence_alarm", nil)
		if err != nil || m.GetGauge().GetValue() != 0 {
			t.Fatalf("commitlog_divergence_alarm on %s = %v, %v; want 0", nd.ID(), m, err)
		}
	}

	if leads {
		waitFor(t, 30*time.Second, "the diverged leader hands leadership over", func() bool { return !v.node.IsLeader() })
	}

	// The alarm survives a restart.
	v.shutdown(t)
	nodes[victim] = startNode(t, cfg, false)
	if d := bounds(nodes[victim]).GetDivergence(); d == "" {
		t.Fatal("the divergence alarm did not survive a restart")
	}
}

// TestDivergenceAlarmOnlyFromPeers: with TLS, a client's claim that a server's checksum is
// wrong is ignored (any client allowed to consume may call GetBounds); a cluster peer's (a
// certificate valid for server authentication) raises the alarm.
func TestDivergenceAlarmOnlyFromPeers(t *testing.T) {
	pki := newTestPKI(t)
	cfg := pki.secureConfig(TransportConnect, filepath.Join(seedACLDir, "policy.csv"))
	cfg.DivergenceCheckInterval = -1
	srv := startServer(t, cfg)
	ctx := ctxT(t, 60*time.Second)
	root := tlsClient(t, TransportConnect, srv.Addr(), pki.client(pki.cert("root", certgen.Client, certgen.Options{CommonName: "root"})))
	if _, err := root.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("hello")}}); err != nil {
		t.Fatalf("Produce: %v", err)
	}
	at := uint64(0)
	b, err := root.GetBounds(ctx, &logv1.GetBoundsRequest{ChecksumAt: &at})
	if err != nil || b.Checksum == nil {
		t.Fatalf("GetBounds(checksum_at 0) = %v, %v", b, err)
	}
	wrong := b.GetChecksum() + 1
	b, err = root.GetBounds(ctx, &logv1.GetBoundsRequest{ChecksumAt: &at, ExpectedChecksum: &wrong})
	if err != nil || b.GetDivergence() != "" {
		t.Fatalf("a client's expected_checksum raised the alarm: %v, %v", b, err)
	}
	if _, err := root.Consume(ctx, &logv1.ConsumeRequest{Offset: 0}); err != nil {
		t.Fatalf("Consume after a client's claim: %v", err)
	}
	peer := tlsClient(t, TransportConnect, srv.Addr(), pki.client(filepath.Join(pki.dir, "server.pem"), filepath.Join(pki.dir, "server-key.pem")))
	b, err = peer.GetBounds(ctx, &logv1.GetBoundsRequest{ChecksumAt: &at, ExpectedChecksum: &wrong})
	if err != nil || b.GetDivergence() == "" {
		t.Fatalf("a peer's expected_checksum did not raise the alarm: %v, %v", b, err)
	}
	if _, err := root.Consume(ctx, &logv1.ConsumeRequest{Offset: 0}); transport.CodeOf(err) != transport.DataLoss {
		t.Fatalf("Consume after the alarm: %v, want DATA_LOSS", err)
	}
	// Every read fails there: the node is no longer ready (it was, and a Service kept sending
	// it readers).
	if ready, reason := srv.tel.Ready(); ready || !strings.Contains(reason, "divergence alarm") {
		t.Errorf("after the alarm: Ready = %v %q, want not ready, naming the alarm", ready, reason)
	}
}

// TestDivergenceClaimFromAClientIsChecked: without TLS anyone may send GetBounds with an
// expected_checksum. A single `curl -d '{"checksumAt":"0","expectedChecksum":5}'` to each
// server of a healthy cluster raised every server's divergence alarm, and the whole cluster
// refused reads (DATA_LOSS) until an operator wiped data dirs. A follower now believes the
// claim only when the leader holds the claimed checksum; the leader never believes one.
func TestDivergenceClaimFromAClientIsChecked(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := ctxT(t, 60*time.Second)
	leader := leaderOf(t, nodes)
	lc := newClient(t, TransportConnect, leader.Addr())
	if _, err := lc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("hello")}}); err != nil {
		t.Fatalf("Produce: %v", err)
	}
	at := uint64(0)
	for _, nd := range nodes {
		c := newClient(t, TransportConnect, nd.Addr())
		var b *logv1.GetBoundsResponse
		waitFor(t, 10*time.Second, nd.ID()+" applied the record", func() bool {
			var err error
			b, err = c.GetBounds(ctx, &logv1.GetBoundsRequest{ChecksumAt: &at})
			return err == nil && b.Checksum != nil
		})
		wrong := b.GetChecksum() + 1
		if b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{ChecksumAt: &at, ExpectedChecksum: &wrong}); err != nil || b.GetDivergence() != "" {
			t.Fatalf("%s (leader %v): a client's expected_checksum raised the alarm: %v, %v", nd.ID(), nd == leader, b, err)
		}
		if _, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 0}); err != nil {
			t.Fatalf("Consume on %s after a client's claim: %v", nd.ID(), err)
		}
	}
}

// TestDivergenceAlarmWithoutClientCertificates: with API TLS that verifies no client
// certificate (no client CA) and peer TLS of its own, no caller can prove it is a peer, so
// every peer's alarm was ignored and the detector never fired; as without TLS, a claim counts
// once the leader confirms it (claimConfirmed), and the leader believes no request: here, a
// single server, a client's claim is ignored.
func TestDivergenceAlarmWithoutClientCertificates(t *testing.T) {
	pki := newTestPKI(t)
	cfg := pki.secureConfig(TransportConnect, "")
	certFile, keyFile := filepath.Join(pki.dir, "server.pem"), filepath.Join(pki.dir, "server-key.pem")
	api, err := tlsutil.ServerConfig(certFile, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ServerTLS, cfg.ACLModelFile, cfg.DivergenceCheckInterval = api, "", -1
	srv := startServer(t, cfg)
	ctx := ctxT(t, 60*time.Second)
	c := tlsClient(t, TransportConnect, srv.Addr(), pki.client("", ""))
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("hello")}}); err != nil {
		t.Fatalf("Produce: %v", err)
	}
	at := uint64(0)
	b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{ChecksumAt: &at})
	if err != nil || b.Checksum == nil {
		t.Fatalf("GetBounds(checksum_at 0) = %v, %v", b, err)
	}
	wrong := b.GetChecksum() + 1
	if b, err = c.GetBounds(ctx, &logv1.GetBoundsRequest{ChecksumAt: &at, ExpectedChecksum: &wrong}); err != nil || b.GetDivergence() != "" {
		t.Fatalf("the leader believed a request's expected_checksum: %v, %v", b, err)
	}
}

// TestDivergenceAlarmEndsOpenStreams: a ConsumeStream opened before the divergence alarm is
// raised carries no record after it: it ends with DATA_LOSS, as every read of a diverged
// server answers. It went on tailing the diverged log, serving its records.
func TestDivergenceAlarmEndsOpenStreams(t *testing.T) {
	for _, batch := range []uint32{1, 64} {
		t.Run(fmt.Sprint("max_batch=", batch), func(t *testing.T) {
			srv := startServer(t, Config{DivergenceCheckInterval: -1})
			c := newClient(t, TransportGRPC, srv.Addr())
			ctx := ctxT(t, 30*time.Second)
			if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("before")}}); err != nil {
				t.Fatal(err)
			}
			st, err := c.ConsumeStream(ctx, &logv1.ConsumeRequest{MaxBatch: batch})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := st.Receive(); err != nil {
				t.Fatalf("first record: %v", err)
			}
			srv.svc.div.raise("planted by the test")
			if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("after")}}); err != nil {
				t.Fatal(err)
			}
			res, err := st.Receive()
			if transport.CodeOf(err) != transport.DataLoss {
				t.Fatalf("the open stream after the alarm: %v, %v; want DATA_LOSS", res, err)
			}
		})
	}
}

// TestDivergenceAlarmEndsLongPoll: a Consume long-polling when the divergence alarm is raised
// answers DATA_LOSS, not the record the diverged log then applies.
func TestDivergenceAlarmEndsLongPoll(t *testing.T) {
	srv := startServer(t, Config{DivergenceCheckInterval: -1, MaxConsumeWait: time.Minute})
	c := newClient(t, TransportGRPC, srv.Addr())
	ctx := ctxT(t, 60*time.Second)
	type answer struct {
		res *logv1.ConsumeResponse
		err error
	}
	done := make(chan answer, 1)
	early := make(chan error, 1)
	go func() {
		res, err := c.Consume(ctx, &logv1.ConsumeRequest{Offset: 0, MaxWaitMs: 50_000})
		early <- err
		done <- answer{res, err}
	}()
	waitParked(t, "(*service).consumeFrom", early)
	srv.svc.div.raise("planted by the test")
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("after")}}); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if transport.CodeOf(a.err) != transport.DataLoss {
		t.Fatalf("the long poll after the alarm: %v, %v; want DATA_LOSS", a.res, a.err)
	}
}

// TestDivergenceCheckIgnoresServerOfAnotherCluster: a server in the Raft configuration whose
// address now answers for a node of another cluster (a removed node's port or pod IP reused by
// another cluster) holds another log there. The leader's check compared it with its own
// cluster's servers and, finding it in the minority, told it the majority's checksum: the
// healthy server of the other cluster raised its divergence alarm (kept across restarts) and
// refused every read. Servers of another cluster are not compared, nor told anything.
func TestDivergenceCheckIgnoresServerOfAnotherCluster(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	other := startServer(t, Config{NodeName: "other-0", DivergenceCheckInterval: -1})
	if other.node.ClusterID() == "" || other.node.ClusterID() == leader.node.ClusterID() {
		t.Fatalf("cluster IDs: %q and %q, want two", leader.node.ClusterID(), other.node.ClusterID())
	}
	// A non-voter: the quorum stays the three nodes.
	if err := leader.node.AddNonvoter(ctx, "node-3", other.Addr()); err != nil {
		t.Fatal(err)
	}
	lc, oc := newClient(t, TransportConnect, leader.Addr()), newClient(t, TransportConnect, other.Addr())
	for i := range 5 {
		for c, prefix := range map[transport.Client]string{lc: "ours", oc: "theirs"} {
			if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: fmt.Appendf(nil, "%s-%d", prefix, i)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, nd := range nodes {
		waitFor(t, 20*time.Second, nd.ID()+" applied every record", func() bool { _, next := nd.fsm.Bounds(); return next == 5 })
	}
	if err := leader.checkDivergence(ctx, &divergenceState{}); err != nil {
		t.Fatalf("checkDivergence: %v", err)
	}
	if msg := other.svc.div.message(); msg != "" {
		t.Fatalf("the other cluster's server raised its divergence alarm: %s", msg)
	}
	if _, err := oc.Consume(ctx, &logv1.ConsumeRequest{Offset: 0}); err != nil {
		t.Fatalf("Consume on the other cluster's server: %v", err)
	}
	for _, nd := range nodes {
		if msg := nd.svc.div.message(); msg != "" {
			t.Fatalf("%s raised its divergence alarm: %s", nd.ID(), msg)
		}
	}
}

// TestDivergedServerHandsOverLeadership: a server whose divergence alarm is raised (kept across
// restarts) that becomes leader refuses every read there, linearizable ones included. It handed
// leadership over only when its own divergence check found it in the minority, an interval
// later (never with the check off); it hands over as soon as it leads. Its alarm now also
// fences it (TestDivergenceAlarmFencesNode): a hand-over to it fails, so it leads only where
// the fence cannot keep it out (the only voter, which elects itself): the test lifts the fence
// to make it lead.
func TestDivergedServerHandsOverLeadership(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	nodes := make([]*testServer, 3)
	for i := range nodes {
		cfg := Config{NodeName: fmt.Sprintf("node-%d", i), GossipProfile: "test", ReconcileInterval: 100 * time.Millisecond,
			DivergenceCheckInterval: -1} // no check: only the alarm itself may move leadership
		if i > 0 {
			cfg.StartJoinAddrs = []string{nodes[0].GossipAddr()}
		}
		nodes[i] = startNode(t, cfg, i == 0)
	}
	waitVoters(t, nodes)
	leader := leaderOf(t, nodes)
	var diverged *testServer
	for _, nd := range nodes {
		if nd != leader {
			diverged = nd
		}
	}
	diverged.svc.div.raise("planted by the test")
	if err := leader.node.TransferLeadership(ctx, diverged.ID()); err == nil {
		t.Fatalf("leadership handed over to %s, whose divergence alarm fences it", diverged.ID())
	}
	diverged.node.Unfence()
	if err := leader.node.TransferLeadership(ctx, diverged.ID()); err != nil {
		t.Fatalf("transfer to %s: %v", diverged.ID(), err)
	}
	waitFor(t, 10*time.Second, "another server leads", func() bool {
		for _, nd := range nodes {
			if nd != diverged && nd.node.IsLeader() {
				return true
			}
		}
		return false
	})
	if diverged.node.IsLeader() {
		t.Fatalf("%s, whose divergence alarm is raised, still leads", diverged.ID())
	}
}

// writeOnLeader calls write with a client of the leader until it succeeds. A loaded machine can lose
// the leader between writes: a write that was not proposed goes to the next leader; any other
// error fails the test (a duplicate would change every offset the divergence tests check).
func writeOnLeader(t *testing.T, ctx context.Context, nodes []*testServer, write func(transport.Client) error) {
	t.Helper()
	for {
		err := write(newClient(t, TransportConnect, leaderOf(t, nodes).Addr()))
		if err == nil {
			return
		}
		if !transport.IsNotProposed(err) || ctx.Err() != nil {
			t.Fatalf("write to the leader: %v", err)
		}
	}
}

// boundsOn returns a function asking a node for the default partition's bounds; an error fails
// the test.
// alarmOnlyOn waits until the divergence alarm is raised on v (cause names what raised it,
// for the wait's message) and checks that v refuses reads with DATA_LOSS while every other
// server of nodes raised no alarm and serves "record-<off>" at offset off. It returns v's alarm.
func alarmOnlyOn(t *testing.T, ctx context.Context, nodes []*testServer, v *testServer,
	bounds func(*testServer) *logv1.GetBoundsResponse, cause string, off uint64) string {
	t.Helper()
	waitFor(t, 60*time.Second, cause+" raises the alarm on "+v.ID(), func() bool { return bounds(v).GetDivergence() != "" })
	alarm := bounds(v).GetDivergence()
	t.Logf("alarm: %s", alarm)
	_, err := newClient(t, TransportConnect, v.Addr()).Consume(ctx, &logv1.ConsumeRequest{Offset: 0})
	if transport.CodeOf(err) != transport.DataLoss || !strings.Contains(err.Error(), "diverged") {
		t.Fatalf("Consume(0) on %s, whose alarm is raised: %v, want DATA_LOSS", v.ID(), err)
	}
	want := fmt.Sprintf("record-%d", off)
	for _, nd := range nodes {
		if nd == v {
			continue
		}
		if d := bounds(nd).GetDivergence(); d != "" {
			t.Fatalf("%s, whose log agrees with the majority, raised the alarm: %s", nd.ID(), d)
		}
		rec, err := newClient(t, TransportConnect, nd.Addr()).Consume(ctx, &logv1.ConsumeRequest{Offset: off})
		if err != nil || string(rec.GetRecord().GetValue()) != want {
			t.Fatalf("Consume(%d) on %s = %v, %v; want %q", off, nd.ID(), rec, err, want)
		}
	}
	return alarm
}

func boundsOn(t *testing.T, ctx context.Context) func(nd *testServer) *logv1.GetBoundsResponse {
	return func(nd *testServer) *logv1.GetBoundsResponse {
		t.Helper()
		b, err := newClient(t, TransportConnect, nd.Addr()).GetBounds(ctx, &logv1.GetBoundsRequest{})
		if err != nil {
			t.Fatalf("GetBounds on %s: %v", nd.ID(), err)
		}
		return b
	}
}
