package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// sdkMember is one SDK group consumer of a test, collecting what it reads.
type sdkMember struct {
	cl      *client.Client
	gc      *client.GroupConsumer
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	revoked []client.TopicPartition
}

// delivered counts every record value the test's consumers read.
type delivered struct {
	mu     sync.Mutex
	counts map[string]int
}

func (d *delivered) missing(want []string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, v := range want {
		if d.counts[v] == 0 {
			n++
		}
	}
	return n
}

func startSDKMember(t testing.TB, addrs []string, group string, d *delivered) *sdkMember {
	t.Helper()
	cl, err := client.New(context.Background(), addrs)
	if err != nil {
		t.Fatal(err)
	}
	m := &sdkMember{cl: cl, done: make(chan struct{})}
	gc, err := cl.NewGroupConsumer(context.Background(), group, []string{"t"}, client.WithAutoCommit(50*time.Millisecond),
		client.WithOnRevoked(func(tps []client.TopicPartition) {
			m.mu.Lock()
			m.revoked = append(m.revoked, tps...)
			m.mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	m.gc = gc
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		for rec, err := range gc.Records(ctx) {
			if err != nil {
				return
			}
			d.mu.Lock()
			d.counts[string(rec.Value)]++
			d.mu.Unlock()
		}
	}()
	return m
}

// stop closes the consumer (commit and leave) and its client.
func (m *sdkMember) stop(testing.TB) {
	m.cancel()
	<-m.done
	_ = m.gc.Close()
	_ = m.cl.Close()
}

func (m *sdkMember) revokedCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.revoked)
}

// TestGroupsSDKConsumers: three SDK consumers of one group over six partitions read every
// record; one is killed (its client closed without leaving): within the session timeout its
// partitions move to the other two, which lose none of theirs, and every record produced
// before and after is delivered (at least once: nothing is skipped).
func TestGroupsSDKConsumers(t *testing.T) {
	const session = time.Second
	srv := startServer(t, Config{GroupSessionTimeout: session})
	ctx := ctxT(t, 90*time.Second)
	c := newClient(t, TransportConnect, srv.Addr())
	createTopicT(t, ctx, c, "t", 6)
	var want []string
	produce := func(round int) {
		for p := range uint32(6) {
			var recs []*logv1.Record
			for i := range 20 {
				v := fmt.Sprintf("r%d-p%d-%d", round, p, i)
				want = append(want, v)
				recs = append(recs, &logv1.Record{Value: []byte(v)})
			}
			if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: "t", Partition: p, Records: recs}); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0)
	d := &delivered{counts: map[string]int{}}
	addrs := []string{srv.Addr()}
	ms := []*sdkMember{startSDKMember(t, addrs, "g", d), startSDKMember(t, addrs, "g", d), startSDKMember(t, addrs, "g", d)}
	waitFor(t, 30*time.Second, "every record delivered", func() bool { return d.missing(want) == 0 })
	waitFor(t, 30*time.Second, "each member holds two partitions", func() bool {
		for _, m := range ms {
			if len(m.gc.Assignment()) != 2 {
				return false
			}
		}
		return true
	})

	// Kill ms[2]: its client goes away without leaving the group.
	survivors := ms[:2]
	revokedBefore := []int{survivors[0].revokedCount(), survivors[1].revokedCount()}
	ms[2].cancel()
	<-ms[2].done
	_ = ms[2].cl.Close()
	t.Cleanup(func() { _ = ms[2].gc.Close() })
	killed := time.Now()
	produce(1)
	waitFor(t, 10*session, "the killed member's partitions move", func() bool {
		return len(survivors[0].gc.Assignment())+len(survivors[1].gc.Assignment()) == 6
	})
	t.Logf("partitions of the killed member moved in %v (session timeout %v)", time.Since(killed).Round(time.Millisecond), session)
	waitFor(t, 30*time.Second, "every record delivered after the kill", func() bool { return d.missing(want) == 0 })
	for i, m := range survivors {
		if n := m.revokedCount(); n != revokedBefore[i] {
			t.Errorf("a survivor lost %d partitions when another member died", n-revokedBefore[i])
		}
	}
	for _, m := range survivors {
		m.stop(t)
	}
	// The survivors committed on Close: the group's offsets cover every record.
	f, err := groupsClient(t, c).FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g"})
	if err != nil || len(f.GetOffsets()) != 6 {
		t.Fatalf("FetchOffsets = %v, %v", f, err)
	}
	for _, o := range f.GetOffsets() {
		if o.GetOffset() != 40 {
			t.Errorf("committed %v, want 40 (every record of the partition processed)", o)
		}
	}
}

