// Package loadgen drives load against a commitlog cluster through the Go SDK
// (github.com/commitlog-go/commitlog/client) and measures it: records per second, megabytes per
// second, and latency percentiles from a bounded-memory histogram (package tools/latency).
//
// A run is described by a [Config] and executed by [Run], which the commitlog-bench command
// wraps; tests and other programs call Run in-process. Producers write in one of three modes:
// [ModeUnary] (one Produce request per record), [ModeBatch] (the SDK's batching
// client.Producer) or [ModeStream] (pipelined ProduceStream to the leader). Readers check what
// producers wrote: unary Consume readers tail the producers offset by offset, and stream readers
// each follow the whole range with Client.Stream. Every value carries a timestamp and a CRC-32C
// (see [HeaderSize]) so readers count corrupt records and measure end-to-end latency.
//
// Every loop of a run is bounded by the run's duration, its record count, a drain timeout and
// its context; Run returns only after every goroutine it started has.
package loadgen
