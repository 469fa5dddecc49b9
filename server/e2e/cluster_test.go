package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// clusterArgs are the serve flags of cluster nodes: Serf's timings for one host.
var clusterArgs = []string{"--gossip-profile", "local"}

// cluster is a set of `commitlog serve` processes that formed one cluster through
// --start-join-addrs. Used by the test goroutine only.
type cluster struct {
	t     testing.TB
	nodes []*Node
	// removed are ids an operator removed from the cluster (and whose processes stopped).
	removed []string
}

// startCluster starts size nodes over transport tr: n1 bootstraps, the others join its gossip
// address; it returns once the leader reports size voters.
func startCluster(t testing.TB, size int, tr string) *cluster {
	t.Helper()
	c := &cluster{t: t}
	first := StartNode(t, NodeConfig{Name: "n1", Transport: tr, Args: clusterArgs})
	waitLeader(t, first)
	c.nodes = append(c.nodes, first)
	for i := 2; i <= size; i++ {
		n := NewNode(t, NodeConfig{Name: fmt.Sprintf("n%d", i), Transport: tr, Join: []string{first.BindAddr}, Args: clusterArgs})
		n.Start()
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes[1:] {
		n.WaitReady()
	}
	c.waitVoters(size)
	return c
}

// addrs returns every node's API address.
func (c *cluster) addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.Addr
	}
	return out
}

// getServers asks node n alone for its view of the cluster.
func getServers(n *Node) (*logv1.GetServersResponse, error) {
	tc := n.TransportClient()
	defer tc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return tc.GetServers(ctx, &logv1.GetServersRequest{})
}

// waitVoters polls until a running node reports itself leader of exactly want voters, all of
// them running, and returns that leader.
func (c *cluster) waitVoters(want int) *Node {
	c.t.Helper()
	deadline := time.Now().Add(readyTimeout)
	var last string
	for time.Now().Before(deadline) {
		for _, n := range c.nodes {
			if n.Pid() == 0 {
				continue
			}
			resp, err := getServers(n)
			if err != nil {
				continue
			}
			voters, leader := 0, ""
			for _, s := range resp.GetServers() {
				if s.GetSuffrage() == logv1.Suffrage_SUFFRAGE_VOTER {
					voters++
				}
				if s.GetIsLeader() {
					leader = s.GetId()
				}
			}
			last = fmt.Sprintf("%s sees leader %q, %d voters: %v", n.Name(), leader, voters, resp.GetServers())
			if leader == n.Name() && voters == want && len(resp.GetServers()) == want {
				return n
			}
			if leader == n.Name() {
				c.checkNotReadded(resp, last)
			}
		}
		time.Sleep(pollEvery)
	}
	c.t.Fatalf("no leader of %d voters within %v; last view: %s", want, readyTimeout, last)
	return nil
}

// checkNotReadded fails if a leader's view lists a server an operator removed: once the
// removal is committed, only a re-add puts it back (a removed node leaves Serf when it stops,
// so no later leader adds it back).
func (c *cluster) checkNotReadded(view *logv1.GetServersResponse, desc string) {
	c.t.Helper()
	for _, s := range view.GetServers() {
		if slices.Contains(c.removed, s.GetId()) {
			c.t.Fatalf("server %s, removed by the operator, was added back; view: %s", s.GetId(), desc)
		}
	}
}

// waitNewLeader polls the nodes other than old until one reports itself leader.
func (c *cluster) waitNewLeader(old *Node) *Node {
	c.t.Helper()
	var others []*Node
	for _, n := range c.nodes {
		if n != old {
			others = append(others, n)
		}
	}
	return waitLeader(c.t, others...)
}

// followers returns the nodes other than leader.
func (c *cluster) followers(leader *Node) []*Node {
	var out []*Node
	for _, n := range c.nodes {
		if n != leader {
			out = append(out, n)
		}
	}
	return out
}

