//go:build !unix

package telemetrytest

import "time"

// ProcessCPU returns 0: this platform cannot tell the process's CPU time.
func ProcessCPU() time.Duration { return 0 }
