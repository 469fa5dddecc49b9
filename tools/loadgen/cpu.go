package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// ServerCPU is the CPU time the server processes named by Config.ServerPIDs spent during a run
// (warmup, measured phase and drain), per record acknowledged in that time.
type ServerCPU struct {
	PIDs []int `json:"pids"`
	// CPU is the processes' user plus system time, summed (10 ms resolution: clock ticks).
	CPU time.Duration `json:"cpu_ns"`
	// PerRecord is CPU / Stats.AllPhases of produce, in microseconds.
	PerRecordMicros float64 `json:"per_record_us"`
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux port.
const clockTicks = 100

// processCPU returns the user plus system time of process pid so far (Linux /proc only).
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("loadgen: CPU time of process %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces: fields are counted from
	// its closing one. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("loadgen: CPU time of process %d: unexpected /proc stat %q", pid, b)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("loadgen: CPU time of process %d: unexpected /proc stat %q", pid, b)
	}
	var ticks int64
	for _, s := range f[11:13] { // fields 14 and 15 counted from 1, field 3 is f[0]
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("loadgen: CPU time of process %d: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// totalCPU sums processCPU over pids.
func totalCPU(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range pids {
		d, err := processCPU(pid)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}
