package server

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	tgrpc "github.com/commitlog-go/commitlog/transport/grpc"
)

// TestSizeLimitCodesAgreeAcrossTransports: the same over-limit request gets the same status
// code whatever the server's transport and the client's protocol: ResourceExhausted, with a
// message that names the limit, for a record over --max-record-bytes, a batch over
// --max-batch-records and a message over the transport's bound, on Produce, ProduceBatch and
// ProduceStream; and nothing is stored. The connect transport answered a batch of too many
// records InvalidArgument (connect-go reports a codec's refusal so), the grpc transport
// ResourceExhausted.
func TestSizeLimitCodesAgreeAcrossTransports(t *testing.T) {
	const (
		maxRecord   = 1024
		maxMessage  = maxRecord + 64<<10 // Produce and ProduceStream messages
		maxBatchMsg = 128 << 10          // ProduceBatch messages (MaxRequestBytes)
		maxRecords  = 3
	)
	rec := func(n int) *logv1.Record { return &logv1.Record{Value: make([]byte, n)} }
	recs := func(n, size int) []*logv1.Record {
		out := make([]*logv1.Record, n)
		for i := range out {
			out[i] = rec(size)
		}
		return out
	}
	type call func(t *testing.T, c transport.Client) error
	produce := func(r *logv1.Record) call {
		return func(t *testing.T, c transport.Client) error {
			_, err := c.Produce(ctxT(t, 30*time.Second), &logv1.ProduceRequest{Record: r})
			return err
		}
	}
	batch := func(rs []*logv1.Record) call {
		return func(t *testing.T, c transport.Client) error {
			_, err := c.ProduceBatch(ctxT(t, 30*time.Second), &logv1.ProduceBatchRequest{Records: rs})
			return err
		}
	}
	stream := func(r *logv1.Record) call {
		return func(t *testing.T, c transport.Client) error {
			ps, err := c.ProduceStream(ctxT(t, 30*time.Second))
			if err != nil {
				return err
			}
			defer ps.Close()
			if err := ps.Send(&logv1.ProduceRequest{Record: r}); err != nil {
				return err
			}
			if err := ps.CloseSend(); err != nil {
				return err
			}
			_, err = ps.Receive()
			return err
		}
	}
	cases := []struct {
		name  string
		limit int // the limit the refusal must name
		call  call
	}{
		{"Produce/record over max-record-bytes", maxRecord, produce(rec(maxRecord + 1))},
		{"Produce/message over the transport's bound", maxMessage, produce(rec(maxMessage + 1))},
		{"ProduceBatch/record over max-record-bytes", maxRecord, batch([]*logv1.Record{rec(1), rec(maxRecord + 1)})},
		{"ProduceBatch/records over max-batch-records", maxRecords, batch(recs(maxRecords+1, 1))},
		{"ProduceBatch/message over the transport's bound", maxBatchMsg, batch(recs(maxRecords, maxBatchMsg/maxRecords+1))},
		{"ProduceStream/record over max-record-bytes", maxRecord, stream(rec(maxRecord + 1))},
		{"ProduceStream/message over the transport's bound", maxMessage, stream(rec(maxMessage + 1))},
	}
	type client struct {
		name string
		new  func(addr string) (transport.Client, error)
	}
	connectClient := func(p tconnect.Protocol) func(string) (transport.Client, error) {
		return func(addr string) (transport.Client, error) {
			return tconnect.NewClientProtocol(addr, transport.ClientConfig{}, p)
		}
	}
	grpcClient := func(addr string) (transport.Client, error) { return tgrpc.NewClient(addr, transport.ClientConfig{}) }
	clients := map[string][]client{
		TransportConnect: {
			{"connect", connectClient(tconnect.ProtocolConnect)},
			{"grpc-web", connectClient(tconnect.ProtocolGRPCWeb)},
			{"grpc (connect-go)", connectClient(tconnect.ProtocolGRPC)},
			{"grpc (grpc-go)", grpcClient},
		},
		TransportGRPC: {
			{"grpc (grpc-go)", grpcClient},
			{"grpc (connect-go)", connectClient(tconnect.ProtocolGRPC)},
		},
	}
	// codes[case][transport/client]
	codes := make(map[string]map[string]transport.Code)
	for _, tr := range transports {
		srv := startServer(t, Config{Transport: tr, MaxRecordBytes: maxRecord, MaxRequestBytes: maxBatchMsg, MaxBatchRecords: maxRecords})
		for _, cl := range clients[tr] {
			c, err := cl.new(srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range cases {
				err := tc.call(t, c)
				who := tr + " transport, " + cl.name + " client"
				if codes[tc.name] == nil {
					codes[tc.name] = make(map[string]transport.Code)
				}
				codes[tc.name][who] = transport.CodeOf(err)
				if err == nil {
					t.Errorf("%s, %s: accepted", tc.name, who)
					continue
				}
				// The limit as a number of its own, not part of another.
				if !regexp.MustCompile(`\b` + strconv.Itoa(tc.limit) + `\b`).MatchString(err.Error()) {
					t.Errorf("%s, %s: %q does not name the limit (%d)", tc.name, who, err, tc.limit)
				}
			}
			_ = c.Close()
		}
		c := newClient(t, tr, srv.Addr())
		b, err := c.GetBounds(ctxT(t, 30*time.Second), &logv1.GetBoundsRequest{Linearizable: true})
		if err != nil {
			t.Fatal(err)
		}
		if b.GetNextOffset() != 0 {
			t.Errorf("%s transport: next offset %d after refused requests only, want 0 (nothing stored)", tr, b.GetNextOffset())
		}
	}
	for _, tc := range cases {
		var got []string
		same := true
		for who, code := range codes[tc.name] {
			got = append(got, who+": "+code.String())
			if code != transport.ResourceExhausted {
				same = false
			}
		}
		if !same {
			sort.Strings(got)
			t.Errorf("%s: codes differ or are not ResourceExhausted:\n\t%s", tc.name, strings.Join(got, "\n\t"))
		}
	}
}
