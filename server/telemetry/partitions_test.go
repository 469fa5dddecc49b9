package telemetry

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/telemetry/telemetrytest"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

// TestPartitionMetricsCap: records are counted by topic and partition, the first
// MaxPartitionSeries partitions under their own labels and every later one under "other";
// requests without a topic count for topic "default".
func TestPartitionMetricsCap(t *testing.T) {
	tel := newTelemetry(t, Config{MaxPartitionSeries: 2})
	svc := InstrumentLog(transporttest.NewService(), tel.Metrics())
	ctx := t.Context()
	produce := func(topic string, partition uint32, value string) {
		t.Helper()
		if _, err := svc.Produce(ctx, &logv1.ProduceRequest{Topic: topic, Partition: partition, Record: &logv1.Record{Value: []byte(value)}}); err != nil {
			t.Fatalf("Produce: %v", err)
		}
	}
	produce("orders", 0, "a")
	produce("orders", 1, "bb")
	produce("orders", 2, "ccc") // the third partition: beyond the cap
	produce("orders", 0, "dddd")
	if _, err := svc.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: "payments", Records: []*logv1.Record{{Value: []byte("12")}, {Value: []byte("3")}}}); err != nil {
		t.Fatal(err)
	}
	produce("", 0, "x") // the default topic: beyond the cap too
	// A stream over two partitions: one with its own series, one in "other".
	st := &bidi{reqs: []*logv1.ProduceRequest{
		{Topic: "orders", Partition: 1, Record: &logv1.Record{Value: []byte("s1")}},
		{Topic: "orders", Partition: 2, Record: &logv1.Record{Value: []byte("s22")}},
		{Topic: "orders", Partition: 2, Record: &logv1.Record{Value: []byte("s333")}},
	}}
	if err := svc.ProduceStream(ctx, st); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Consume(ctx, &logv1.ConsumeRequest{Topic: "orders", Partition: 1, Offset: 0}); err != nil {
		t.Fatal(err)
	}

	fams := telemetrytest.Scrape(t, tel.MetricsAddr())
	value := func(name, topic, partition string) float64 {
		t.Helper()
		m, err := telemetrytest.Find(fams, name, map[string]string{"topic": topic, "partition": partition})
		if err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	for _, c := range []struct {
		name, topic, partition string
		want                   float64
	}{
		{"commitlog_partition_produce_records_total", "orders", "0", 2},
		{"commitlog_partition_produce_bytes_total", "orders", "0", 5},
		{"commitlog_partition_produce_records_total", "orders", "1", 2},
		{"commitlog_partition_produce_bytes_total", "orders", "1", 4},
		// orders/2 (1 + 2 streamed), payments/0 (a batch of 2) and default/0 (1).
		{"commitlog_partition_produce_records_total", OtherSeries, OtherSeries, 6},
		{"commitlog_partition_produce_bytes_total", OtherSeries, OtherSeries, 3 + 3 + 4 + 3 + 1},
		{"commitlog_partition_consume_records_total", "orders", "1", 1},
	} {
		if got := value(c.name, c.topic, c.partition); got != c.want {
			t.Errorf("%s{topic=%q,partition=%q} = %v, want %v", c.name, c.topic, c.partition, got, c.want)
		}
	}
	// Exactly two partitions have series of their own, whatever was produced.
	seen := map[string]bool{}
	for _, m := range fams["commitlog_partition_produce_records_total"].GetMetric() {
		var topic, partition string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "topic":
				topic = l.GetValue()
			case "partition":
				partition = l.GetValue()
			}
		}
		seen[topic+"/"+partition] = true
	}
	if len(seen) != 3 || !seen["orders/0"] || !seen["orders/1"] || !seen[OtherSeries+"/"+OtherSeries] {
		t.Errorf("series %v, want orders/0, orders/1 and other/other", seen)
	}
}

