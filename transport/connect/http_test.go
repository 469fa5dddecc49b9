package connect_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

// post sends body to path as a plain HTTP/1.1 request, as curl does.
func post(t *testing.T, addr, path, contentType, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return res, b
}

// TestJSONOverHTTP1 is the README's curl line, and the JSON error format.
func TestJSONOverHTTP1(t *testing.T) {
	s := transporttest.Start(t, harness(tconnect.ProtocolConnect), transport.ServerConfig{})
	for i, want := range []string{`{}`, `{"offset":"1"}`} { // proto3 JSON omits offset 0
		res, body := post(t, s.Addr, "/log.v1.Log/Produce", "application/json", `{"record":{"value":"aGk="}}`, nil)
		if res.StatusCode != http.StatusOK || res.Proto != "HTTP/1.1" {
			t.Fatalf("Produce %d: %s %s: %s", i, res.Proto, res.Status, body)
		}
		if got := strings.Join(strings.Fields(string(body)), ""); got != want {
			t.Fatalf("Produce %d body = %s, want %s", i, body, want)
		}
	}
	res, body := post(t, s.Addr, "/log.v1.Log/Consume", "application/json", `{"offset":"1"}`, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("Consume: %s: %s", res.Status, body)
	}
	var consumed struct {
		Record struct {
			Value  []byte `json:"value"`
			Offset string `json:"offset"`
		} `json:"record"`
	}
	if err := json.Unmarshal(body, &consumed); err != nil {
		t.Fatalf("Consume body %s: %v", body, err)
	}
	if string(consumed.Record.Value) != "hi" || consumed.Record.Offset != "1" {
		t.Fatalf("Consume = %s, want value hi offset 1", body)
	}

	type connectError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"details"`
	}
	tests := []struct {
		name, path, body string
		setup            func()
		code             string
		detail           string
	}{
		{name: "out of range", path: "/log.v1.Log/Consume", body: `{"offset":"9"}`, code: "out_of_range"},
		{name: "malformed JSON", path: "/log.v1.Log/Consume", body: `{"offset":`, code: "invalid_argument"},
		{name: "unknown method", path: "/log.v1.Log/Nope", body: `{}`},
		{
			name: "not leader", path: "/log.v1.Log/Produce", body: `{"record":{"value":"aGk="}}`,
			setup: func() { s.Service.SetNotLeader(&transport.NotLeader{LeaderID: "n2", LeaderAddr: "127.0.0.1:8402"}) },
			code:  "failed_precondition", detail: "log.v1.NotLeader",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			res, body := post(t, s.Addr, tt.path, "application/json", tt.body, nil)
			if res.StatusCode == http.StatusOK {
				t.Fatalf("status 200, want an error: %s", body)
			}
			if tt.code == "" {
				return
			}
			var e connectError
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body %s: %v", body, err)
			}
			if e.Code != tt.code {
				t.Errorf("code = %q, want %q (%s)", e.Code, tt.code, body)
			}
			if tt.detail != "" && (len(e.Details) != 1 || e.Details[0].Type != tt.detail) {
				t.Errorf("details = %+v, want one %s", e.Details, tt.detail)
			}
		})
	}
}

// TestCompressMinBytes checks that small responses are not gzipped even
// when the client accepts gzip (DESIGN §8), and large ones are.
func TestCompressMinBytes(t *testing.T) {
	s := transporttest.Start(t, harness(tconnect.ProtocolConnect), transport.ServerConfig{CompressMinBytes: 512})
	gzip := map[string]string{"Accept-Encoding": "gzip"}
	big := strings.Repeat("A", 4096)
	for _, v := range []string{"aGk=", big} {
		if res, body := post(t, s.Addr, "/log.v1.Log/Produce", "application/json", `{"record":{"value":"`+v+`"}}`, nil); res.StatusCode != http.StatusOK {
			t.Fatalf("Produce: %s: %s", res.Status, body)
		}
	}
	tests := []struct {
		offset string
		gzip   bool
	}{{"0", false}, {"1", true}}
	for _, tt := range tests {
		res, body := post(t, s.Addr, "/log.v1.Log/Consume", "application/json", `{"offset":"`+tt.offset+`"}`, gzip)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("Consume %s: %s: %s", tt.offset, res.Status, body)
		}
		if got := res.Header.Get("Content-Encoding") == "gzip"; got != tt.gzip {
			t.Errorf("Consume %s: gzip = %v, want %v (%d bytes)", tt.offset, got, tt.gzip, len(body))
		}
	}
}

// TestPeerProtocol checks that handlers see which protocol a call used.
func TestPeerProtocol(t *testing.T) {
	for _, p := range []tconnect.Protocol{tconnect.ProtocolConnect, tconnect.ProtocolGRPC, tconnect.ProtocolGRPCWeb} {
		t.Run(p.String(), func(t *testing.T) {
			got := make(chan string, 1)
			h := harness(p)
			s := transporttest.Start(t, h, transport.ServerConfig{
				Intercept: func(ctx context.Context, _ string, peer transport.Peer) (context.Context, error) {
					got <- peer.Protocol
					return ctx, nil
				},
			})
			c := transporttest.Dial(t, h, s.Addr, transport.ClientConfig{})
			if _, err := c.GetBounds(t.Context(), &logv1.GetBoundsRequest{}); err != nil {
				t.Fatal(err)
			}
			if proto := <-got; proto != p.String() {
				t.Errorf("peer protocol = %q, want %q", proto, p)
			}
		})
	}
}

// TestJSONBatchRecords: a JSON ProduceBatch with more records than MaxBatchRecords is refused
// before it is decoded, with resource_exhausted (HTTP 429) as over gRPC; one within the limit
// is appended.
func TestJSONBatchRecords(t *testing.T) {
	s := transporttest.Start(t, harness(tconnect.ProtocolConnect), transport.ServerConfig{Limits: transport.Limits{MaxBatchRecords: 3}})
	res, body := post(t, s.Addr, "/log.v1.Log/ProduceBatch", "application/json", `{"records":[{},{"value":"aGk="},{}]}`, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("3 records: %s: %s", res.Status, body)
	}
	res, body = post(t, s.Addr, "/log.v1.Log/ProduceBatch", "application/json", `{"records":[{},{},{},{}]}`, nil)
	if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), `"resource_exhausted"`) ||
		!strings.Contains(string(body), "at most 3 records") {
		t.Fatalf("4 records: %s: %s, want resource_exhausted naming the limit", res.Status, body)
	}
	if n := len(s.Service.Records()); n != 3 {
		t.Fatalf("%d records appended, want 3", n)
	}
}

// TestJSONBatchRecordsCountsRecordsOnly: the records-per-batch count of a JSON ProduceBatch
// counts its records, not every JSON object in it: a record's headers and the producer are
// objects too, and a header key may hold a brace. A batch of 2 records with 3 headers each was
// refused as more than 3 records (ResourceExhausted), though the same batch in binary or over
// gRPC was appended.
func TestJSONBatchRecordsCountsRecordsOnly(t *testing.T) {
	s := transporttest.Start(t, harness(tconnect.ProtocolConnect), transport.ServerConfig{Limits: transport.Limits{MaxBatchRecords: 3}})
	hdrs := `"headers":[{"key":"a{"},{"key":"b","value":"aGk="},{"key":"{{{"}]`
	body := `{"records":[{"value":"aGk=",` + hdrs + `},{` + hdrs + `}],"producer":{"id":"0"}}`
	res, b := post(t, s.Addr, "/log.v1.Log/ProduceBatch", "application/json", body, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("2 records with headers: %s: %s", res.Status, b)
	}
	if n := len(s.Service.Records()); n != 2 {
		t.Fatalf("%d records appended, want 2", n)
	}
	res, b = post(t, s.Addr, "/log.v1.Log/ProduceBatch", "application/json", `{"records":[{},{`+hdrs+`},{},{}]}`, nil)
	if res.StatusCode == http.StatusOK || !strings.Contains(string(b), "at most 3 records") {
		t.Fatalf("4 records: %s: %s, want a refusal naming the limit", res.Status, b)
	}
}

// TestJSONBatchHeaders: a JSON ProduceBatch, or Produce, with a record of more than
// MaxRecordHeaders headers is refused before it is decoded, with resource_exhausted (HTTP 429)
// as in binary; records at the limit, however many, are appended (each record's headers are
// counted apart, and braces in header keys are not headers).
func TestJSONBatchHeaders(t *testing.T) {
	s := transporttest.Start(t, harness(tconnect.ProtocolConnect), transport.ServerConfig{})
	headers := func(n int) string {
		h := make([]string, n)
		for i := range h {
			h[i] = `{"key":"{k}"}`
		}
		return `"headers":[` + strings.Join(h, ",") + `]`
	}
	full := `{` + headers(transport.MaxRecordHeaders) + `}`
	res, body := post(t, s.Addr, "/log.v1.Log/ProduceBatch", "application/json", `{"records":[`+full+`,`+full+`],"producer":{"id":"0"}}`, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("2 records at the header limit: %s: %.200s", res.Status, body)
	}
	over := `{"value":"aGk=",` + headers(transport.MaxRecordHeaders+1) + `}`
	res, body = post(t, s.Addr, "/log.v1.Log/ProduceBatch", "application/json", `{"records":[`+full+`,`+over+`]}`, nil)
	if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), `"resource_exhausted"`) ||
		!strings.Contains(string(body), "at most 1024 headers") {
		t.Fatalf("a record above the header limit: %s: %.200s, want resource_exhausted naming the limit", res.Status, body)
	}
	if n := len(s.Service.Records()); n != 2 {
		t.Fatalf("%d records appended, want 2", n)
	}
	res, body = post(t, s.Addr, "/log.v1.Log/Produce", "application/json", `{"record":`+full+`,"producer":{"id":"0"}}`, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("Produce of a record at the header limit: %s: %.200s", res.Status, body)
	}
	res, body = post(t, s.Addr, "/log.v1.Log/Produce", "application/json", `{"record":`+over+`}`, nil)
	if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), `"resource_exhausted"`) ||
		!strings.Contains(string(body), "at most 1024 headers") {
		t.Fatalf("Produce of a record above the header limit: %s: %.200s, want resource_exhausted naming the limit", res.Status, body)
	}
	if n := len(s.Service.Records()); n != 3 {
		t.Fatalf("%d records appended, want 3", n)
	}
}

// TestRequestReadTimeout: a unary request whose body stalls is answered when
// RequestReadTimeout passes, while the client still holds the body open; a
// stream's body may take its time.
func TestRequestReadTimeout(t *testing.T) {
	s := transporttest.Start(t, harness(tconnect.ProtocolConnect), transport.ServerConfig{Limits: transport.Limits{RequestReadTimeout: 200 * time.Millisecond}})
	for _, proto := range []string{"HTTP/1.1", "h2c"} {
		t.Run(proto, func(t *testing.T) {
			pr, pw := io.Pipe()
			defer pw.Close()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+s.Addr+"/log.v1.Log/Produce", pr)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			tr := &http.Transport{Protocols: new(http.Protocols)}
			if proto == "h2c" {
				tr.Protocols.SetUnencryptedHTTP2(true)
			} else {
				tr.Protocols.SetHTTP1(true)
			}
			defer tr.CloseIdleConnections()
			go func() { _, _ = io.WriteString(pw, `{"record":`) }() // and never the rest
			done := make(chan error, 1)
			go func() {
				res, err := tr.RoundTrip(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode == http.StatusOK {
						err = errors.New("status 200 for a request that never ended")
					}
				}
				done <- err
			}()
			select {
			case err := <-done:
				// Answered with an error status, or the connection was closed.
				t.Logf("stalled body: %v", err)
			case <-time.After(20 * time.Second):
				t.Fatal("a stalled request body held the call 20 s; RequestReadTimeout is 200 ms")
			}
			if n := len(s.Service.Records()); n != 0 {
				t.Fatalf("%d records appended", n)
			}
		})
	}
}

// TestRequestReadTimeoutKnownLength: a unary request whose body stops short of its
// Content-Length is answered when RequestReadTimeout passes, saying so. The deadline was lifted
// on its own error, and net/http, which reads what is left of a body before it writes the
// answer, then waited for the missing bytes with no deadline: no answer at all, for as long as
// the client kept the connection.
func TestRequestReadTimeoutKnownLength(t *testing.T) {
	s := transporttest.Start(t, harness(tconnect.ProtocolConnect), transport.ServerConfig{Limits: transport.Limits{RequestReadTimeout: 200 * time.Millisecond}})
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"record":{"value":"aGk="}}`
	if _, err := fmt.Fprintf(c, "POST /log.v1.Log/Produce HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\n\r\n%s", len(body)+10, body); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a body short of its Content-Length: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(b), "did not arrive within 200ms") {
		t.Errorf("answer %s %q, want 504 (deadline_exceeded) saying the body did not arrive in time", res.Status, b)
	}
	if n := len(s.Service.Records()); n != 0 {
		t.Fatalf("%d records appended", n)
	}
}

// TestReflectionListsEveryService: server reflection (what grpcurl list asks) names every
// service the server mounts; log.v1.Topics and log.v1.Groups were missing, so grpcurl could not
// describe or call them without the proto files.
func TestReflectionListsEveryService(t *testing.T) {
	s := transporttest.Start(t, harness(tconnect.ProtocolConnect), transport.ServerConfig{})
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true) // reflection is a bidirectional stream
	defer tr.CloseIdleConnections()
	stream := grpcreflect.NewClient(&http.Client{Transport: tr}, "http://"+s.Addr, connect.WithGRPC()).NewStream(t.Context())
	defer stream.Close()
	names, err := stream.ListServices()
	if err != nil {
		t.Fatalf("ListServices: %v", err)
	}
	for _, want := range []protoreflect.FullName{"log.v1.Log", "log.v1.Cluster", "log.v1.Topics", "log.v1.Groups", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, without %s", names, want)
			continue
		}
		if _, err := stream.FileContainingSymbol(want); err != nil {
			t.Errorf("FileContainingSymbol(%s): %v", want, err)
		}
	}
}

