package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// binPath is the commitlog binary that TestMain builds for every test of the package.
var binPath string

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

// runMain builds the binary (or takes the one named by $COMMITLOG_E2E_BIN), runs the tests, removes the binary and, when the tests passed,
// checks that no goroutine outlived them (every subprocess is gone by then: each test's
// cleanup kills and reaps its own).
func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "commitlog-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: temp dir: %v\n", err)
		return 2
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "commitlog")
	if bin := os.Getenv("COMMITLOG_E2E_BIN"); bin != "" {
		// Test a binary built elsewhere (a release build, or one with a candidate fix).
		binPath = bin
	} else if err := buildBinary(binPath); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 2
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: goroutines leaked: %v\n", err)
			return 1
		}
	}
	return code
}

// buildBinary builds ./cmd/commitlog of the server module (the parent of this package's
// directory) into out, without -race: the binary under test need not carry the detector.
func buildBinary(out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/commitlog")
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/commitlog: %w\n%s", err, b)
	}
	return nil
}
