package transporttest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	ggrpc "google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// maxHeapGrowth is what one hostile request may make the server allocate
// (client and server share the process, so this includes the client's
// buffers).
const maxHeapGrowth = 32 << 20

// allocated returns the bytes allocated by the whole process while f runs.
func allocated(f func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// grpcFrame frames msg as one gRPC message (gzipped: msg is already
// gzip-compressed).
func grpcFrame(msg []byte, gzipped bool) []byte {
	frame := make([]byte, 5, 5+len(msg))
	if gzipped {
		frame[0] = 1
	}
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	return append(frame, msg...)
}

// rawGRPC makes one gRPC call with h2c carrying frame (see grpcFrame),
// without any client library's help, and returns the grpc-status and
// grpc-message of the answer.
func rawGRPC(t testing.TB, addr, method string, frame []byte, gzipped bool) (code, message string) {
	t.Helper()
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodPost, "http://"+addr+method, bytes.NewReader(frame))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	if gzipped {
		req.Header.Set("Grpc-Encoding", "gzip")
	}
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	code, message = res.Header.Get("Grpc-Status"), res.Header.Get("Grpc-Message")
	if code == "" {
		code, message = res.Trailer.Get("Grpc-Status"), res.Trailer.Get("Grpc-Message")
	}
	return code, message
}

// gzipBomb returns 64 MiB of zeros gzipped to about 64 KiB: 64 gzip
// members of 1 MiB each (a gzip stream may hold several members, and
// decoders read them as one), computed once.
var gzipBomb = sync.OnceValue(func() []byte {
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	_, _ = zw.Write(make([]byte, 1<<20))
	_ = zw.Close()
	return bytes.Repeat(member.Bytes(), 64)
})

// emptyRecordsBatch returns a binary ProduceBatchRequest of n empty
// records (two bytes each).
func emptyRecordsBatch(n int) []byte {
	rec := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.BytesType), 0)
	return bytes.Repeat(rec, n)
}

// grpcCode is the grpc-status number of c.
func grpcCode(c transport.Code) string { return fmt.Sprint(int(c)) }

// testGzipBomb sends the health service and reflection a request of 64 MiB
// of zeros gzipped to a few dozen KiB: refused, and the server allocates
// far less than the request claims.
func testGzipBomb(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{})
	bomb := grpcFrame(gzipBomb(), true)
	for _, method := range []string{
		"/grpc.health.v1.Health/Check",
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
		transport.MethodConsume,
	} {
		var code, msg string
		n := allocated(func() { code, msg = rawGRPC(t, s.Addr, method, bomb, true) })
		// grpc-go without a gzip decompressor refuses it as Unimplemented.
		if code != grpcCode(transport.ResourceExhausted) && code != grpcCode(transport.Unimplemented) {
			t.Errorf("%s with a %d-byte gzip bomb: grpc-status %q (%s), want ResourceExhausted", method, len(bomb), code, msg)
		}
		if n > maxHeapGrowth {
			t.Errorf("%s with a gzip bomb: %d MiB allocated, want under %d MiB", method, n>>20, maxHeapGrowth>>20)
		}
		t.Logf("%s with a gzip bomb: %d KiB allocated", method, n>>10)
	}
}