// TestPartitionSeriesDefaultTopic: a request without a topic counts for topic "default".
func TestPartitionSeriesDefaultTopic(t *testing.T) {
	p := newPartitionSet(DefaultMaxPartitionSeries, nil)
	if p.get("", 0) != p.get("default", 0) {
		t.Fatal(`topic "" and "default" have different series`)
	}
	if p.get("default", 0) == p.get("default", 1) {
		t.Fatal("two partitions share a series")
	}
	none := newPartitionSet(-1, nil)
	if none.get("orders", 0) != &none.other {
		t.Fatal("a negative cap gave a partition a series of its own")
	}
}

// TestPartitionSeriesOfDeletedTopicsDropped: once the cap is reached, the series of partitions
// that no longer exist are dropped (at most every partitionPruneInterval) and a new partition
// gets a series of its own again; live partitions keep theirs.
func TestPartitionSeriesOfDeletedTopicsDropped(t *testing.T) {
	deleted := map[string]bool{}
	var mu sync.Mutex
	p := newPartitionSet(2, func(topic string, _ uint32) bool {
		mu.Lock()
		defer mu.Unlock()
		return !deleted[topic]
	})
	now := time.Unix(1_000_000, 0)
	p.now = func() time.Time { return now }
	live, old := p.get("live", 0), p.get("old", 0)
	if p.get("new", 0) != &p.other {
		t.Fatal("a third partition got a series of its own under a cap of 2")
	}
	mu.Lock()
	deleted["old"] = true
	mu.Unlock()
	if p.get("new", 0) != &p.other {
		t.Fatal("looked for deleted partitions again before partitionPruneInterval")
	}
	now = now.Add(partitionPruneInterval)
	s := p.get("new", 0)
	if s == &p.other || s == old {
		t.Fatal("the deleted topic's series was not dropped for the new partition")
	}
	if p.get("live", 0) != live || p.get("new", 0) != s {
		t.Fatal("a live partition's series changed")
	}
	var visited []*partitionSeries
	p.each(func(s *partitionSeries) { visited = append(visited, s) })
	if len(visited) != 2 || visited[0] != live || visited[1] != s {
		t.Fatalf("each visits %d series, want live's and new's", len(visited))
	}
}

// refusingStreams is a log service whose streams refuse every request (as the server refuses
// an unknown topic, NotFound) without sending a record.
type refusingStreams struct{ Service }

func (refusingStreams) ConsumeStream(context.Context, *logv1.ConsumeRequest, transport.ServerStream[logv1.ConsumeResponse]) error {
	return transport.Errorf(transport.NotFound, "unknown topic")
}

func (refusingStreams) ProduceStream(_ context.Context, st transport.BidiStream[logv1.ProduceRequest, logv1.ProduceResponse]) error {
	if _, err := st.Receive(); err != nil {
		return err
	}
	return transport.Errorf(transport.NotFound, "unknown topic")
}

// TestPartitionSeriesOnlyForServedPartitions: a stream refused before it carried a record
// (an unknown topic, a name no topic may have) gets no series of its own. Streams took a
// series for whatever topic their request named before the service judged it, so a client
// naming topics that do not exist (of up to a request's size, 1 MiB on ProduceStream) filled
// the series cap with its names, each exported as a label on every scrape, and real
// partitions were counted under "other".
func TestPartitionSeriesOnlyForServedPartitions(t *testing.T) {
	tel := newTelemetry(t, Config{MaxPartitionSeries: 4})
	svc := InstrumentLog(refusingStreams{transporttest.NewService()}, tel.Metrics())
	ctx := t.Context()
	long := strings.Repeat("x", 64<<10)
	for i := range 4 {
		name := fmt.Sprintf("nope-%d-%s", i, long)
		if err := svc.ConsumeStream(ctx, &logv1.ConsumeRequest{Topic: name}, nil); transport.CodeOf(err) != transport.NotFound {
			t.Fatalf("ConsumeStream: %v", err)
		}
		st := &bidi{reqs: []*logv1.ProduceRequest{{Topic: name + "p", Record: &logv1.Record{Value: []byte("v")}}}}
		if err := svc.ProduceStream(ctx, st); transport.CodeOf(err) != transport.NotFound {
			t.Fatalf("ProduceStream: %v", err)
		}
	}
	tel.Metrics().partitions.each(func(s *partitionSeries) {
		t.Error("a refused stream has a series of its own")
	})
}