// TestGroupsSDKLeaderFailover: two SDK consumers of a group on a three-node cluster whose leader
// stops while they run: the members rejoin the new leader, the committed offsets are still there,
// and every record produced before and after the failover is delivered (duplicates allowed: the
// uncommitted window).
func TestGroupsSDKLeaderFailover(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := ctxT(t, 120*time.Second)
	leader := leaderOf(t, nodes)
	c := newClient(t, TransportConnect, leader.Addr())
	createTopicT(t, ctx, c, "t", 4)
	var want []string
	produce := func(c interface {
		ProduceBatch(context.Context, *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error)
	}, round int) {
		for p := range uint32(4) {
			var recs []*logv1.Record
			for i := range 10 {
				v := fmt.Sprintf("r%d-p%d-%d", round, p, i)
				want = append(want, v)
				recs = append(recs, &logv1.Record{Value: []byte(v)})
			}
			if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: "t", Partition: p, Records: recs}); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(c, 0)
	var addrs []string
	for _, nd := range nodes {
		addrs = append(addrs, nd.Addr())
	}
	d := &delivered{counts: map[string]int{}}
	ms := []*sdkMember{startSDKMember(t, addrs, "g", d), startSDKMember(t, addrs, "g", d)}
	defer func() {
		for _, m := range ms {
			m.stop(t)
		}
	}()
	waitFor(t, 30*time.Second, "every record delivered", func() bool { return d.missing(want) == 0 })
	gc := groupsClient(t, c)
	waitFor(t, 30*time.Second, "every position committed", func() bool {
		f, err := gc.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g"})
		if err != nil || len(f.GetOffsets()) != 4 {
			return false
		}
		for _, o := range f.GetOffsets() {
			if o.GetOffset() != 10 {
				return false
			}
		}
		return true
	})

	leader.shutdown(t)
	var rest []*testServer
	for _, nd := range nodes {
		if nd != leader {
			rest = append(rest, nd)
		}
	}
	newLeader := leaderOf(t, rest)
	produce(newClient(t, TransportConnect, newLeader.Addr()), 1)
	waitFor(t, 60*time.Second, "every record delivered after the failover", func() bool { return d.missing(want) == 0 })
	waitFor(t, 30*time.Second, "the members share the partitions again", func() bool {
		return len(ms[0].gc.Assignment())+len(ms[1].gc.Assignment()) == 4
	})
	// Everything delivered before the failover was committed: none of it comes again. Records
	// read after it, until the members learnt of the new leader (their commits refused), may.
	d.mu.Lock()
	defer d.mu.Unlock()
	dups := 0
	for v, n := range d.counts {
		if n > 1 && strings.HasPrefix(v, "r0-") {
			t.Errorf("%s delivered %d times although its position was committed before the failover", v, n)
		}
		if n > 1 {
			dups += n - 1
		}
	}
	t.Logf("%d records, %d extra deliveries after the failover (the uncommitted window)", len(want), dups)

}

