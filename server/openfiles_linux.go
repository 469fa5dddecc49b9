//go:build linux

package server

import (
	"fmt"
	"os"
	"syscall"
)

const (
	// filesPerPartition is what an open partition holds open: its active segment's log and
	// index files.
	filesPerPartition = 2
	// openFilesReserve is what openFilesRoom keeps for connections, Raft and rolled segments.
	openFilesReserve = 256
)

// defaultMaxConns is Config.MaxConns's default: DefaultMaxConns, at most half the soft
// open-files limit (at least 1), the other half kept for files and the connections not counted.
func defaultMaxConns() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == ^uint64(0) {
		return DefaultMaxConns
	}
	return maxConnsFor(lim.Cur)
}

// maxConnsFor is the default cap on API connections under a soft open-files limit of nofile.
func maxConnsFor(nofile uint64) int {
	return int(max(1, min(nofile/2, DefaultMaxConns)))
}

// defaultMaxPendingConns is Config.MaxPendingConns's default: DefaultMaxPendingConns, at most a
// quarter of the soft open-files limit and at most maxConns (at least 1).
func defaultMaxPendingConns(maxConns int) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == ^uint64(0) {
		return max(1, min(DefaultMaxPendingConns, maxConns))
	}
	return maxPendingConnsFor(lim.Cur, maxConns)
}

// maxPendingConnsFor is the default cap on connections waiting for their first byte under a
// soft open-files limit of nofile, with at most maxConns API connections: with the half of the
// files maxConnsFor gives connections, a quarter still stays for segments, Raft and gossip.
func maxPendingConnsFor(nofile uint64, maxConns int) int {
	return int(max(1, min(nofile/4, DefaultMaxPendingConns, uint64(max(maxConns, 1)))))
}

// openFilesRoom checks, on the leader before it proposes partitions, that this process may open
// the files of parts more partitions (each holds its active segment's log and index open) and
// keep a reserve for connections and segments to come. Creating the partitions is applied by
// every replica; one that cannot open them stops applying for good (the entry is committed: it
// cannot be skipped), and so does the same replica again at every restart. So a request the
// open-file limit cannot hold is refused before anything is proposed. Without a way to count
// the open files (no /proc/self/fd) it checks nothing.
func openFilesRoom(parts uint32) error {
	if parts == 0 {
		return nil
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == ^uint64(0) {
		return nil
	}
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	open := len(es)
	need := uint64(open) + uint64(parts)*filesPerPartition + openFilesReserve
	if need > lim.Cur {
		return fmt.Errorf("%w: %d partitions need about %d open files; this server has %d open and may open %d (keeping %d in reserve): raise its open-files limit (ulimit -n, systemd LimitNOFILE)",
			errTooManyFiles, parts, uint64(parts)*filesPerPartition, open, lim.Cur, openFilesReserve)
	}
	return nil
}
