package transporttest

import (
	"testing"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// Bench measures h against the in-memory Service: unary Produce of 100 B
// records from one caller and from GOMAXPROCS*4 callers, and ProduceStream
// pipelining (sends and receives in two goroutines). Report records/s from
// ns/op: 1e9 / ns/op.
func Bench(b *testing.B, h Harness) {
	value := make([]byte, 100)
	req := &logv1.ProduceRequest{Record: &logv1.Record{Value: value}}
	b.Run("Produce", func(b *testing.B) {
		s := Start(b, h, transport.ServerConfig{})
		c := Dial(b, h, s.Addr, transport.ClientConfig{})
		ctx := b.Context()
		b.SetBytes(int64(len(value)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Produce(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ProduceParallel", func(b *testing.B) {
		s := Start(b, h, transport.ServerConfig{})
		c := Dial(b, h, s.Addr, transport.ClientConfig{})
		ctx := b.Context()
		b.SetBytes(int64(len(value)))
		b.SetParallelism(4)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Produce(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("ProduceStream", func(b *testing.B) {
		s := Start(b, h, transport.ServerConfig{})
		c := Dial(b, h, s.Addr, transport.ClientConfig{})
		stream, err := c.ProduceStream(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		defer stream.Close()
		b.SetBytes(int64(len(value)))
		b.ResetTimer()
		errc := make(chan error, 1)
		go func() {
			for range b.N {
				if err := stream.Send(req); err != nil {
					errc <- err
					return
				}
			}
			errc <- stream.CloseSend()
		}()
		for range b.N {
			if _, err := stream.Receive(); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	})
}
