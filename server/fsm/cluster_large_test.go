//go:build !race

package fsm

import "testing"

// TestClusterSnapshotInstallLarge is TestClusterSnapshotInstall with a ≥ 100 MB log (100 k
// records of 1 KiB, in 100 batches). Raft's log is in memory: 100 MB fsynced three times by
// raft-wal is slow on these machines, and this test is about the size of the snapshot. It is
// left out of the race run (`make test`), which runs the raft-wal variant; `make test-large`
// runs it.
func TestClusterSnapshotInstallLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 100 MB; run without -short")
	}
	testClusterSnapshotInstall(t, 100, 1000, true)
}