// TestUnsupportedMediaTypeSaysWhatToSend: curl's -d without -H sends a form's content type;
// the 415 says which to send instead.
func TestUnsupportedMediaTypeSaysWhatToSend(t *testing.T) {
	s := transporttest.Start(t, harness(tconnect.ProtocolConnect), transport.ServerConfig{})
	res, body := post(t, s.Addr, "/log.v1.Log/Produce", "application/x-www-form-urlencoded", `{"record":{"value":"aGk="}}`, nil)
	if res.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("status %s, want 415", res.Status)
	}
	if !strings.Contains(string(body), `"application/x-www-form-urlencoded"`) || !strings.Contains(string(body), "Content-Type: application/json") {
		t.Errorf("body %q: want the content type sent and the one to send", body)
	}
	if res.Header.Get("Accept-Post") == "" {
		t.Error("the Accept-Post header is gone")
	}
	// A supported type still works, and an unknown path is still 404.
	if res, body := post(t, s.Addr, "/log.v1.Log/Produce", "application/json", `{"record":{"value":"aGk="}}`, nil); res.StatusCode != http.StatusOK {
		t.Fatalf("JSON produce: %s: %s", res.Status, body)
	}
	if res, _ := post(t, s.Addr, "/log.v1.Log/Nope", "text/plain", `x`, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown method: %s, want 404", res.Status)
	}
}

