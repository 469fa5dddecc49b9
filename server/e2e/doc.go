// Package e2e holds end-to-end tests of the commitlog binary: they build cmd/commitlog once,
// run `commitlog serve` as real processes on temporary data directories and free loopback
// ports, and drive them with the CLI, Connect JSON over HTTP/1.1 (and curl when installed) and
// the Go SDK, killing, pausing and restarting the processes.
//
// The package has no API: everything lives in its tests. The process harness (Node, in
// node_test.go) and the invariant checker (ledger and checkInvariants, in check_test.go) are
// shared by the single-node tests and the cluster tests.
//
// Run with:
//
//	cd server && go test -race ./e2e/
package e2e
