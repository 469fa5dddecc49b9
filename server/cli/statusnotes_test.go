package cli

import (
	"strings"
	"testing"

	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestStatusNotesTellRepairOfFencedServer: cluster status told the operator of a server whose
// divergence alarm is raised to "wipe its data dir and let it rejoin" (not to stop it and
// remove it from the cluster first, as server/README.md says), and of a server stopped on
// damaged data to "fix the cause and restart it": that server is fenced, and a restart keeps it
// fenced (FENCED) and replays up to the damaged entry again. Both now name the repair, and say
// the server is fenced; a stop for any other cause still says to fix it and restart.
func TestStatusNotesTellRepairOfFencedServer(t *testing.T) {
	const repair = "repair: stop it, commitlog cluster remove node-2 (through another server), wipe its data dir and start it"
	for _, tt := range []struct {
		name          string
		b             *logv1.GetBoundsResponse
		want, without string
	}{
		{"divergence alarm", &logv1.GetBoundsResponse{Divergence: "at offset 7 its chained checksum is 1, the cluster majority's 2"}, repair, "let it rejoin"},
		{"stopped on damaged data", &logv1.GetBoundsResponse{NextOffset: 9, ApplyError: "fsm: apply 12: command checksum mismatch: storage: corrupt data"}, repair, "fix the cause"},
		{"fenced at a restart, before its replay reaches the damaged entry", &logv1.GetBoundsResponse{
			Fenced: "the state machine stopped on damaged data: fsm: apply 12: storage: corrupt data"}, "node-2: fenced: the state machine stopped on damaged data", "fix the cause"},
		{"stopped on a full disk", &logv1.GetBoundsResponse{NextOffset: 9, ApplyError: "fsm: apply 12: write: no space left on device"}, "fix the cause and restart it", "fenced"},
	} {
		notes := strings.Join(statusNotes("node-2", tt.b), "\n")
		if !strings.Contains(notes, tt.want) || strings.Contains(notes, tt.without) {
			t.Errorf("%s: notes %q, want %q and no %q", tt.name, notes, tt.want, tt.without)
		}
	}
}
