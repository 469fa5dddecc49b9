package cli

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// startThree starts three in-process servers that form a cluster and returns their API
// addresses, n0's first, once `cluster status` shows three voters and a leader.
func startThree(t *testing.T) []string {
	t.Helper()
	seed := "127.0.0.1:" + strconv.Itoa(freePort(t))
	var addrs []string
	for i := range 3 {
		args := []string{"--node-name", "n" + strconv.Itoa(i), "--data-dir", t.TempDir(), "--rpc-port", "-1",
			"--gossip-profile", "test", "--log-level", "error"}
		if i == 0 {
			args = append(args, "--bind-addr", seed)
		} else {
			args = append(args, "--bind-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)), "--start-join-addrs", seed)
		}
		addrs = append(addrs, startServe(t, args...))
	}
	waitStatus(t, addrs[0], "three voters and a leader", func(rows map[string][]string) bool {
		return len(rows) == 3 && voters(rows) == 3 && leader(rows) != ""
	})
	return addrs
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
			t.Fatalf("cluster status never showed %s: %v", what, rows)
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

	out := mustRun(t, "cluster", "remove", "--addr", stayAddr, lead, follower)
	for _, want := range []string{"leadership handed from " + lead + " to " + stay, "removed " + lead, "removed " + follower} {
		if !strings.Contains(out, want) {
			t.Errorf("cluster remove %s %s printed %q, want %q", lead, follower, out, want)
		}
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
