package connect_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func harness(p tconnect.Protocol) transporttest.Harness {
	return transporttest.Harness{
		NewServer: func(cfg transport.ServerConfig) (transport.Server, error) { return tconnect.NewServer(cfg) },
		NewClient: func(addr string, cfg transport.ClientConfig) (transport.Client, error) {
			return tconnect.NewClientProtocol(addr, cfg, p)
		},
	}
}

// TestConformance runs the suite with the client speaking each protocol the
// server accepts.
func TestConformance(t *testing.T) {
	for _, p := range []tconnect.Protocol{tconnect.ProtocolConnect, tconnect.ProtocolGRPC, tconnect.ProtocolGRPCWeb} {
		t.Run(p.String(), func(t *testing.T) { transporttest.Run(t, harness(p)) })
	}
}

func BenchmarkTransport(b *testing.B) {
	for _, p := range []tconnect.Protocol{tconnect.ProtocolConnect, tconnect.ProtocolGRPC} {
		b.Run(p.String(), func(b *testing.B) { transporttest.Bench(b, harness(p)) })
	}
}

// BenchmarkTransportTelemetry is BenchmarkTransport with OpenTelemetry instrumentation on
// both sides (see transporttest.BenchTelemetry): spans only, and spans and RPC metrics.
func BenchmarkTransportTelemetry(b *testing.B) {
	for _, p := range []tconnect.Protocol{tconnect.ProtocolConnect, tconnect.ProtocolGRPC} {
		for _, metrics := range []bool{false, true} {
			name := p.String() + map[bool]string{false: "/spans", true: "/spans+metrics"}[metrics]
			b.Run(name, func(b *testing.B) {
				transporttest.Bench(b, transporttest.WithTelemetry(harness(p), transporttest.BenchTelemetry(b, metrics)))
			})
		}
	}
}
