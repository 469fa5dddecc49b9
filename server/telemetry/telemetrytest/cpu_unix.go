//go:build unix

package telemetrytest

import (
	"syscall"
	"time"
)

// ProcessCPU returns the CPU time (user + system) this process has used so far: under a
// loaded machine it tells what a benchmark costs better than wall time does. It returns 0
// where the platform cannot tell.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
