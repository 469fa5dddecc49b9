//go:build !race

package server

import "testing"

// TestDivergedLeaderLarge: only the changed server runs the divergence check, after it was made
// leader: being in the minority, it raises its own alarm and hands leadership over. Left out of
// the race run (make test): there, moving leadership to the restarted server sometimes stays
// "in progress" in hashicorp/raft for over a minute (seen in CI runs, not yet understood);
// `make test-large` runs it.
func TestDivergedLeaderLarge(t *testing.T) {
	testDivergenceDetector(t, 20, true)
}
