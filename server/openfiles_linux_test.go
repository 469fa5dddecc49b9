package server

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/transport"
)

// TestCreateTopicBeyondOpenFileLimitRefused: a topic (or added partitions) whose files this
// server cannot open within its open-file limit is refused (ResourceExhausted) before it is
// proposed. It used to be committed: every replica failed to open the partitions and stopped
// applying for good (every later write failed, and the replay failed again at a restart).
func TestCreateTopicBeyondOpenFileLimitRefused(t *testing.T) {
	srv := startServer(t, Config{})
	ctx := ctxT(t, 60*time.Second)
	cl := sdkWithTopic(t, ctx, srv, "small", 1)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	// A limit with room for 300 partitions, not 1000 (or the process's own, if lower).
	lim := old
	lim.Cur = min(old.Cur, uint64(len(fds))+600)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	restore := func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
			t.Fatal(err)
		}
	}
	defer restore()

	if _, err := cl.CreateTopic(ctx, "big", 1000, client.TopicConfig{}); transport.CodeOf(err) != transport.ResourceExhausted {
		t.Fatalf("a topic of 1000 partitions under a limit of %d open files: %v, want ResourceExhausted", lim.Cur, err)
	}
	parts := uint32(1000)
	if _, err := cl.AlterTopic(ctx, "small", client.TopicAlteration{Partitions: &parts}); transport.CodeOf(err) != transport.ResourceExhausted {
		t.Fatalf("adding 999 partitions under a limit of %d open files: %v, want ResourceExhausted", lim.Cur, err)
	}
	restore()

	// Nothing was proposed: the server goes on applying.
	if _, err := cl.Produce(ctx, []byte("x")); err != nil {
		t.Fatalf("produce after the refusals: %v", err)
	}
	if _, err := cl.CreateTopic(ctx, "big", 2, client.TopicConfig{}); err != nil {
		t.Fatalf("create after the refusals: %v", err)
	}
	d, err := cl.DescribeTopic(ctx, "small")
	if err != nil || d.Partitions != 1 {
		t.Fatalf("small after the refused alter: %+v, %v; want 1 partition", d.Topic, err)
	}
}

// TestDefaultMaxConnsLeavesHalfTheFiles: --max-conns's default is 64K, at most half the soft
// open-files limit, so connections cannot take the files that segments and Raft need.
func TestDefaultMaxConnsLeavesHalfTheFiles(t *testing.T) {
	for _, tc := range []struct {
		nofile uint64
		want   int
	}{{1024, 512}, {1, 1}, {65536, 32768}, {1 << 20, DefaultMaxConns}} {
		if got := maxConnsFor(tc.nofile); got != tc.want {
			t.Errorf("maxConnsFor(%d) = %d, want %d", tc.nofile, got, tc.want)
		}
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var cfg Config
	cfg.withDefaults()
	if lim.Cur != ^uint64(0) && uint64(cfg.MaxConns) > lim.Cur/2 {
		t.Errorf("default MaxConns %d over half the open-files limit %d", cfg.MaxConns, lim.Cur)
	}
}

// TestDefaultMaxPendingConnsLeavesAQuarterOfTheFiles: --max-pending-conns's default is 1024, at
// most a quarter of the soft open-files limit and at most --max-conns, so that waiting
// connections and --max-conns together leave files to segments and Raft. It was 1024 whatever
// the limit: under the common 1024, waiting connections alone could take every descriptor.
func TestDefaultMaxPendingConnsLeavesAQuarterOfTheFiles(t *testing.T) {
	for _, tc := range []struct {
		nofile   uint64
		maxConns int
		want     int
	}{
		{1024, maxConnsFor(1024), 256},
		{4, maxConnsFor(4), 1},
		{1, maxConnsFor(1), 1},
		{65536, maxConnsFor(65536), DefaultMaxPendingConns},
		{1 << 20, 100, 100}, // never above --max-conns
		{1 << 20, 0, 1},
	} {
		if got := maxPendingConnsFor(tc.nofile, tc.maxConns); got != tc.want {
			t.Errorf("maxPendingConnsFor(%d, %d) = %d, want %d", tc.nofile, tc.maxConns, got, tc.want)
		}
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	// Under this process's limit lowered to 1024 (lowering the soft limit needs no privilege).
	lim := old
	lim.Cur = min(old.Cur, 1024)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
			t.Fatal(err)
		}
	}()
	var cfg Config
	cfg.withDefaults()
	if uint64(cfg.MaxPendingConns) > lim.Cur/4 || cfg.MaxPendingConns > cfg.MaxConns || cfg.MaxPendingConns < 1 {
		t.Errorf("default MaxPendingConns %d under an open-files limit of %d (MaxConns %d), want at most a quarter of the limit and at most MaxConns",
			cfg.MaxPendingConns, lim.Cur, cfg.MaxConns)
	}
	cfg = Config{MaxConns: 10}
	cfg.withDefaults()
	if cfg.MaxPendingConns != 10 {
		t.Errorf("default MaxPendingConns with MaxConns 10: %d, want 10", cfg.MaxPendingConns)
	}
}
