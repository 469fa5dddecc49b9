package cli

import (
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/transport"
)

// TestProduceReportsARunOfFailuresOnce: records that fail together with the same error (those in
// flight when the servers went away: 65,537 in a run by hand, after the 2 min delivery timeout)
// were reported one line each on standard error, burying everything else. The first of a run is
// reported at once with its error, the rest in one line; the count of failed records stays.
func TestProduceReportsARunOfFailuresOnce(t *testing.T) {
	l := clienttest.New()
	l.RefuseProduce = func() error { return transport.Errorf(transport.InvalidArgument, "refused by the test") }
	srv, err := l.Serve(clienttest.ServeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// One batch of 100 records (it is sent once full: the linger never ends it), all refused.
	stdin := strings.Repeat("x\n", 100)
	code, out, errOut := runIn(t, stdin, "produce", "--addr", srv.Addr(), "--batch", "100", "--linger", "1h")
	t.Logf("produce: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	if code != 1 || out != "" {
		t.Fatalf("produce: exit %d, stdout %q; want 1 and nothing stored", code, out)
	}
	want := []string{
		"commitlog: line 1: ",
		"commitlog: lines 2-100: the same error as line 1",
		"commitlog: 100 of the 100 lines sent failed",
	}
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("stderr has %d lines, want %d:\n%s", len(lines), len(want), errOut)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("stderr line %d is %q, want it to start with %q", i+1, lines[i], w)
		}
	}
	if !strings.Contains(lines[0], "refused by the test") {
		t.Errorf("the first failure %q does not carry its error", lines[0])
	}
}
