//go:build chaosbugs

package chaosbugs

import (
	"os"
	"strconv"
	"time"
)

var active = Bug(os.Getenv("COMMITLOG_CHAOS_BUG"))

// On reports whether bug b is planted in this process.
func On(b Bug) bool { return b == active }

// TuneRaft lets the chaos suite make Raft snapshot often and truly drop what it compacts
// (COMMITLOG_CHAOS_SNAPSHOT_THRESHOLD, COMMITLOG_CHAOS_TRAILING_LOGS,
// COMMITLOG_CHAOS_SNAPSHOT_INTERVAL, COMMITLOG_CHAOS_WAL_SEGMENT_BYTES: raft-wal frees whole
// segments only), so that snapshot installs, and their bugs, happen within a short run.
func TuneRaft(threshold, trailing *uint64, interval *time.Duration, walSegment *int) {
	if v, err := strconv.ParseUint(os.Getenv("COMMITLOG_CHAOS_SNAPSHOT_THRESHOLD"), 10, 64); err == nil {
		*threshold = v
	}
	if v, err := strconv.ParseUint(os.Getenv("COMMITLOG_CHAOS_TRAILING_LOGS"), 10, 64); err == nil {
		*trailing = v
	}
	if v, err := time.ParseDuration(os.Getenv("COMMITLOG_CHAOS_SNAPSHOT_INTERVAL")); err == nil {
		*interval = v
	}
	if v, err := strconv.Atoi(os.Getenv("COMMITLOG_CHAOS_WAL_SEGMENT_BYTES")); err == nil {
		*walSegment = v
	}
}
