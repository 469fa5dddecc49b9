package cli

import (
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/server"
)

// TestServeMetricsPartitionSeriesFlag: --metrics-max-partition-series reaches the Config: its
// default (100), a value, and 0 meaning no partition of its own (the Config's -1).
func TestServeMetricsPartitionSeriesFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 100},
		{[]string{"--metrics-max-partition-series", "7"}, 7},
		{[]string{"--metrics-max-partition-series", "0"}, -1},
	} {
		got, err := serveConfigOf(tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		if got.MetricsMaxPartitionSeries != tc.want {
			t.Errorf("serve %v: MetricsMaxPartitionSeries = %d, want %d", tc.args, got.MetricsMaxPartitionSeries, tc.want)
		}
	}
}

// TestServeRPCPortZero: --rpc-port 0 picks a free port, as port 0 does everywhere (--bind-addr
// 127.0.0.1:0, --metrics-addr 127.0.0.1:0, the seed's --rpc-port): it meant the Config's zero,
// the default 8400, so a second node started with it on one host took or collided with 8400.
func TestServeRPCPortZero(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, server.DefaultRPCPort},
		{[]string{"--rpc-port", "9401"}, 9401},
		{[]string{"--rpc-port", "0"}, -1},
		{[]string{"--rpc-port", "-1"}, -1},
	} {
		got, err := serveConfigOf(tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		if got.RPCPort != tc.want {
			t.Errorf("serve %v: RPCPort = %d, want %d", tc.args, got.RPCPort, tc.want)
		}
	}
}

// TestServeTraceSampleRatioRefused: --trace-sample-ratio outside 0..1 is refused naming the
// flag: a negative value silently meant 0 (no traces), and NaN passed every check and, in the
// OpenTelemetry ratio sampler, sampled every trace.
func TestServeTraceSampleRatioRefused(t *testing.T) {
	for _, v := range []string{"-0.5", "NaN", "1.5"} {
		_, err := serveConfigOf("--trace-sample-ratio", v)
		if err == nil || !strings.Contains(err.Error(), "--trace-sample-ratio") {
			t.Errorf("--trace-sample-ratio %s: %v, want an error naming the flag", v, err)
		}
	}
}
