package telemetry

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/commitlog-go/commitlog/server/telemetry/telemetrytest"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

// duplicateService answers every produce as an idempotent producer's recognised retry: nothing
// stored, the original's offset (duplicate=true), as the server does.
type duplicateService struct{ Service }

func (duplicateService) Produce(context.Context, *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	return &logv1.ProduceResponse{Offset: 7, Duplicate: true}, nil
}

func (duplicateService) ProduceBatch(_ context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	return &logv1.ProduceBatchResponse{BaseOffset: 7, Count: uint64(len(req.GetRecords())), Duplicate: true}, nil
}

func (duplicateService) ProduceStream(_ context.Context, stream transport.BidiStream[logv1.ProduceRequest, logv1.ProduceResponse]) error {
	// The first request is answered by Send, the others by one SendBatch; the second one is
	// not a duplicate.
	var batch []*logv1.ProduceResponse
	for n := 0; ; n++ {
		_, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if n > 0 {
			batch = append(batch, &logv1.ProduceResponse{Offset: 7 + uint64(n), Duplicate: n != 1})
		} else if err := stream.Send(&logv1.ProduceResponse{Offset: 7, Duplicate: true}); err != nil {
			return err
		}
	}
	return transport.SendBatch(stream, batch)
}

// TestDuplicateProducesNotCounted checks that an idempotent producer's retry that the server
// recognised (duplicate=true: nothing was appended) is not counted as records and bytes
// produced: a producer retrying after timeouts made the produce rate, total and per
// partition, count records twice.
func TestDuplicateProducesNotCounted(t *testing.T) {
	tel := newTelemetry(t, Config{})
	svc := InstrumentLog(duplicateService{transporttest.NewService()}, tel.Metrics())
	ctx := t.Context()
	if _, err := svc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("abc")}}); err != nil {
		t.Fatalf("Produce: %v", err)
	}
	if _, err := svc.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{{Value: []byte("12")}, {Value: []byte("3")}}}); err != nil {
		t.Fatalf("ProduceBatch: %v", err)
	}
	st := &bidi{reqs: []*logv1.ProduceRequest{{Record: &logv1.Record{Value: []byte("xx")}}, {Record: &logv1.Record{Value: []byte("yyy")}}, {Record: &logv1.Record{Value: []byte("z")}}}}
	if err := svc.ProduceStream(ctx, st); err != nil {
		t.Fatalf("ProduceStream: %v", err)
	}
	fams := telemetrytest.Scrape(t, tel.MetricsAddr())
	value := func(name string, labels map[string]string) float64 {
		m, err := telemetrytest.Find(fams, name, labels)
		if err != nil {
			return 0 // no series: nothing counted
		}
		return m.GetCounter().GetValue()
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"commitlog_produce_records_total", map[string]string{"rpc": "Produce"}, 0},
		{"commitlog_produce_bytes_total", map[string]string{"rpc": "Produce"}, 0},
		{"commitlog_produce_records_total", map[string]string{"rpc": "ProduceBatch"}, 0},
		{"commitlog_produce_bytes_total", map[string]string{"rpc": "ProduceBatch"}, 0},
		{"commitlog_produce_records_total", map[string]string{"rpc": "ProduceStream"}, 1}, // "yyy"
		{"commitlog_produce_bytes_total", map[string]string{"rpc": "ProduceStream"}, 3},
		{"commitlog_partition_produce_records_total", map[string]string{"topic": "default", "partition": "0"}, 1},
		{"commitlog_partition_produce_bytes_total", map[string]string{"topic": "default", "partition": "0"}, 3},
	}
	for _, c := range checks {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if m, err := telemetrytest.Find(fams, "commitlog_request_duration_seconds", map[string]string{"rpc": "Produce", "code": "ok"}); err != nil || m.GetHistogram().GetSampleCount() != 1 {
		t.Errorf("the duplicate Produce's call is still measured: %v, %v", m, err)
	}
}
