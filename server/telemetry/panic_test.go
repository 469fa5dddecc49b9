package telemetry

import (
	"context"
	"testing"

	"github.com/commitlog-go/commitlog/server/telemetry/telemetrytest"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

// panickingService's stream handlers panic, as a handler bug would: the transports recover
// the panic (grpc-go through our interceptor, Connect through net/http) and the server lives on.
type panickingService struct{ Service }

func (panickingService) ConsumeStream(context.Context, *logv1.ConsumeRequest, transport.ServerStream[logv1.ConsumeResponse]) error {
	panic("handler bug")
}

func (panickingService) ProduceStream(context.Context, transport.BidiStream[logv1.ProduceRequest, logv1.ProduceResponse]) error {
	panic("handler bug")
}

// TestOpenStreamsAfterHandlerPanic: a stream whose handler panicked stayed counted in
// commitlog_streams_open for the life of the process (the server survives the panic), so the
// gauge drifted up with every such stream. A stream that ended, however, is no longer open.
func TestOpenStreamsAfterHandlerPanic(t *testing.T) {
	tel := newTelemetry(t, Config{})
	svc := InstrumentLog(panickingService{transporttest.NewService()}, tel.Metrics())
	call := func(f func()) {
		defer func() {
			if recover() == nil {
				t.Error("the handler did not panic")
			}
		}()
		f()
	}
	call(func() {
		_ = svc.ConsumeStream(t.Context(), &logv1.ConsumeRequest{}, sendFunc(func(*logv1.ConsumeResponse) error { return nil }))
	})
	call(func() { _ = svc.ProduceStream(t.Context(), &bidi{}) })
	fams := telemetrytest.Scrape(t, tel.MetricsAddr())
	for _, rpc := range []string{"ConsumeStream", "ProduceStream"} {
		m, err := telemetrytest.Find(fams, "commitlog_streams_open", map[string]string{"rpc": rpc})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.GetGauge().GetValue(); got != 0 {
			t.Errorf("commitlog_streams_open{rpc=%q} = %v after its handler panicked, want 0", rpc, got)
		}
	}
}

// panickingUnary's Produce panics, as a handler bug would.
type panickingUnary struct{ Service }

func (panickingUnary) Produce(context.Context, *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	panic("handler bug")
}

// TestRequestDurationAfterHandlerPanic: a call whose handler panicked (the transports recover
// it and answer Internal) was missing from commitlog_request_duration_seconds: done was never
// reached, so the histogram showed no failed call at all, the one kind an alert on code!="ok"
// most needs to see. It is recorded once, with code internal, unary and stream alike.
func TestRequestDurationAfterHandlerPanic(t *testing.T) {
	tel := newTelemetry(t, Config{})
	svc := InstrumentLog(panickingUnary{panickingService{transporttest.NewService()}}, tel.Metrics())
	call := func(f func()) {
		defer func() {
			if recover() == nil {
				t.Error("the handler did not panic")
			}
		}()
		f()
	}
	call(func() {
		_, _ = svc.Produce(t.Context(), &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}})
	})
	call(func() {
		_ = svc.ConsumeStream(t.Context(), &logv1.ConsumeRequest{}, sendFunc(func(*logv1.ConsumeResponse) error { return nil }))
	})
	call(func() { _ = svc.ProduceStream(t.Context(), &bidi{}) })
	fams := telemetrytest.Scrape(t, tel.MetricsAddr())
	for _, rpc := range []string{"Produce", "ConsumeStream", "ProduceStream"} {
		m, err := telemetrytest.Find(fams, "commitlog_request_duration_seconds", map[string]string{"rpc": rpc, "code": transport.Internal.String()})
		if err != nil {
			t.Errorf("%s whose handler panicked: %v", rpc, err)
			continue
		}
		if n := m.GetHistogram().GetSampleCount(); n != 1 {
			t.Errorf("commitlog_request_duration_seconds{rpc=%q,code=\"internal\"} counts %d calls, want the 1 that panicked", rpc, n)
		}
	}
}
