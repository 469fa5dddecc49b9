package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/storage"
)

// TestMachineFailLogSaysDamagedDataIsNotFixedByARestart: a state machine stopped on damaged
// data (an error wrapping storage.ErrCorrupt: a Raft entry failing its command checksum) logged
// that the node "needs its cause fixed and a restart", as for a full disk; but a restart
// replays up to the damaged entry again, and the server keeps the node fenced: it is rebuilt
// from its peers. Any other cause still says to fix it and restart.
func TestMachineFailLogSaysDamagedDataIsNotFixedByARestart(t *testing.T) {
	for _, tt := range []struct {
		name, want, without string
		cause               error
	}{
		{"damaged data", "a restart does not repair it", "needs its cause fixed and a restart",
			fmt.Errorf("entry 30: %w: this node's copy of a committed entry fails its checksum", storage.ErrCorrupt)},
		{"full disk", "needs its cause fixed and a restart", "does not repair", errors.New("write: no space left on device")},
	} {
		var out bytes.Buffer
		dir := t.TempDir()
		def, err := segmentOpener(filepath.Join(dir, "log"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewMachine(MachineConfig{Config: Config{Log: def, Logger: slog.New(slog.NewTextHandler(&out, nil))},
			Dir: filepath.Join(dir, "topics"), OpenLog: segmentOpener})
		if err != nil {
			t.Fatal(err)
		}
		_ = m.fail(tt.cause)
		if log := out.String(); !strings.Contains(log, tt.want) || strings.Contains(log, tt.without) {
			t.Errorf("%s: logged %q, want %q and no %q", tt.name, log, tt.want, tt.without)
		}
		_ = m.Close()
		_ = def.Close()
	}
}
