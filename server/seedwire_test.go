package server

import (
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawCodec sends and receives message bytes as they are, so the test encodes the seed's
// messages by field number, with no generated code of ours involved.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// fields decodes one level of a protobuf message into field number → raw values (varints as
// uint64, bytes as []byte).
func fields(t *testing.T, b []byte) map[protowire.Number][]any {
	t.Helper()
	out := map[protowire.Number][]any{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				t.Fatalf("bad varint")
			}
			out[num] = append(out[num], v)
			b = b[n:]
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				t.Fatalf("bad bytes")
			}
			out[num] = append(out[num], v)
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				t.Fatalf("bad field")
			}
			b = b[n:]
		}
	}
	return out
}

// TestSeedWireFormat plays a client generated from the seed's log.proto: package log.v1,
// service Log, Record{bytes value = 1; uint64 offset = 2; uint64 term = 3; uint32 type = 4},
// ProduceRequest{Record record = 1}, ProduceResponse{uint64 offset = 1},
// ConsumeRequest{uint64 offset = 1}, ConsumeResponse{Record record = 2},
// GetServersResponse{repeated Server servers = 1}, Server{id = 1, rpc_addr = 2, is_leader = 3}.
func TestSeedWireFormat(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			srv := startServer(t, Config{Transport: tr})
			conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx := ctxT(t, 20*time.Second)

			record := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte("hello seed"))
			req := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), record)
			var res []byte
			for want := range uint64(2) {
				if err := conn.Invoke(ctx, "/log.v1.Log/Produce", &req, &res); err != nil {
					t.Fatalf("Produce: %v", err)
				}
				var off uint64
				if f := fields(t, res)[1]; len(f) == 1 {
					off = f[0].(uint64)
				}
				if off != want {
					t.Fatalf("ProduceResponse field 1 (offset) = %d, want %d (raw %x)", off, want, res)
				}
			}

			creq := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1)
			if err := conn.Invoke(ctx, "/log.v1.Log/Consume", &creq, &res); err != nil {
				t.Fatalf("Consume: %v", err)
			}
			recs := fields(t, res)[2]
			if len(recs) != 1 {
				t.Fatalf("ConsumeResponse has no field 2 (record): %x", res)
			}
			rec := fields(t, recs[0].([]byte))
			if string(rec[1][0].([]byte)) != "hello seed" || rec[2][0].(uint64) != 1 {
				t.Fatalf("Record = %v, want value %q at offset 1", rec, "hello seed")
			}

			empty := []byte{}
			if err := conn.Invoke(ctx, "/log.v1.Log/GetServers", &empty, &res); err != nil {
				t.Fatalf("GetServers: %v", err)
			}
			servers := fields(t, res)[1]
			if len(servers) != 1 {
				t.Fatalf("GetServersResponse field 1 has %d servers, want 1", len(servers))
			}
			s := fields(t, servers[0].([]byte))
			if string(s[1][0].([]byte)) != "node-0" || string(s[2][0].([]byte)) != srv.Addr() || s[3][0].(uint64) != 1 {
				t.Fatalf("Server = %v, want id node-0, rpc_addr %s, is_leader true", s, srv.Addr())
			}
		})
	}
}