// load is a set of SDK writers appending unique values until halted, recording every attempt
// and acknowledgement in a ledger. Its goroutines are owned by the load: halt stops and waits
// for them (t.Cleanup does too).
type load struct {
	led     *ledger
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	acks    atomic.Int64
	unknown atomic.Int64 // writes whose outcome the SDK reported unknown (not retried)
	failed  atomic.Int64 // writes refused (e.g. no leader for longer than the retry budget)
	lastErr atomic.Value // string
}

// maxOpsPerWriter bounds each writer's loop.
const maxOpsPerWriter = 20000

func startLoad(t testing.TB, cl *client.Client, led *ledger, writers int, prefix string) *load {
	l := &load{led: led, stop: make(chan struct{})}
	for w := range writers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for seq := range maxOpsPerWriter {
				select {
				case <-l.stop:
					return
				default:
				}
				v := fmt.Sprintf("%s-w%d-%05d", prefix, w, seq)
				led.attempt(v)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				off, err := cl.Produce(ctx, []byte(v))
				cancel()
				switch {
				case err == nil:
					led.ack(off, v)
					l.acks.Add(1)
				case errors.Is(err, client.ErrOutcomeUnknown):
					l.unknown.Add(1)
					l.lastErr.Store(err.Error())
				default:
					l.failed.Add(1)
					l.lastErr.Store(err.Error())
					select { // do not spin while the cluster has no leader
					case <-l.stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		}()
	}
	t.Cleanup(l.halt)
	return l
}

// halt stops the writers and waits for them. Idempotent.
func (l *load) halt() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// waitAcks polls until the writers have had at least n writes acknowledged in total.
func (l *load) waitAcks(t testing.TB, n int64, what string) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for l.acks.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d writes acknowledged within %v, want %d (unknown %d, failed %d, last error %v)",
				what, l.acks.Load(), readyTimeout, n, l.unknown.Load(), l.failed.Load(), l.lastErr.Load())
		}
		time.Sleep(pollEvery)
	}
}

func (l *load) String() string {
	return fmt.Sprintf("%d acknowledged, %d outcome unknown, %d refused", l.acks.Load(), l.unknown.Load(), l.failed.Load())
}