// TestUnsupportedMediaTypeLikeASupportedOne: a type that only begins like a supported one
// (application/protobuf, the name other protobuf APIs use) gets the same hint: it was taken
// for application/proto and answered with a bare 415.
func TestUnsupportedMediaTypeLikeASupportedOne(t *testing.T) {
	s := transporttest.Start(t, harness(tconnect.ProtocolConnect), transport.ServerConfig{})
	for _, ct := range []string{"application/protobuf", "application/jsonl", "application/grpcx"} {
		res, body := post(t, s.Addr, "/log.v1.Log/Produce", ct, `{"record":{"value":"aGk="}}`, nil)
		if res.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(string(body), "Content-Type: application/json") {
			t.Errorf("%s: %s %q, want 415 saying what to send", ct, res.Status, body)
		}
	}
	for _, ct := range []string{"Application/JSON", "application/json; charset=utf-8", "application/grpc-web+proto"} {
		if res, body := post(t, s.Addr, "/log.v1.Log/GetServers", ct, `{}`, nil); res.StatusCode == http.StatusUnsupportedMediaType || strings.Contains(string(body), "send Connect JSON") {
			t.Errorf("%s: %s %q, want it taken", ct, res.Status, body)
		}
	}
}

// TestUnsupportedMediaTypeParameters: a supported type with a parameter connect-go does not take
// (charset=latin1) was refused with a bare 415 and no word on what was wrong; charset=utf-8 is
// still taken.
func TestUnsupportedMediaTypeParameters(t *testing.T) {
	s := transporttest.Start(t, harness(tconnect.ProtocolConnect), transport.ServerConfig{})
	res, body := post(t, s.Addr, "/log.v1.Log/GetServers", "application/json; charset=latin1", `{}`, nil)
	if res.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(string(body), "charset=utf-8") ||
		!strings.Contains(string(body), "Content-Type: application/json") {
		t.Errorf("charset=latin1: %s %q, want 415 saying only charset=utf-8 is taken", res.Status, body)
	}
	if res, body := post(t, s.Addr, "/log.v1.Log/GetServers", "application/json; charset=UTF-8", `{}`, nil); res.StatusCode != http.StatusOK {
		t.Errorf("charset=UTF-8: %s %q, want it taken", res.Status, body)
	}
}