// testAdmitBeforeRead sends ProduceBatch of ~2 M empty records (4 MiB)
// from a caller Admit refuses: refused before the body is read, so the
// server allocates almost nothing and no hook or handler runs.
func testAdmitBeforeRead(t *testing.T, h Harness) {
	svc := NewService()
	intercepted := 0
	s := Start(t, h, transport.ServerConfig{
		Log: svc, Cluster: svc,
		Admit: func(ctx context.Context, method string, p transport.Peer) (context.Context, error) {
			if p.Addr == "" || p.Protocol == "" {
				t.Errorf("Admit(%s): peer %+v, want an address and a protocol", method, p)
			}
			if pp, ok := transport.PeerFromContext(ctx); !ok || !samePeer(pp, p) {
				t.Errorf("PeerFromContext in Admit = %v, %v; want %v", pp, ok, p)
			}
			if method == transport.MethodProduceBatch {
				return nil, transport.Errorf(transport.PermissionDenied, "%s denied", method)
			}
			return ctx, nil
		},
		Intercept: func(ctx context.Context, method string, _ transport.Peer) (context.Context, error) {
			if method == transport.MethodProduceBatch {
				intercepted++
			}
			return ctx, nil
		},
	})
	const records = (4<<20)/2 - 16
	batch := grpcFrame(emptyRecordsBatch(records), false)
	var code, msg string
	n := allocated(func() { code, msg = rawGRPC(t, s.Addr, transport.MethodProduceBatch, batch, false) })
	if code != grpcCode(transport.PermissionDenied) {
		t.Errorf("denied ProduceBatch of %d records: grpc-status %q (%s), want PermissionDenied", records, code, msg)
	}
	if n > maxHeapGrowth {
		t.Errorf("denied ProduceBatch of %d records: %d MiB allocated, want under %d MiB", records, n>>20, maxHeapGrowth>>20)
	}
	t.Logf("denied ProduceBatch of %d records: %d KiB allocated", records, n>>10)
	if intercepted != 0 || svc.Calls() != 0 {
		t.Errorf("after Admit refused: Intercept ran %d times, the handler %d", intercepted, svc.Calls())
	}
	// Every client reports the refusal as such, and allowed calls pass.
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	_, err := c.ProduceBatch(ctxT(t), &logv1.ProduceBatchRequest{Records: []*logv1.Record{{}}})
	wantCode(t, "denied ProduceBatch", err, transport.PermissionDenied)
	if _, err := c.Produce(ctxT(t), &logv1.ProduceRequest{Record: &logv1.Record{}}); err != nil {
		t.Errorf("admitted Produce: %v", err)
	}
}

// testMalformedRequest: a request that does not decode (here a truncated protobuf message) is
// InvalidArgument (DESIGN.md §2), whichever server, and nothing reaches the handler.
func testMalformedRequest(t *testing.T, h Harness) {
	svc := NewService()
	s := Start(t, h, transport.ServerConfig{Log: svc, Cluster: svc})
	truncated := []byte{0x0a, 0x05, 0x0a} // field 1, 5 bytes long, 1 byte there
	code, msg := rawGRPC(t, s.Addr, transport.MethodProduce, grpcFrame(truncated, false), false)
	if code != grpcCode(transport.InvalidArgument) {
		t.Errorf("truncated Produce: grpc-status %s (%s), want %s (InvalidArgument)", code, msg, grpcCode(transport.InvalidArgument))
	}
	if svc.Calls() != 0 {
		t.Errorf("the handler ran %d times", svc.Calls())
	}
}

// testAdmittedPeer: the peer Admit stores in the context, with what it decided (Server), is the
// one Intercept and the handler see; the transport does not describe the caller afresh. The
// server's authorization trusts a forwarded-for claim from a cluster peer only, so losing Admit's
// verdict made a relayed request lose its original caller.
func testAdmittedPeer(t *testing.T, h Harness) {
	svc := NewService()
	seen := make(chan transport.Peer, 1)
	s := Start(t, h, transport.ServerConfig{
		Log: svc, Cluster: svc,
		Admit: func(ctx context.Context, _ string, p transport.Peer) (context.Context, error) {
			p.Server = true
			return transport.ContextWithPeer(ctx, p), nil
		},
		Intercept: func(ctx context.Context, _ string, p transport.Peer) (context.Context, error) {
			if pp, ok := transport.PeerFromContext(ctx); !ok || !samePeer(pp, p) {
				t.Errorf("PeerFromContext in Intercept = %v, %v; want %v", pp, ok, p)
			}
			seen <- p
			return ctx, nil
		},
	})
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	if _, err := c.Produce(ctxT(t), &logv1.ProduceRequest{Record: &logv1.Record{}}); err != nil {
		t.Fatal(err)
	}
	if p := <-seen; !p.Server || p.Addr == "" || p.Protocol == "" {
		t.Errorf("Intercept saw %+v, want Admit's peer (Server, with its address and protocol)", p)
	}
}

