package cli

import (
	"context"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// startThree starts three in-process servers that form a cluster and returns their API
// addresses, n0's first, once `cluster status` shows three voters and a leader.
func startThree(t *testing.T) []string {
	t.Helper()
	addrs, _ := startN(t, 3)
	return addrs
}

// startN starts n in-process servers n0, n1, ... that form a cluster and returns their API
// addresses and a function that stops each, by index, once `cluster status` shows n voters and
// a leader.
func startN(t *testing.T, n int) ([]string, []func()) {
	t.Helper()
	seed := "127.0.0.1:" + strconv.Itoa(freePort(t))
	var addrs []string
	var stops []func()
	for i := range n {
		args := []string{"--node-name", "n" + strconv.Itoa(i), "--data-dir", t.TempDir(), "--rpc-port", "-1",
			"--gossip-profile", "test", "--log-level", "warn"}
		if i == 0 {
			args = append(args, "--bind-addr", seed)
		} else {
			args = append(args, "--bind-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)), "--start-join-addrs", seed)
		}
		addr, stop := startServeStoppable(t, args...)
		addrs, stops = append(addrs, addr), append(stops, stop)
	}
	waitStatus(t, addrs[0], strconv.Itoa(n)+" voters and a leader", func(rows map[string][]string) bool {
		return len(rows) == n && voters(rows) == n && leader(rows) != ""
	})
	return addrs, stops
}

// startServeStoppable is startServe returning also a function that stops the server (and
// waits for it), idempotent; the test's end stops it too.
func startServeStoppable(t *testing.T, args ...string) (string, func()) {
	t.Helper()
	out, errOut := &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, append([]string{"commitlog", "serve", "--bootstrap-wait", "0s"}, args...), strings.NewReader(""), out, errOut)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("serve exited %d: %s", code, errOut.String())
				}
			case <-time.After(30 * time.Second):
				t.Error("serve did not stop within 30s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	t.Cleanup(func() { // runs first: what the server logged, when the test failed
		if t.Failed() {
			t.Logf("serve %s logged:\n%s", strings.Join(args, " "), errOut.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := servingRE.FindStringSubmatch(out.String()); m != nil {
			return m[1], stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not report its address within 30s: %s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// statusRows runs `cluster status` against addr and returns its table's rows by server id
// (nil when the command fails).
func statusRows(t *testing.T, addr string) map[string][]string {
	t.Helper()
	code, out, _ := run(t, t.Context(), "cluster", "status", "--addr", addr)
	if code != 0 {
		return nil
	}
	rows := map[string][]string{}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[0], "n") {
			rows[f[0]] = f
		}
	}
	return rows
}

func voters(rows map[string][]string) int {
	n := 0
	for _, f := range rows {
		if f[3] == "voter" {
			n++
		}
	}
	return n
}

func leader(rows map[string][]string) string {
	for id, f := range rows {
		if f[4] == "true" {
			return id
		}
	}
	return ""
}

// waitStatus polls `cluster status` against addr until ok holds of its rows (40 s at most).
func waitStatus(t *testing.T, addr, what string, ok func(map[string][]string) bool) map[string][]string {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		rows := statusRows(t, addr)
		if rows != nil && ok(rows) {
			return rows
		}
		if time.Now().After(deadline) {
			code, out, errOut := run(t, t.Context(), "cluster", "status", "--addr", addr)
			if rows == nil { // the servers run in this process: what each goroutine waits on
				buf := make([]byte, 16<<20)
				t.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
			}
			t.Fatalf("cluster status never showed %s: %v\nlast cluster status: exit %d\n%s%s", what, rows, code, out, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterRemoveSeveral: `cluster remove` takes several ids and removes them one at a time,
// the leader among them; the leader first hands leadership to the server that stays, so that
// the leader that removes the servers (and remembers not to add them back while they are alive
// in gossip) is one that stays. A leader that removed itself left the next leader to add it
// back. With --missing-ok, a retry of the same command succeeds (the Helm chart's scale-down
// Job is retried); without, it fails.
func TestClusterRemoveSeveral(t *testing.T) {
	addrs := startThree(t)
	rows := statusRows(t, addrs[0])
	lead := leader(rows)
	var stay, follower string
	for id := range rows {
		switch {
		case id == lead:
		case stay == "":
			stay = id
		default:
			follower = id
		}
	}
	stayAddr := addrs[stay[1]-'0']

	// --timeout 30s, as the chart's scale-down Job: an election on a loaded host (this test
	// runs with -race, beside others) can leave the cluster without a leader for seconds.
	out := mustRun(t, "cluster", "remove", "--addr", stayAddr, "--timeout", "30s", lead, follower)
	for _, want := range []string{"removed " + lead, "removed " + follower} {
		if !strings.Contains(out, want) {
			t.Errorf("cluster remove %s %s printed %q, want %q", lead, follower, out, want)
		}
	}
	// Leadership goes to the server that stays (unless an election under load already moved
	// it: then the server removed, if it leads again, hands it over itself).
	if strings.Contains(out, "leadership handed") && !strings.Contains(out, " to "+stay+"\n") {
		t.Errorf("cluster remove %s %s printed %q, want leadership handed to %s", lead, follower, out, stay)
	}
	alone := func(rows map[string][]string) bool {
		return len(rows) == 1 && rows[stay] != nil && leader(rows) == stay
	}
	waitStatus(t, stayAddr, stay+" alone, leading", alone)
	// The removed servers are still alive in gossip: no leader adds them back. (A new leader
	// runs its first reconcile pass at once, then every 2 s.)
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if rows := statusRows(t, stayAddr); rows != nil && !alone(rows) {
			t.Fatalf("a removed server came back into the configuration: %v", rows)
		}
	}

	out = mustRun(t, "cluster", "remove", "--addr", stayAddr, "--missing-ok", lead, follower)
	if strings.Count(out, "already removed") != 2 {
		t.Errorf("cluster remove --missing-ok of removed servers printed %q, want both already removed", out)
	}
	if code, _, errOut := run(t, t.Context(), "cluster", "remove", "--addr", stayAddr, follower); code == 0 || !strings.Contains(errOut, "not in the cluster") {
		t.Errorf("cluster remove of a removed server without --missing-ok: exit %d, stderr %q; want refused", code, errOut)
	}
}

// TestClusterRemoveHandsLeadershipToARunningServer: the leader about to be removed hands
// leadership to a voter that stays and that it hears from. The first voter that stays in the
// configuration's order was chosen, down or not: the transfer to a stopped server failed, and
// so did the removal (a chart's scale-down with commitlog-0 down and the leader among the pods
// removed).
func TestClusterRemoveHandsLeadershipToARunningServer(t *testing.T) {
	addrs, stops := startN(t, 4)
	rows := statusRows(t, addrs[0])
	lead := leader(rows)
	leadAddr := addrs[lead[1]-'0']
	sdk, err := client.New(t.Context(), []string{leadAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	servers, err := sdk.Servers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The first voter in the configuration's order other than the leader: stopped.
	i := slices.IndexFunc(servers, func(s client.Server) bool { return s.Voter && s.ID != lead })
	down := servers[i].ID
	stops[down[1]-'0']()
	deadline := time.Now().Add(30 * time.Second)
	for {
		servers, err := sdk.Servers(t.Context())
		if err == nil && slices.ContainsFunc(servers, func(s client.Server) bool { return s.ID == down && !s.Healthy }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader never reported the stopped %s unhealthy: %v %v", down, servers, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var other string // a running server that stays, to ask
	for id := range rows {
		if id != lead && id != down {
			other = addrs[id[1]-'0']
			break
		}
	}
	out := mustRun(t, "cluster", "remove", "--addr", other, "--timeout", "30s", lead)
	// (The hand-over line is missing when an election under load moved leadership first.)
	if strings.Contains(out, " to "+down+"\n") || !strings.Contains(out, "removed "+lead) {
		t.Errorf("cluster remove %s (%s down) printed %q; want leadership handed to a running server, then the removal", lead, down, out)
	}
}

// TestClusterStatusWithoutLeader: with the quorum lost (two of three servers stopped), `cluster
// status` still prints the servers as the one left knows them, the stopped ones unreachable,
// and exits 1 saying no server leads. It printed only the error, no table: nothing told the
// operator which servers were down.
func TestClusterStatusWithoutLeader(t *testing.T) {
	addrs, stops := startN(t, 3)
	stops[1]()
	stops[2]()
	var code int
	var out, errOut string
	deadline := time.Now().Add(40 * time.Second)
	for {
		code, out, errOut = run(t, t.Context(), "cluster", "status", "--addr", addrs[0], "--timeout", "3s")
		if code != 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // n0 may still lead until its lease runs out
	}
	if code == 0 {
		t.Fatalf("cluster status with two of three servers stopped exited 0:\n%s", out)
	}
	if !strings.Contains(errOut, "no leader") {
		t.Errorf("stderr does not say no server leads: %s", errOut)
	}
	rows := map[string][]string{}
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[0], "n") {
			rows[f[0]] = f
		}
	}
	if len(rows) != 3 || leader(rows) != "" || !strings.Contains(strings.Join(rows["n1"], " "), "unreachable") ||
		!strings.Contains(strings.Join(rows["n2"], " "), "unreachable") || strings.Contains(strings.Join(rows["n0"], " "), "unreachable") {
		t.Fatalf("want the three servers, no leader, n1 and n2 unreachable; stdout:\n%s\nstderr: %s", out, errOut)
	}
}
