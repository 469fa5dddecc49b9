package grpc_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/commitlog-go/commitlog/transport"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func harness() transporttest.Harness {
	return transporttest.Harness{
		NewServer: func(cfg transport.ServerConfig) (transport.Server, error) { return tgrpc.NewServer(cfg) },
		NewClient: tgrpc.NewClient,
	}
}

func TestConformance(t *testing.T) { transporttest.Run(t, harness()) }

func TestNewServerValidates(t *testing.T) {
	if _, err := tgrpc.NewServer(transport.ServerConfig{}); err != transport.ErrNoService {
		t.Errorf("NewServer without Log = %v, want ErrNoService", err)
	}
	if _, err := tgrpc.NewServer(transport.ServerConfig{Log: transporttest.NewService(), MaxMessageBytes: -1}); err == nil {
		t.Errorf("NewServer with negative MaxMessageBytes succeeded")
	}
}

func BenchmarkTransport(b *testing.B) { transporttest.Bench(b, harness()) }

// BenchmarkTransportTelemetry is BenchmarkTransport with OpenTelemetry instrumentation on
// both sides (see transporttest.BenchTelemetry): spans only, and spans and RPC metrics.
func BenchmarkTransportTelemetry(b *testing.B) {
	for _, metrics := range []bool{false, true} {
		name := map[bool]string{false: "spans", true: "spans+metrics"}[metrics]
		b.Run(name, func(b *testing.B) {
			transporttest.Bench(b, transporttest.WithTelemetry(harness(), transporttest.BenchTelemetry(b, metrics)))
		})
	}
}
