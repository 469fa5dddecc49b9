package loadgen

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// TestRunNATS runs each mode against an in-process JetStream server: the NATS target publishes,
// counts acknowledged records and reports this process's CPU per record.
func TestRunNATS(t *testing.T) {
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	for _, mode := range []Mode{ModeUnary, ModeStream, ModeBatch} {
		t.Run(string(mode), func(t *testing.T) {
			res, err := Run(context.Background(), Config{
				Target: TargetNATS, Addrs: []string{srv.ClientURL()}, Mode: mode, Producers: 2, Window: 8,
				Records: 200, ProgressInterval: -1, ServerPIDs: []int{os.Getpid()},
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			p := res.Produce
			if p == nil || p.Records != 200 || p.Errors != 0 || p.AllPhases != 200 || p.Latency.Count != 200 {
				t.Fatalf("produce = %+v, want 200 records, no errors", p)
			}
			if res.ServerCPU == nil || res.ServerCPU.CPU < 0 {
				t.Fatalf("server CPU = %+v", res.ServerCPU)
			}
			var b strings.Builder
			if err := res.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), "target=nats") || !strings.Contains(b.String(), "per produced record") {
				t.Errorf("summary:\n%s", b.String())
			}
		})
	}
}

func TestProcessCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc: Linux only")
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) { // burn some CPU
	}
	d, err := processCPU(os.Getpid())
	if err != nil || d <= 0 {
		t.Fatalf("processCPU = %v, %v; want > 0", d, err)
	}
	if _, err := processCPU(-1); err == nil {
		t.Fatal("processCPU(-1) succeeded")
	}
}