// testBatchRecords: a ProduceBatch is refused with ResourceExhausted, naming
// the limit, when it carries more records than MaxBatchRecords, counted
// before decoding, and nothing is appended; 2 M empty records cost the
// server little.
func testBatchRecords(t *testing.T, h Harness) {
	svc := NewService()
	s := Start(t, h, transport.ServerConfig{Log: svc, Limits: transport.Limits{MaxBatchRecords: 3}})
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	recs := func(n int) []*logv1.Record {
		out := make([]*logv1.Record, n)
		for i := range out {
			out[i] = &logv1.Record{Value: []byte("v")}
		}
		return out
	}
	if _, err := c.ProduceBatch(ctxT(t), &logv1.ProduceBatchRequest{Records: recs(3)}); err != nil {
		t.Fatalf("ProduceBatch at the limit: %v", err)
	}
	_, err := c.ProduceBatch(ctxT(t), &logv1.ProduceBatchRequest{Records: recs(4)})
	// ResourceExhausted whatever the transport (connect-go's codec refusals are InvalidArgument).
	wantCode(t, "ProduceBatch above the limit", err, transport.ResourceExhausted)
	if err != nil && !strings.Contains(err.Error(), "at most 3 records") {
		t.Errorf("error %q does not name the limit", err)
	}
	if n := len(svc.Records()); n != 3 {
		t.Errorf("%d records appended, want 3 (the refused batch's were not)", n)
	}

	// Read (connect-go's read buffer grows by doubling: about 8 times the
	// message under -race), counted and refused before decoding, which would
	// allocate some 300 MiB.
	s2 := Start(t, h, transport.ServerConfig{Log: NewService()})
	const records = (4<<20)/2 - 16
	batch := grpcFrame(emptyRecordsBatch(records), false)
	var code, msg string
	n := allocated(func() { code, msg = rawGRPC(t, s2.Addr, transport.MethodProduceBatch, batch, false) })
	if code != grpcCode(transport.ResourceExhausted) {
		t.Errorf("ProduceBatch of 2 M records: grpc-status %q (%s), want ResourceExhausted", code, msg)
	}
	if n > 2*maxHeapGrowth {
		t.Errorf("ProduceBatch of 2 M records: %d MiB allocated, want under %d MiB", n>>20, 2*maxHeapGrowth>>20)
	}
	t.Logf("ProduceBatch of %d records: %d KiB allocated", records, n>>10)
}

// testBatchHeaders: a ProduceBatch whose record carries more headers than
// transport.MaxRecordHeaders is refused with ResourceExhausted before it is
// decoded. The headers were counted only after decoding (the state machine
// refuses more than 1024 per record), and decoding 2 M empty headers, 2 bytes
// each on the wire, allocated some 200 MiB for one 4 MiB request (a leader's
// RSS went from 40 to 440 MB for a 3 MB one). A record at the limit passes.
func testBatchHeaders(t *testing.T, h Harness) {
	svc := NewService()
	s := Start(t, h, transport.ServerConfig{Log: svc})
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	hdrs := make([]*logv1.Header, transport.MaxRecordHeaders)
	for i := range hdrs {
		hdrs[i] = &logv1.Header{Key: "k"}
	}
	if _, err := c.ProduceBatch(ctxT(t), &logv1.ProduceBatchRequest{Records: []*logv1.Record{{Headers: hdrs}, {Headers: hdrs}}}); err != nil {
		t.Fatalf("ProduceBatch of records at the header limit: %v", err)
	}
	_, err := c.ProduceBatch(ctxT(t), &logv1.ProduceBatchRequest{Records: []*logv1.Record{{Headers: hdrs}, {Headers: append(hdrs, &logv1.Header{Key: "k"})}}})
	wantCode(t, "ProduceBatch with a record above the header limit", err, transport.ResourceExhausted)
	if n := len(svc.Records()); n != 2 {
		t.Errorf("%d records appended, want 2 (the refused batch's were not)", n)
	}

	const headers = (4<<20)/2 - 16
	batch := grpcFrame(emptyHeadersBatch(headers), false)
	var code, msg string
	n := allocated(func() { code, msg = rawGRPC(t, s.Addr, transport.MethodProduceBatch, batch, false) })
	if code != grpcCode(transport.ResourceExhausted) {
		t.Errorf("ProduceBatch of a record of 2 M headers: grpc-status %q (%s), want ResourceExhausted", code, msg)
	}
	if n > 2*maxHeapGrowth {
		t.Errorf("ProduceBatch of a record of 2 M headers: %d MiB allocated, want under %d MiB", n>>20, 2*maxHeapGrowth>>20)
	}
	t.Logf("ProduceBatch of a record of %d headers: %d KiB allocated", headers, n>>10)
}