// TestCluster is issue #5's cluster of real processes: three `commitlog serve` processes form a
// cluster through --start-join-addrs; writes through a follower (forwarded) and through the
// SDK; kill -9 of the leader under SDK load and restart of the killed node; SIGSTOP of the
// leader past the election timeout and SIGCONT; restart of the whole cluster. After each phase
// every node must serve every acknowledged record at its offset, dense, without duplicates.
func TestCluster(t *testing.T) {
	c := startCluster(t, 3, "connect")
	led := newLedger()
	leader := c.waitVoters(3)
	sdk := newSDK(t, "connect", c.addrs()...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Log("phase 1: writes through each follower (forwarded) and through the SDK")
	hc := newHTTPClient(t)
	for i, f := range c.followers(leader) {
		tc := f.TransportClient()
		v := fmt.Sprintf("via-follower-%s", f.Name())
		led.attempt(v)
		resp, err := tc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte(v)}})
		tc.Close()
		if err != nil {
			t.Fatalf("Produce through follower %s: %v", f.Name(), err)
		}
		led.ack(resp.GetOffset(), v)
		// curl-style Connect JSON to the follower.
		v = fmt.Sprintf("json-via-follower-%d", i)
		led.attempt(v)
		var pr jsonProduceResponse
		connectJSON(t, hc, f.Addr, "Produce", jsonProduceRequest{Record: jsonRecord{Value: []byte(v)}}, &pr)
		led.ack(pr.Offset, v)
		// The CLI pointed at the follower alone.
		v = fmt.Sprintf("cli-via-follower-%d", i)
		led.attempt(v)
		offs := parseOffsets(t, mustCLI(t, "", "produce", "--addr", f.Addr, v).Stdout)
		led.ack(offs[0], v)
	}
	for i := range 20 {
		v := fmt.Sprintf("sdk-%02d", i)
		led.attempt(v)
		off, err := sdk.Produce(ctx, []byte(v))
		if err != nil {
			t.Fatalf("SDK Produce: %v", err)
		}
		led.ack(off, v)
	}
	// A read on a follower right after an acknowledged write sees it (it waits to apply).
	for _, f := range c.followers(leader) {
		tc := f.TransportClient()
		last := led.nextAfterAcked() - 1
		resp, err := tc.Consume(ctx, &logv1.ConsumeRequest{Offset: last})
		tc.Close()
		if err != nil || string(resp.GetRecord().GetValue()) != led.byOffset[last] {
			t.Fatalf("follower %s Consume(%d) right after the ack = %v, %v; want %q", f.Name(), last, resp, err, led.byOffset[last])
		}
	}
	requireInvariants(t, led, readAllLogs(t, c.nodes, led.nextAfterAcked()))
	if t.Failed() {
		return
	}

	t.Log("phase 2: kill -9 the leader under SDK load")
	l := startLoad(t, sdk, led, 4, "load")
	l.waitAcks(t, 100, "before the kill")
	leader.Kill()
	newLeader := c.waitNewLeader(leader)
	t.Logf("killed %s; %s leads", leader.Name(), newLeader.Name())
	l.waitAcks(t, l.acks.Load()+100, "after the kill (the SDK continues)")
	l.halt()
	t.Logf("load: %s", l)
	leader.Restart()
	c.waitVoters(3)
	requireInvariants(t, led, readAllLogs(t, c.nodes, led.nextAfterAcked()))
	if t.Failed() {
		return
	}

	t.Log("phase 3: SIGSTOP the leader past the election timeout, then SIGCONT")
	testStaleLeader(t, c, led, c.waitVoters(3))
	c.waitVoters(3)
	requireInvariants(t, led, readAllLogs(t, c.nodes, led.nextAfterAcked()))
	if t.Failed() {
		return
	}

	t.Log("phase 4: restart the whole cluster")
	for _, n := range c.nodes {
		if code := n.Stop(); code != 0 {
			t.Errorf("%s exited %d after SIGTERM, want 0", n.Name(), code)
		}
	}
	c.nodes[0].Start()
	c.nodes[0].WaitReady()
	for _, n := range c.nodes[1:] {
		n.Start()
	}
	for _, n := range c.nodes[1:] {
		n.WaitReady()
	}
	c.waitVoters(3)
	// The SDK client from before the restart carries on (same addresses).
	for i := range 10 {
		v := fmt.Sprintf("after-cluster-restart-%d", i)
		led.attempt(v)
		off, err := sdk.Produce(ctx, []byte(v))
		if err != nil {
			t.Fatalf("SDK Produce after the cluster restart: %v", err)
		}
		led.ack(off, v)
	}
	requireInvariants(t, led, readAllLogs(t, c.nodes, led.nextAfterAcked()))
}

