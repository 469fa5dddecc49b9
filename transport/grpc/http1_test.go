package grpc_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
	"github.com/commitlog-go/commitlog/transport/transporttest"
)

// TestHTTP1RequestIsTold: curl's JSON call (HTTP/1.1) to a plaintext gRPC server got grpc-go's
// HTTP/2 frames, which curl reports as "Received HTTP/0.9 when not allowed"; it gets a 505
// saying the server speaks gRPC only, and gRPC still works on the same port.
func TestHTTP1RequestIsTold(t *testing.T) {
	s := transporttest.Start(t, harness(), transport.ServerConfig{})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Post("http://"+s.Addr+"/log.v1.Log/Produce", "application/json",
		strings.NewReader(`{"record":{"value":"aGk="}}`))
	if err != nil {
		t.Fatalf("POST over HTTP/1.1: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusHTTPVersionNotSupported || !strings.Contains(string(body), "gRPC only") {
		t.Errorf("POST over HTTP/1.1: %s %q, want 505 saying the server speaks gRPC only", res.Status, body)
	}
	c, err := harness().NewClient(s.Addr, transport.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.GetServers(t.Context(), &logv1.GetServersRequest{}); err != nil {
		t.Errorf("gRPC after an HTTP/1.1 request: %v", err)
	}
}