// TestRefusalsSayWhatToSend: connect-go refuses a GET (405), a bidirectional stream over
// HTTP/1.1 (505), Connect unary JSON to a stream and Connect streaming to a unary method (415)
// with a bare status and no body: what curl users try first got no word on what to send.
func TestRefusalsSayWhatToSend(t *testing.T) {
	s := transporttest.Start(t, harness(tconnect.ProtocolConnect), transport.ServerConfig{})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+s.Addr+"/log.v1.Log/GetServers", nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "POST" || !strings.Contains(string(body), "takes POST") {
		t.Errorf("GET: %s (Allow %q) %q, want 405 saying to POST", res.Status, res.Header.Get("Allow"), body)
	}
	for _, c := range []struct {
		path, ct, body string
		code           int
		want           string
	}{
		{"/log.v1.Log/ProduceStream", "application/connect+json", "", http.StatusHTTPVersionNotSupported, "needs HTTP/2"},
		{"/log.v1.Log/ConsumeStream", "application/json", `{"offset":0}`, http.StatusUnsupportedMediaType, "application/connect+json"},
		{"/log.v1.Log/Produce", "application/connect+json", `{}`, http.StatusUnsupportedMediaType, "is a unary call"},
		// gRPC-Web's text mode (the default of grpc-web's protoc plugin) was told that "gRPC-Web
		// clients set their own" content type, which it had: connect-go serves binary gRPC-Web only.
		{"/log.v1.Log/GetServers", "application/grpc-web-text", "AAAAAAA=", http.StatusUnsupportedMediaType, "application/grpc-web+proto"},
		{"/log.v1.Log/ConsumeStream", "application/grpc-web-text+proto", "AAAAAAA=", http.StatusUnsupportedMediaType, "text mode"},
	} {
		res, body := post(t, s.Addr, c.path, c.ct, c.body, nil)
		if res.StatusCode != c.code || !strings.Contains(string(body), c.want) {
			t.Errorf("POST %s as %s: %s %q, want %d saying %q", c.path, c.ct, res.Status, body, c.code, c.want)
		}
	}
	// What is taken still works.
	if res, body := post(t, s.Addr, "/log.v1.Log/Produce", "application/json", `{"record":{"value":"aGk="}}`, nil); res.StatusCode != http.StatusOK {
		t.Fatalf("JSON produce: %s: %s", res.Status, body)
	}
}