// testRecordHeaders: a Produce, or a ProduceStream message, whose record
// carries more headers than transport.MaxRecordHeaders is refused with
// ResourceExhausted before it is decoded, as a ProduceBatch's. Its 1 MiB
// bound holds half a million empty headers, which decoded cost some 70 MiB.
// A record at the limit passes.
func testRecordHeaders(t *testing.T, h Harness) {
	svc := NewService()
	s := Start(t, h, transport.ServerConfig{Log: svc})
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	ctx := ctxT(t)
	hdrs := make([]*logv1.Header, transport.MaxRecordHeaders)
	for i := range hdrs {
		hdrs[i] = &logv1.Header{Key: "k"}
	}
	over := append(hdrs[:len(hdrs):len(hdrs)], &logv1.Header{Key: "k"})
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Headers: hdrs}}); err != nil {
		t.Fatalf("Produce of a record at the header limit: %v", err)
	}
	_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Headers: over}})
	wantCode(t, "Produce of a record above the header limit", err, transport.ResourceExhausted)
	ps, err := c.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	if err := ps.Send(&logv1.ProduceRequest{Record: &logv1.Record{Headers: hdrs}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Receive(); err != nil {
		t.Fatalf("ProduceStream message at the header limit: %v", err)
	}
	_ = ps.Send(&logv1.ProduceRequest{Record: &logv1.Record{Headers: over}})
	_, err = ps.Receive()
	wantCode(t, "ProduceStream message above the header limit", err, transport.ResourceExhausted)
	if n := len(svc.Records()); n != 2 {
		t.Errorf("%d records appended, want 2 (the refused ones were not)", n)
	}

	const headers = (1<<20)/2 - 16
	msg := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), emptyHeaders(headers))
	var code, text string
	n := allocated(func() { code, text = rawGRPC(t, s.Addr, transport.MethodProduce, grpcFrame(msg, false), false) })
	if code != grpcCode(transport.ResourceExhausted) {
		t.Errorf("Produce of a record of %d headers: grpc-status %q (%s), want ResourceExhausted", headers, code, text)
	}
	if n > maxHeapGrowth {
		t.Errorf("Produce of a record of %d headers: %d MiB allocated, want under %d MiB", headers, n>>20, maxHeapGrowth>>20)
	}
	t.Logf("Produce of a record of %d headers: %d KiB allocated", headers, n>>10)
}

// emptyHeaders returns the fields of a binary Record of n empty headers
// (two bytes each).
func emptyHeaders(n int) []byte {
	return bytes.Repeat(protowire.AppendVarint(protowire.AppendTag(nil, 6, protowire.BytesType), 0), n)
}

// emptyHeadersBatch returns a binary ProduceBatchRequest of one record of n
// empty headers (two bytes each).
func emptyHeadersBatch(n int) []byte {
	hdr := protowire.AppendVarint(protowire.AppendTag(nil, 6, protowire.BytesType), 0)
	rec := bytes.Repeat(hdr, n)
	return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), rec)
}

