//go:build race

package consensustest

// raceEnabled is true when the race detector is on (go test -race): see FastConfig.
const raceEnabled = true
