// Package tools is the root of the tools module: operator and developer tools for commitlog
// that are not part of the service itself. The package holds no code; the tools are:
//
//   - cmd/commitlog-bench: the benchmark driver (load tool), a thin command around package
//     loadgen, which runs producers and readers against a cluster through the Go SDK and
//     reports throughput and latency percentiles;
//   - latency: the bounded-memory latency histogram loadgen reports from.
//
// See README.md for example command lines and the output format.
package tools
