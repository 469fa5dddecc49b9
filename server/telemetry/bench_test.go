package telemetry

import (
	"context"
	"testing"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// nopService answers every call at once, so the benchmark measures the wrapper alone.
type nopService struct{ Service }

func (nopService) Produce(context.Context, *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	return &logv1.ProduceResponse{}, nil
}

// BenchmarkInstrumentLog measures what InstrumentLog adds to a Produce: bare vs measured
// (our instruments recording into the SDK behind the Prometheus exporter).
func BenchmarkInstrumentLog(b *testing.B) {
	tel, err := New(context.Background(), Config{MetricsAddr: MetricsOff})
	if err != nil {
		b.Fatal(err)
	}
	defer tel.Close(context.Background())
	req := &logv1.ProduceRequest{Record: &logv1.Record{Value: make([]byte, 100)}}
	for name, svc := range map[string]transport.LogService{
		"bare":     nopService{},
		"measured": InstrumentLog(nopService{}, tel.Metrics()),
	} {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := svc.Produce(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