// BenchmarkGroupConsume measures how fast one member, and a group of three, read 6 partitions
// of 5,000 records of 100 bytes each (one node, Connect over loopback; the SDK's streams).
func BenchmarkGroupConsume(b *testing.B) {
	srv := startBenchServer(b, Config{})
	c, err := tconnect.NewClient(srv.Addr(), transport.ClientConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.(transport.TopicsClient).CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "t", Partitions: 6}); err != nil {
		b.Fatal(err)
	}
	const perPartition = 5000
	var want []string
	for p := range uint32(6) {
		for start := 0; start < perPartition; start += 500 {
			var recs []*logv1.Record
			for i := start; i < start+500; i++ {
				v := fmt.Sprintf("p%d-%06d-%s", p, i, strings.Repeat("x", 88))
				want = append(want, v)
				recs = append(recs, &logv1.Record{Value: []byte(v)})
			}
			if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: "t", Partition: p, Records: recs}); err != nil {
				b.Fatal(err)
			}
		}
	}
	run := 0 // each run reads with a group of its own (a group's committed offsets stay)
	for _, members := range []int{1, 3} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			for range b.N {
				run++
				d := &delivered{counts: map[string]int{}}
				start := time.Now()
				var ms []*sdkMember
				for range members {
					ms = append(ms, startSDKMember(b, []string{srv.Addr()}, fmt.Sprintf("bench-%d", run), d))
				}
				for d.missing(want) > 0 {
					time.Sleep(20 * time.Millisecond)
				}
				elapsed := time.Since(start)
				for _, m := range ms {
					m.stop(b)
				}
				b.ReportMetric(float64(len(want))/elapsed.Seconds(), "records/s")
			}
		})
	}
}

// TestGroupsSDKPositionRemovedByRetention: a member whose committed position was removed by
// retention is told (ErrOutOfRange, yielded) and reads on from the partition's start (Kafka's
// auto.offset.reset=earliest), not nothing until the next rebalance.
func TestGroupsSDKPositionRemovedByRetention(t *testing.T) {
	srv := startServer(t, Config{SegmentBytes: 4 << 10, RetentionBytes: 16 << 10, RetentionInterval: 50 * time.Millisecond})
	ctx := ctxT(t, 60*time.Second)
	c := newClient(t, TransportConnect, srv.Addr())
	createTopicT(t, ctx, c, "t", 1)
	gc := groupsClient(t, c)
	if _, err := gc.CommitOffsets(ctx, &logv1.CommitOffsetsRequest{Group: "g",
		Offsets: []*logv1.OffsetToCommit{{Topic: "t", Partition: 0, Offset: 0}}}); err != nil {
		t.Fatal(err)
	}
	value := make([]byte, 1000)
	var recs []*logv1.Record
	for range 100 {
		recs = append(recs, &logv1.Record{Value: value})
	}
	for range 2 {
		if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: "t", Records: recs[:50]}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for retention to be done, not only started: it may have cut once after the first
	// batch already, and a cut after the consumer has started would be a second, legitimate
	// OutOfRange. Done is at most RetentionBytes of records kept (each over 1000 bytes).
	var lowest uint64
	waitFor(t, 10*time.Second, "retention to remove the committed position", func() bool {
		b, err := c.GetBounds(ctx, &logv1.GetBoundsRequest{Topic: "t"})
		lowest = b.GetLowestOffset()
		return err == nil && lowest > 0 && b.GetNextOffset()-lowest <= (16<<10)/1000
	})

	cl, err := client.New(ctx, []string{srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	g, err := cl.NewGroupConsumer(ctx, "g", []string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	sawOutOfRange := false
	for rec, err := range g.Records(ctx) {
		if err != nil {
			if !errors.Is(err, client.ErrOutOfRange) || sawOutOfRange {
				t.Fatalf("Records: %v (out of range seen before: %v)", err, sawOutOfRange)
			}
			sawOutOfRange = true
			continue
		}
		if !sawOutOfRange || rec.Offset < lowest {
			t.Fatalf("record %d first (log start %d, out of range yielded: %v)", rec.Offset, lowest, sawOutOfRange)
		}
		if rec.Offset == 99 {
			return
		}
	}
	t.Fatal("Records ended before the last record")
}

// TestGroupsSDKCloseRevokes: Close gives up the partitions as a revocation does: their
// positions are committed and OnRevoked is told, then the member leaves.
func TestGroupsSDKCloseRevokes(t *testing.T) {
	srv := startServer(t, Config{GroupSessionTimeout: time.Second})
	ctx := ctxT(t, 30*time.Second)
	c := newClient(t, TransportConnect, srv.Addr())
	createTopicT(t, ctx, c, "t", 2)
	for p := range uint32(2) {
		if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: "t", Partition: p,
			Records: []*logv1.Record{{Value: []byte("a")}, {Value: []byte("b")}}}); err != nil {
			t.Fatal(err)
		}
	}
	d := &delivered{counts: map[string]int{}}
	m := startSDKMember(t, []string{srv.Addr()}, "g", d)
	waitFor(t, 10*time.Second, "both partitions read", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.counts["a"] == 2 && d.counts["b"] == 2
	})
	m.cancel()
	<-m.done
	if err := m.gc.Close(); err != nil {
		t.Fatal(err)
	}
	_ = m.cl.Close()
	m.mu.Lock()
	revoked := slices.Clone(m.revoked)
	m.mu.Unlock()
	if len(revoked) != 2 {
		t.Fatalf("OnRevoked told of %v on Close, want both partitions", revoked)
	}
	f, err := groupsClient(t, c).FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g"})
	if err != nil || len(f.GetOffsets()) != 2 || f.GetOffsets()[0].GetOffset() != 2 || f.GetOffsets()[1].GetOffset() != 2 {
		t.Fatalf("offsets committed on Close: %v, %v", f, err)
	}
}

