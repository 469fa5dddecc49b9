package chaos

// PlantedBugs are the bugs a server built with -tags chaosbugs plants when the environment
// variable COMMITLOG_CHAOS_BUG names one (see server/internal/chaosbugs).
var PlantedBugs = []string{"ack-before-commit", "follower-unapplied-read", "stale-leader-read", "snapshot-no-sync", "snapshot-restore-off-by-one"}

// BugEnv is the extra server environment a planted bug needs to show: the snapshot bugs need
// snapshots and their installation, so Raft snapshots often and keeps few entries.
func BugEnv(bug string) []string {
	switch bug {
	case "snapshot-no-sync", "snapshot-restore-off-by-one":
		return []string{"COMMITLOG_CHAOS_SNAPSHOT_THRESHOLD=16", "COMMITLOG_CHAOS_TRAILING_LOGS=4", "COMMITLOG_CHAOS_SNAPSHOT_INTERVAL=500ms", "COMMITLOG_CHAOS_WAL_SEGMENT_BYTES=4096"}
	}
	return nil
}