// testStaleLeader pauses old (the leader) until another node leads, writes a record through
// the new leader, then queues on a raw TCP connection to the paused process a write and
// linearizable reads (the kernel accepts and buffers them while it is stopped) and resumes it:
// the very first thing the old leader does is answer them. It must not acknowledge the write
// unless the write is really committed (the caller's invariant check verifies that), and its
// linearizable reads must see the record acknowledged before they were sent.
func testStaleLeader(t *testing.T, c *cluster, led *ledger, old *Node) {
	old.Pause()
	resumed := false
	defer func() {
		if !resumed {
			old.Resume()
		}
	}()
	// A write sent to a follower that still takes the paused leader for the leader: forwarded
	// there, it must be answered once the follower knows the new leader (outcome unknown), not
	// only when the paused leader comes back or a keepalive ping on the forwarding connection
	// goes unanswered.
	via := c.followers(old)[0]
	forwarded := "forwarded-to-paused-old-leader"
	led.attempt(forwarded)
	forward := queueJSON(t, via.Addr, "Produce", fmt.Sprintf(`{"record":{"value":%q}}`, b64(forwarded)))
	newLeader := c.waitNewLeader(old)
	t.Logf("paused %s; %s leads", old.Name(), newLeader.Name())
	if code, body := forward(); code == http.StatusOK {
		var pr jsonProduceResponse
		if err := json.Unmarshal(body, &pr); err != nil {
			t.Fatalf("%s's Produce answer %s: %v", via.Name(), body, err)
		}
		led.ack(pr.Offset, forwarded)
	} else if !strings.Contains(string(body), "outcome unknown") {
		t.Errorf("a write sent to %s while the leader %s was paused: HTTP %d %s; want it stored or its outcome unknown", via.Name(), old.Name(), code, body)
	} else {
		t.Logf("%s answered a write it forwarded to the paused leader: HTTP %d %s", via.Name(), code, body)
	}

	// An acknowledged write the paused leader knows nothing about.
	sdk := newSDK(t, "connect", newLeader.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fresh := "written-while-old-leader-paused"
	led.attempt(fresh)
	k, err := sdk.Produce(ctx, []byte(fresh))
	if err != nil {
		t.Fatalf("SDK Produce through the new leader: %v", err)
	}
	led.ack(k, fresh)

	stale := "sent-to-paused-old-leader"
	led.attempt(stale)
	produce := queueJSON(t, old.Addr, "Produce", fmt.Sprintf(`{"record":{"value":%q}}`, b64(stale)))
	consume := queueJSON(t, old.Addr, "Consume", fmt.Sprintf(`{"offset":"%d","linearizable":true}`, k))
	bounds := queueJSON(t, old.Addr, "GetBounds", `{"linearizable":true}`)
	old.Resume()
	resumed = true

	if code, body := produce(); code == http.StatusOK {
		var pr jsonProduceResponse
		if err := json.Unmarshal(body, &pr); err != nil {
			t.Fatalf("old leader's Produce answer %s: %v", body, err)
		}
		t.Logf("old leader acknowledged the write at offset %d (it must be committed: checked below)", pr.Offset)
		led.ack(pr.Offset, stale)
	} else {
		t.Logf("old leader refused the write: HTTP %d %s", code, body)
	}
	if code, body := consume(); code == http.StatusOK {
		var cr jsonConsumeResponse
		if err := json.Unmarshal(body, &cr); err != nil {
			t.Fatalf("old leader's Consume answer %s: %v", body, err)
		}
		if string(cr.Record.Value) != fresh {
			t.Errorf("linearizable Consume(%d) on the resumed old leader = %q, want %q (stale read)", k, cr.Record.Value, fresh)
		}
	} else if strings.Contains(string(body), "out_of_range") {
		t.Errorf("linearizable Consume(%d) on the resumed old leader: HTTP %d %s — a stale read: offset %d was acknowledged before the read was sent", k, code, body, k)
	} else {
		t.Logf("old leader refused the linearizable Consume: HTTP %d %s", code, body)
	}
	if code, body := bounds(); code == http.StatusOK {
		var b struct {
			Next uint64 `json:"nextOffset,string"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatalf("old leader's GetBounds answer %s: %v", body, err)
		}
		if b.Next <= k {
			t.Errorf("linearizable GetBounds on the resumed old leader: next offset %d, but offset %d was acknowledged before (stale read)", b.Next, k)
		}
	} else {
		t.Logf("old leader refused the linearizable GetBounds: HTTP %d %s", code, body)
	}
}

func b64(s string) string {
	b, _ := json.Marshal([]byte(s))
	return strings.Trim(string(b), `"`)
}

// queueJSON writes a whole Connect JSON request over HTTP/1.1 on a new TCP connection to addr
// (which may belong to a stopped process: the kernel accepts the connection and buffers the
// bytes) and returns a function that waits (bounded) for the answer: HTTP status and body.
func queueJSON(t testing.TB, addr, method, body string) func() (int, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	req := fmt.Sprintf("POST /log.v1.Log/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		method, addr, len(body), body)
	if err := conn.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatalf("queue %s on %s: %v", method, addr, err)
	}
	return func() (int, []byte) {
		t.Helper()
		if err := conn.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s on %s: no answer: %v", method, addr, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			t.Fatalf("%s on %s: read answer: %v", method, addr, err)
		}
		return resp.StatusCode, b
	}
}
