package cli

import "testing"

// TestStatusLagCell: `cluster status`'s LAG column shows how far a server is behind the
// leader's commit index, and "-" (unknown, as the other unknown cells) when no leader gave one.
// A server that applied nothing was shown a lag of 0 while the leader was unknown: the missing
// commit index was taken as 0.
func TestStatusLagCell(t *testing.T) {
	for _, tc := range []struct {
		name        string
		commit      uint64
		commitKnown bool
		applied     uint64
		want        string
	}{
		{"leader unknown, nothing applied", 0, false, 0, "-"},
		{"leader unknown, some applied", 0, false, 7, "-"},
		{"caught up", 12, true, 12, "0"},
		{"behind", 12, true, 5, "7"},
		{"leader's index of a new cluster", 0, true, 0, "0"},
		{"ahead of the leader's answer", 5, true, 12, "-"},
	} {
		if got := lagCell(tc.commit, tc.commitKnown, tc.applied); got != tc.want {
			t.Errorf("%s: lagCell(%d, %t, %d) = %q, want %q", tc.name, tc.commit, tc.commitKnown, tc.applied, got, tc.want)
		}
	}
}