// TestGroupsSDKTopicRecreated: a member reading a topic that is deleted and created again
// under the same name reads the new topic from its start, and never commits its position in
// the old one to the new one (a restart would skip the new topic's first records).
func TestGroupsSDKTopicRecreated(t *testing.T) {
	srv := startServer(t, Config{GroupSessionTimeout: time.Second})
	ctx := ctxT(t, 60*time.Second)
	c := newClient(t, TransportConnect, srv.Addr())
	tc := c.(transport.TopicsClient)
	createTopicT(t, ctx, c, "t", 1)
	produce := func(values ...string) {
		t.Helper()
		var recs []*logv1.Record
		for _, v := range values {
			recs = append(recs, &logv1.Record{Value: []byte(v)})
		}
		if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: "t", Records: recs}); err != nil {
			t.Fatal(err)
		}
	}
	produce("old-0", "old-1", "old-2", "old-3", "old-4")

	cl, err := client.New(ctx, []string{srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	g, err := cl.NewGroupConsumer(ctx, "g", []string{"t"}, client.WithAutoCommit(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	d := &delivered{counts: map[string]int{}}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for rec, err := range g.Records(rctx) {
			if err != nil {
				if rctx.Err() != nil {
					return
				}
				continue // the old topic's stream ends with NotFound: yielded, read on
			}
			d.mu.Lock()
			d.counts[string(rec.Value)]++
			d.mu.Unlock()
		}
	}()
	defer func() { cancel(); <-done }()
	gcl := groupsClient(t, c)
	committed := func() (uint64, bool) {
		f, err := gcl.FetchOffsets(ctx, &logv1.FetchOffsetsRequest{Group: "g"})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range f.GetOffsets() {
			if o.GetTopic() == "t" && o.GetPartition() == 0 {
				return o.GetOffset(), true
			}
		}
		return 0, false
	}
	waitFor(t, 10*time.Second, "the old topic's records read and committed", func() bool {
		off, ok := committed()
		return ok && off == 5
	})

	if _, err := tc.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "t"}); err != nil {
		t.Fatal(err)
	}
	createTopicT(t, ctx, c, "t", 1)
	produce("new-0", "new-1")
	want := []string{"new-0", "new-1"}
	// Until the member reads the new topic, whatever it commits there must not be its
	// position in the old one.
	waitFor(t, 10*time.Second, "the new topic's records read", func() bool {
		if off, ok := committed(); ok && off > 2 {
			t.Fatalf("the new topic (2 records) has committed offset %d: the old topic's position", off)
		}
		return d.missing(want) == 0
	})
	cancel()
	<-done
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if off, ok := committed(); !ok || off != 2 {
		t.Fatalf("committed offset in the new topic after Close: %d (%v), want 2", off, ok)
	}
}
