package transporttest

import (
	"fmt"
	"slices"
	"testing"

	ggrpc "google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/commitlog-go/commitlog/transport"
)

// rawCodec sends and receives already-encoded bytes, so the seed wire test
// depends on field numbers only, not on our generated code.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = slices.Clone(data)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// field is one decoded protobuf field.
type field struct {
	num    protowire.Number
	varint uint64
	bytes  []byte
}

// decodeFields parses one message level by field number.
func decodeFields(b []byte) ([]field, error) {
	var out []field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		f := field{num: num}
		switch typ {
		case protowire.VarintType:
			f.varint, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.bytes, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		out = append(out, f)
	}
	return out, nil
}

func get(fs []field, num protowire.Number) (field, bool) {
	for _, f := range fs {
		if f.num == num {
			return f, true
		}
	}
	return field{}, false
}

// testSeedWire calls Produce and Consume the way a client generated from
// the seed's log.proto encodes them: ProduceRequest{Record record = 1},
// Record{bytes value = 1}, ProduceResponse{uint64 offset = 1},
// ConsumeRequest{uint64 offset = 1}, ConsumeResponse{Record record = 2},
// Record{value = 1, offset = 2}, over plain gRPC.
func testSeedWire(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{})
	conn, err := ggrpc.NewClient("passthrough:///"+s.Addr, ggrpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := ctxT(t)
	for i, value := range []string{"hello", "world"} {
		rec := protowire.AppendTag(nil, 1, protowire.BytesType)
		rec = protowire.AppendBytes(rec, []byte(value))
		req := protowire.AppendTag(nil, 1, protowire.BytesType)
		req = protowire.AppendBytes(req, rec)
		var res []byte
		if err := conn.Invoke(ctx, "/log.v1.Log/Produce", &req, &res, ggrpc.ForceCodec(rawCodec{})); err != nil {
			t.Fatalf("seed Produce: %v", err)
		}
		fs, err := decodeFields(res)
		if err != nil {
			t.Fatalf("decode ProduceResponse %x: %v", res, err)
		}
		off, _ := get(fs, 1)
		if off.varint != uint64(i) {
			t.Fatalf("ProduceResponse.offset = %d, want %d (%x)", off.varint, i, res)
		}
	}
	for i, want := range []string{"hello", "world"} {
		req := protowire.AppendTag(nil, 1, protowire.VarintType)
		req = protowire.AppendVarint(req, uint64(i))
		var res []byte
		if err := conn.Invoke(ctx, "/log.v1.Log/Consume", &req, &res, ggrpc.ForceCodec(rawCodec{})); err != nil {
			t.Fatalf("seed Consume: %v", err)
		}
		if err := checkSeedConsume(res, want, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func checkSeedConsume(res []byte, value string, offset uint64) error {
	fs, err := decodeFields(res)
	if err != nil {
		return fmt.Errorf("decode ConsumeResponse %x: %w", res, err)
	}
	rec, ok := get(fs, 2)
	if !ok {
		return fmt.Errorf("consume response %x has no field 2 (record)", res)
	}
	rfs, err := decodeFields(rec.bytes)
	if err != nil {
		return fmt.Errorf("decode Record %x: %w", rec.bytes, err)
	}
	v, _ := get(rfs, 1)
	o, _ := get(rfs, 2)
	if string(v.bytes) != value || o.varint != offset {
		return fmt.Errorf("record = value %q offset %d, want %q %d", v.bytes, o.varint, value, offset)
	}
	return nil
}
