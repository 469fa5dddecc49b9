package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// TestConsumeFollowFromPastTheEnd: consume --follow --from N with N past the end of the log
// waited silently (for records a typo's offset may never see), where without --follow the
// same offset is refused. It is refused with the partition's bounds, as Kafka refuses an offset
// out of range without a reset policy; --from at the end follows from there, printing the next
// record when it comes.
func TestConsumeFollowFromPastTheEnd(t *testing.T) {
	addr := startOne(t)
	mustRun(t, "produce", "--addr", addr, "a", "b")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	start := time.Now()
	code, out, errOut := run(t, ctx, "consume", "--addr", addr, "--follow", "--from", "5")
	cancel()
	if took := time.Since(start); code == 0 || took > 4*time.Second ||
		!strings.Contains(errOut, "offset 5 is past the end of the log (next offset 2); --from 2 follows from the end") {
		t.Errorf("consume --follow --from 5: exit %d after %v, stdout %q, stderr %q; want a refusal at once with the bounds",
			code, took.Round(time.Millisecond), out, errOut)
	}
	if _, help, _ := run(t, t.Context(), "consume", "--help"); !strings.Contains(help, "refused with the bounds, with --follow too") {
		t.Errorf("consume --help does not say that --from past the end is refused with --follow:\n%s", help)
	}

	// --from at the end: waits, and prints the next record.
	fctx, fcancel := context.WithCancel(t.Context())
	defer fcancel()
	var fout, ferr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(fctx, []string{"commitlog", "consume", "--addr", addr, "--follow", "--from", "2"}, strings.NewReader(""), &fout, &ferr)
	}()
	// Through the SDK: a second Main running beside the first races on urfave/cli's global
	// help flag.
	cl, err := client.New(t.Context(), []string{addr})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Produce(t.Context(), []byte("c")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); fout.String() != "c\n"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("consume --follow --from 2 printed %q (stderr %q) within 10s; want c, produced after it started", fout.String(), ferr.String())
		}
	}
	fcancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("consume --follow stopped by Ctrl-C: exit %d, stderr %q", code, ferr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("consume --follow did not stop within 5s of Ctrl-C")
	}
}
