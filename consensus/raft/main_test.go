package raft_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Node.await leaves one goroutine per proposal whose entry was committed and queued for
		// the FSM goroutine when raft shut down: hashicorp/raft v1.8.0 never resolves those
		// futures, and nothing else can (see await's doc comment). Its waiter was released by
		// Close; the goroutine holds only the future. Any other leak still fails.
		goleak.IgnoreAnyFunction("github.com/commitlog-go/commitlog/consensus/raft.(*Node).await.func1"),
	)
}
