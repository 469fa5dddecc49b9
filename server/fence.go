package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/commitlog-go/commitlog/storage"
)

// Fencing (RELIABILITY.md, invariant 8: a node that lost committed data does not vote or lead
// until it is repaired from its peers). The Raft node is fenced (consensus/raft's Node.Fence:
// it refuses every vote, pre-vote and leadership hand-over, and sends no vote request of its
// own, so it is never elected) while either holds:
//
//   - its divergence alarm is raised (divergence.go): its commit log differs from the
//     cluster's, or holds a record that fails its checksum. The alarm is kept in
//     <data-dir>/DIVERGED, so the node is fenced again from its first RPC after a restart.
//   - its state machine stopped on damaged data (an error wrapping storage.ErrCorrupt: a
//     committed entry of its Raft log fails its command checksum, or its commit log cannot be
//     read back). A restart would replay up to the damaged entry again, and until then the
//     node would vote and could lead, and replicate the damaged entry; so the reason is kept
//     in <data-dir>/FENCED, read at start like DIVERGED.
//
// A state machine stopped by anything else (a full disk, an I/O error, a record over the
// storage's limit) does not fence: its Raft log is whole, so its vote is as good as any
// voter's, and refusing it would only leave a cluster with one other voter down without a
// leader. It still hands leadership over whenever it leads (watchApply).
//
// Nothing lifts the fence while the server runs. Repair: stop the server, remove it from the
// cluster (`commitlog cluster remove <id>`), wipe its data dir and start it: it rejoins empty,
// as a non-voter, and is promoted once caught up. Deleting DIVERGED and FENCED by hand lifts
// the fence at the next start without repairing anything.

// fencedFile holds why the state machine stopped on damaged data, in the data dir.
const fencedFile = "FENCED"

// fenceAtStart returns why the node must start fenced ("" when it need not): the divergence
// alarm d kept in dataDir, and what fencedFile holds.
func fenceAtStart(dataDir string, d *divergence) (string, error) {
	var reasons []string
	if msg := d.message(); msg != "" {
		reasons = append(reasons, divergenceFence(msg))
	}
	b, err := os.ReadFile(filepath.Join(dataDir, fencedFile))
	switch {
	case err == nil:
		msg := strings.TrimSpace(string(b))
		if msg == "" {
			msg = "empty " + fencedFile + " file"
		}
		reasons = append(reasons, msg)
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("server: read %s: %w", filepath.Join(dataDir, fencedFile), err)
	}
	return strings.Join(reasons, "; "), nil
}

// divergenceFence is the fence's reason for the divergence alarm msg.
func divergenceFence(msg string) string { return "divergence alarm: " + msg }

// fenceIfCorrupt fences the node, for good, when its state machine stopped on damaged data
// (err wraps storage.ErrCorrupt), and reports whether it did.
func (s *Server) fenceIfCorrupt(err error) bool {
	if !errors.Is(err, storage.ErrCorrupt) {
		return false
	}
	reason := "the state machine stopped on damaged data: " + err.Error()
	s.node.Fence(reason)
	path := filepath.Join(s.cfg.DataDir, fencedFile)
	if werr := writeFileSync(path, []byte(reason+"\n")); werr != nil {
		s.cfg.Logger.Error("cannot record the fence; it lasts until this server stops", "file", path, "err", werr)
	}
	s.cfg.Logger.Error("this node lost committed data: it neither votes nor leads until an operator repairs it "+
		"(stop it, commitlog cluster remove "+s.cfg.NodeName+", wipe its data dir, start it)", "reason", reason, "file", path)
	return true
}
