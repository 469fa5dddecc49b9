package connect_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

// postH2C sends body to path over HTTP/2 without TLS (h2c, as gRPC clients do over plaintext)
// and returns the answer's headers, trailers and body as one text.
func postH2C(t *testing.T, addr, path, contentType string, body []byte) string {
	t.Helper()
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Te", "trailers")
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out strings.Builder
	_ = res.Header.Write(&out)
	_ = res.Trailer.Write(&out)
	out.Write(b)
	return out.String()
}

// TestTruncatedEnvelope: a gRPC, gRPC-Web or Connect streaming request whose body ends inside a
// message (its 5-byte prefix cut short, or a length beyond what was sent) is the client's
// mistake: InvalidArgument, saying the request ended inside a message, and nothing is stored.
// connect-go answered Internal ("protocol error: incomplete envelope: unexpected EOF",
// "promised 16 bytes in enveloped message, got 2 bytes"), which blames the server.
func TestTruncatedEnvelope(t *testing.T) {
	svc := transporttest.NewService()
	s := transporttest.Start(t, harness(tconnect.ProtocolConnect), transport.ServerConfig{Log: svc})
	frame := func(msg []byte) []byte {
		f := make([]byte, 5, 5+len(msg))
		binary.BigEndian.PutUint32(f[1:], uint32(len(msg)))
		return append(f, msg...)
	}
	good := frame([]byte{0x0a, 0x00}) // a ProduceRequest with an empty record
	bodies := []struct {
		name string
		body []byte
	}{
		{"prefix cut short", []byte{0, 0, 0}},
		{"length beyond the body", append([]byte{0, 0, 0, 0, 16}, 0x0a, 0x00)},
		{"a message, then a prefix cut short", append(append([]byte(nil), good...), 0, 0)},
	}
	calls := []struct{ path, contentType, invalid string }{
		{transport.MethodProduce, "application/grpc", "Grpc-Status: 3"},
		{transport.MethodConsumeStream, "application/grpc", "Grpc-Status: 3"},
		{transport.MethodProduceStream, "application/grpc", "Grpc-Status: 3"},
		{transport.MethodProduce, "application/grpc-web+proto", "Grpc-Status: 3"},
		{transport.MethodConsumeStream, "application/connect+proto", `"code":"invalid_argument"`},
		{transport.MethodProduceStream, "application/connect+proto", `"code":"invalid_argument"`},
	}
	for _, b := range bodies {
		for _, c := range calls {
			got := postH2C(t, s.Addr, c.path, c.contentType, b.body)
			if !strings.Contains(got, c.invalid) || !strings.Contains(got, "ended inside a message") {
				t.Errorf("%s as %s, %s: answered\n%s\nwant InvalidArgument (%s) saying the request ended inside a message",
					c.path, c.contentType, b.name, got, c.invalid)
			}
		}
	}
	// Only a ProduceStream's complete first message may be stored.
	if n := len(svc.Records()); n > 2 {
		t.Errorf("%d records stored, want at most 2", n)
	}
	// Complete requests are served as before.
	if got := postH2C(t, s.Addr, transport.MethodProduce, "application/grpc", good); !strings.Contains(got, "Grpc-Status: 0") {
		t.Errorf("a complete Produce answered\n%s\nwant grpc-status 0", got)
	}
}
