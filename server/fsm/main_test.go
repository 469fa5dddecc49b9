package fsm

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// consensus/raft's Node.await leaves one goroutine per proposal whose entry was
		// committed and queued for the FSM goroutine when raft shut down: hashicorp/raft v1.8.0
		// never resolves those futures (see await's doc comment; consensus/raft's own tests
		// ignore it the same way). The proposer was released by Close; the goroutine holds
		// only the future. Any other leak still fails.
		goleak.IgnoreAnyFunction("github.com/commitlog-go/commitlog/consensus/raft.(*Node).await.func1"),
	)
}