// testRequestBounds: each method reads only what it needs.
func testRequestBounds(t *testing.T, h Harness) {
	svc := NewService()
	s := Start(t, h, transport.ServerConfig{Log: svc, Cluster: svc, Limits: transport.Limits{MaxRecordMessageBytes: 4 << 10}})
	c := Dial(t, h, s.Addr, transport.ClientConfig{})
	ctx := ctxT(t)
	if _, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: make([]byte, 3<<10)}}); err != nil {
		t.Fatalf("Produce within the record bound: %v", err)
	}
	_, err := c.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: make([]byte, 5<<10)}})
	wantCode(t, "Produce above the record bound", err, transport.ResourceExhausted)
	ps, err := c.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	_ = ps.Send(&logv1.ProduceRequest{Record: &logv1.Record{Value: make([]byte, 5<<10)}})
	_, err = ps.Receive()
	wantCode(t, "ProduceStream message above the record bound", err, transport.ResourceExhausted)
	if _, err := c.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: []*logv1.Record{{Value: make([]byte, 5<<10)}, {Value: make([]byte, 5<<10)}}}); err != nil {
		t.Errorf("ProduceBatch of two 5 KiB records (batch bound 4 MiB): %v", err)
	}
	// A Consume (or Join, or health check) padded to 32 KiB with an unknown
	// field: above the 16 KiB bound of requests that carry no record.
	pad := protowire.AppendBytes(protowire.AppendTag(nil, 1000, protowire.BytesType), make([]byte, 32<<10))
	conn, err := ggrpc.NewClient("passthrough:///"+s.Addr, ggrpc.WithTransportCredentials(insecure.NewCredentials()),
		ggrpc.WithDefaultCallOptions(ggrpc.ForceCodec(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, method := range []string{transport.MethodConsume, transport.MethodGetServers, transport.MethodJoin, "/grpc.health.v1.Health/Check"} {
		var out []byte
		err := conn.Invoke(ctx, method, &pad, &out)
		if got := status.Code(err); got != codes.ResourceExhausted {
			t.Errorf("%s of 32 KiB: %v, want ResourceExhausted", method, err)
		}
	}
	if n := len(svc.Records()); n != 3 {
		t.Errorf("%d records appended, want 3 (the refused ones were not)", n)
	}
}

// testMaxConcurrentStreams: the server advertises its stream limit in its
// HTTP/2 SETTINGS, and refuses a stream beyond it.
func testMaxConcurrentStreams(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{Limits: transport.Limits{MaxConcurrentStreams: 3}})
	conn, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's SETTINGS: %v", err)
		}
		sf, ok := f.(*http2.SettingsFrame)
		if !ok || sf.IsAck() {
			continue
		}
		v, ok := sf.Value(http2.SettingMaxConcurrentStreams)
		if !ok || v != 3 {
			t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS = %d (sent: %v), want 3", v, ok)
		}
		return
	}
}

// testHeaderBounds: a request's headers are bounded as its body is. A health check whose
// headers carry 1 MiB in one field, sent in HEADERS and CONTINUATION frames as any client
// may, is refused (the stream reset, 431, or an error status), never served: a caller cannot
// make the server hold megabytes of metadata per call, before Admit decides on it or for the
// life of a stream.
func testHeaderBounds(t *testing.T, h Harness) {
	s := Start(t, h, transport.ServerConfig{})
	conn, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/grpc.health.v1.Health/Check"},
		{":authority", s.Addr}, {"content-type", "application/grpc"}, {"te", "trailers"}, {"x-pad", strings.Repeat("a", 1<<20)}} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	// A write the server cut short (it closed the connection) is a refusal too.
	const maxFrame = 16 << 10 // the initial SETTINGS_MAX_FRAME_SIZE
	rest := block.Bytes()
	first := rest[:maxFrame]
	rest = rest[maxFrame:]
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first}); err != nil {
		t.Logf("refused while sending the headers: %v", err)
		return
	}
	for len(rest) > 0 {
		n := min(len(rest), maxFrame)
		if err := fr.WriteContinuation(1, n == len(rest), rest[:n]); err != nil {
			t.Logf("refused while sending the headers: %v", err)
			return
		}
		rest = rest[n:]
	}
	if err := fr.WriteData(1, true, grpcFrame(nil, false)); err != nil {
		t.Logf("refused after the headers: %v", err)
		return
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Logf("connection ended: %v", err)
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame:
			t.Logf("stream reset: %v", f.ErrCode)
			return
		case *http2.GoAwayFrame:
			t.Logf("GOAWAY: %v", f.ErrCode)
			return
		case *http2.MetaHeadersFrame:
			if st := f.PseudoValue("status"); st != "" && st != "200" {
				t.Logf("HTTP status %s", st)
				return
			}
			for _, hf := range f.RegularFields() {
				if hf.Name == "grpc-status" {
					if hf.Value == "0" {
						t.Fatal("a health check with 1 MiB of headers was served")
					}
					t.Logf("grpc-status %s", hf.Value)
					return
				}
			}
		}
	}
}
